"""What the pool map shows per point, and the queue a lasso selection makes.

:func:`map_content` builds a ``pool_map_reply``: the newest projection's
coordinates plus, per point, the head's predicted class, its uncertainty
(``1 - max p``), the item's state and the strategy that picked it, all as binary
arrays (never JSON lists). :func:`queue_first` puts items that a person chose on
the map at the front of the labelers' queue.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BudgetError, InputError
from .projection import PoolProjection

if TYPE_CHECKING:  # pragma: no cover
    from .state import PoolSession

__all__ = ["MAP_STRATEGY", "STATES", "map_content", "queue_first"]

#: ``point_state`` codes: index into this tuple.
STATES = ("unlabeled", "queued", "labeled", "evaluation")
#: The strategy name of items a person queued from the map.
MAP_STRATEGY = "map"
_CHUNK = 20_000


def map_content(session: PoolSession, proj: PoolProjection | None, *,
                suspects: np.ndarray | None = None, with_coords: bool = True,
                cache: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``pool_map_reply`` for ``proj`` (fields only when ``with_coords`` is False).

    ``cache``: a dict kept between calls; the head's predictions are computed once
    per map and head (widgets poll the fields every few seconds).
    """
    s = session
    out: dict[str, Any] = {"classes": list(s.classes), "states": list(STATES)}
    if proj is None:
        return out | {"version": 0, "n": 0}
    ids = proj.item_ids
    with s.lock:
        codes = s.codes[ids].copy()
        is_eval = s.is_eval[ids].copy()
        pending = dict(s.pending)
        head = s.head
        cache = {} if cache is None else cache
        hit = cache.get("entry")  # (head, map version, predicted, uncertainty), set at once
        if hit is not None and (hit[0] is not head or hit[1] != proj.version):
            hit = None
        rows = None if hit is not None else s.emb.matrix[ids]  # fancy indexing: a copy
    state = np.zeros(ids.size, dtype=np.uint8)
    state[[k for k, i in enumerate(ids.tolist()) if i in pending]] = 1
    state[codes >= 0] = 2
    state[is_eval] = 3
    picked: dict[int, str] = {}
    for sel in s.journal.selections():
        picked.setdefault(sel.item_id, sel.strategy)
    picked.update({i: st for i, (_, st) in pending.items()})
    names = [""] + sorted({st for st in picked.values() if st})
    index = {name: k for k, name in enumerate(names)}
    strategy = np.array([index.get(picked.get(i, ""), 0) for i in ids.tolist()],
                        dtype=np.uint8)
    predicted = np.full(ids.size, -1, dtype=np.int16)
    uncertainty = np.full(ids.size, np.nan, dtype=np.float32)
    if hit is not None:
        predicted, uncertainty = hit[2], hit[3]
    elif head.is_fitted and ids.size:
        for a in range(0, ids.size, _CHUNK):
            p = head.predict_proba(rows[a:a + _CHUNK])
            predicted[a:a + _CHUNK] = p.argmax(axis=1)
            uncertainty[a:a + _CHUNK] = 1.0 - p.max(axis=1)
        cache["entry"] = (head, proj.version, predicted, uncertainty)
    out |= {"version": proj.version, "n": int(ids.size), "method": proj.method,
            "seconds": proj.seconds, "predicted": predicted, "uncertainty": uncertainty,
            "point_state": state, "strategy": strategy, "strategies": names,
            "label": codes.astype(np.int16),
            "suspect": (suspects[ids] if suspects is not None
                        else np.zeros(ids.size, dtype=np.uint8))}
    if with_coords:
        out |= {"item_ids": ids.astype(np.int32), "xy": np.ascontiguousarray(proj.xy)}
    return out


def queue_first(session: PoolSession, item_ids: Any, *, labeler: str | None = None,
                ttl: float = 600.0) -> dict[str, Any]:
    """Queue ``item_ids`` (a selection on the map) ahead of everything else.

    Unlabeled pool items are queued (strategy :data:`MAP_STRATEGY`, the current
    round) and moved to the front of the queue, so the next ``next_items`` of any
    labeler returns them first; with ``labeler`` they are leased to that labeler
    at once. Labeled, evaluation, quarantined or not embedded items, and items
    another labeler holds, are skipped and counted.

    Returns
    -------
    dict
        ``item_ids`` (ndarray of the items queued, in the order given) and
        ``skipped`` (``{reason: count}``).
    """
    s = session
    ids = np.asarray(item_ids).reshape(-1)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"queue_items takes integer item ids; got dtype {ids.dtype}.")
    ids = list(dict.fromkeys(int(i) for i in ids.tolist()))
    skipped: dict[str, int] = {}
    now = time.monotonic()
    with s.lock:
        bad = [i for i in ids if not 0 <= i < s.n_items]
        if bad:
            raise InputError(f"item {bad[0]} is not in the pool (items 0..{s.n_items - 1}); "
                             "queue ids from the pool map.", reason="unknown_item")
        chosen = []
        for i in ids:
            held = s.leases.get(i)
            why = ("labeled" if s.codes[i] >= 0 else "evaluation" if s.is_eval[i]
                   else "quarantined" if s.quarantined[i] else "not_embedded"
                   if not s.emb.filled[i] else "left_out" if i in s.left_out
                   else "held" if held and held[0] != labeler and held[1] > now else None)
            if why:
                skipped[why] = skipped.get(why, 0) + 1
            else:
                chosen.append(i)
        new = [i for i in chosen if i not in s.pending]
        left = s.budget_left()
        if left is not None and len(new) > left:
            raise BudgetError(
                f"the selection holds {len(new)} items to queue but the session's budget has "
                f"{left} labels left (budget.total={s.config.budget.total}); select at most "
                f"{left} or raise budget.total in the config.")
        rnd = max(s.round, 1)
        first = {i: s.pending.get(i, (rnd, MAP_STRATEGY)) for i in chosen}
        rest = {i: v for i, v in s.pending.items() if i not in first}
        s.pending.clear()
        s.pending.update(first | rest)
        s.ever_queued.update(chosen)
        if labeler:
            for i in chosen:
                s.leases[i] = (labeler, now + ttl)
    if chosen:
        s.journal.record_event("map_queue", {"item_ids": chosen, "labeler": labeler})
    return {"item_ids": np.asarray(chosen, dtype=np.int64), "skipped": skipped}

