"""The ``history`` request: what the session's journal holds, read in the worker.

The kernel never opens the journal; labels, rounds, forecasts, eliminations,
quarantine, pending items and selections reach it as a ``history_reply`` (see
:class:`~alaas_lab.protocol.messages.HistoryReplyContent` for the rows).

Cursor
------
A reply's ``cursor`` is ``"<row>.<digest>"``: ``row`` is the last label row read
(the journal's ``labels.row_id`` grows with every answer, so the labels after a
cursor are exactly the rows after it, each sent once); ``digest`` is a hash of the
other sections as sent. Those are small state tables rather than logs (a round's
row is replaced, a forecast filled in, a selection leaves ``pending``), so they are
sent whole, and only when their digest differs from the cursor's: a widget that
polls with the cursor gets an empty reply while nothing changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import strategies
from ..errors import InputError
from ..journal import Journal, LabelRecord, RoundRecord
from ..journal import Selection as SelectionRecord
from ..protocol.messages import HISTORY_SECTIONS, LabelRow, iso_time

__all__ = ["HistoryQuery", "read_history"]

#: ``strategy`` the worker stores for a label of an item no selection asked for (yet).
UNREQUESTED = "unrequested"
#: What a strategy needs from the head: without it, no head chose the item.
_HEAD_INPUTS = {"probs", "mc_probs"}


@dataclass(frozen=True)
class HistoryQuery:
    """A checked ``history`` request (see :class:`~alaas_lab.protocol.messages.HistoryContent`)."""

    since: int = 0
    digest: str = ""
    include: tuple[str, ...] = HISTORY_SECTIONS
    limit: int | None = None
    current: bool = False
    include_eval: bool = False
    labeler: str | None = None
    round: int | None = None

    @classmethod
    def from_content(cls, content: dict[str, Any]) -> HistoryQuery:
        """Check a request's content; raise :class:`InputError` naming the bad field."""
        since, digest = _parse_cursor(content.get("since", 0))
        include = content.get("include")
        include = HISTORY_SECTIONS if include is None else tuple(include)
        unknown = sorted(set(include) - set(HISTORY_SECTIONS))
        if unknown:
            raise InputError(f"history include= names unknown section(s) {unknown}; choose "
                             f"from {list(HISTORY_SECTIONS)}.")
        limit, rnd = content.get("limit"), content.get("round")
        for name, value, least in (("limit", limit, 1), ("round", rnd, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < least):
                raise InputError(f"history {name}= must be an int >= {least} or None; got "
                                 f"{value!r}.")
        return cls(since, digest, include, limit, bool(content.get("current")),
                   bool(content.get("include_eval")), content.get("labeler"), rnd)


def _parse_cursor(since: Any) -> tuple[int, str]:
    """``(row, digest)`` of a cursor: an int row, or a reply's ``"<row>.<digest>"``."""
    if isinstance(since, int) and not isinstance(since, bool) and since >= 0:
        return since, ""
    if isinstance(since, str):
        row, _, digest = since.partition(".")
        if row.isdigit():
            return int(row), digest
    raise InputError(f"history since= must be 0, a label row id or a reply's cursor; got "
                     f"{since!r}.")


def read_history(journal: Journal, query: HistoryQuery) -> dict[str, Any]:
    """The ``history_reply`` content for ``query``: sections, ``cursor`` and ``more``.

    Parameters
    ----------
    journal : Journal
        The worker's journal (read only; WAL readers never block its writer).
    query : HistoryQuery

    Returns
    -------
    reply : dict
        JSON-ready: times are ISO 8601 strings in UTC, scores floats or None.
    """
    reply: dict[str, Any] = {}
    row, more = query.since, False
    if "labels" in query.include:
        reply["labels"], row, more = _labels(journal, query)
    state = {name: _STATE[name](journal, query) for name in query.include if name != "labels"}
    digest = _digest(state) if state else ""
    if digest != query.digest:
        reply.update(state)
    reply["cursor"] = f"{row}.{digest}" if digest else str(row)
    reply["more"] = more
    return reply


def _digest(state: dict[str, Any]) -> str:
    text = json.dumps(state, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


# ---------------------------------------------------------------- labels
def _labels(journal: Journal, q: HistoryQuery) -> tuple[list[LabelRow], int, bool]:
    """Label rows after ``q.since``, the row to resume after, and whether more remain."""
    rows = journal.label_history(since=q.since)
    last = rows[-1].row_id if rows else q.since
    if q.current:
        rows = _standing(rows)
    if rows and not q.include_eval:
        evals = {int(i) for e in journal.events("eval_items") for i in e.payload["item_ids"]}
        rows = [r for r in rows if r.item_id not in evals]
    if q.labeler is not None:
        rows = [r for r in rows if r.labeler == q.labeler]
    more = q.limit is not None and len(rows) > q.limit
    if more:
        rows = rows[: q.limit]
        last = rows[-1].row_id
    if not rows:
        return [], last, more
    uris = journal.uris()
    asked = {s.item_id: (s.round, s.strategy) for s in journal.selections()}  # the latest
    heads = _heads(journal.rounds())
    chosen_by = {(e.payload["round"], e.payload["strategy"]):  # journaled at selection
                 (e.payload["model_round"], e.payload["model_n_labeled"])
                 for e in journal.events("selection_model")}
    out = []
    for r in rows:
        rnd, strategy = r.round, r.strategy
        if r.item_id in asked and strategy in (None, UNREQUESTED):
            rnd, strategy = asked[r.item_id]
        model = chosen_by.get((rnd, strategy)) or _model(heads, rnd, strategy)
        out.append(LabelRow(item_id=r.item_id, uri=uris[r.item_id] if r.item_id < len(uris)
                            else "", label=r.label, labeler=r.labeler, time=iso_time(r.time),
                            round=rnd, strategy=strategy, row_id=r.row_id,
                            model_round=model[0], model_n_labeled=model[1]))
    return out, last, more


def _standing(rows: Sequence[LabelRecord]) -> list[LabelRecord]:
    """Each item's latest row, unless it is a retraction; oldest first."""
    latest = {r.item_id: r for r in rows}
    return sorted((r for r in latest.values() if r.label is not None), key=lambda r: r.row_id)


def _heads(rounds: Iterable[RoundRecord]) -> dict[str | None, list[tuple[int, int]]]:
    """``(round, n_labeled)`` recorded per strategy, and under ``None`` for any strategy."""
    heads: dict[str | None, list[tuple[int, int]]] = {None: []}
    for r in rounds:  # ordered by round
        heads.setdefault(r.strategy, []).append((r.round, r.n_labeled))
        heads[None].append((r.round, r.n_labeled))
    return heads


def _model(heads: dict[str | None, list[tuple[int, int]]], rnd: int | None,
           strategy: str | None) -> tuple[int | None, int | None]:
    """The head that picked an item of ``(rnd, strategy)``: the last round recorded before.

    PSHEA keeps one head per strategy (its own rows); one strategy keeps one head,
    whose rounds may carry the seed round's name: then any strategy's row counts.
    """
    if rnd is None or strategy in (None, UNREQUESTED):
        return None, None
    try:
        if not strategies.requirements(strategy) & _HEAD_INPUTS:
            return None, None  # random or embeddings only: no head chose it
    except Exception:  # a name the zoo does not know (the PSHEA seed, a plugin gone)
        return None, None
    for key in (strategy, None):
        before = [h for h in heads.get(key, []) if h[0] < rnd]
        if before:
            return before[-1]
    return None, None


# ---------------------------------------------------------------- state sections
def _rounds(journal: Journal, q: HistoryQuery) -> list[dict[str, Any]]:
    return [{"round": r.round, "strategy": r.strategy, "n_labeled": r.n_labeled,
             "top1": r.top1, "top5": r.top5, "time": iso_time(r.time)} for r in journal.rounds()]


def _forecasts(journal: Journal, q: HistoryQuery) -> list[dict[str, Any]]:
    return [{"round": f.round, "strategy": f.strategy, "predicted": f.predicted}
            for f in journal.forecasts() if f.predicted is not None]


def _eliminations(journal: Journal, q: HistoryQuery) -> list[dict[str, Any]]:
    forecasts = journal.forecasts()
    # PSHEA marks the row of the round a strategy left; the forecast that removed it
    # is the one made then for the next round, on the (round + 1) row
    predicted = {(f.round, f.strategy): f.predicted for f in forecasts}
    return [{"round": f.round, "strategy": f.strategy,
             "predicted": predicted.get((f.round + 1, f.strategy), f.predicted),
             "reason": f.reason or ""} for f in forecasts if f.eliminated]


def _quarantine(journal: Journal, q: HistoryQuery) -> list[dict[str, Any]]:
    return [split_reason(it.item_id, it.uri, it.reason or "") for it in journal.items()
            if it.status == "quarantined"]


def split_reason(item_id: int, uri: str, reason: str) -> dict[str, Any]:
    """``item_id``, ``uri``, ``stage``, ``reason`` from the journal's ``"stage: reason"``."""
    stage, sep, rest = reason.partition(": ")
    if not sep or " " in stage:
        stage, rest = "", reason
    return {"item_id": int(item_id), "uri": uri, "stage": stage, "reason": rest}


def _pending(journal: Journal, q: HistoryQuery) -> list[dict[str, Any]]:
    """Selected items with no standing label, in round and rank order.

    What a labeler answers before it asks for a new selection: the worker completes
    a round only when all of its selection is labeled.
    """
    return _per_item(journal.pending_selections(), per_round=False)


def _selections(journal: Journal, q: HistoryQuery) -> list[dict[str, Any]]:
    return _per_item(journal.selections(round=q.round), per_round=True)


def _per_item(rows: Iterable[SelectionRecord], *, per_round: bool) -> list[dict[str, Any]]:
    """One row per item (and round, if ``per_round``: else its first round's).

    The strategies that picked it in that round are joined by ``", "``.
    """
    out: dict[Any, dict[str, Any]] = {}
    for s in rows:  # ordered by round, strategy, rank
        key = (s.item_id, s.round) if per_round else s.item_id
        row = out.setdefault(key, {"item_id": s.item_id, "round": s.round,
                                   "strategy": s.strategy})
        if s.round == row["round"] and s.strategy not in row["strategy"].split(", "):
            row["strategy"] += f", {s.strategy}"
    return list(out.values())


_STATE = {"rounds": _rounds, "forecasts": _forecasts, "eliminations": _eliminations,
          "quarantine": _quarantine, "pending": _pending, "selections": _selections}
