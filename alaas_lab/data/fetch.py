"""Read many items at once, with retries; a failed item becomes an error string, never an exception.

How requests run
----------------
- Async backends (s3, http(s), and other fsspec ``AsyncFileSystem``\\ s) run as coroutines on
  fsspec's I/O event loop: up to ``max_in_flight`` requests share one loop, and a retry's wait
  holds no thread.
- Local files are read in the calling thread (``os.open``/``os.fstat``/``os.read``, or
  ``os.stat`` for :meth:`Fetcher.info_many`), with the same results and errors as fsspec's
  ``LocalFileSystem``: a page-cached small file costs microseconds, less than a hand-off to a
  thread, and callers that want parallelism (the worker's fetch stage) already call from
  several threads. The rule: a call reads its local items inline until one read takes longer
  than ``INLINE_LIMIT_S`` (a network filesystem, a large or uncached file); its remaining
  local items then go to the thread pool, so a long call over a slow mount keeps
  ``max_in_flight`` reads in flight.
- Other blocking backends (``memory://``, plugins) run in a pool of ``max_in_flight`` threads.

Async requests and pooled reads give ``concurrent.futures.Future`` objects, and one sliding
window keeps at most ``max_in_flight`` items outstanding (inline results included), so memory
stays bounded however long the input is.

S3 reads one object with a single ``GetObject`` request and takes size, ETag, LastModified and
version from its response headers (``s3fs``'s own ``cat_file`` asks ``HeadObject`` first, which
costs a second round trip per item); ``info_many`` uses one ``HeadObject``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from .._validation import check_count
from ..errors import InputError
from ._fs import LOCAL, get_filesystem, split_uri
from .retry import (
    RetryPolicy,
    TruncatedBodyError,
    acall_with_retry,
    call_with_retry,
    classify_error,
)

__all__ = ["FetchResult", "Fetcher", "normalize_info"]

_S3 = ("s3", "s3a")

#: Seconds one inline local read may take before the rest of its call goes to the thread pool.
INLINE_LIMIT_S = 0.001
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation


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


# Local files without fsspec: what ``_sync_get``/``_sync_info`` give on a LocalFileSystem
# (``normalize_info`` of its ``info()`` keeps only ``size`` and ``mtime``, from ``stat`` after
# following links), for a fraction of the cost. Any OSError is done again through fsspec, so
# that errors (missing, a directory, permission denied, ...) read exactly as they always did.


def _read_local(path: str) -> tuple[bytes, os.stat_result]:
    fd = os.open(path, os.O_RDONLY | _O_BINARY)
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(path)
        data = os.read(fd, st.st_size + 1)
        while more := os.read(fd, 1 << 20):  # the file grew, or a short read
            data += more
    finally:
        os.close(fd)
    return data, st


def _local_get(fs: fsspec.AbstractFileSystem, path: str) -> tuple[bytes, dict[str, Any]]:
    try:
        data, st = _read_local(path)
    except OSError:
        return _sync_get(fs, path)
    if len(data) < st.st_size:
        raise TruncatedBodyError(len(data), st.st_size)
    return data, {"size": len(data), "mtime": st.st_mtime}


def _local_info(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any]:
    try:
        st = os.stat(path)
    except OSError:
        return _sync_info(fs, path)
    if stat.S_ISDIR(st.st_mode):
        return _sync_info(fs, path)
    return {"size": st.st_size, "mtime": st.st_mtime}


@dataclass(frozen=True, slots=True)
class _Op:
    """One kind of request (read or look up), per backend."""

    s3: Callable[..., Coroutine[Any, Any, Any]]
    aio: Callable[..., Coroutine[Any, Any, Any]]
    sync: Callable[..., Any]
    local: Callable[..., Any]
    reads: bool


_GET = _Op(_s3_get, _async_get, _sync_get, _local_get, reads=True)
_INFO = _Op(_s3_head, _async_info, _sync_info, _local_info, reads=False)


class Fetcher:
    """Reads items given as URIs, many at a time, with bounded retries.

    Parameters
    ----------
    storage_options : dict, optional
        Filesystem options: flat (used for every remote protocol) or ``{protocol: {...}}``.
        For S3 the Fetcher turns botocore's and s3fs's own retry loops off (so that
        ``retries`` is the only one) unless ``config_kwargs["retries"]`` is given.
    max_in_flight : int, default=32
        Requests outstanding at once. Local files are read in the calling thread while each
        read is quick (see the module's notes); only slow ones use ``max_in_flight`` threads.
    retries : RetryPolicy, optional
        Defaults to ``RetryPolicy(max_attempts=4, base=0.05, cap=2.0)``.
    timeout : float or None, default=120.0
        Seconds one try of an async request may take before it counts as a (transient)
        timeout; setting up a filesystem's client (once) does not count. Blocking backends
        (local files) are not interrupted.
    inline_local : bool, default=False
        Read every local file in the calling thread, however long a read takes: for
        callers that run their own threads (the worker's fetch stage, whose planner adds
        threads when fetching is slow). A read on a machine whose cores are busy often
        takes longer than ``INLINE_LIMIT_S`` for want of a core, not of the disk, and
        handing the rest to threads would then only add work.

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
        inline_local: bool = False,
    ) -> None:
        self.max_in_flight = check_count(max_in_flight, name="max_in_flight", minimum=1)
        self.inline_local = bool(inline_local)
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
        return self._many(uris, _GET, ordered=ordered)

    def info_many(self, uris: Iterable[str], *, ordered: bool = True) -> Iterator[FetchResult]:
        """Look up size/ETag/mtime without reading the bytes (``data`` is None).

        One ``HEAD`` (S3, http) or ``stat`` (local) per item, retried like
        :meth:`fetch_many`; use ``info`` to build cache keys before fetching.
        """
        return self._many(uris, _INFO, ordered=ordered)

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

    def _start(self, uri: str, op: _Op, inline: list[bool]) -> Future[FetchResult] | FetchResult:
        """Begin one request: a finished result (local file read inline, bad URI) or a Future.

        ``inline`` is the call's one-element flag: True while local reads run in this thread.
        """
        try:
            protocol, text = split_uri(uri)
            fs = get_filesystem(protocol, self.storage_options)
            path = fs._strip_protocol(text)
        except Exception as exc:
            return FetchResult(str(uri), None, {}, f"bad uri: {uri!r} ({exc})", 0)
        uri = str(uri)
        if getattr(fs, "async_impl", False):
            run = op.s3 if protocol in _S3 and hasattr(fs, "_call_s3") else op.aio
            coro = self._run_async(uri, fs, lambda: run(fs, path), op.reads)
            return asyncio.run_coroutine_threadsafe(coro, fs.loop)
        if protocol in LOCAL and type(fs) is LocalFileSystem:
            if inline[0]:
                t0 = time.perf_counter()
                result = self._run_sync(uri, lambda: op.local(fs, path), op.reads)
                slow = time.perf_counter() - t0 > INLINE_LIMIT_S
                if slow and self.max_in_flight > 1 and not self.inline_local:
                    inline[0] = False  # a slow mount or a large file: use the threads
                return result
            return self._executor().submit(
                self._run_sync, uri, lambda: op.local(fs, path), op.reads
            )
        return self._executor().submit(self._run_sync, uri, lambda: op.sync(fs, path), op.reads)

    async def _run_async(
        self, uri: str, fs: Any, call: Callable[[], Any], reads: bool
    ) -> FetchResult:
        try:
            # Set up the client (s3fs: load the service model, build the client; up to a
            # second on a busy machine) before the first timed try, so that ``timeout`` bounds
            # a request, not this one-off cost. Once done it returns at once.
            if asyncio.iscoroutinefunction(getattr(fs, "set_session", None)):
                await acall_with_retry(fs.set_session, self.retries)
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

    def _many(self, uris: Iterable[str], op: _Op, *, ordered: bool) -> Iterator[FetchResult]:
        if isinstance(uris, (str, bytes)):
            raise InputError(
                f"uris must be an iterable of URIs, not a single {type(uris).__name__}; "
                f"wrap it in a list: [{uris!r:.60}]."
            )
        return self._window(iter(uris), op, ordered)

    def _window(self, it: Iterator[str], op: _Op, ordered: bool) -> Iterator[FetchResult]:
        pending: deque[Future[FetchResult] | FetchResult] = deque()
        inline = [True]  # this call's local reads run here until one is slow
        exhausted = False

        def top_up() -> None:
            nonlocal exhausted
            while not exhausted and len(pending) < self.max_in_flight:
                try:
                    uri = next(it)
                except StopIteration:
                    exhausted = True
                    return
                pending.append(self._start(uri, op, inline))

        try:
            top_up()
            while pending:
                if ordered:
                    head = pending.popleft()
                    result = head.result() if isinstance(head, Future) else head
                    top_up()
                    yield result
                    continue
                finished, running = _partition(pending)
                if not finished:  # every one is a Future still running
                    wait(running, return_when=FIRST_COMPLETED)
                    finished, running = _partition(pending)
                pending.clear()
                pending.extend(running)
                top_up()
                for x in finished:
                    yield x.result() if isinstance(x, Future) else x
        finally:
            for x in pending:  # the consumer stopped early
                if isinstance(x, Future):
                    x.cancel()


def _partition(
    pending: Iterable[Future[FetchResult] | FetchResult],
) -> tuple[list[Future[FetchResult] | FetchResult], list[Future[FetchResult]]]:
    """``(finished, running)``: results and done Futures, then Futures still running."""
    finished: list[Future[FetchResult] | FetchResult] = []
    running: list[Future[FetchResult]] = []
    for x in pending:
        if isinstance(x, Future) and not x.done():
            running.append(x)
        else:
            finished.append(x)
    return finished, running
