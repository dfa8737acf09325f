"""Turn a source (URI, glob, directory, manifest, or a list of those) into a list of item URIs."""

from __future__ import annotations

import csv
import fnmatch
import io
import os
import posixpath
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import fsspec
from fsspec.core import split_protocol
from fsspec.implementations.local import LocalFileSystem

from ..errors import DataError, InputError
from ._fs import LOCAL, canonical, get_filesystem, split_uri
from .fetch import normalize_info
from .retry import RetryPolicy, call_with_retry, classify_error

__all__ = ["expand", "MANIFEST_SUFFIXES"]

T = TypeVar("T")

MANIFEST_SUFFIXES = (".txt", ".lst", ".csv")
"""A single source with one of these suffixes is read as a manifest (see :func:`expand`)."""

_URI_COLUMNS = ("uri", "url", "path")
_CHEAP = (*LOCAL, "memory")  # protocols where asking "is this a directory?" costs nothing


def _glob_chars(protocol: str) -> str:
    # In URLs "?" starts a query string, so only "*" makes an http(s) source a glob.
    return "*" if protocol in ("http", "https") else "*?["


def _has_glob(uri: str, protocol: str) -> bool:
    return any(c in uri for c in _glob_chars(protocol))


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") for part in relative.split("/") if part)


class _Lister:
    """Listing calls for one ``expand`` call, each retried on transient errors."""

    def __init__(
        self,
        storage_options: dict[str, Any] | None,
        policy: RetryPolicy,
        manifests: bool,
        infos: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.infos = infos  # filled with what listings say about each file, when given
        self.storage_options = storage_options
        self.policy = policy
        self.manifests = manifests
        self.fresh: set[int] = set()

    def fs(self, protocol: str) -> fsspec.AbstractFileSystem:
        fs = get_filesystem(protocol, self.storage_options)
        if id(fs) not in self.fresh:
            fs.invalidate_cache()  # list what is there now, not what a past call saw
            self.fresh.add(id(fs))
        return fs

    def call(self, what: str, source: str, fn: Callable[[], T]) -> T:
        try:
            return call_with_retry(fn, self.policy)[0]
        except Exception as exc:
            failure = classify_error(exc)
            if failure.reason == "access denied":
                hint = "check the credentials (storage_options, env vars or profile; docs/data.md)"
            else:
                hint = "check the URI, the network and the storage_options"
            raise DataError(
                f"could not {what} {source!r}: {failure.reason} ({failure.detail}) — {hint}."
            ) from exc

    def one(self, source: str, *, top: bool) -> list[str]:
        protocol, uri = split_uri(source)
        fs = self.fs(protocol)
        path = fs._strip_protocol(uri)
        if _has_glob(uri, protocol):
            return self.glob(fs, protocol, path, source)
        is_dir = uri.endswith("/")
        if not is_dir and protocol in _CHEAP:
            is_dir = fs.isdir(path)
        if is_dir:
            return self.directory(fs, protocol, path, source)
        if not top:
            return [canonical(fs, protocol, path)]
        try:
            info = self.call("look up", source, lambda: fs.info(path))
        except DataError as exc:
            cause = exc.__cause__
            if cause is not None and classify_error(cause).reason == "not found":
                raise DataError(
                    f"{source!r} does not exist — check the path (and for buckets the bucket and "
                    "prefix), or pass a glob such as 'dir/*.png'.",
                    reason="not_found",
                ) from cause
            raise
        if info.get("type") == "directory":
            return self.directory(fs, protocol, path, source)
        if self.manifests and uri.lower().endswith(MANIFEST_SUFFIXES):
            return self.manifest(fs, protocol, path, source)
        return [canonical(fs, protocol, path)]

    def glob(self, fs: fsspec.AbstractFileSystem, protocol: str, path: str, src: str) -> list[str]:
        def run() -> dict[str, dict]:
            try:
                return fs.glob(path, detail=True)
            except FileNotFoundError:  # e.g. a bucket or folder that does not exist
                return {}

        scanned = _scan_local(path) if type(fs) is LocalFileSystem else None
        found = scanned if scanned is not None else self.call("expand the glob", src, run)
        # Like a shell, wildcards skip hidden names unless the pattern spells the dot.
        magic = min(i for i, c in enumerate(path) if c in _glob_chars(protocol))
        root = path[: path.rfind("/", 0, magic) + 1]
        dotted = _hidden(path[len(root) :])
        keep = {
            p: i
            for p, i in found.items()
            if i.get("type") != "directory" and (dotted or not _hidden(p[len(root) :]))
        }
        return self.remember(fs, protocol, keep, final=scanned is not None)

    def remember(
        self, fs: fsspec.AbstractFileSystem, protocol: str, found: dict[str, dict], *,
        final: bool = False,
    ) -> list[str]:
        """Canonical, sorted URIs of ``found``; keep their listing info if asked to.

        ``final``: the keys are canonical URIs already and the infos normalized.
        """
        if final:
            if self.infos is not None:
                self.infos.update(found)
            return sorted(found)
        uris = {p: canonical(fs, protocol, p) for p in found}
        if self.infos is not None:
            for p, uri in uris.items():
                self.infos[uri] = normalize_info(found[p])
        return sorted(uris.values())

    def directory(
        self, fs: fsspec.AbstractFileSystem, protocol: str, path: str, src: str
    ) -> list[str]:
        def run() -> dict[str, dict]:
            try:
                return fs.find(path, detail=True)
            except FileNotFoundError:
                return {}

        root = path.rstrip("/")
        found = self.call("list the directory", src, run)
        keep = {p: i for p, i in found.items() if not _hidden(p[len(root) :])}
        return self.remember(fs, protocol, keep)

    def manifest(
        self, fs: fsspec.AbstractFileSystem, protocol: str, path: str, src: str
    ) -> list[str]:
        raw = self.call("read the manifest", src, lambda: fs.cat_file(path))
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"manifest {src!r} is not UTF-8 text ({exc.reason} at byte {exc.start}) — save it "
                "as UTF-8, one URI per line."
            ) from exc
        entries = _parse_manifest(text, src)
        base = posixpath.dirname(canonical(fs, protocol, path))
        out: list[str] = []
        for entry in entries:
            has_protocol = split_protocol(entry)[0] is not None
            if not has_protocol and not entry.startswith("/"):
                entry = _join(base, entry)  # relative to the manifest's folder
            out.extend(self.one(entry, top=False))
        return out


def _scan_local(pattern: str) -> dict[str, dict[str, Any]] | None:
    """``LocalFileSystem.glob(pattern, detail=True)`` for a pattern whose wildcards are all in
    its last name (``/data/pool/*.png``): one ``os.scandir``, no fsspec ``info`` per file.

    Everything but folders, keyed by canonical URI, with the ``size`` and ``mtime`` that
    ``normalize_info`` keeps of fsspec's listing info: for a link, the size of its target (0
    when broken) and its own mtime, as fsspec's ``info`` of a ``DirEntry`` gives them (item
    identities, and so the users' caches, depend on it). None (use fsspec) for other
    patterns, or when the folder cannot be read.
    """
    folder, _, name = pattern.rpartition("/")
    if not folder or any(c in folder for c in "*?[") or "\\" in name:
        return None
    found: dict[str, dict[str, Any]] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not fnmatch.fnmatchcase(entry.name, name) or entry.is_dir(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
                size = st.st_size
                if entry.is_symlink():
                    try:
                        size = entry.stat(follow_symlinks=True).st_size
                    except OSError:
                        size = 0
                found[entry.path] = {"size": size, "mtime": st.st_mtime}
    except OSError:  # a missing folder: fsspec says what it says
        return None
    return found


def _join(base: str, relative: str) -> str:
    """``base`` (a canonical folder URI) joined with ``relative``, with ``..`` resolved."""
    scheme, sep, rest = base.partition("://")
    if not sep:
        scheme, rest = "", base
    path = posixpath.normpath(posixpath.join(rest, relative))
    if rest.startswith("/") and not path.startswith("/"):
        path = "/" + path
    return f"{scheme}://{path}" if sep else path


def _parse_manifest(text: str, src: str) -> list[str]:
    if src.lower().endswith(".csv"):
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return []
        header = [h.strip().lower() for h in rows[0]]
        column = next((header.index(c) for c in _URI_COLUMNS if c in header), None)
        if column is None:
            raise DataError(
                f"CSV manifest {src!r} has no 'uri' column (columns: {', '.join(rows[0])}) — "
                "name the column that holds the URIs 'uri'."
            )
        return [r[column].strip() for r in rows[1:] if len(r) > column and r[column].strip()]
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _dedupe(uris: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    dupes: list[str] = []
    for u in uris:
        if u in seen:
            dupes.append(u)
        else:
            seen.add(u)
            out.append(u)
    if dupes:
        names = list(dict.fromkeys(dupes))
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        warnings.warn(
            f"expand(): dropped {len(dupes)} duplicate URI(s), keeping the first occurrence: "
            f"{shown}",
            UserWarning,
            stacklevel=3,
        )
    return out


def expand(
    source: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    storage_options: dict[str, Any] | None = None,
    manifests: bool = True,
    retries: RetryPolicy | None = None,
    infos: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """List the items a source names, as canonical URIs.

    Parameters
    ----------
    source : str, os.PathLike or iterable of those
        One of

        - a URI or path: ``/data/x.png``, ``file:///data/x.png``, ``s3://bucket/x.png``,
          ``https://host/x.png``, ``memory:///x.png``;
        - a glob: ``/data/*.png``, ``s3://bucket/prefix/**/*.png`` (``**`` spans folders, zero
          included; for http(s) only ``*`` is special);
        - a directory (a local or ``memory://`` folder, or any URI ending in ``/``): every file
          below it, recursively, skipping hidden names (starting with ``.``);
        - a manifest, when ``source`` is a single existing file ending in ``.txt``/``.lst`` (one
          URI or glob per line, blank lines and ``#`` comments skipped) or ``.csv`` (a header
          row with a ``uri``, ``url`` or ``path`` column). Relative entries are resolved against
          the manifest's folder;
        - a list of the above. In a list, entries are not checked for existence (a missing one
          is reported when it is fetched) and ``.txt`` entries are items, not manifests.
    storage_options : dict, optional
        Options for the filesystem: a flat dict (``{"endpoint_url": ..., "key": ...}``) used for
        every remote protocol, or ``{"s3": {...}, "http": {...}}`` per protocol.
    manifests : bool, default=True
        Set to False to take a single ``.txt``/``.csv`` source as an item, not a manifest.
    retries : RetryPolicy, optional
        Retry rules for listing calls; defaults to ``RetryPolicy()``.
    infos : dict, optional
        Filled with ``{uri: info}`` (size, etag, mtime as :func:`normalize_info` gives them)
        for every item a glob or directory listing found, so callers can build cache keys
        without one lookup per item.

    Returns
    -------
    uris : list of str
        Each glob and directory in sorted order; lists and manifests keep their order. Local
        files come back as absolute paths, others as ``protocol://...``. Duplicates are dropped
        (first kept) with a ``UserWarning`` that lists them.

    Raises
    ------
    DataError
        Nothing was found, a single source does not exist, or listing failed.
    InputError
        ``source`` is not a string, path or list of them.
    """
    policy = retries if retries is not None else RetryPolicy()
    if isinstance(source, (str, os.PathLike)):
        sources: list[Any] = [source]
        single = True
    elif isinstance(source, Iterable) and not isinstance(source, (bytes, dict)):
        sources = list(source)
        single = False
    else:
        raise InputError(
            "source must be a URI, glob, directory, manifest path or a list of those; "
            f"got {type(source).__name__}."
        )
    if not sources:
        raise DataError("expand() got an empty list of sources; pass at least one URI or glob.")
    for s in sources:
        split_uri(s)  # type check every entry before any I/O
    lister = _Lister(storage_options, policy, manifests, infos)
    found: list[str] = []
    empty: list[str] = []
    for s in sources:
        items = lister.one(os.fspath(s), top=single)
        if not items:
            empty.append(os.fspath(s))
        found.extend(items)
    if not found:
        named = ", ".join(repr(e) for e in empty[:5]) + (" ..." if len(empty) > 5 else "")
        raise DataError(
            f"no files found in {named} — check that the path exists and is spelled right "
            "(globs are case-sensitive), that bucket and prefix are right, that the folder or "
            "manifest is not empty, and that the credentials may list it.",
            reason="not_found",
        )
    if empty:
        warnings.warn(
            f"expand(): {len(empty)} source(s) matched no files: "
            + ", ".join(repr(e) for e in empty[:10]),
            UserWarning,
            stacklevel=2,
        )
    return _dedupe(found)


def confine(uris: Iterable[str], root: str | os.PathLike[str]) -> list[str]:
    """Check that every local (or ``file://``) URI lies inside ``root``; return the URIs.

    Paths are resolved (``..`` and symlinks) before the check, so neither can
    escape. Remote URIs (s3://, http(s)://, memory://) are not affected.

    Raises
    ------
    DataError
        Naming the first URIs outside the root.
    """
    base = os.path.realpath(os.path.expanduser(os.fspath(root)))
    uris = list(uris)
    outside = []
    for uri in uris:
        protocol, path = split_protocol(uri)
        if protocol not in (None, "file", "local"):
            continue
        real = os.path.realpath(path)
        if os.path.commonpath([real, base]) != base:
            outside.append(uri)
    if outside:
        shown = ", ".join(outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3
                                          else "")
        raise DataError(f"{shown}: outside the data root {base} (config data.root); move the "
                        "files under it or change data.root.")
    return uris
