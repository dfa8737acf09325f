"""The worker's state, without any socket: pool, embeddings, labels, head, rounds.

:class:`PoolSession` is what the ZeroMQ loop drives; tests drive it directly.
Everything durable goes to the :class:`~alaas_lab.journal.Journal` first (a label
is committed before it is acknowledged) and everything expensive to recompute
(embeddings) to the :class:`~alaas_lab.cache.EmbeddingCache`, so a worker that
is killed and started again on the same session directory resumes where it was.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import strategies
from .._failpoints import failpoint
from ..cache import EmbeddingCache, content_identity
from ..config import Config
from ..errors import BudgetError, CacheError, InputError, ModelError
from ..journal import Journal
from ..models import LastLayerHead
from .auto import AutoPilot
from .items import RawStore
from .rounds import RoundPolicy, SingleStrategyRounds, check_budget

__all__ = ["BudgetError", "Embeddings", "PoolSession"]

logger = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, Any]], None]
EVAL_LABELER = "evaluation-set"


class Embeddings:
    """A growable ``[n, d]`` float32 matrix with a mask of the rows that are filled."""

    def __init__(self) -> None:
        self._x: np.ndarray | None = None
        self._filled = np.zeros(0, dtype=bool)
        self.n = 0

    def resize(self, n: int) -> None:
        if n <= self._filled.shape[0]:
            self.n = max(self.n, n)
            return
        cap = max(n, 2 * self._filled.shape[0], 1024)
        filled = np.zeros(cap, dtype=bool)
        filled[: self._filled.shape[0]] = self._filled
        self._filled = filled
        if self._x is not None:
            x = np.zeros((cap, self._x.shape[1]), dtype=np.float32)
            x[: self._x.shape[0]] = self._x
            self._x = x
        self.n = n

    def put(self, ids: np.ndarray, rows: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return
        self.resize(int(ids.max()) + 1)
        if self._x is None:
            self._x = np.zeros((self._filled.shape[0], rows.shape[1]), dtype=np.float32)
        if rows.shape[1] != self._x.shape[1]:
            raise ModelError(
                f"embedding width changed from {self._x.shape[1]} to {rows.shape[1]}; "
                "a session keeps one backbone — start a new session for another model.")
        self._x[ids] = rows
        self._filled[ids] = True

    @property
    def width(self) -> int | None:
        """``d``, once a row was stored."""
        return None if self._x is None else int(self._x.shape[1])

    @property
    def matrix(self) -> np.ndarray:
        """``[n, d]`` view (zeros where not filled)."""
        if self._x is None:
            return np.zeros((self.n, 0), dtype=np.float32)
        return self._x[: self.n]

    @property
    def filled(self) -> np.ndarray:
        return self._filled[: self.n]


class PoolSession:
    """Pool, labels, head and rounds of one active-learning session.

    Parameters
    ----------
    config : Config
    session_dir : path
        Holds ``session.sqlite`` (the journal).
    backbone : Backbone, optional
        Defaults to the one named in the config, built on first use.
    emit : callable(msg_type, content), optional
        Receives events (``round_result``, ``quarantined``, ``progress``...).
    """

    def __init__(self, config: Config, session_dir: str | Path, *, backbone: Any = None,
                 emit: Emit | None = None) -> None:
        self.config = config
        self.dir = Path(session_dir).expanduser()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.dir / "session.sqlite")
        self.raw = RawStore(self.dir, self.journal)
        self.emit: Emit = emit or (lambda kind, content: None)
        self.lock = threading.RLock()
        self.classes = list(config.classes)
        self._backbone = backbone
        self._cache: EmbeddingCache | None = None
        self._cache_off = False
        self.emb = Embeddings()
        self.uris: list[str] = []
        self.quarantined = np.zeros(0, dtype=bool)
        self.is_eval = np.zeros(0, dtype=bool)
        self.codes = np.zeros(0, dtype=np.int64)  # class index per item, -1 unlabeled
        self.pending: dict[int, tuple[int, str]] = {}  # item -> (round, strategy)
        self.ever_queued: set[int] = set()  # labels are accepted for these items only
        self.leases: dict[int, tuple[str, float]] = {}  # item -> (labeler, expiry, monotonic)
        #: skipped twice: out of its round, never selected again (item -> (round, strategy))
        self.left_out: dict[int, tuple[int, str]] = {}
        self.round = 0
        self.strategy = config.active_learning.strategy.type
        self.head = self._new_head()
        self.head_round: int | None = None  # the last recorded round the head has seen
        self._pool_state: Any = None  # strategies' per-pool state (see pool_state)
        self._pool_state_key: tuple[int, int, int | None] | None = None
        self._head_n_labeled = 0
        self._fitted_at = -1  # label count at the last fit
        self._n_label_events = 0
        self._restore()
        #: how rounds are selected and closed, chosen once: one strategy or PSHEA
        self.policy: RoundPolicy = (AutoPilot(self) if self.strategy == "auto"
                                    else SingleStrategyRounds(self))

    # ------------------------------------------------------------ components
    @property
    def backbone(self) -> Any:
        if self._backbone is None:
            from ..models import backbone as make_backbone
            from ..models import config_kwargs

            model = self.config.active_learning.model
            # device auto resolves here; a missing one was refused when the worker started
            kwargs = config_kwargs(model, device=self.config.active_learning.device)
            self._backbone = make_backbone(model.name, **kwargs)
            logger.info("backbone: %s", self._backbone.describe().get("summary"))
        return self._backbone

    @property
    def cache(self) -> EmbeddingCache | None:
        """The embedding cache (opened on first use), or ``None`` once it failed.

        Its model key is the backbone's fingerprint (weights, preprocessing) plus
        how pushed files are decoded; the item keys name the input itself.
        """
        if self._cache is None and not self._cache_off:
            root = Path(self.config.cache_dir).expanduser()
            data = self.config.data
            fingerprint = f"{self.backbone.fingerprint};decode={data.kind}/{data.image_mode}"
            try:
                self._cache = EmbeddingCache(root, model_fingerprint=fingerprint)
            except CacheError as exc:
                self._cache_failed(exc)
        return self._cache

    def _cache_failed(self, exc: Exception) -> None:
        """Go on without the cache: a cache may make a push faster, never make it fail."""
        logger.warning("embedding cache unusable, running without it: %s", exc)
        self._cache_off = True
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def cache_get(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Cached embeddings of ``keys``, as wide as this session's (others are misses).

        Returns ``found`` (bool, ``(n,)``) and the found rows; every key is a miss
        without a usable cache.
        """
        cache = self.cache
        if cache is not None and keys:
            try:
                return cache.get_many(keys, dim=self.emb.width)
            except CacheError as exc:
                self._cache_failed(exc)
        return np.zeros(len(keys), dtype=bool), np.zeros((0, self.emb.width or 0), np.float32)

    def cache_put(self, keys: Sequence[str], rows: np.ndarray) -> None:
        """Store embeddings in the cache; a failure only turns the cache off."""
        cache = self.cache
        if cache is not None:
            try:
                cache.put_many(keys, rows)
            except CacheError as exc:
                self._cache_failed(exc)

    def _new_head(self) -> LastLayerHead:
        return LastLayerHead(self.classes or None, seed=self.config.seed)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
        self.journal.close()

    # ------------------------------------------------------------ restore
    def _restore(self) -> None:
        """Rebuild the in-memory state from the journal (and embeddings from the cache)."""
        items = self.journal.items()
        self.resumed = bool(items)  # a session was here before (hello tells the kernel)
        self._grow(len(items))
        self.uris = [it.uri for it in items]
        for it in items:
            self.quarantined[it.item_id] = it.status == "quarantined"
        for event in self.journal.events("eval_items"):
            self.is_eval[np.asarray(event.payload["item_ids"], dtype=np.int64)] = True
        for item_id, label in self.journal.labels().items():
            self.codes[item_id] = (self.class_code(label, f"item {item_id}") if label is not None
                                   else -1)
        for sel in self.journal.pending_selections():
            self.pending[sel.item_id] = (sel.round, sel.strategy)
        for event in self.journal.events("left_out"):
            item = int(event.payload["item_id"])
            if event.payload.get("undo"):
                if item in self.left_out:
                    self.pending[item] = self.left_out.pop(item)
            elif item in self.pending:
                self.left_out[item] = self.pending.pop(item)
        for item in self.left_out:
            self.pending.pop(item, None)
        selections = self.journal.selections()
        self.ever_queued = {s.item_id for s in selections}
        self.round = max((s.round for s in selections), default=0)
        self.head_round = max((r.round for r in self.journal.rounds()), default=None)
        keyed = [(it.item_id, it.content_key) for it in items if it.content_key]
        if keyed:
            found, rows = self.cache_get([k for _, k in keyed])
            ids = np.array([i for i, _ in keyed], dtype=np.int64)[found]
            self.emb.put(ids, rows)
        if items:
            logger.info("resumed session: %d items (%d embedded), %d labels, round %d",
                        len(items), int(self.emb.filled.sum()), int((self.codes >= 0).sum()),
                        self.round)

    def _grow(self, n: int) -> None:
        old = self.codes.shape[0]
        if n <= old:
            return
        self.codes = np.concatenate([self.codes, np.full(n - old, -1, dtype=np.int64)])
        self.quarantined = np.concatenate([self.quarantined, np.zeros(n - old, dtype=bool)])
        self.is_eval = np.concatenate([self.is_eval, np.zeros(n - old, dtype=bool)])
        self.emb.resize(n)

    # ------------------------------------------------------------ pool
    @property
    def n_items(self) -> int:
        return len(self.uris)

    def add_items(self, uris: Sequence[str], *, content_keys: Sequence[str | None] | None = None
                  ) -> np.ndarray:
        """Register items in the journal (idempotent); return their ids."""
        with self.lock:
            ids = np.asarray(self.journal.add_items(uris, content_keys=content_keys),
                             dtype=np.int64)
            n = int(ids.max()) + 1 if ids.size else 0
            if n > self.n_items:
                self.uris.extend([None] * (n - self.n_items))  # type: ignore[list-item]
                for i, uri in zip(ids.tolist(), uris, strict=True):
                    self.uris[i] = uri
                self._grow(n)
            return ids

    def store_embeddings(self, ids: np.ndarray, rows: np.ndarray) -> None:
        with self.lock:
            self.emb.put(ids, np.asarray(rows, dtype=np.float32))

    def mark_quarantined(self, item_id: int, uri: str, stage: str, reason: str) -> None:
        with self.lock:
            self.journal.quarantine(item_id, f"{stage}: {reason}")
            self.quarantined[item_id] = True
            self.pending.pop(item_id, None)
            self.leases.pop(item_id, None)
        self.emit("quarantined", {"item_id": int(item_id), "uri": uri, "reason": reason,
                                  "stage": stage})

    def mark_eval(self, ids: np.ndarray, labels: Sequence[Any]) -> None:
        """Make items an evaluation set with known labels (never selected, never trained on)."""
        with self.lock:
            codes = [self.class_code(lab, f"item {i}") for i, lab in zip(ids, labels, strict=True)]
            self.journal.record_labels(ids.tolist(), [self.classes[c] for c in codes],
                                       labeler=EVAL_LABELER)
            self.journal.record_event("eval_items", {"item_ids": ids.tolist()})
            self.is_eval[ids] = True
            self.codes[ids] = codes

    def array_keys(self, rows: np.ndarray) -> list[str]:
        """Content identities of pushed array rows (their bytes, dtype and shape)."""
        rows = np.ascontiguousarray(rows)
        tag = f"{rows.dtype.str}{rows.shape[1:]}".encode()
        return [content_identity(tag + r.tobytes()) for r in rows]

    # ------------------------------------------------------------ labels
    def class_code(self, label: Any, where: str) -> int:
        """The index of ``label`` among the configured classes (``3`` and ``"3"`` alike).

        ``where`` names the item or argument in the error for an unknown label.
        """
        if not self.classes:
            raise InputError(
                "the config lists no classes, so labels cannot be checked; add "
                "'classes: [...]' to the config.", reason="bad_config")
        if isinstance(label, (bool, np.bool_)) or not isinstance(
                label, (str, int, np.integer)):
            raise InputError(f"{where}: a label is a class name (str) or an int; got "
                             f"{type(label).__name__} {label!r}.", reason="bad_label")
        name = str(label.item() if isinstance(label, np.generic) else label)
        if name in self.classes:
            return self.classes.index(name)
        raise InputError(
            f"{where}: unknown label {label!r}; allowed labels are the config's "
            f"classes: {', '.join(map(str, self.classes))}.", reason="bad_label")

    def _check_item(self, item_id: Any) -> int:
        if isinstance(item_id, bool) or not isinstance(item_id, (int, np.integer)):
            raise InputError(f"item_id must be an int pool index; got {item_id!r}.")
        item_id = int(item_id)
        if not 0 <= item_id < self.n_items:
            raise InputError(
                f"item {item_id} is not in the pool (items 0..{self.n_items - 1}); "
                "push the item first or check the id.", reason="unknown_item")
        if self.quarantined[item_id]:
            raise InputError(f"item {item_id} ({self.uris[item_id]}) is quarantined and cannot "
                             "be labeled; see the quarantine reason in status().",
                             reason="quarantined_item")
        return item_id

    def _check_queued(self, item_id: int) -> None:
        if item_id not in self.ever_queued:
            raise InputError(
                f"item {item_id} ({self.uris[item_id]}) was never queued for labeling; labels "
                "are accepted for items a query returned (query first, or push labeled items "
                "with role='eval').", reason="not_queued")

    def label(self, item_id: Any, label: Any, *, labeler: str | None = None) -> dict[str, Any]:
        """Record one answer (``label=None`` retracts it). Committed before returning.

        Returns ``{"item_id", "row_id", "round_complete"}``; ``round_complete`` is
        the round whose selection is now fully labeled, or None.
        """
        return self.label_many([item_id], [label], labeler=labeler)[0]

    def label_many(self, item_ids: Sequence[Any], labels: Sequence[Any], *,
                   labeler: str | None = None) -> list[dict[str, Any]]:
        if len(item_ids) != len(labels):
            raise InputError(f"label_many needs one label per item: {len(item_ids)} item ids, "
                             f"{len(labels)} labels.")
        with self.lock:
            ids = [self._check_item(i) for i in item_ids]
            if len(set(ids)) != len(ids):
                raise InputError("label_many got the same item twice; give each item once.")
            codes = [-1 if lab is None else self.class_code(lab, f"item {i}")
                     for i, lab in zip(ids, labels, strict=True)]
            # stored as the configured class names: 3 and "3" are one class
            names = [None if c < 0 else self.classes[c] for c in codes]
            for i in ids:
                self._check_queued(i)
            rounds = [self.pending.get(i, (self.round, "unrequested")) for i in ids]
            # one transaction per (round, strategy): usually the whole batch
            rows_by_item: dict[int, int] = {}
            groups: dict[tuple[int, str], list[int]] = {}
            for k, provenance in enumerate(rounds):
                groups.setdefault(provenance, []).append(k)
            for (rnd, strat), ks in groups.items():
                written = self.journal.record_labels(
                    [ids[k] for k in ks], [names[k] for k in ks], labeler=labeler, round=rnd,
                    strategy=strat)
                rows_by_item.update(zip([ids[k] for k in ks], written, strict=True))
            rows = [rows_by_item[i] for i in ids]
            failpoint("label")
            results = []
            for i, code, row in zip(ids, codes, rows, strict=True):
                self.codes[i] = code
                if code >= 0:
                    self.pending.pop(i, None)
                    self.leases.pop(i, None)
                results.append({"item_id": i, "row_id": row, "round_complete": None})
            self._n_label_events += len(ids)
            # a round whose last item this answered (with async rounds, not only the newest)
            touched = {rnd for rnd, strat in rounds if strat != "unrequested"}
            for rnd in self.completed_rounds(touched):
                last = max(k for k, (r, _) in enumerate(rounds) if r == rnd)
                results[last]["round_complete"] = rnd
            return results

    def completed_rounds(self, among: set[int] | None = None) -> list[int]:
        """Rounds (of ``among``, default all) fully labeled but not recorded yet."""
        open_rounds = {r for r, _ in self.pending.values()}
        candidates = among if among is not None else {s.round for s in
                                                      self.journal.selections()}
        recorded = {r.round for r in self.journal.rounds()}
        # a round above self.round is only prepared (PSHEA's next), not journaled yet
        return sorted(r for r in candidates if 0 < r <= self.round and r not in open_rounds
                      and r not in recorded)

    @property
    def labeled(self) -> np.ndarray:
        return self.codes >= 0

    def train_mask(self) -> np.ndarray:
        """Labeled items the head trains on: not eval items, not held out."""
        mask = self.labeled & ~self.is_eval & self.emb.filled & ~self.quarantined
        if self.is_eval.any() or self.config.evaluation.holdout == 0:
            return mask
        return mask & ~self._holdout_mask()

    def eval_mask(self) -> np.ndarray:
        ok = self.labeled & self.emb.filled & ~self.quarantined
        if self.is_eval.any():
            return ok & self.is_eval
        return ok & self._holdout_mask()

    def _holdout_mask(self) -> np.ndarray:
        """A fixed pseudo-random share of items, the same after a restart."""
        n = self.n_items
        ids = np.arange(n, dtype=np.uint64)
        mixed = (ids * np.uint64(0x9E3779B97F4A7C15) + np.uint64(self.config.seed)) >> np.uint64(40)
        return (mixed % np.uint64(1000)) < np.uint64(round(1000 * self.config.evaluation.holdout))

    # ------------------------------------------------------------ rounds
    def budget_left(self) -> int | None:
        total = self.config.budget.total
        if not total:
            return None
        asked = int((self.labeled & ~self.is_eval).sum()) + len(
            [i for i in self.pending if not self.labeled[i]])
        return max(0, total - asked)

    def query(self, budget: int, *, strategy: str | None = None) -> dict[str, Any]:
        """Select ``budget`` items for the human (see the :attr:`policy`)."""
        return self.policy.query(check_budget(budget), strategy=strategy)

    def finish_round(self, round_: int | None = None) -> dict[str, Any]:
        """Fit, evaluate and record a round (see the :attr:`policy`)."""
        return self.policy.finish_round(round_)

    def unselectable(self) -> np.ndarray:
        """Items no query may pick: not embedded, quarantined, labeled, eval or queued."""
        blocked = ~self.emb.filled | self.quarantined | self.labeled | self.is_eval
        if self.pending:
            blocked[list(self.pending)] = True
        if self.left_out:
            blocked[list(self.left_out)] = True
        return blocked

    def leave_out(self, item_id: Any, *, labeler: str | None = None, undo: bool = False
                  ) -> int | None:
        """Take a queued item out of its round (a labeler skipped it twice), or back in.

        Journaled (``left_out`` events), so a new widget or a restarted worker keeps it
        out; it is never selected again. Returns the round this completes, if any.
        """
        with self.lock:
            item_id = self._check_item(item_id)
            if undo:
                if item_id not in self.left_out:
                    return None
                self.pending[item_id] = self.left_out.pop(item_id)
                self.journal.record_event("left_out", {"item_id": item_id, "undo": True,
                                                       "labeler": labeler})
                return None
            if item_id not in self.pending:
                raise InputError(f"item {item_id} is not queued; only a queued item can be "
                                 "left out of its round.", reason="not_queued")
            rnd, strategy = self.left_out[item_id] = self.pending.pop(item_id)
            self.leases.pop(item_id, None)
            self.journal.record_event("left_out", {"item_id": item_id, "round": rnd,
                                                   "strategy": strategy, "labeler": labeler})
            done = self.completed_rounds({rnd})
            return done[0] if done else None

    def begin_round(self, picks: dict[str, list[int]], *, round_: int | None = None,
                    model: tuple[int | None, int] | None = None) -> tuple[list[int], int]:
        """Journal a round's picks and queue them for the human.

        Parameters
        ----------
        picks : dict
            ``{strategy: [item_id, ...]}``, best first.
        round_ : int, optional
            The round (default: the next one).
        model : (round, n_labeled), optional
            The head that chose the picks (None for random or embedding-only picks).

        Returns
        -------
        queued : list of int
            The picks no one has labeled yet, each once, in order.
        round : int
        """
        with self.lock:
            rnd = self.round + 1 if round_ is None else round_
            for name, ids in picks.items():
                self.journal.record_selection(rnd, name, ids)
                if model is not None:
                    self.journal.record_event("selection_model", {
                        "round": rnd, "strategy": name, "model_round": model[0],
                        "model_n_labeled": model[1]})
            self.round = max(self.round, rnd)
            queued: list[int] = []
            for name, ids in picks.items():
                self.ever_queued.update(ids)
                for i in ids:
                    if not self.labeled[i] and i not in queued:
                        queued.append(i)
                        self.pending.setdefault(i, (rnd, name))
            return queued, rnd

    def lease(self, n: int, labeler: str, ttl: float) -> list[int]:
        """Hand up to ``n`` queued items to ``labeler``, kept from the others for ``ttl`` s.

        The labeler's own unexpired leases come first (a re-run widget gets its items
        back), then queued items that no one holds, oldest selection first.
        """
        now = time.monotonic()
        with self.lock:
            mine = [i for i in self.pending if self.leases.get(i, ("", 0))[0] == labeler
                    and self.leases[i][1] > now]
            free = [i for i in self.pending if i not in mine
                    and (i not in self.leases or self.leases[i][1] <= now)]
            items = (mine + free)[:n]
            for i in items:
                self.leases[i] = (labeler, now + ttl)
            return items

    def n_free(self) -> int:
        """Queued items that no labeler holds (selected ahead, not shown yet)."""
        now = time.monotonic()
        with self.lock:
            return sum(1 for i in self.pending
                       if i not in self.leases or self.leases[i][1] <= now)

    def advice(self, item_id: int) -> dict[str, Any]:
        """For the labeler: the newest head's guess and the model that chose the item.

        ``suggestion``: ``{"label", "confidence"}`` (absent before the first fit);
        ``model``: ``{"round", "n_labeled", "top1", "strategy"}`` of the head that
        selected the item (absent for random or embedding-only picks).
        """
        out: dict[str, Any] = {}
        head = self.head
        if head.is_fitted and self.emb.filled[item_id]:
            probs = head.predict_proba(self.emb.matrix[item_id:item_id + 1])[0]
            best = int(np.argmax(probs))
            out["suggestion"] = {"label": self.classes[best],
                                 "confidence": round(float(probs[best]), 4)}
        with self.lock:
            asked = self.pending.get(item_id)
        if asked is not None:
            rnd, strategy = asked
            chosen = {(e.payload["round"], e.payload["strategy"]): e.payload
                      for e in self.journal.events("selection_model")}.get((rnd, strategy))
            if chosen is not None and chosen["model_round"] is not None:
                top1 = next((r.top1 for r in self.journal.rounds()
                             if r.round == chosen["model_round"]), None)
                out["model"] = {"round": chosen["model_round"],
                                "n_labeled": chosen["model_n_labeled"], "top1": top1,
                                "strategy": strategy}
        return out

    def queue_ahead(self, ids: Sequence[int], round_: int, strategy: str) -> None:
        """Queue picks prepared for a round not journaled yet (PSHEA's next round)."""
        with self.lock:
            self.ever_queued.update(ids)
            for i in ids:
                if not self.labeled[i]:
                    self.pending.setdefault(i, (round_, strategy))

    def withdraw(self, ids: Sequence[int]) -> list[int]:
        """Take queued items back unless a labeler holds them; return those withdrawn."""
        now = time.monotonic()
        with self.lock:
            out = [i for i in ids if i in self.pending and not self.labeled[i]
                   and (i not in self.leases or self.leases[i][1] <= now)]
            for i in out:
                self.pending.pop(i, None)
                self.leases.pop(i, None)
                self.ever_queued.discard(i)
            return out

    def pool_state(self) -> Any:
        """What the strategies keep about this pool between rounds (k-center distances,
        clusterings...), rebuilt when the pool or its embeddings change."""
        key = (self.n_items, int(self.emb.filled.sum()), self.emb.width)
        if self._pool_state_key != key:
            self._pool_state = strategies.PoolState(self.emb.matrix)
            self._pool_state_key = key
        return self._pool_state

    def model_mark(self) -> tuple[int | None, int]:
        """``(round, n_labeled)`` of the head that selects now."""
        return self.head_round, self._head_n_labeled

    def fit_if_stale(self) -> LastLayerHead:
        """The head, refitted first if labels arrived since its last fit."""
        if self._fitted_at != self._n_label_events:
            return self.fit()
        return self.head

    def fit(self) -> LastLayerHead:
        """Fit the last layer on every training label (warm start).

        Only the snapshot of the labels is taken under the state lock; the fit runs
        on a copy of the head outside it, so labels keep arriving while it trains.
        """
        with self.lock:
            mask = self.train_mask()
            if not mask.any():
                raise ModelError("no labeled item to train on yet; label a few items first.",
                                 reason="no_labels")
            X, y = self.emb.matrix, self.codes
            X_train, y_train = X[mask], y[mask].copy()
            pool_rows = X[self.emb.filled]
            seen = self._n_label_events
            head = copy.deepcopy(self.head)
        failpoint("fit")
        head.fit(X_train, y_train, classes=np.arange(len(self.classes)), standardize_on=pool_rows)
        with self.lock:
            self.head = head
            self._fitted_at = seen
            self._head_n_labeled = int(y_train.size)
        return head

    # ------------------------------------------------------------ reporting
    def status(self) -> dict[str, Any]:
        with self.lock:
            left = self.budget_left()
            status = {
                "n_items": self.n_items,
                "n_embedded": int(self.emb.filled.sum()),
                "n_quarantined": int(self.quarantined.sum()),
                "n_labeled": int((self.labeled & ~self.is_eval).sum()),
                "n_eval": int(self.is_eval.sum()),
                "n_pending": len(self.pending),
                "round": self.round,
                "strategies": [self.strategy],
                "eliminated": [],
                "budget_left": left,
                "classes": list(self.classes),
                "rounds": [dataclasses.asdict(r) for r in self.journal.rounds()],
            }
            status.update(self.policy.status())  # PSHEA: survivors, eliminated, the run
            return status

