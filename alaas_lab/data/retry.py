"""Retries: a bounded exponential backoff with jitter, and the rules that say what is transient.

A request that fails with a *transient* error (timeout, dropped connection, HTTP 5xx, S3
``SlowDown``/``InternalError``, a body shorter than the size the server announced) is tried again
after ``uniform(0, min(cap, base * 2**(attempt - 1)))`` seconds ("full jitter"), at most
``max_attempts`` times in all. A *permanent* error (not found, access denied, any other 4xx, a
directory where a file was expected, an error we do not recognise) is reported at once.

:func:`classify_error` is the one place that knows the exception types of the backends
(builtin ``OSError`` family, botocore, aiohttp); it walks the ``__cause__``/``__context__`` chain
because fsspec backends re-raise the transport error wrapped in an ``OSError``.
"""

from __future__ import annotations

import asyncio
import errno
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ..errors import InputError

T = TypeVar("T")

__all__ = [
    "Failure",
    "RetryPolicy",
    "TruncatedBodyError",
    "call_with_retry",
    "acall_with_retry",
    "classify_error",
]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before trying a transient failure again.

    Parameters
    ----------
    max_attempts : int, default=4
        Tries in all, the first one included (``1`` turns retries off).
    base : float, default=0.05
        Seconds; the backoff ceiling before try ``k + 1`` is ``min(cap, base * 2**(k - 1))``.
    cap : float, default=2.0
        Seconds; the largest ceiling of one wait.
    """

    max_attempts: int = 4
    base: float = 0.05
    cap: float = 2.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise InputError(
                f"RetryPolicy.max_attempts must be an integer >= 1; got {self.max_attempts!r}. "
                "Use max_attempts=1 to turn retries off."
            )
        for name in ("base", "cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise InputError(
                    f"RetryPolicy.{name} must be a number >= 0 seconds; got {value!r}."
                )

    def ceiling(self, attempt: int) -> float:
        """Largest wait (seconds) after failed try number ``attempt`` (1-based)."""
        return min(self.cap, self.base * 2.0 ** (attempt - 1))

    def delay(self, attempt: int) -> float:
        """A random wait in ``[0, ceiling(attempt)]`` (full jitter; not seeded on purpose)."""
        return random.uniform(0.0, self.ceiling(attempt))


class TruncatedBodyError(OSError):
    """The body held fewer bytes than the size the server (or the file listing) announced."""

    def __init__(self, got: int, expected: int) -> None:
        super().__init__(errno.EIO, f"got {got} of {expected} bytes")
        self.got = got
        self.expected = expected


@dataclass(frozen=True)
class Failure:
    """What went wrong with one request, as :func:`classify_error` sees it.

    Attributes
    ----------
    transient : bool
        Whether trying again may help.
    reason : str
        A short, stable class such as ``"not found"``, ``"access denied"``, ``"timeout"``,
        ``"connection error"``, ``"server error"``, ``"truncated body"``, ``"client error"``,
        ``"is a directory"`` or ``"error"``; messages start with it.
    detail : str
        The backend's own words (exception type and message).
    """

    transient: bool
    reason: str
    detail: str

    def message(self, uri: str, attempts: int) -> str:
        """``"<reason>: <uri> (<detail>)"``, plus how many tries were spent on a transient one."""
        text = f"{self.reason}: {uri} ({self.detail})"
        if self.transient:
            text += f"; gave up after {attempts} attempt{'s' if attempts != 1 else ''}"
        return text


_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "NotFound", "404", "NoSuchVersion"}
_DENIED_CODES = {
    "AccessDenied",
    "403",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "ExpiredToken",
    "InvalidToken",
}
_TRANSIENT_CODES = {
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "InternalError",
    "ServiceUnavailable",
    "503",
    "500",
    "502",
    "504",
}
_TRANSIENT_ERRNOS = {
    errno.ETIMEDOUT,
    errno.ECONNRESET,
    errno.ECONNREFUSED,
    errno.ECONNABORTED,
    errno.EPIPE,
    errno.EAGAIN,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
}

_backend_errors: dict[str, tuple[type[BaseException], ...]] = {}


def _backend_error_types(kind: str) -> tuple[type[BaseException], ...]:
    """Exception types of the optional backends, imported lazily.

    ``kind`` is ``"short"`` (the body ended before its announced length) or ``"transport"``
    (the connection failed).
    """
    if not _backend_errors:
        import http.client

        short: list[type[BaseException]] = [http.client.IncompleteRead]
        transport: list[type[BaseException]] = [http.client.HTTPException]
        try:
            import aiohttp

            short.append(aiohttp.ClientPayloadError)
            transport.append(aiohttp.ClientConnectionError)
        except ImportError:  # pragma: no cover - aiohttp comes with s3fs and http
            pass
        try:
            from botocore import exceptions as bx

            short.append(bx.IncompleteReadError)
            transport += [bx.HTTPClientError, bx.ConnectionError]
        except ImportError:  # pragma: no cover - botocore comes with s3fs
            pass
        _backend_errors.update(short=tuple(short), transport=tuple(transport))
    return _backend_errors[kind]


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(seen) < 8 and all(cur is not s for s in seen):
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc).strip() or repr(exc)
    except Exception:  # some exception types fail to print when half-built
        text = "(message could not be printed)"
    return f"{type(exc).__name__}: {text}"


def _from_status(status: int | None, code: str, detail: str) -> Failure | None:
    if code in _NOT_FOUND_CODES or status in (404, 410):
        return Failure(False, "not found", detail)
    if code in _DENIED_CODES or status in (401, 403):
        return Failure(False, "access denied", detail)
    if code in _TRANSIENT_CODES or status in (408, 429) or (status is not None and status >= 500):
        return Failure(True, "server error", detail)
    if status is not None and 400 <= status < 500:
        return Failure(False, "client error", detail)
    return None


def classify_error(exc: BaseException) -> Failure:
    """Say whether ``exc`` is worth retrying, with a short reason.

    Parameters
    ----------
    exc : BaseException
        What a filesystem call raised.

    Returns
    -------
    failure : Failure
    """
    chain = _chain(exc)
    detail = _describe(exc)
    for e in chain:
        if isinstance(e, TruncatedBodyError) or isinstance(e, _backend_error_types("short")):
            return Failure(True, "truncated body", _describe(e))
    # Errors that carry an HTTP status or an S3 error code are the most precise.
    for e in chain:
        response = getattr(e, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):
            code = str(response["Error"].get("Code", ""))
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            msg = response["Error"].get("Message", "")
            failure = _from_status(status, code, f"{code or status}: {msg}".strip(": "))
            if failure is not None:
                return failure
        status = getattr(e, "status", None)
        if isinstance(status, int) and 100 <= status < 600 and type(e).__name__.endswith("Error"):
            failure = _from_status(status, "", f"HTTP {status}: {getattr(e, 'message', e)}")
            if failure is not None:
                return failure
    for e in chain:
        if isinstance(e, FileNotFoundError):
            return Failure(False, "not found", _describe(e))
        if isinstance(e, PermissionError):
            return Failure(False, "access denied", _describe(e))
        if isinstance(e, IsADirectoryError):
            return Failure(False, "is a directory", _describe(e))
    for e in chain:
        if isinstance(e, TimeoutError) or "Timeout" in type(e).__name__:
            return Failure(True, "timeout", _describe(e))
    for e in chain:
        if isinstance(e, (ConnectionError, EOFError, *_backend_error_types("transport"))):
            return Failure(True, "connection error", _describe(e))
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            return Failure(True, "connection error", _describe(e))
    return Failure(False, "error", detail)


def call_with_retry(
    fn: Callable[[], T], policy: RetryPolicy, *, sleep: Callable[[float], None] = time.sleep
) -> tuple[T, int]:
    """Call ``fn()`` until it succeeds, fails permanently or runs out of attempts.

    Returns
    -------
    value, attempts
        What ``fn`` returned and how many tries it took.

    Raises
    ------
    Exception
        The last exception, with ``exc.alaas_attempts`` set to the number of tries spent.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn(), attempt
        except Exception as exc:
            if attempt >= policy.max_attempts or not classify_error(exc).transient:
                exc.alaas_attempts = attempt  # type: ignore[attr-defined]
                raise
        sleep(policy.delay(attempt))


async def acall_with_retry(
    fn: Callable[[], Awaitable[T]], policy: RetryPolicy, *, timeout: float | None = None
) -> tuple[T, int]:
    """Async twin of :func:`call_with_retry`; each try is bounded by ``timeout`` seconds."""
    attempt = 0
    while True:
        attempt += 1
        try:
            if timeout is None:
                return await fn(), attempt
            return await asyncio.wait_for(fn(), timeout), attempt
        except Exception as exc:
            if attempt >= policy.max_attempts or not classify_error(exc).transient:
                exc.alaas_attempts = attempt  # type: ignore[attr-defined]
                raise
        await asyncio.sleep(policy.delay(attempt))
