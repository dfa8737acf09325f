"""One fsspec filesystem per protocol and options, created once and shared between threads.

Everything above this module speaks URIs; only here (and in the S3 fast path of ``fetch.py``)
do backends differ. URIs come back in one canonical form: local files as absolute POSIX paths,
everything else as ``protocol://path`` (``s3://bucket/key``, ``memory:///dir/x.png``, the URL
itself for http(s)).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import fsspec
from fsspec.core import split_protocol

from ..errors import DataError, InputError

__all__ = ["get_filesystem", "split_uri", "canonical", "options_for", "is_local"]

LOCAL = ("file", "local")
_NO_OPTIONS = (*LOCAL, "memory")
_ALIASES = {"s3a": "s3", "https": "http", "local": "file"}

#: Connections each S3 filesystem may keep open (botocore's default, 10, would cap the requests
#: in flight: at 20 ms to the first byte, near 500 GET/s). Matches the worker's most fetches in
#: flight (``MAX_FETCH_IN_FLIGHT``); ``config_kwargs={"max_pool_connections": n}`` overrides it.
S3_MAX_POOL_CONNECTIONS = 256

_lock = threading.Lock()
_cache: dict[tuple[str, str], fsspec.AbstractFileSystem] = {}
_cache_pid = os.getpid()


def split_uri(uri: str | os.PathLike[str]) -> tuple[str, str]:
    """Return ``(protocol, uri)`` with a plain path counted as ``"file"``.

    Raises
    ------
    InputError
        ``uri`` is not a string or path, or is empty.
    """
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str):
        raise InputError(
            f"a URI must be a str or os.PathLike; got {type(uri).__name__} ({uri!r:.80})."
        )
    uri = uri.strip()
    if not uri:
        raise InputError("a URI must not be empty; got ''.")
    if "::" in uri:
        raise InputError(
            f"chained URLs such as {uri!r} are not supported; pass the plain URL and put "
            "caching options in storage_options."
        )
    protocol, _ = split_protocol(uri)
    return (protocol or "file"), uri


def is_local(uri: str | os.PathLike[str]) -> bool:
    """Whether ``uri`` names a local file (a plain path or ``file://``)."""
    return split_uri(uri)[0] in LOCAL


def _is_per_protocol(storage_options: dict[str, Any]) -> bool:
    known = set(fsspec.available_protocols()) | set(LOCAL)
    return bool(storage_options) and all(
        k in known and (v is None or isinstance(v, dict)) for k, v in storage_options.items()
    )


def options_for(protocol: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """Options for ``protocol`` out of a flat dict or a ``{protocol: options}`` mapping.

    A flat dict applies to every remote protocol; local files and ``memory://`` take none.
    """
    if not storage_options or protocol in _NO_OPTIONS:
        return {}
    if not isinstance(storage_options, dict):
        raise InputError(
            f"storage_options must be a dict; got {type(storage_options).__name__}. Pass e.g. "
            "{'endpoint_url': ..., 'key': ..., 'secret': ...} or {'s3': {...}, 'http': {...}}."
        )
    if _is_per_protocol(storage_options):
        opts = storage_options.get(protocol)
        if opts is None:
            opts = storage_options.get(_ALIASES.get(protocol, protocol))
        return dict(opts or {})
    return dict(storage_options)


def _key(protocol: str, options: dict[str, Any]) -> tuple[str, str]:
    if not options:  # local files and memory://: no JSON on the per-item path
        return protocol, "{}"
    return protocol, json.dumps(options, sort_keys=True, default=repr)


def _create(protocol: str, options: dict[str, Any]) -> fsspec.AbstractFileSystem:
    if protocol in ("s3", "s3a"):
        # The Fetcher's RetryPolicy is the one retry layer: botocore and s3fs would otherwise
        # each retry on their own (up to 5 x 5 tries per request) and hide the count.
        config = dict(options.get("config_kwargs") or {})
        own_retries = "retries" not in config
        if own_retries:
            config["retries"] = {"total_max_attempts": 1}
        config.setdefault("max_pool_connections", S3_MAX_POOL_CONNECTIONS)
        options = {**options, "config_kwargs": config}
    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as exc:
        raise DataError(
            f"no filesystem for protocol {protocol!r}: {exc}. Install the fsspec backend it "
            "names, or check the URI's spelling."
        ) from exc
    try:
        # Our own instance, so the settings below do not leak into fsspec's shared cache.
        fs = cls(skip_instance_cache=True, **options)
    except TypeError as exc:
        raise InputError(
            f"storage_options {sorted(options)} are not accepted by the {protocol!r} filesystem "
            f"({exc}). For sources that mix protocols pass {{'s3': {{...}}, 'http': {{...}}}}."
        ) from exc
    if protocol in ("s3", "s3a") and own_retries:
        fs.retries = 1  # s3fs's own retry loop (class attribute, default 5)
    return fs


def get_filesystem(
    protocol: str, storage_options: dict[str, Any] | None = None
) -> fsspec.AbstractFileSystem:
    """The shared filesystem for ``protocol`` with these options (created on first use)."""
    protocol = "file" if protocol == "local" else protocol
    options = options_for(protocol, storage_options)
    key = _key(protocol, options)
    global _cache_pid
    if _cache_pid != os.getpid():  # after a fork the parent's event loop is gone
        with _lock:
            _cache.clear()
            _cache_pid = os.getpid()
    fs = _cache.get(key)
    if fs is None:
        with _lock:
            fs = _cache.get(key)
            if fs is None:
                fs = _cache[key] = _create(protocol, options)
    return fs


def canonical(fs: fsspec.AbstractFileSystem, protocol: str, path: str) -> str:
    """The canonical URI of ``path`` (as returned by ``fs.glob``/``fs.find``) on ``fs``."""
    if protocol in LOCAL:
        return fs._strip_protocol(path)
    if protocol in ("http", "https"):
        return path
    return fs.unstrip_protocol(path)
