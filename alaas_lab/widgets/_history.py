"""Session history read from the journal, in the kernel's process.

The worker writes ``SESSION_DIR/session.sqlite`` (SQLite in WAL mode, so readers
never block its writer). What the wire protocol does not serve yet — the label
table, pending selections, forecasts — the kernel reads from that file directly
when the session directory is on this machine. Every function opens the journal,
reads, and closes it again; none writes. A session on another host has no file
here: the functions return ``None`` and callers fall back to ``status``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..journal import DEFAULT_FILENAME, Journal

__all__ = [
    "curve_history",
    "journal_file",
    "label_rows",
    "pending_items",
    "quarantine_rows",
    "recent_answers",
]

LABEL_COLUMNS = ("item_id", "uri", "label", "labeler", "time", "round", "strategy", "row_id")
#: ``strategy`` the worker stores for a label of an item no selection asked for (yet).
_UNREQUESTED = "unrequested"


def journal_file(session_dir: str | Path | None) -> Path | None:
    """The session's journal file, or None if it is not on this machine (yet)."""
    if session_dir is None:
        return None
    path = Path(session_dir) / DEFAULT_FILENAME
    return path if path.is_file() else None


@contextmanager
def _open(session_dir: str | Path | None) -> Iterator[Journal | None]:
    path = journal_file(session_dir)
    if path is None:
        yield None
        return
    journal = Journal(path, synchronous="NORMAL")
    try:
        yield journal
    finally:
        journal.close()


def _eval_ids(journal: Journal) -> set[int]:
    return {int(i) for e in journal.events("eval_items") for i in e.payload["item_ids"]}


def _asked(journal: Journal) -> dict[int, tuple[int, str]]:
    """``{item_id: (round, strategy)}`` of the selection that asked for each item (latest)."""
    return {s.item_id: (s.round, s.strategy) for s in journal.selections()}


def _current(rows: list[Any]) -> list[Any]:
    """Each item's latest label row that still stands (not a retraction), oldest first."""
    latest = {r.item_id: r for r in rows}
    return sorted((r for r in latest.values() if r.label is not None), key=lambda r: r.row_id)


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).isoformat(timespec="milliseconds")


def label_rows(session_dir: str | Path | None, *, history: bool = False,
               include_eval: bool = False) -> list[dict[str, Any]] | None:
    """Labels as rows of :data:`LABEL_COLUMNS`, oldest first.

    Parameters
    ----------
    history : bool, default False
        Every journal row (changed answers and retractions, ``label=None``, too)
        instead of each item's current label.
    include_eval : bool, default False
        Also the labels of an evaluation set pushed with ``role="eval"``.

    ``round`` and ``strategy`` name the selection that asked for the item; a label
    given outside any selection keeps the worker's ``"unrequested"``.
    """
    with _open(session_dir) as journal:
        if journal is None:
            return None
        uris = journal.uris()
        skip = set() if include_eval else _eval_ids(journal)
        asked = _asked(journal)
        rows = journal.label_history()
    if not history:
        rows = _current(rows)
    out = []
    for r in rows:
        if r.item_id in skip:
            continue
        rnd, strategy = r.round, r.strategy
        if r.item_id in asked and strategy in (None, _UNREQUESTED):
            rnd, strategy = asked[r.item_id]
        out.append({"item_id": r.item_id, "uri": uris[r.item_id] if r.item_id < len(uris) else "",
                    "label": r.label, "labeler": r.labeler, "time": _iso(r.time),
                    "round": rnd, "strategy": strategy, "row_id": r.row_id})
    return out


def pending_items(session_dir: str | Path | None) -> list[dict[str, Any]] | None:
    """Selected items with no current label, in round and rank order.

    What a labeler must answer before it asks for a new selection: the worker
    completes a round only when all of its selection is labeled.
    """
    with _open(session_dir) as journal:
        if journal is None:
            return None
        pending = journal.pending_selections()
        quarantined = journal.quarantined()
    out: dict[int, dict[str, Any]] = {}  # an item several strategies picked comes once
    for s in pending:
        if s.item_id in quarantined:
            continue
        row = out.setdefault(s.item_id, {"item_id": s.item_id, "round": s.round,
                                         "strategy": s.strategy})
        if s.round == row["round"] and s.strategy not in row["strategy"].split(", "):
            row["strategy"] += f", {s.strategy}"
    return list(out.values())


def recent_answers(session_dir: str | Path | None, labeler: str, n: int = 10
                   ) -> list[dict[str, Any]] | None:
    """``labeler``'s last ``n`` answers that still stand (oldest first), for Undo."""
    with _open(session_dir) as journal:
        if journal is None:
            return None
        rows = journal.label_history()
        asked = _asked(journal)
    mine = [r for r in _current(rows) if r.labeler == labeler]
    out = []
    for r in mine[-n:]:
        rnd, strategy = asked.get(r.item_id, (r.round, r.strategy))
        out.append({"item_id": r.item_id, "label": r.label, "round": rnd, "strategy": strategy})
    return out


def curve_history(session_dir: str | Path | None) -> dict[str, list[dict[str, Any]]] | None:
    """Rounds, forecasts and eliminations recorded so far, for the dashboard."""
    with _open(session_dir) as journal:
        if journal is None:
            return None
        rounds = journal.rounds()
        forecasts = journal.forecasts()
    # PSHEA marks the row of the round a strategy left; the forecast that removed it
    # is the one made then for the next round, on the (round + 1) row
    predicted = {(f.round, f.strategy): f.predicted for f in forecasts}
    return {
        "rounds": [{"round": r.round, "strategy": r.strategy, "n_labeled": r.n_labeled,
                    "top1": r.top1, "top5": r.top5} for r in rounds],
        "forecasts": [{"round": f.round, "strategy": f.strategy, "predicted": f.predicted}
                      for f in forecasts if f.predicted is not None],
        "eliminations": [{"round": f.round, "strategy": f.strategy,
                          "predicted": predicted.get((f.round + 1, f.strategy), f.predicted),
                          "reason": f.reason or ""} for f in forecasts if f.eliminated],
    }


def quarantine_rows(session_dir: str | Path | None) -> list[dict[str, Any]] | None:
    """Quarantined items: ``item_id``, ``uri``, ``stage`` and ``reason``."""
    with _open(session_dir) as journal:
        if journal is None:
            return None
        items = [it for it in journal.items() if it.status == "quarantined"]
    return [split_reason(it.item_id, it.uri, it.reason or "") for it in items]


def split_reason(item_id: int, uri: str, reason: str) -> dict[str, Any]:
    """The journal stores ``"stage: reason"``; split it back."""
    stage, sep, rest = reason.partition(": ")
    if not sep or " " in stage:
        stage, rest = "", reason
    return {"item_id": int(item_id), "uri": uri, "stage": stage, "reason": rest}


def selection_size(session_dir: str | Path | None, round: int) -> int | None:
    """How many items the selection(s) of ``round`` hold (all strategies together)."""
    with _open(session_dir) as journal:
        if journal is None:
            return None
        return len({s.item_id for s in journal.selections(round=round)}) if round else 0


def selection_strategies(session_dir: str | Path | None, round: int) -> dict[int, str]:
    """``{item_id: "margin, entropy"}``: who picked each item of ``round`` (PSHEA: several)."""
    with _open(session_dir) as journal:
        if journal is None:
            return {}
        rows = journal.selections(round=round)
    names: dict[int, list[str]] = {}
    for s in rows:
        picked = names.setdefault(s.item_id, [])
        if s.strategy not in picked:
            picked.append(s.strategy)
    return {item: ", ".join(picked) for item, picked in names.items()}


def has_label_row(session_dir: str | Path | None, item_id: int, label: Any, labeler: str,
                  since: float) -> bool | None:
    """Whether the journal holds ``label`` for ``item_id`` by ``labeler``, written after ``since``.

    Lets a sender whose request timed out tell "the worker got it late" from "it
    never arrived" before sending again. None when the journal is not on this machine.
    """
    with _open(session_dir) as journal:
        if journal is None:
            return None
        rows = journal.label_history(item_id)
    return any(r.labeler == labeler and r.label == label and r.time >= since for r in rows)
