"""Suspect labels: human answers that the data itself contradicts (confident learning).

:func:`out_of_fold_proba` fits the session's kind of head (a linear softmax over
cached embeddings, :class:`~alaas_lab.models.LastLayerHead`) on k-1 folds of the
labels and predicts the k-th, so no label is judged by a model that saw it.
:func:`find_suspects` then applies confident learning (Northcutt et al., 2021):
class ``j``'s threshold ``t_j`` is the mean out-of-fold probability of ``j``
over the items labeled ``j``; an item is *confidently* of class ``j`` when
``p_j >= t_j`` (the largest such ``j``), and it is a suspect when that class is
not its label. Suspects are ranked by their self-confidence ``p[label]``, lowest
first, so a review budget takes the most likely mistakes.

:class:`SuspectReview` runs this for a worker after each round, on its own
thread, and journals each review: a confirmed label, or a correction (the new
label, who and when).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..models import LastLayerHead
from .background_job import BackgroundJob

if TYPE_CHECKING:  # pragma: no cover
    from .state import PoolSession

__all__ = ["MIN_LABELS", "SuspectReview", "find_suspects", "out_of_fold_proba",
           "standing_reviews"]

logger = logging.getLogger(__name__)

#: Fewer human labels than this are not scored (the folds would be too thin).
MIN_LABELS = 20


def _folds(y: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A fold index per item, each class spread evenly over the folds."""
    fold = np.empty(y.shape[0], dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        fold[members] = (np.arange(members.size) + offset) % k
        offset += members.size  # small classes do not all start in fold 0
    return fold


def out_of_fold_proba(X: Any, y: Any, n_classes: int, *, folds: int = 5, seed: int = 0,
                      make_head: Callable[[], LastLayerHead] | None = None,
                      standardize_on: Any = None) -> np.ndarray:
    """Predicted class probabilities of each labeled item by heads that did not see it.

    Parameters
    ----------
    X : array-like of shape (n_labels, d)
        Embeddings of the labeled items.
    y : array-like of int, shape (n_labels,)
        Their labels, ``0 .. n_classes - 1``.
    n_classes : int
    folds : int, default 5
        Stratified folds (fewer when there are fewer labels).
    seed : int, default 0
    make_head : callable, optional
        A fresh head per fold (default: ``LastLayerHead(n_classes, solver="newton-cg")``,
        the fastest solver for many fits, to the same optimum as L-BFGS).
    standardize_on : array-like of shape (m, d), optional
        Rows the features are centred and scaled on, as the worker's head does (the
        whole embedded pool); default: each fold's training rows. Scaling on a fold's
        few labels saturates the probabilities of raw-pixel features.

    Returns
    -------
    proba : ndarray of shape (n_labels, n_classes)
    """
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise InputError(f"out_of_fold_proba needs X (n, d) and y (n,); got {X.shape} and "
                         f"{y.shape}.")
    k = max(2, min(folds, X.shape[0]))
    fold = _folds(y, k, np.random.default_rng(seed))
    proba = np.zeros((X.shape[0], n_classes), dtype=np.float64)
    classes = np.arange(n_classes)
    for f in range(k):
        test = fold == f
        if not test.any():
            continue
        head = (make_head or (lambda: LastLayerHead(n_classes, solver="newton-cg", seed=seed,
                                                    warm_start=False)))()
        head.fit(X[~test], y[~test], classes=classes, standardize_on=standardize_on)
        proba[test] = head.predict_proba(X[test])
    return proba


def find_suspects(proba: Any, y: Any) -> dict[str, np.ndarray]:
    """Confident learning over out-of-fold probabilities.

    Parameters
    ----------
    proba : array-like of shape (n_labels, n_classes)
    y : array-like of int, shape (n_labels,)

    Returns
    -------
    dict
        ``order``: indices of the suspects, most likely mistake first; ``suggested``:
        the class each of them confidently belongs to; ``self_confidence``:
        ``proba[i, y[i]]`` of each; ``thresholds``: ``t_j`` per class (inf for a class
        with no label).
    """
    P = np.asarray(proba, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    n, C = P.shape
    thresholds = np.full(C, np.inf)
    for c in range(C):
        members = y == c
        if members.any():
            thresholds[c] = P[members, c].mean()
    confident = P >= thresholds[None, :] - 1e-12
    masked = np.where(confident, P, -1.0)
    best = masked.argmax(axis=1)
    has = confident.any(axis=1)
    self_conf = P[np.arange(n), y]
    flagged = np.flatnonzero(has & (best != y))
    order = flagged[np.argsort(self_conf[flagged], kind="stable")]
    return {"order": order, "suggested": best[order], "self_confidence": self_conf[order],
            "thresholds": thresholds}


def standing_reviews(reviews: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The reviews that stand, oldest first: an ``undo`` review (``source == "undo"``)
    takes back the newest standing review of its item, and neither of them counts."""
    standing: list[dict[str, Any]] = []
    for r in reviews:
        if r.get("source") != "undo":
            standing.append(r)
            continue
        for k in range(len(standing) - 1, -1, -1):
            if standing[k]["item_id"] == r["item_id"]:
                del standing[k]
                break
    return standing


class SuspectReview:
    """A worker's suspect labels: scored after each round, reviewed by people.

    Parameters
    ----------
    session : PoolSession
    on_ready : callable(summary), optional
        Called (on the scoring thread) when a new list is ready: the worker
        publishes ``suspects_ready``.
    """

    def __init__(self, session: PoolSession, *,
                 on_ready: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.session = session
        self._on_ready = on_ready or (lambda summary: None)
        self._lock = threading.Lock()
        self._job = BackgroundJob(self._run, name="worker-suspects")
        #: the newest scoring: item -> (label code when scored, suggested, self-confidence)
        self._found: dict[int, tuple[int, int, float]] = {}
        self._order: list[int] = []
        #: reviewed suspects, kept so that an undone review puts them back
        self._taken: dict[int, tuple[int, int, float]] = {}
        self.scored_at: dict[str, Any] = {}
        self.error: str | None = None

    # ------------------------------------------------------------ scoring
    def refresh(self) -> None:
        """Score the labels again on the suspects thread (once more if one is running)."""
        self._job.request()

    def wait(self, timeout: float | None = None) -> None:
        """Block until the scoring in progress (and one asked for meanwhile) is done."""
        self._job.wait(timeout)

    @property
    def computing(self) -> bool:
        return self._job.running

    def _run(self) -> None:
        from threadpoolctl import threadpool_limits

        try:
            with threadpool_limits(1):
                self._score()
        except Exception as exc:
            logger.exception("scoring suspect labels failed")
            self.error = f"{type(exc).__name__}: {exc}"

    def _score(self) -> None:
        s = self.session
        t0 = time.perf_counter()
        with s.lock:
            mask = s.labeled & ~s.is_eval & s.emb.filled & ~s.quarantined
            ids = np.flatnonzero(mask)
            X, y = s.emb.matrix[ids], s.codes[ids].copy()
            pool = s.emb.matrix[s.emb.filled]  # the head's scaling: the whole embedded pool
            rnd = s.head_round
        n_classes = len(s.classes)
        found: dict[int, tuple[int, int, float]] = {}
        order: list[int] = []
        if ids.size >= MIN_LABELS and np.unique(y).size >= 2:
            proba = out_of_fold_proba(X, y, n_classes, seed=s.config.seed, standardize_on=pool)
            result = find_suspects(proba, y)
            confirmed = self._confirmed()
            for k, sug, conf in zip(result["order"], result["suggested"],
                                    result["self_confidence"], strict=True):
                item = int(ids[k])
                if confirmed.get(item) == int(y[k]):
                    continue  # a person kept this label after a review: not asked again
                found[item] = (int(y[k]), int(sug), float(conf))
                order.append(item)
        with self._lock:
            self._found, self._order, self._taken = found, order, {}
            self.scored_at = {"round": rnd, "n_scored": int(ids.size), "time": time.time(),
                              "seconds": round(time.perf_counter() - t0, 3)}
            self.error = None
        self._on_ready(self.summary())

    def _confirmed(self) -> dict[int, int]:
        """item -> the label code a reviewer confirmed last (newest review wins)."""
        s = self.session
        out: dict[int, int] = {}
        for r in standing_reviews(s.journal.reviews()):
            if r["after"] in s.classes:
                out[r["item_id"]] = s.classes.index(r["after"])
        return out

    # ------------------------------------------------------------ reading
    def open_items(self) -> list[int]:
        """Suspects not reviewed since they were scored, most likely mistake first."""
        s = self.session
        with self._lock:
            found, order = self._found, list(self._order)
        with s.lock:
            return [i for i in order if int(s.codes[i]) == found[i][0]]

    def rows(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The open suspects as rows: ``item_id``, ``uri``, ``label``, ``suggested``,
        ``self_confidence``, ``rank`` (1 = most likely a mistake)."""
        s = self.session
        with self._lock:
            found = self._found
        items = self.open_items()
        if limit is not None:
            items = items[:limit]
        return [{"item_id": i, "uri": s.uris[i], "label": s.classes[found[i][0]],
                 "suggested": s.classes[found[i][1]],
                 "self_confidence": round(found[i][2], 4), "rank": k + 1}
                for k, i in enumerate(items)]

    def flags(self, n_items: int) -> np.ndarray:
        """``(n_items,)`` uint8: 1 for an open suspect."""
        out = np.zeros(n_items, dtype=np.uint8)
        items = [i for i in self.open_items() if i < n_items]
        out[items] = 1
        return out

    def summary(self) -> dict[str, Any]:
        """For ``status``: open suspects, reviews so far, and when the labels were scored."""
        counts = {"confirmed": 0, "corrected": 0}
        for r in standing_reviews(self.session.journal.reviews()):
            counts[r["kind"]] += 1
        return {"open": len(self.open_items()), **counts, **self.scored_at,
                "computing": self.computing, **({"error": self.error} if self.error else {})}

    # ------------------------------------------------------------ reviewing
    def review(self, item_id: Any, label: Any, *, labeler: str | None = None,
               undo: bool = False) -> dict[str, Any]:
        """A person's answer on a labeled item: the same label confirms it, another corrects it.

        Both are journaled as a review (item, before, after, who, when); a correction
        is also a new label row, which the head trains on from the next fit. With
        ``undo``, the item's newest standing review is taken back instead (see
        :meth:`undo`).

        Returns
        -------
        dict
            ``item_id``, ``kind`` (``confirmed`` or ``corrected``), ``before``,
            ``after``, ``row_id`` (the new label row of a correction, else None) and
            ``round_complete`` (for the worker: always None).
        """
        if undo:
            return self.undo(item_id, label, labeler=labeler)
        s = self.session
        with s.lock:
            item = s._check_item(item_id)
            code = s.class_code(label, f"item {item}")
            before = int(s.codes[item])
            if before < 0 or s.is_eval[item]:
                what = "an evaluation item" if s.is_eval[item] else "not labeled yet"
                raise InputError(
                    f"item {item} ({s.uris[item]}) is {what}; relabel changes a human label "
                    "of the pool: label new items through the labeler.", reason="not_queued")
            s.ever_queued.add(item)  # labeled once: a correction is always accepted
            row = None
            if code != before:
                row = s.label(item, s.classes[code], labeler=labeler)["row_id"]
            kind = "corrected" if code != before else "confirmed"
            s.journal.record_review(item, before=s.classes[before], after=s.classes[code],
                                    labeler=labeler, source="suspects")
        with self._lock:
            if item in self._found:
                self._taken[item] = self._found[item]
                self._found = {k: v for k, v in self._found.items() if k != item}
                self._order = [i for i in self._order if i != item]
        return {"item_id": item, "kind": kind, "before": s.classes[before],
                "after": s.classes[code], "row_id": row, "round_complete": None}

    def undo(self, item_id: Any, label: Any, *, labeler: str | None = None
             ) -> dict[str, Any]:
        """Take back the newest standing review of an item (a reviewer's Undo).

        The label from before that review comes back (a correction's undo writes it
        as a new label row), a ``label_review`` with ``source="undo"`` is journaled,
        the counts drop the review again, and an item that was an open suspect is
        one again.

        Parameters
        ----------
        item_id : int
        label : int or str
            The label the review found (its ``before``); another value is refused.

        Returns
        -------
        dict
            As :meth:`review`, ``kind="undone"``: ``before`` (the label now taken
            back) and ``after`` (the label restored).
        """
        s = self.session
        with s.lock:
            item = s._check_item(item_id)
            standing = [r for r in standing_reviews(s.journal.reviews()) if r["item_id"] == item]
            if not standing:
                raise InputError(f"item {item} ({s.uris[item]}) has no review to take back; "
                                 "undo only follows a relabel.", reason="not_queued")
            last = standing[-1]
            restore = s.classes[s.class_code(label, f"item {item}")]
            if restore != last["before"]:
                raise InputError(f"item {item}'s last review found {last['before']!r}, not "
                                 f"{restore!r}; undo restores the label from before it: send "
                                 f"{last['before']!r}.")
            now = s.classes[int(s.codes[item])]
            row = None if now == restore else s.label(item, restore, labeler=labeler)["row_id"]
            s.journal.record_review(item, before=now, after=restore, labeler=labeler,
                                    source="undo")
        with self._lock:
            entry = self._taken.pop(item, None)
            if entry is not None:  # an open suspect again, in its place by self-confidence
                self._found = {**self._found, item: entry}
                rest = [i for i in self._order if self._found[i][2] <= entry[2]]
                at = len(rest)
                self._order = self._order[:at] + [item] + self._order[at:]
        return {"item_id": item, "kind": "undone", "before": now, "after": restore,
                "row_id": row, "round_complete": None}

    def close(self) -> None:
        self._job.close()
