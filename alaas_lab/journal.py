"""Durable session state in one SQLite file: items, labels, rounds, selections, forecasts.

A label is human work: it must survive the worker being killed the moment after it
was acknowledged. Every :meth:`Journal.record_label` is its own committed
transaction before the method returns.

Durability choice
-----------------
The database runs in WAL mode with ``synchronous=FULL`` by default. In WAL mode a
commit appends to the ``-wal`` file; that append is in the OS page cache when the
commit returns, so ``NORMAL`` already survives a crash or ``SIGKILL`` of the
worker *process*. Only an OS crash or power cut can lose the last transactions
under ``NORMAL``. ``FULL`` adds one fsync of the WAL per commit so that a label
also survives those. Labels arrive at human speed (about one a second), so that
fsync costs nothing that matters; pass ``synchronous="NORMAL"`` for bulk imports
where speed matters more.

Threads
-------
One connection, opened with ``check_same_thread=False`` and guarded by one
re-entrant lock: every method holds it for its whole transaction. SQLite allows
one writer at a time anyway, so per-thread connections would buy only concurrent
reads, which the worker does not need; one lock keeps the ordering of writes
obvious. Other *processes* may open the same file (WAL lets readers work beside
the writer); a busy writer is waited for up to ``busy_timeout`` seconds.

Schema
------
``meta(key, value)`` holds ``schema_version``; a journal written by a newer
alaas_lab is refused rather than misread. Item ids are pool indices ``0..n-1``,
assigned densely in insertion order and never reused (items are quarantined, not
deleted).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import InputError, JournalError

__all__ = [
    "SCHEMA_VERSION",
    "EventRecord",
    "ForecastRecord",
    "Item",
    "Journal",
    "LabelRecord",
    "RoundRecord",
    "Selection",
]

#: Version of the table layout; bump it (and add a migration) when tables change.
SCHEMA_VERSION = 1
#: ``PRAGMA application_id`` of a journal ("ALAJ"), so a random SQLite file is not misread.
APPLICATION_ID = 0x414C414A
DEFAULT_FILENAME = "session.sqlite"
_CHUNK = 500  # ids per "IN (...)" query

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    item_id     INTEGER PRIMARY KEY,
    uri         TEXT NOT NULL UNIQUE,
    content_key TEXT,
    status      TEXT NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'quarantined')),
    reason      TEXT,
    added       REAL NOT NULL
);
CREATE TABLE labels (
    row_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id  INTEGER NOT NULL REFERENCES items(item_id),
    label,
    labeler  TEXT,
    time     REAL NOT NULL,
    round    INTEGER,
    strategy TEXT
);
CREATE INDEX labels_by_item ON labels(item_id, row_id);
CREATE TABLE rounds (
    round     INTEGER NOT NULL,
    strategy  TEXT NOT NULL,
    n_labeled INTEGER NOT NULL,
    top1      REAL,
    top5      REAL,
    time      REAL NOT NULL,
    extra     TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (round, strategy)
);
CREATE TABLE selections (
    round    INTEGER NOT NULL,
    strategy TEXT NOT NULL,
    rank     INTEGER NOT NULL,
    item_id  INTEGER NOT NULL REFERENCES items(item_id),
    time     REAL NOT NULL,
    PRIMARY KEY (round, strategy, rank)
);
CREATE INDEX selections_by_item ON selections(item_id);
CREATE TABLE forecasts (
    round      INTEGER NOT NULL,
    strategy   TEXT NOT NULL,
    predicted  REAL,
    actual     REAL,
    eliminated INTEGER NOT NULL DEFAULT 0,
    reason     TEXT,
    time       REAL NOT NULL,
    PRIMARY KEY (round, strategy)
);
CREATE TABLE events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT NOT NULL,
    time     REAL NOT NULL,
    payload  TEXT NOT NULL
);
CREATE INDEX events_by_kind ON events(kind, event_id);
"""


@dataclass(frozen=True)
class Item:
    """One pool item: ``item_id`` is its pool index."""

    item_id: int
    uri: str
    content_key: str | None
    status: str
    reason: str | None


@dataclass(frozen=True)
class LabelRecord:
    """One row of label history; ``label is None`` records a retraction (undo)."""

    row_id: int
    item_id: int
    label: int | str | None
    labeler: str | None
    time: float
    round: int | None
    strategy: str | None


@dataclass(frozen=True)
class RoundRecord:
    """Result of one strategy in one round."""

    round: int
    strategy: str
    n_labeled: int
    top1: float | None
    top5: float | None
    time: float
    extra: dict[str, Any]


@dataclass(frozen=True)
class Selection:
    """One selected item: ``rank`` 0 is the strategy's first pick."""

    round: int
    strategy: str
    rank: int
    item_id: int


@dataclass(frozen=True)
class ForecastRecord:
    """PSHEA's forecast for one strategy at one round, and whether it was eliminated."""

    round: int
    strategy: str
    predicted: float | None
    actual: float | None
    eliminated: bool
    reason: str | None
    time: float


@dataclass(frozen=True)
class EventRecord:
    """A free-form event with a JSON payload."""

    event_id: int
    kind: str
    time: float
    payload: dict[str, Any]


def _check_int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_str(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise InputError(f"{name} must be a non-empty str; got {value!r}.")
    return value


def _check_label(value: Any) -> int | str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    raise InputError(
        f"label must be an int class index, a str class name or None (retract); "
        f"got {type(value).__name__} {value!r}."
    )


def _check_provenance(round: Any, labeler: Any, strategy: Any) -> tuple[Any, Any, Any]:
    round = None if round is None else _check_int(round, "round")
    labeler = None if labeler is None else _check_str(labeler, "labeler")
    strategy = None if strategy is None else _check_str(strategy, "strategy")
    return round, labeler, strategy


def _check_score(value: Any, name: str) -> float | None:
    if value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number or None; got {value!r}.") from None
    if not math.isfinite(out):
        raise InputError(f"{name} must be finite or None; got {value!r}.")
    return out


def _json(payload: Any, name: str) -> str:
    try:
        return json.dumps(payload, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{name} must be JSON-serializable (dict of str, numbers, lists, None); {exc}"
        ) from None


class Journal:
    """The worker's durable record of one labeling session.

    Parameters
    ----------
    path : str or Path
        A directory (the journal is ``path / "session.sqlite"``) or a file path. A
        missing parent directory is created.
    synchronous : {"FULL", "NORMAL"}, default "FULL"
        SQLite's fsync policy in WAL mode; see the module docstring for why FULL.
    busy_timeout : float, default 10.0
        Seconds to wait for another process that holds the write lock.

    Raises
    ------
    JournalError
        The path cannot be created, opened or written, is not an alaas_lab journal,
        or was written by a newer alaas_lab (schema version too new).

    Examples
    --------
    >>> j = Journal(tmp_dir)                                    # doctest: +SKIP
    >>> ids = j.add_items(["s3://b/0.png", "s3://b/1.png"])     # doctest: +SKIP
    >>> j.record_label(ids[0], "cat", labeler="ana", round=0, strategy="lc")  # doctest: +SKIP
    """

    def __init__(
        self, path: str | os.PathLike[str], *, synchronous: str = "FULL", busy_timeout: float = 10.0
    ) -> None:
        if str(synchronous).upper() not in ("FULL", "NORMAL"):
            raise InputError(f"synchronous must be 'FULL' or 'NORMAL'; got {synchronous!r}.")
        path = Path(path)
        if path.is_dir():
            path = path / DEFAULT_FILENAME
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(
                f"cannot create the journal directory {path.parent}: {exc.strerror or exc}. "
                "Choose a writable directory for the session."
            ) from exc
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise JournalError(
                f"the journal directory {path.parent} is not writable (SQLite needs to "
                "create the journal and its -wal file there). Choose a writable directory."
            )
        try:
            conn = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise JournalError(
                f"cannot open the journal at {path}: {exc}. Check that the path is a file "
                "in a writable directory."
            ) from exc
        try:
            self._setup(conn, str(synchronous).upper())
        except JournalError:
            conn.close()
            raise
        except sqlite3.Error as exc:
            conn.close()
            raise JournalError(
                f"cannot use {path} as a journal: {exc}. If it is not an alaas_lab "
                "session.sqlite, choose another path; if the disk is full or read-only, "
                "free space or choose a writable directory."
            ) from exc
        self._conn = conn

    # -- opening ------------------------------------------------------------ #
    def _setup(self, conn: sqlite3.Connection, synchronous: str) -> None:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(
                f"could not switch {self.path} to WAL mode (got {mode!r}); the file system "
                "may not support shared memory (e.g. some network mounts). Use a local disk."
            )
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
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
                        "INSERT INTO meta VALUES ('schema_version', ?), ('created', ?)",
                        (str(SCHEMA_VERSION), str(time.time())),
                    )
                    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return
        if app_id != APPLICATION_ID or "meta" not in tables:
            raise JournalError(
                f"{self.path} is an SQLite database but not an alaas_lab journal "
                f"(application_id {app_id:#x}, tables {sorted(tables)}). Choose another path."
            )
        row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row is not None and str(row[0]).isdigit() else None
        if version is None:
            raise JournalError(f"{self.path} has no valid schema_version in its meta table.")
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path} has journal schema version {version}, newer than this "
                f"alaas_lab understands ({SCHEMA_VERSION}). Upgrade alaas_lab to open it; "
                "it is not modified."
            )
        if version < SCHEMA_VERSION:  # pragma: no cover - no older schema exists yet
            raise JournalError(
                f"{self.path} has journal schema version {version}; no migration to "
                f"{SCHEMA_VERSION} is available."
            )

    @property
    def schema_version(self) -> int:
        """The schema version stored in the file."""
        with self._locked() as conn:
            return int(
                conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            )

    # -- plumbing ----------------------------------------------------------- #
    @contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise JournalError(f"the journal {self.path} is closed.")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise JournalError(f"journal {self.path}: {exc}") from exc

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, committed on success, rolled back on any error."""
        with self._locked() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Checkpoint and close; later calls raise :class:`JournalError`. Idempotent."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("PRAGMA optimize")
                finally:
                    self._conn.close()
                    self._conn = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else "open"
        return f"Journal({str(self.path)!r}, {state})"

    def _missing_items(self, conn: sqlite3.Connection, ids: Sequence[int]) -> list[int]:
        wanted = sorted(set(ids))
        found: set[int] = set()
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            q = f"SELECT item_id FROM items WHERE item_id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in conn.execute(q, chunk))
        return [i for i in wanted if i not in found]

    def _require_items(self, conn: sqlite3.Connection, ids: Sequence[int], what: str) -> None:
        missing = self._missing_items(conn, ids)
        if missing:
            n = conn.execute("SELECT count(*) FROM items").fetchone()[0]
            shown = missing[:10]
            raise JournalError(
                f"cannot {what}: unknown item id(s) {shown}{' ...' if len(missing) > 10 else ''}; "
                f"the pool has items 0..{n - 1}. Push the items first (add_items)."
                if n
                else f"cannot {what}: unknown item id(s) {shown}; the pool is empty. "
                "Push the items first (add_items)."
            )

    # -- items ---------------------------------------------------------------- #
    def add_items(
        self, uris: Iterable[str], *, content_keys: Sequence[str | None] | None = None
    ) -> list[int]:
        """Add items to the pool; return their ids (pool indices), in order.

        Idempotent: a URI already in the pool (or repeated in ``uris``) gets its
        existing id. A given ``content_key`` replaces the stored one.

        Parameters
        ----------
        uris : iterable of str, length n
            URIs or other external ids, unique per item.
        content_keys : sequence of (str or None), length n, optional
            Identity of each item's content (e.g. for the embedding cache).

        Returns
        -------
        ids : list of int, length n
        """
        uris = list(uris)
        for i, uri in enumerate(uris):
            _check_str(uri, f"uris[{i}]")
        if content_keys is not None:
            content_keys = list(content_keys)
            if len(content_keys) != len(uris):
                raise InputError(
                    f"content_keys must have one entry per uri: {len(content_keys)} keys "
                    f"for {len(uris)} uris."
                )
            for i, key in enumerate(content_keys):
                if key is not None and not isinstance(key, str):
                    raise InputError(f"content_keys[{i}] must be a str or None; got {key!r}.")
        now = time.time()
        with self._tx() as conn:
            ids: dict[str, int] = {}
            unique = list(dict.fromkeys(uris))
            for i in range(0, len(unique), _CHUNK):
                chunk = unique[i : i + _CHUNK]
                q = f"SELECT uri, item_id FROM items WHERE uri IN ({','.join('?' * len(chunk))})"
                ids.update(conn.execute(q, chunk))
            next_id = conn.execute("SELECT coalesce(max(item_id) + 1, 0) FROM items").fetchone()[0]
            new_rows = []
            for uri in unique:
                if uri not in ids:
                    ids[uri] = next_id
                    new_rows.append((next_id, uri, now))
                    next_id += 1
            conn.executemany("INSERT INTO items(item_id, uri, added) VALUES (?, ?, ?)", new_rows)
            if content_keys is not None:
                conn.executemany(
                    "UPDATE items SET content_key=? WHERE item_id=?",
                    [(k, ids[u]) for u, k in zip(uris, content_keys, strict=True) if k is not None],
                )
        return [ids[u] for u in uris]

    def __len__(self) -> int:
        """Number of items in the pool (quarantined ones included)."""
        with self._locked() as conn:
            return conn.execute("SELECT count(*) FROM items").fetchone()[0]

    def item(self, item_id: int) -> Item:
        """The pool item ``item_id``."""
        item_id = _check_int(item_id, "item_id")
        with self._locked() as conn:
            row = conn.execute(
                "SELECT item_id, uri, content_key, status, reason FROM items WHERE item_id=?",
                (item_id,),
            ).fetchone()
            if row is None:
                self._require_items(conn, [item_id], "read the item")
        return Item(*row)

    def items(self) -> list[Item]:
        """All pool items, by id."""
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT item_id, uri, content_key, status, reason FROM items ORDER BY item_id"
            ).fetchall()
        return [Item(*r) for r in rows]

    def uris(self) -> list[str]:
        """``uris()[i]`` is the URI of item ``i``."""
        with self._locked() as conn:
            return [r[0] for r in conn.execute("SELECT uri FROM items ORDER BY item_id")]

    def quarantine(self, item_id: int, reason: str) -> None:
        """Mark an item as unusable (cannot be fetched or decoded), with the reason."""
        item_id = _check_int(item_id, "item_id")
        _check_str(reason, "reason")
        with self._tx() as conn:
            self._require_items(conn, [item_id], "quarantine")
            conn.execute(
                "UPDATE items SET status='quarantined', reason=? WHERE item_id=?",
                (reason, item_id),
            )

    def quarantined(self) -> dict[int, str]:
        """``{item_id: reason}`` of quarantined items."""
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT item_id, reason FROM items WHERE status='quarantined' ORDER BY item_id"
            )
            return dict(rows.fetchall())

    # -- labels --------------------------------------------------------------- #
    def record_label(
        self,
        item_id: int,
        label: int | str | None,
        *,
        labeler: str | None = None,
        round: int | None = None,
        strategy: str | None = None,
    ) -> int:
        """Store one label, committed before this returns; return its row id.

        A new label for a labeled item is a new row: the latest wins and the history
        is kept. ``label=None`` retracts the item's label (undo).

        Raises
        ------
        JournalError
            ``item_id`` is not in the pool.
        """
        item_id = _check_int(item_id, "item_id")
        label = _check_label(label)
        round, labeler, strategy = _check_provenance(round, labeler, strategy)
        with self._locked() as conn:
            try:
                cur = conn.execute(
                    "INSERT INTO labels(item_id, label, labeler, time, round, strategy) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (item_id, label, labeler, time.time(), round, strategy),
                )
            except sqlite3.IntegrityError:
                self._require_items(conn, [item_id], "record a label")
                raise
            return int(cur.lastrowid)

    def record_labels(
        self,
        item_ids: Sequence[int],
        labels: Sequence[int | str | None],
        *,
        labeler: str | None = None,
        round: int | None = None,
        strategy: str | None = None,
    ) -> list[int]:
        """Store several labels in one transaction (all or none); return their row ids."""
        ids = [_check_int(i, f"item_ids[{k}]") for k, i in enumerate(item_ids)]
        labels = [_check_label(v) for v in labels]
        if len(ids) != len(labels):
            raise InputError(
                f"item_ids and labels must have the same length; got {len(ids)} and {len(labels)}."
            )
        round, labeler, strategy = _check_provenance(round, labeler, strategy)
        now = time.time()
        with self._tx() as conn:
            self._require_items(conn, ids, "record labels")
            rows = []
            for item_id, label in zip(ids, labels, strict=True):
                cur = conn.execute(
                    "INSERT INTO labels(item_id, label, labeler, time, round, strategy) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (item_id, label, labeler, now, round, strategy),
                )
                rows.append(int(cur.lastrowid))
        return rows

    def labels(self) -> dict[int, int | str]:
        """The current label of each labeled item: ``{item_id: label}`` (latest wins)."""
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT l.item_id, l.label FROM labels l JOIN "
                "(SELECT item_id, max(row_id) AS row_id FROM labels GROUP BY item_id) m "
                "ON l.row_id = m.row_id WHERE l.label IS NOT NULL ORDER BY l.item_id"
            )
            return dict(rows.fetchall())

    def label_history(self, item_id: int | None = None, *, since: int = 0) -> list[LabelRecord]:
        """Every label row, oldest first, optionally for one item only or after row ``since``."""
        q = "SELECT row_id, item_id, label, labeler, time, round, strategy FROM labels"
        where, args = ["row_id>?"], [_check_int(since, "since")]
        if item_id is not None:
            where.append("item_id=?")
            args.append(_check_int(item_id, "item_id"))
        q += " WHERE " + " AND ".join(where)
        with self._locked() as conn:
            return [LabelRecord(*r) for r in conn.execute(q + " ORDER BY row_id", args)]

    def labeled_mask(self, n: int | None = None) -> np.ndarray:
        """Boolean array of shape ``(n,)``: True where the item has a current label.

        ``n`` defaults to the pool size and may not be smaller than it.
        """
        with self._locked() as conn:
            size = conn.execute("SELECT count(*) FROM items").fetchone()[0]
            n = size if n is None else _check_int(n, "n")
            if n < size:
                raise InputError(
                    f"n={n} is smaller than the pool ({size} items); pass n >= {size} or None."
                )
            ids = list(self.labels())
        mask = np.zeros(n, dtype=bool)
        mask[np.asarray(ids, dtype=np.int64)] = True
        return mask

    # -- rounds, selections, forecasts ------------------------------------------ #
    def record_round(
        self,
        round: int,
        strategy: str,
        *,
        n_labeled: int,
        top1: float | None = None,
        top5: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Store (or replace) the result of ``strategy`` at ``round``."""
        row = (
            _check_int(round, "round"),
            _check_str(strategy, "strategy"),
            _check_int(n_labeled, "n_labeled"),
            _check_score(top1, "top1"),
            _check_score(top5, "top5"),
            time.time(),
            _json(extra or {}, "extra"),
        )
        with self._locked() as conn:
            conn.execute("INSERT OR REPLACE INTO rounds VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    def rounds(self, strategy: str | None = None) -> list[RoundRecord]:
        """Round results ordered by round then strategy."""
        q = "SELECT round, strategy, n_labeled, top1, top5, time, extra FROM rounds"
        args: tuple[Any, ...] = ()
        if strategy is not None:
            q, args = q + " WHERE strategy=?", (strategy,)
        with self._locked() as conn:
            rows = conn.execute(q + " ORDER BY round, strategy", args).fetchall()
        return [RoundRecord(*r[:6], json.loads(r[6])) for r in rows]

    def record_selection(self, round: int, strategy: str, item_ids: Sequence[int]) -> None:
        """Store what ``strategy`` picked at ``round``, best first (replaces a previous pick).

        The selection is committed before labeling starts, so a restarted worker can
        serve the same items again (see :meth:`pending_selections`).
        """
        round = _check_int(round, "round")
        _check_str(strategy, "strategy")
        ids = [_check_int(i, f"item_ids[{k}]") for k, i in enumerate(item_ids)]
        now = time.time()
        with self._tx() as conn:
            self._require_items(conn, ids, "record a selection")
            conn.execute("DELETE FROM selections WHERE round=? AND strategy=?", (round, strategy))
            conn.executemany(
                "INSERT INTO selections VALUES (?, ?, ?, ?, ?)",
                [(round, strategy, rank, i, now) for rank, i in enumerate(ids)],
            )

    def selections(self, round: int | None = None, strategy: str | None = None) -> list[Selection]:
        """Selected items ordered by round, strategy and rank."""
        return self._selections(round, strategy, pending=False)

    def pending_selections(
        self, round: int | None = None, strategy: str | None = None
    ) -> list[Selection]:
        """Selected items that still have no current label and are not quarantined.

        What a restarted worker serves to the labeler first, in the original order.
        """
        return self._selections(round, strategy, pending=True)

    def _selections(self, round: Any, strategy: Any, *, pending: bool) -> list[Selection]:
        where, args = [], []
        if round is not None:
            where.append("s.round=?")
            args.append(_check_int(round, "round"))
        if strategy is not None:
            where.append("s.strategy=?")
            args.append(strategy)
        if pending:
            where.append("i.status='ok'")
            where.append(
                "coalesce((SELECT label IS NULL FROM labels l WHERE l.item_id = s.item_id "
                "ORDER BY row_id DESC LIMIT 1), 1)"
            )
        q = (
            "SELECT s.round, s.strategy, s.rank, s.item_id FROM selections s "
            "JOIN items i ON i.item_id = s.item_id"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY s.round, s.strategy, s.rank"
        )
        with self._locked() as conn:
            return [Selection(*r) for r in conn.execute(q, args)]

    def record_forecast(
        self,
        round: int,
        strategy: str,
        *,
        predicted: float | None = None,
        actual: float | None = None,
        eliminated: bool = False,
        reason: str | None = None,
    ) -> None:
        """Store PSHEA's forecast for ``strategy`` at ``round``, or update it.

        Calling again for the same round and strategy fills in what is given (e.g. the
        ``actual`` accuracy once known) and keeps what is not; an elimination sticks.
        """
        row = (
            _check_int(round, "round"),
            _check_str(strategy, "strategy"),
            _check_score(predicted, "predicted"),
            _check_score(actual, "actual"),
            int(bool(eliminated)),
            reason,
            time.time(),
        )
        with self._locked() as conn:
            conn.execute(
                "INSERT INTO forecasts VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(round, strategy) DO UPDATE SET "
                "predicted=coalesce(excluded.predicted, predicted), "
                "actual=coalesce(excluded.actual, actual), "
                "eliminated=max(eliminated, excluded.eliminated), "
                "reason=coalesce(excluded.reason, reason), time=excluded.time",
                row,
            )

    def forecasts(self, strategy: str | None = None) -> list[ForecastRecord]:
        """Forecast rows ordered by round then strategy."""
        q = "SELECT round, strategy, predicted, actual, eliminated, reason, time FROM forecasts"
        args: tuple[Any, ...] = ()
        if strategy is not None:
            q, args = q + " WHERE strategy=?", (strategy,)
        with self._locked() as conn:
            rows = conn.execute(q + " ORDER BY round, strategy", args).fetchall()
        return [ForecastRecord(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows]

    def eliminated(self) -> dict[str, int]:
        """``{strategy: round}`` at which each eliminated strategy was removed."""
        with self._locked() as conn:
            rows = conn.execute(
                "SELECT strategy, min(round) FROM forecasts WHERE eliminated GROUP BY strategy"
            )
            return dict(rows.fetchall())

    # -- events ----------------------------------------------------------------- #
    def record_event(self, kind: str, payload: dict[str, Any] | None = None) -> int:
        """Store a free-form event with a JSON payload; return its id."""
        _check_str(kind, "kind")
        data = _json(payload or {}, "payload")
        with self._locked() as conn:
            cur = conn.execute(
                "INSERT INTO events(kind, time, payload) VALUES (?, ?, ?)",
                (kind, time.time(), data),
            )
            return int(cur.lastrowid)

    def events(self, kind: str | None = None, *, since: int | None = None) -> list[EventRecord]:
        """Events oldest first, optionally of one ``kind`` and after event id ``since``."""
        where, args = [], []
        if kind is not None:
            where.append("kind=?")
            args.append(kind)
        if since is not None:
            where.append("event_id>?")
            args.append(_check_int(since, "since"))
        q = "SELECT event_id, kind, time, payload FROM events"
        q += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY event_id"
        with self._locked() as conn:
            rows = conn.execute(q, args).fetchall()
        return [EventRecord(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    # -- label reviews ------------------------------------------------------------ #
    def record_review(self, item_id: int, *, before: int | str, after: int | str,
                      labeler: str | None = None, source: str = "suspects") -> int:
        """Journal a person's review of a label; ``after == before`` confirms it.

        A different ``after`` is a correction (the new label itself is a label row,
        recorded with :meth:`record_label`). ``source`` names what asked for the
        review (``"suspects"``). Returns the event id.
        """
        item_id = _check_int(item_id, "item_id")
        payload = {"item_id": item_id, "before": _check_label(before),
                   "after": _check_label(after), "labeler": labeler, "source": source}
        return self.record_event("label_review", payload)

    def reviews(self, item_id: int | None = None) -> list[dict[str, Any]]:
        """Reviews oldest first: ``item_id``, ``before``, ``after``, ``kind``
        (``confirmed`` or ``corrected``), ``labeler``, ``source``, ``time`` (epoch s)."""
        out = []
        for e in self.events("label_review"):
            p = e.payload
            if item_id is not None and p["item_id"] != item_id:
                continue
            kind = "confirmed" if p["after"] == p["before"] else "corrected"
            out.append({**p, "kind": kind, "time": e.time, "event_id": e.event_id})
        return out
