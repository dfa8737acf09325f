"""Read many items at once, with retries; a failed item becomes an error string, never an exception.

How requests run
----------------
- Async backends (s3, http(s), and other fsspec ``AsyncFileSystem``\\ s) run as coroutines on
  fsspec's I/O event loop: up to ``max_in_flight`` requests share one loop, and a retry's wait
  holds no thread.
- Blocking backends (local files, ``memory://``) run in a pool of ``max_in_flight`` threads.

Both give ``concurrent.futures.Future`` objects, and one sliding window keeps at most
``max_in_flight`` of them outstanding, so memory stays bounded however long the input is.

S3 reads one object with a single ``GetObject`` request and takes size, ETag, LastModified and
version from its response headers (``s3fs``'s own ``cat_file`` asks ``HeadObject`` first, which
costs a second round trip per item); ``info_many`` uses one ``HeadObject``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import fsspec

from .._validation import check_count
from ..errors import InputError
from ._fs import get_filesystem, split_uri
from .retry import (
    RetryPolicy,
    TruncatedBodyError,
    acall_with_retry,
    call_with_retry,
    classify_error,
)

__all__ = ["FetchResult", "Fetcher", "normalize_info"]

_S3 = ("s3", "s3a")


@dataclass(frozen=True, slots=True)
class FetchResult:
    """The outcome of reading (or looking up) one item.

    Attributes
    ----------
    uri : str
        The URI as it was given.
    data : bytes or None
        The item's bytes; None when ``error`` is set and for :meth:`Fetcher.info_many`.
    info : dict
        Identity of the object, keys present when the backend knows them: ``size`` (int,
        bytes), ``etag`` (str, quotes removed), ``mtime`` (float, seconds since the epoch, UTC),
        ``version`` (str, S3 version id).
    error : str or None
        ``"<reason>: <uri> (<detail>)"`` where reason is one of ``"not found"``,
        ``"access denied"``, ``"client error"``, ``"is a directory"``, ``"bad uri"``,
        ``"error"`` (permanent, tried once) or ``"timeout"``, ``"connection error"``,
        ``"server error"``, ``"truncated body"`` (transient, retried).
    attempts : int
        Tries spent (0 when the URI could not even be parsed).
    """

    uri: str
    data: bytes | None
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        """True when the item was read (or looked up) without error."""
        return self.error is None

    def __repr__(self) -> str:
        data = "None" if self.data is None else f"<{len(self.data)} bytes>"
        return (
            f"FetchResult(uri={self.uri!r}, data={data}, info={self.info!r}, "
            f"error={self.error!r}, attempts={self.attempts})"
        )


def _timestamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return value.timestamp()
    if isinstance(value, str):
        try:
            return parsedate_to_datetime(value).timestamp()  # HTTP dates
        except (TypeError, ValueError):
            try:
                return _timestamp(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                return None
    return None


def normalize_info(raw: dict[str, Any]) -> dict[str, Any]:
    """Map a backend's info dict (``fs.info``, S3 or HTTP headers) to ``size``/``etag``/``mtime``.

    Parameters
    ----------
    raw : dict
        What the backend returned.

    Returns
    -------
    info : dict
        Only the keys the backend knew; see :class:`FetchResult`.
    """
    out: dict[str, Any] = {}
    for key in ("size", "Size", "ContentLength", "content-length"):
        if raw.get(key) is not None:
            out["size"] = int(raw[key])
            break
    for key in ("ETag", "etag", "ETAG", "e_tag"):
        if raw.get(key):
            tag = str(raw[key])
            weak = tag.startswith("W/")
            tag = tag[2:] if weak else tag
            out["etag"] = ("W/" if weak else "") + tag.strip('"')
            break
    for key in ("mtime", "LastModified", "Last-Modified", "last_modified", "updated", "created"):
        stamp = _timestamp(raw.get(key))
        if stamp is not None:
            out["mtime"] = stamp
            break
    version = raw.get("VersionId") or raw.get("version_id")
    if version and version != "null":
        out["version"] = str(version)
    return out


# -- readers: (fs, path) -> (data, info); they raise, the retry loop classifies ------------------


async def _s3_get(fs: Any, path: str) -> tuple[bytes, dict[str, Any]]:
    bucket, key, version = fs.split_path(path)
    if not key:
        raise IsADirectoryError(f"{path!r} names a bucket, not an object")
    extra = {"VersionId": version} if version else {}
    resp = await fs._call_s3("get_object", Bucket=bucket, Key=key, **extra)
    body = resp["Body"]
    try:
        data = await body.read()
    finally:
        body.close()
    info = normalize_info(resp)
    expected = info.get("size")
    if expected is not None and len(data) < expected:
        raise TruncatedBodyError(len(data), expected)
    info["size"] = len(data)
    return data, info


async def _s3_head(fs: Any, path: str) -> dict[str, Any]:
    bucket, key, version = fs.split_path(path)
    if not key:
        raise IsADirectoryError(f"{path!r} names a bucket, not an object")
    extra = {"VersionId": version} if version else {}
    return normalize_info(await fs._call_s3("head_object", Bucket=bucket, Key=key, **extra))


async def _async_get(fs: Any, path: str) -> tuple[bytes, dict[str, Any]]:
    data = await fs._cat_file(path)
    return data, {"size": len(data)}


async def _async_info(fs: Any, path: str) -> dict[str, Any]:
    raw = await fs._info(path)
    if raw.get("type") == "directory":
        raise IsADirectoryError(f"{path!r} is a directory")
    return normalize_info(raw)


def _sync_get(fs: fsspec.AbstractFileSystem, path: str) -> tuple[bytes, dict[str, Any]]:
    info = _sync_info(fs, path)
    data = fs.cat_file(path)
    expected = info.get("size")
    if expected is not None and len(data) < expected:
        raise TruncatedBodyError(len(data), expected)
    info["size"] = len(data)
    return data, info


def _sync_info(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any]:
    raw = fs.info(path)
    if raw.get("type") == "directory":
        raise IsADirectoryError(f"{path!r} is a directory")
    return normalize_info(raw)


class Fetcher:
    """Reads items given as URIs, many at a time, with bounded retries.

    Parameters
    ----------
    storage_options : dict, optional
        Filesystem options: flat (used for every remote protocol) or ``{protocol: {...}}``.
        For S3 the Fetcher turns botocore's and s3fs's own retry loops off (so that
        ``retries`` is the only one) unless ``config_kwargs["retries"]`` is given.
    max_in_flight : int, default=32
        Requests outstanding at once.
    retries : RetryPolicy, optional
        Defaults to ``RetryPolicy(max_attempts=4, base=0.05, cap=2.0)``.
    timeout : float or None, default=120.0
        Seconds one try of an async request may take before it counts as a (transient)
        timeout. Blocking backends (local files) are not interrupted.

    Examples
    --------
    >>> with Fetcher() as fetcher:  # doctest: +SKIP
    ...     for r in fetcher.fetch_many(["s3://b/a.png", "s3://b/b.png"]):
    ...         print(r.uri, r.ok, r.info.get("etag"))
    """

    def __init__(
        self,
        storage_options: dict[str, Any] | None = None,
        *,
        max_in_flight: int = 32,
        retries: RetryPolicy | None = None,
        timeout: float | None = 120.0,
    ) -> None:
        self.max_in_flight = check_count(max_in_flight, name="max_in_flight", minimum=1)
        if retries is not None and not isinstance(retries, RetryPolicy):
            raise InputError(
                f"retries must be a RetryPolicy; got {type(retries).__name__}. "
                "Pass e.g. retries=RetryPolicy(max_attempts=4)."
            )
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise InputError(f"timeout must be None or a number of seconds > 0; got {timeout!r}.")
        if storage_options is not None and not isinstance(storage_options, dict):
            raise InputError(
                f"storage_options must be a dict or None; got {type(storage_options).__name__}."
            )
        self.storage_options = storage_options
        self.retries = retries if retries is not None else RetryPolicy()
        self.timeout = timeout
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # -- public --------------------------------------------------------------------------------

    def fetch(self, uri: str) -> FetchResult:
        """Read one item (see :meth:`fetch_many`)."""
        return next(self.fetch_many([uri]))

    def fetch_many(self, uris: Iterable[str], *, ordered: bool = True) -> Iterator[FetchResult]:
        """Read items, up to ``max_in_flight`` at once.

        Parameters
        ----------
        uris : iterable of str
            Consumed lazily, so a generator of any length is fine.
        ordered : bool, default=True
            True yields results in input order (deterministic); False yields them as they
            complete (a slow item does not hold back the ones behind it).

        Yields
        ------
        result : FetchResult
            One per URI; a failure is ``result.error``, never an exception.
        """
        return self._many(uris, self._get, ordered=ordered)

    def info_many(self, uris: Iterable[str], *, ordered: bool = True) -> Iterator[FetchResult]:
        """Look up size/ETag/mtime without reading the bytes (``data`` is None).

        One ``HEAD`` (S3, http) or ``stat`` (local) per item, retried like
        :meth:`fetch_many`; use ``info`` to build cache keys before fetching.
        """
        return self._many(uris, self._info, ordered=ordered)

    def close(self) -> None:
        """Stop the worker threads (async requests need none)."""
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- machinery -----------------------------------------------------------------------------

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.max_in_flight, thread_name_prefix="alaas-fetch"
                )
            return self._pool

    def _get(self, uri: str) -> Future[FetchResult]:
        return self._submit(uri, _s3_get, _async_get, _sync_get, reads=True)

    def _info(self, uri: str) -> Future[FetchResult]:
        return self._submit(uri, _s3_head, _async_info, _sync_info, reads=False)

    def _submit(
        self,
        uri: str,
        s3_op: Callable[..., Coroutine[Any, Any, Any]],
        async_op: Callable[..., Coroutine[Any, Any, Any]],
        sync_op: Callable[..., Any],
        *,
        reads: bool,
    ) -> Future[FetchResult]:
        try:
            protocol, text = split_uri(uri)
            fs = get_filesystem(protocol, self.storage_options)
            path = fs._strip_protocol(text)
        except Exception as exc:
            done: Future[FetchResult] = Future()
            done.set_result(FetchResult(str(uri), None, {}, f"bad uri: {uri!r} ({exc})", 0))
            return done
        uri = str(uri)
        if getattr(fs, "async_impl", False):
            op = s3_op if protocol in _S3 and hasattr(fs, "_call_s3") else async_op
            coro = self._run_async(uri, lambda: op(fs, path), reads)
            return asyncio.run_coroutine_threadsafe(coro, fs.loop)
        return self._executor().submit(self._run_sync, uri, lambda: sync_op(fs, path), reads)

    async def _run_async(self, uri: str, call: Callable[[], Any], reads: bool) -> FetchResult:
        try:
            value, attempts = await acall_with_retry(call, self.retries, timeout=self.timeout)
        except Exception as exc:
            return self._failed(uri, exc)
        return self._result(uri, value, attempts, reads)

    def _run_sync(self, uri: str, call: Callable[[], Any], reads: bool) -> FetchResult:
        try:
            value, attempts = call_with_retry(call, self.retries)
        except Exception as exc:
            return self._failed(uri, exc)
        return self._result(uri, value, attempts, reads)

    @staticmethod
    def _result(uri: str, value: Any, attempts: int, reads: bool) -> FetchResult:
        if reads:
            data, info = value
            return FetchResult(uri, bytes(data), info, None, attempts)
        return FetchResult(uri, None, value, None, attempts)

    @staticmethod
    def _failed(uri: str, exc: Exception) -> FetchResult:
        attempts = getattr(exc, "alaas_attempts", 1)
        return FetchResult(uri, None, {}, classify_error(exc).message(uri, attempts), attempts)

    def _many(
        self,
        uris: Iterable[str],
        start: Callable[[str], Future[FetchResult]],
        *,
        ordered: bool,
    ) -> Iterator[FetchResult]:
        if isinstance(uris, (str, bytes)):
            raise InputError(
                f"uris must be an iterable of URIs, not a single {type(uris).__name__}; "
                f"wrap it in a list: [{uris!r:.60}]."
            )
        return self._window(iter(uris), start, ordered)

    def _window(
        self,
        it: Iterator[str],
        start: Callable[[str], Future[FetchResult]],
        ordered: bool,
    ) -> Iterator[FetchResult]:
        pending: deque[Future[FetchResult]] = deque()
        exhausted = False

        def top_up() -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < self.max_in_flight:
                try:
                    uri = next(it)
                except StopIteration:
                    exhausted = True
                    return
                pending.append(start(uri))

        try:
            top_up()
            while pending:
                if ordered:
                    result = pending.popleft().result()
                    top_up()
                    yield result
                    continue
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                finished = [f for f in pending if f in done]
                for f in finished:
                    pending.remove(f)
                top_up()
                for f in finished:
                    yield f.result()
        finally:
            for f in pending:  # the consumer stopped early
                f.cancel()
