"""Content-addressed store of embeddings on disk, shared by many processes.

Key
---
An entry's key is ``sha256(model fingerprint, dtype, item identity)``. Together
these must name everything that determines the embedding:

- the model fingerprint names the weights and the preprocessing (input size,
  normalisation, scale; see ``Backbone.fingerprint``), plus whatever the caller
  adds, e.g. how files are decoded;
- the item identity names the input: :func:`item_identity` builds one from a URI
  and the fsspec ``info()`` of the file (ETag, size, modification time), so a
  changed file gets a new key; :func:`content_identity` hashes bytes, and callers
  hashing arrays include their dtype and shape.

Two fingerprints (or two dtypes) never share a key, so caches of different models
live in one directory.

Width
-----
The width of an embedding is an output, not a key: each entry records its own
(``nbytes``), so 64-wide and 16-wide embeddings of one fingerprint (the flatten
backbone on 8x8 and on 4x4 arrays) live side by side, and ``put_many`` takes any
width. ``get_many`` returns one matrix of the width asked for (``dim=``, by
default that of the first entry found): an entry of another width is a miss,
never an error. A put of a key whose entry has another width replaces it.

Layout, and why
---------------
::

    root/index.sqlite     key -> (shard, offset, nbytes, crc32), WAL mode
    root/shards/000000.bin, 000001.bin, ...   raw rows, append-only
    root/writer.lock      flock, shared by writers (see Concurrency)

The cache is built for about a million entries read and written in batches of
thousands. One file per entry (``.npy`` in a fan-out tree) would cost an open,
a write and a rename per entry, a million inodes, and thousands of opens per
batch read. Here a batch ``put_many`` is one ``write`` of all new rows to the
process's shard followed by one SQLite transaction for their index rows; a batch
``get_many`` is a few indexed ``SELECT``s and one scatter-read (``preadv``) per
contiguous run of rows. Shards roll over at ``shard_bytes`` (1 GiB by default).

Atomicity: the rows are appended first and the index is committed after. A
crash in between leaves unreferenced bytes at the end of a shard (harmless) and
no index rows, so a reader never sees an entry whose bytes were not written.
Nothing is fsync'd: embeddings can be recomputed, and a torn or lost write after
an OS crash is caught by the checksum.

Integrity: every entry carries the ``zlib.crc32`` of its bytes. A bit flip, a
truncated shard or a missing shard file is detected when the entry is read; the
entry is counted in ``stats()["corrupt"]``, dropped from the index and reported
as a miss, so the caller recomputes it and ``put_many`` stores it again.

Concurrency: any number of processes read and write one root at once. A process
appends only to a shard it holds an exclusive ``flock`` on, taken on its first
write: the highest-numbered shard that no other process holds, has room and is
not shorter than its index rows, else the next number. So no two processes ever
append to one file, and the offset of a write is the shard's size under the lock.
The index is SQLite in WAL mode: readers never wait, writers queue (busy timeout
``BUSY_TIMEOUT_S``), and each lookup sees every transaction committed before it,
by any process. Every process also holds a shared ``flock`` on ``writer.lock``,
which releases before this one took exclusively (one writer per root), so an old
release and this one never append at once. Within a process, all caches on one
root share one store object: the index connection, the shard, and a lock each
``get_many``/``put_many`` holds; a forked child opens its own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from json.encoder import encode_basestring_ascii as _encode_json_str
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CacheError, InputError

try:  # POSIX; elsewhere only one process may write to a root at a time
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = ["EmbeddingCache", "content_identity", "item_identity"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_SHARD_BYTES = 1 << 30
BUSY_TIMEOUT_S = 30.0  # how long an index write waits for other processes' writes
_CHUNK = 500  # keys per "IN (...)" query
_IOV_MAX = 512  # buffers per preadv call (the OS limit is usually 1024)
_DTYPES = ("float16", "float32", "float64")

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE models (
    model_id    INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    dtype       TEXT NOT NULL,
    dim         INTEGER,  -- unused: each entry has its own width (nbytes)
    UNIQUE (fingerprint, dtype)
);
CREATE TABLE entries (
    key      BLOB PRIMARY KEY,
    model_id INTEGER NOT NULL,
    shard    INTEGER NOT NULL,
    offset   INTEGER NOT NULL,
    nbytes   INTEGER NOT NULL,
    crc      INTEGER NOT NULL,
    created  REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX entries_by_model ON entries(model_id);
CREATE INDEX entries_by_shard ON entries(shard, offset);
"""

# fsspec info() fields, by backend: local/memory, s3fs, gcsfs, adlfs, http
_ETAG_FIELDS = ("ETag", "etag", "e_tag", "md5Hash", "content_md5")
_VERSION_FIELDS = ("VersionId", "version_id", "generation")
_SIZE_FIELDS = ("size", "Size", "ContentLength", "content_length")
_MTIME_FIELDS = (
    "mtime",
    "LastModified",
    "last_modified",
    "updated",
    "modified",
    "Last-Modified",
    "created",
)


# --------------------------------------------------------------------------- #
# Identities                                                                  #
# --------------------------------------------------------------------------- #


def _first(info: Mapping[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        value = info.get(name)
        if value is not None and value != "":
            return value
    return None


def _stamp(value: Any) -> str:
    """A stable text form of a modification time (float, datetime or str)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.isoformat()
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return repr(float(value))
    return str(value)


def item_identity(uri: str, info: Mapping[str, Any]) -> str:
    """A stable identity of a file's current version from its fsspec ``info()``.

    Uses the URI, the ETag (or md5/etag-like field), the version id, the size and
    the modification time (``mtime``, ``LastModified``, ``updated``, ``created`` ...)
    when present. Any change of those gives a different identity; other fields
    (``name``, ``type``, ...) and their order do not matter.

    Parameters
    ----------
    uri : str
    info : mapping
        ``fs.info(path)`` of the file.

    Returns
    -------
    str
        ``"meta:<sha256 hex>"``.

    Raises
    ------
    InputError
        ``info`` has none of ETag, size or modification time: nothing would tell a
        changed file from the old one. Use :func:`content_identity` on its bytes.
    """
    if not isinstance(uri, str) or not uri:
        raise InputError(f"uri must be a non-empty str; got {uri!r}.")
    if not isinstance(info, Mapping):
        raise InputError(f"info must be a mapping (fsspec info()); got {type(info).__name__}.")
    etag = _first(info, _ETAG_FIELDS)
    version = _first(info, _VERSION_FIELDS)
    size = _first(info, _SIZE_FIELDS)
    mtime = _first(info, _MTIME_FIELDS)
    if etag is None and size is None and mtime is None and version is None:
        raise InputError(
            f"info for {uri!r} has no ETag, size or modification time (keys: "
            f"{sorted(info)}); the cache could not tell a changed file from the old one. "
            "Use content_identity(data) on the file's bytes instead."
        )
    # json.dumps({...}, sort_keys=True, separators=(",", ":")) of the five fields, written
    # out (a warm push computes one per item; this is a third of json.dumps's cost)
    text = (f'{{"etag":{_json_text(None if etag is None else str(etag).strip(chr(34)))},'
            f'"mtime":{_json_text(None if mtime is None else _stamp(mtime))},'
            f'"size":{"null" if size is None else int(size)},'
            f'"uri":{_json_text(uri)},'
            f'"version":{_json_text(None if version is None else str(version))}}}')
    return "meta:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _json_text(value: str | None) -> str:
    """``json.dumps(value)`` for a str or None."""
    return "null" if value is None else _encode_json_str(value)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (hex), read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_identity(data: bytes | bytearray | memoryview) -> str:
    """Identity of an item by its bytes: ``"sha256:<hex>"``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"data must be bytes; got {type(data).__name__}.")
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- #
# The shared per-root store                                                   #
# --------------------------------------------------------------------------- #

_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()


class _Store:
    """Index connection and the shard this process appends to, for one root."""

    def __init__(self, root: Path, shard_bytes: int) -> None:
        self.root = root
        self.shard_dir = root / "shards"
        self.shard_bytes = shard_bytes
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.refs = 0
        self.current: int | None = None  # the shard whose flock this process holds
        self._shard_fd: int | None = None
        self._lock_fd: int | None = None
        self.conn: sqlite3.Connection | None = None
        try:
            self.shard_dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(root / "writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            self.close()
            raise CacheError(
                f"cannot create the embedding cache at {root}: {exc.strerror or exc}. "
                "Choose a writable directory."
            ) from exc
        try:
            if fcntl is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise CacheError(
                f"an older alaas_lab process holds the embedding cache at {root} for itself; "
                "stop it, or give this process another cache root."
            ) from None
        try:
            self.conn = sqlite3.connect(
                root / "index.sqlite",
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_S,
            )
            self._setup()
        except (sqlite3.Error, CacheError) as exc:
            self.close()
            if isinstance(exc, CacheError):
                raise
            raise CacheError(
                f"cannot open the cache index {root / 'index.sqlite'}: {exc}. Delete the cache "
                "directory to rebuild it, or choose another root."
            ) from exc

    def _switch_to_wal(self) -> str:
        """``PRAGMA journal_mode=WAL``, retried while another process holds the lock.

        Two processes opening a new cache at once both switch it to WAL; SQLite can answer
        the second "database is locked" at once, without waiting its busy timeout.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                return self.conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _setup(self) -> None:
        conn = self.conn
        mode = self._switch_to_wal()
        if str(mode).lower() != "wal":
            raise CacheError(
                f"could not switch {self.root / 'index.sqlite'} to WAL mode (got {mode!r}); "
                "put the cache on a local disk."
            )
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # re-check under the write lock: another process may have just created it
                if not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                    for stmt in _SCHEMA.split(";"):
                        if stmt.strip():
                            conn.execute(stmt)
                    conn.execute(
                        "INSERT INTO meta VALUES ('schema_version', ?), "
                        "('format', 'alaas_lab.cache')",
                        (str(SCHEMA_VERSION),),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return
        row = None
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            raise CacheError(
                f"{self.root / 'index.sqlite'} is not an alaas_lab embedding cache index; "
                "choose another root."
            )
        if int(row[0]) > SCHEMA_VERSION:
            raise CacheError(
                f"the cache at {self.root} has schema version {row[0]}, newer than this "
                f"alaas_lab understands ({SCHEMA_VERSION}); upgrade alaas_lab or use "
                "another root."
            )

    def _shard_path(self, shard: int) -> Path:
        return self.shard_dir / f"{shard:06d}.bin"

    def _take_shard(self, shard: int, need: int) -> None:
        """Lock the first shard from ``shard`` on that is free, intact and has room.

        A shard another process holds is skipped, and so is one shorter than its
        indexed entries (truncated): new rows would land under old index rows.
        """
        while True:
            path = self._shard_path(shard)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as exc:
                raise CacheError(
                    f"cannot write cache shard {path}: {exc.strerror or exc}."
                ) from exc
            try:
                if fcntl is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # another process appends to it
                os.close(fd)
                shard += 1
                continue
            size = os.fstat(fd).st_size
            try:
                (end,) = self.conn.execute(
                    "SELECT max(offset + nbytes) FROM entries WHERE shard=?", (shard,)
                ).fetchone()
            except sqlite3.Error as exc:
                os.close(fd)
                raise CacheError(f"cannot read the cache index at {self.root}: {exc}") from exc
            if end is not None and size < end:
                logger.warning("cache shard %s is shorter than its index; skipping it", path)
            elif size == 0 or size + need <= self.shard_bytes:
                self._shard_fd, self.current = fd, shard
                return
            os.close(fd)
            shard += 1

    def _drop_shard(self) -> None:
        if self._shard_fd is not None:
            os.close(self._shard_fd)  # releases its flock
            self._shard_fd = None

    def append(self, data: bytes) -> tuple[int, int]:
        """Append ``data`` to this process's shard; return ``(shard, offset)``."""
        if self._shard_fd is None:
            on_disk = [int(p.stem) for p in self.shard_dir.glob("*.bin") if p.stem.isdigit()]
            self._take_shard(max(on_disk, default=0), len(data))
        else:
            st = os.fstat(self._shard_fd)
            try:
                moved = not os.path.samestat(st, os.stat(self._shard_path(self.current)))
            except OSError:
                moved = True  # deleted since it was taken
            if moved or (st.st_size and st.st_size + len(data) > self.shard_bytes):
                self._drop_shard()
                self._take_shard(self.current if moved else self.current + 1, len(data))
        size = os.fstat(self._shard_fd).st_size
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._shard_fd, view) :]
        except OSError as exc:
            raise CacheError(
                f"cannot write cache shard {self._shard_path(self.current)}: "
                f"{exc.strerror or exc}. Free disk space or choose another cache root."
            ) from exc
        return self.current, size

    def close(self) -> None:
        try:
            if self.conn is not None:
                self.conn.close()
        finally:
            self._drop_shard()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


def _acquire_store(root: Path, shard_bytes: int) -> _Store:
    real = os.path.realpath(root)
    with _STORES_LOCK:
        store = _STORES.get(real)
        if store is None or store.pid != os.getpid():  # a forked child opens its own
            store = _Store(Path(real), shard_bytes)
            _STORES[real] = store
        store.refs += 1
        return store


def _release_store(store: _Store) -> None:
    with _STORES_LOCK:
        store.refs -= 1
        if store.refs == 0:
            if _STORES.get(str(store.root)) is store:
                del _STORES[str(store.root)]
            store.close()


# --------------------------------------------------------------------------- #
# Public class                                                                #
# --------------------------------------------------------------------------- #


class EmbeddingCache:
    """Embeddings of one model on disk, looked up by item identity.

    Parameters
    ----------
    root : str or Path
        Cache directory (created if missing); may be shared by several models and
        several processes at once.
    model_fingerprint : str
        Identifies the model and its preprocessing (name, weights hash, input size,
        ...). Entries of different fingerprints never mix.
    dtype : {"float32", "float16", "float64"}, default "float32"
        Storage and return dtype; part of the key, so changing it starts afresh.
    shard_bytes : int, default 1 GiB
        Size at which a new shard file is started.

    Raises
    ------
    CacheError
        The root cannot be created or written, or its index is not a cache index
        or is newer than this alaas_lab.

    Examples
    --------
    >>> cache = EmbeddingCache(tmp, model_fingerprint="resnet18@v1")  # doctest: +SKIP
    >>> cache.put_many(["a", "b"], np.ones((2, 512), np.float32))     # doctest: +SKIP
    >>> found, rows = cache.get_many(["a", "x", "b"])                 # doctest: +SKIP
    >>> found, rows.shape                                              # doctest: +SKIP
    (array([ True, False,  True]), (2, 512))
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        model_fingerprint: str,
        dtype: str = "float32",
        shard_bytes: int = DEFAULT_SHARD_BYTES,
    ) -> None:
        if not isinstance(model_fingerprint, str) or not model_fingerprint:
            raise InputError(
                f"model_fingerprint must be a non-empty str; got {model_fingerprint!r}."
            )
        if str(dtype) not in _DTYPES:
            raise InputError(f"dtype must be one of {_DTYPES}; got {dtype!r}.")
        if isinstance(shard_bytes, bool) or not isinstance(shard_bytes, int) or shard_bytes < 1:
            raise InputError(f"shard_bytes must be a positive int; got {shard_bytes!r}.")
        self.model_fingerprint = model_fingerprint
        self.dtype = np.dtype(str(dtype))
        self._prefix = self._key_prefix(model_fingerprint, self.dtype)
        self._store: _Store | None = _acquire_store(Path(root), shard_bytes)
        self.root = self._store.root
        self._hits = self._misses = self._corrupt = self._puts = 0
        with self._store.lock:
            conn = self._store.conn
            try:
                conn.execute(
                    "INSERT OR IGNORE INTO models(fingerprint, dtype) VALUES (?, ?)",
                    (model_fingerprint, self.dtype.name),
                )
                (self._model_id,) = conn.execute(
                    "SELECT model_id FROM models WHERE fingerprint=? AND dtype=?",
                    (model_fingerprint, self.dtype.name),
                ).fetchone()
            except sqlite3.Error as exc:
                self.close()
                raise CacheError(f"cannot update the cache index at {self.root}: {exc}") from exc

    # -- keys ------------------------------------------------------------------ #
    @staticmethod
    def _key_prefix(fingerprint: str, dtype: np.dtype) -> Any:
        h = hashlib.sha256(b"alaas_lab.cache.v1")
        for part in (fingerprint.encode("utf-8"), dtype.name.encode("ascii")):
            h.update(len(part).to_bytes(8, "big"))
            h.update(part)
        return h

    def key(self, identity: str) -> bytes:
        """The 32-byte key of ``identity`` under this cache's model and dtype."""
        if not isinstance(identity, str):
            raise InputError(
                f"keys must be item identity strings (see item_identity); got "
                f"{type(identity).__name__} {identity!r}."
            )
        h = self._prefix.copy()
        h.update(identity.encode("utf-8"))
        return h.digest()

    @property
    def dims(self) -> tuple[int, ...]:
        """The widths of this model's entries, ascending; ``()`` while empty."""
        store = self._locked()
        with store.lock:
            rows = store.conn.execute(
                "SELECT DISTINCT nbytes FROM entries WHERE model_id=?", (self._model_id,)
            ).fetchall()
        return tuple(sorted(n // self.dtype.itemsize for (n,) in rows))

    def _locked(self) -> _Store:
        if self._store is None:
            raise CacheError(f"the embedding cache at {self.root} is closed.")
        if self._store.pid != os.getpid():
            raise CacheError(
                f"this EmbeddingCache of {self.root} was opened in another process (before a "
                "fork); open a new one in this process."
            )
        return self._store

    def _lookup(self, conn: sqlite3.Connection, digests: Iterable[bytes]) -> dict[bytes, tuple]:
        unique = list(dict.fromkeys(digests))
        rows: dict[bytes, tuple] = {}
        try:
            for i in range(0, len(unique), _CHUNK):
                chunk = unique[i : i + _CHUNK]
                q = (
                    "SELECT key, shard, offset, nbytes, crc FROM entries "
                    f"WHERE model_id=? AND key IN ({','.join('?' * len(chunk))})"
                )
                for r in conn.execute(q, [self._model_id, *chunk]):
                    rows[r[0]] = r[1:]
        except sqlite3.Error as exc:
            raise CacheError(f"cannot read the cache index at {self.root}: {exc}") from exc
        return rows

    # -- reading --------------------------------------------------------------- #
    def get_many(
        self, keys: Sequence[str], *, dim: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Look up many item identities at once.

        Parameters
        ----------
        keys : sequence of str, length n
            Item identities (:func:`item_identity`, :func:`content_identity`).
        dim : int, optional
            Width of the rows wanted; an entry of another width is a miss (not an
            error, and not dropped). By default the width of the first entry found.

        Returns
        -------
        found : ndarray of bool, shape (n,)
        rows : ndarray of ``dtype``, shape (found.sum(), dim)
            The embeddings of the found keys, in the order of ``keys``; ``dim`` is 0
            when nothing was found and none was given.

        Corrupt entries (checksum mismatch, truncated or missing shard) come back
        as misses; they are counted in ``stats()["corrupt"]`` and dropped.
        """
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
            raise InputError(f"dim must be a positive int or None; got {dim!r}.")
        digests = [self.key(k) for k in keys]
        n = len(digests)
        itemsize = self.dtype.itemsize
        store = self._locked()
        with store.lock:
            index = self._lookup(store.conn, digests)
            if dim is None:
                dim = next((index[d][2] // itemsize for d in digests if d in index), 0)
            row_nbytes = dim * itemsize
            pos = [i for i, d in enumerate(digests) if d in index and index[d][2] == row_nbytes]
            out = np.empty((len(pos), dim), dtype=self.dtype)
            raw = out.view(np.uint8).reshape(len(pos), row_nbytes)
            ok = np.ones(len(pos), dtype=bool)
            # read shard by shard, in file order, one preadv per contiguous run
            order = sorted(range(len(pos)), key=lambda j: index[digests[pos[j]]][:2])
            by_shard: dict[int, list[int]] = {}
            for j in order:
                by_shard.setdefault(index[digests[pos[j]]][0], []).append(j)
            for shard, js in by_shard.items():
                self._read_shard(store, shard, js, pos, digests, index, raw, ok, row_nbytes)
            bad_keys = {digests[pos[j]] for j in np.flatnonzero(~ok)}
            # a key asked for twice and found bad once is bad in both places
            for j, p in enumerate(pos):
                if digests[p] in bad_keys:
                    ok[j] = False
            if bad_keys:
                self._drop(store, {d: index[d] for d in bad_keys})
            found = np.zeros(n, dtype=bool)
            found[np.asarray(pos, dtype=np.int64)[ok]] = True
            self._hits += int(found.sum())
            self._misses += n - int(found.sum())
        return found, out[ok] if not ok.all() else out

    def _read_shard(
        self,
        store: _Store,
        shard: int,
        js: list[int],
        pos: list[int],
        digests: list[bytes],
        index: dict[bytes, tuple],
        raw: np.ndarray,
        ok: np.ndarray,
        row_nbytes: int,
    ) -> None:
        path = store._shard_path(shard)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            logger.warning(
                "cache shard %s cannot be read (%s); %d entries lost", path, exc, len(js)
            )
            ok[js] = False
            return
        try:
            runs: list[list[int]] = []
            prev_end = None
            for j in js:
                _, offset, nbytes, _ = index[digests[pos[j]]]
                if runs and offset == prev_end and len(runs[-1]) < _IOV_MAX:
                    runs[-1].append(j)
                else:
                    runs.append([j])
                prev_end = offset + nbytes
            for run in runs:
                start = index[digests[pos[run[0]]]][1]
                try:
                    got = os.preadv(fd, [raw[j] for j in run], start)
                except OSError as exc:
                    logger.warning("cache shard %s read failed: %s", path, exc)
                    got = 0
                # rows past the end of a truncated shard were not (fully) read
                complete = got // row_nbytes if row_nbytes else len(run)
                for k, j in enumerate(run):
                    crc = index[digests[pos[j]]][3]
                    if k >= complete or zlib.crc32(raw[j]) != crc:
                        ok[j] = False
        finally:
            os.close(fd)
        if not ok[js].all():
            logger.warning("cache shard %s: %d corrupt entries dropped", path, int((~ok[js]).sum()))

    def _drop(self, store: _Store, bad: dict[bytes, tuple]) -> None:
        """Delete corrupt index rows, unless another process has rewritten them since."""
        self._corrupt += len(bad)
        conn = store.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "DELETE FROM entries WHERE key=? AND shard=? AND offset=?",
                [(d, shard, offset) for d, (shard, offset, *_) in bad.items()],
            )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise CacheError(f"cannot update the cache index at {self.root}: {exc}") from exc

    def get(self, key: str) -> np.ndarray | None:
        """The embedding of one identity, shape ``(width,)``, or ``None`` on a miss."""
        found, rows = self.get_many([key])
        return rows[0] if found[0] else None

    def __contains__(self, key: object) -> bool:
        """Whether the index has ``key`` (no read, so a corrupt entry still counts)."""
        if not isinstance(key, str):
            return False
        store = self._locked()
        with store.lock:
            return bool(self._lookup(store.conn, [self.key(key)]))

    def __len__(self) -> int:
        """Number of entries of this model and dtype."""
        store = self._locked()
        with store.lock:
            return store.conn.execute(
                "SELECT count(*) FROM entries WHERE model_id=?", (self._model_id,)
            ).fetchone()[0]

    # -- writing --------------------------------------------------------------- #
    def put_many(self, keys: Sequence[str], array: Any) -> int:
        """Store embeddings; keys already present with the same width are left as they are.

        Parameters
        ----------
        keys : sequence of str, length n
            Item identities; a repeated key keeps its first row.
        array : array-like, shape (n, dim)
            Finite values, cast to the cache ``dtype``. Any ``dim``: an entry of the
            same key and another width is replaced.

        Returns
        -------
        int
            How many entries were written.
        """
        keys = list(keys)
        try:
            arr = np.asarray(array)
        except (TypeError, ValueError) as exc:
            raise InputError(f"array must be numeric of shape (n, dim): {exc}") from None
        if arr.ndim != 2 or arr.shape[0] != len(keys) or arr.shape[1] == 0:
            hint = " Use x.reshape(1, -1) for one row." if arr.ndim == 1 else ""
            raise InputError(
                f"array must have shape (len(keys), dim) = ({len(keys)}, dim>0); got "
                f"{arr.shape}.{hint}"
            )
        if arr.dtype.kind not in "biuf":
            raise InputError(f"array must be numeric; got dtype {arr.dtype}.")
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
            raise InputError(
                f"array row {bad} (key {keys[bad]!r}) has NaN or infinite values; "
                "embeddings must be finite."
            )
        digests = [self.key(k) for k in keys]
        nbytes = arr.shape[1] * self.dtype.itemsize
        store = self._locked()
        with store.lock:
            existing = self._lookup(store.conn, digests)
            new: dict[bytes, int] = {}
            for i, d in enumerate(digests):
                if d not in new and (d not in existing or existing[d][2] != nbytes):
                    new[d] = i
            if not new:
                return 0
            rows = np.ascontiguousarray(arr[list(new.values())], dtype=self.dtype)
            data = rows.view(np.uint8).reshape(len(new), nbytes)
            shard, offset = store.append(data.tobytes())
            now = time.time()
            entries = [
                (d, self._model_id, shard, offset + k * nbytes, nbytes, zlib.crc32(data[k]), now)
                for k, d in enumerate(new)
            ]
            conn = store.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)", entries
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise CacheError(f"cannot update the cache index at {self.root}: {exc}") from exc
            self._puts += len(new)
            return len(new)

    def put(self, key: str, vector: Any) -> bool:
        """Store one embedding of shape ``(width,)``; return whether it was written."""
        return self.put_many([key], np.asarray(vector).reshape(1, -1)) == 1

    # -- bookkeeping ----------------------------------------------------------- #
    def stats(self) -> dict[str, int]:
        """Counters of this cache object, plus sizes on disk.

        Returns
        -------
        dict
            ``hits``, ``misses``, ``corrupt`` (entries found bad and dropped),
            ``puts`` (entries written) since this object was opened; ``entries``
            of this model; ``shards`` and ``shard_bytes`` on disk (all models and
            processes).
        """
        store = self._locked()
        with store.lock:
            files = list(store.shard_dir.glob("*.bin"))
            return {
                "hits": self._hits,
                "misses": self._misses,
                "corrupt": self._corrupt,
                "puts": self._puts,
                "entries": len(self),
                "shards": len(files),
                "shard_bytes": sum(p.stat().st_size for p in files),
            }

    def close(self) -> None:
        """Release the index and the shard lock (when no other cache in this process
        uses the same root). Idempotent."""
        if self._store is not None:
            store, self._store = self._store, None
            if store.pid == os.getpid():
                _release_store(store)

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return (
            f"EmbeddingCache({str(self.root)!r}, model_fingerprint={self.model_fingerprint!r}, "
            f"dtype={self.dtype.name!r})"
        )
