"""One PSHEA round on one pool without repeated work: :class:`RoundEngine`.

A PSHEA round fits one :class:`~alaas_lab.models.LastLayerHead` per surviving
candidate on that candidate's labeled set ``d^l``, evaluates it, and has every
candidate select with its own head. Done naively each step starts from
scratch. The engine keeps, for one pool:

* a :class:`~alaas_lab.strategies.PoolState` (embeddings validated once,
  k-center distance tables, TypiClust's clustering; see ``docs/strategies.md``);
* the pool's standardization statistics, computed once (every head uses the
  pool's, as the worker does);
* one head per candidate, warm-started from its previous weights and fitted with
  Newton-CG; a candidate whose training set did not change is not refitted, and
  candidates with the same training set (every candidate after the seed round)
  share one fit;
* the pool probabilities of every distinct head, computed for all heads in one
  matrix product and shared by the candidates that have that head.

Typical use (the worker's ``auto`` rounds, the in-process benchmark)::

    engine = RoundEngine(X, classes=10)               # once per pool
    engine.prepare(labeled=seed_mask, k=per_round)    # optional, in idle time
    # finish a round: fit and evaluate every survivor
    for c in survivors:
        head = engine.fit(c, rows[c], y[rows[c]])
        acc[c] = head.evaluate(X_eval, y_eval)["top1"]
    # next query: every survivor selects
    for c in survivors:
        picks[c] = engine.select(c, k, labeled=blocked[c], rng=rng_for(c))

``select`` gives the picks of :func:`alaas_lab.strategies.select_with_model`
with the candidate's head (the same probabilities, the same MC-dropout samples
for BALD), except for TypiClust's clustering (the state's own k-means, reused
across rounds) and up to the fit tolerance of the heads.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from .. import strategies
from .._validation import check_count
from ..errors import InputError

__all__ = ["RoundEngine"]


def _digest(rows: np.ndarray, y: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    h.update(str(y.dtype).encode())
    return h.hexdigest()


class RoundEngine:
    """Fits, probabilities and selections of every PSHEA candidate on one pool.

    Parameters
    ----------
    X : array-like of shape (N, d)
        The pool's embeddings (float32 stays float32). Must not change while the
        engine lives: build a new engine for a new or grown pool.
    classes : int or sequence
        The label set of every head (``LastLayerHead(classes)``).
    head_params : dict, optional
        Keyword arguments of :class:`~alaas_lab.models.LastLayerHead`; default
        ``solver="newton-cg"`` (the fastest for repeated refits).
    strategy_params : dict, optional
        ``{candidate: {option: value}}`` passed to the strategy on every select.
    mc_samples : int, default ``strategies.MC_SAMPLES``
        Dropout samples for strategies that need ``mc_probs`` (BALD).
    threads : int, optional
        BLAS threads during ``fit``, ``select`` and ``prepare`` (threadpoolctl);
        ``None`` leaves the caller's setting. One thread is the robust choice on
        a small shared machine.

    Attributes
    ----------
    state : strategies.PoolState
    heads : dict
        ``{candidate: LastLayerHead}``.
    timings : dict
        Seconds of the last ``fit`` / ``probs`` / ``select`` per candidate.
    """

    def __init__(
        self,
        X: Any,
        *,
        classes: Any,
        head_params: Mapping[str, Any] | None = None,
        strategy_params: Mapping[str, Mapping[str, Any]] | None = None,
        mc_samples: int = strategies.MC_SAMPLES,
        threads: int | None = None,
    ) -> None:
        from ..models.head import LastLayerHead, _check_classes

        self.state = strategies.PoolState(X)
        self.X = self.state.X
        self.classes = _check_classes(classes, name="classes")
        self.head_params = {"solver": "newton-cg", **dict(head_params or {})}
        LastLayerHead(self.classes, **self.head_params)  # check the parameters now
        self._head_cls = LastLayerHead
        self.strategy_params = {c: dict(p) for c, p in (strategy_params or {}).items()}
        self.mc_samples = check_count(mc_samples, name="mc_samples", minimum=1)
        self.threads = None if threads is None else check_count(threads, name="threads",
                                                                minimum=1)
        self._stats: tuple[np.ndarray, np.ndarray] | None = None
        self.heads: dict[str, Any] = {}
        self._key: dict[str, str] = {}  # candidate -> digest of its head's training set
        self._probs: dict[str, np.ndarray] = {}  # digest -> pool probabilities
        self.timings: dict[str, dict[str, float]] = {}
        self.counters: dict[str, int] = {"fits": 0, "fits_shared": 0, "fits_skipped": 0,
                                         "probs_heads": 0}

    def __repr__(self) -> str:
        return (f"RoundEngine({self.state.n_pool} x {self.state.n_features}, "
                f"{len(self.heads)} heads)")

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        if self.threads is None:
            yield
            return
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=self.threads):
            yield

    @property
    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """The pool's standardization statistics ``(mean, scale)`` (computed once)."""
        if self._stats is None:
            from ..models.head import feature_stats

            self._stats = feature_stats(self.X)
        return self._stats

    # ------------------------------------------------------------------ idle time
    def prepare(self, labeled: Any = None, k: int = 0, *, names: Iterable[str] | None = None,
                seed: int = 0) -> RoundEngine:
        """Precompute what the next round needs (see :meth:`PoolState.prepare`).

        Call it while the human labels: the standardization statistics, the
        k-center tables of ``labeled`` and TypiClust's clustering for
        ``|labeled| + k`` clusters. ``names``: the candidates (default all).
        """
        with self._threads():
            _ = self.stats
            opts = self.strategy_params.get("typiclust", {})
            kc = self.strategy_params.get("kcenter_greedy", {})
            self.state.prepare(labeled, k, names=None if names is None else list(names),
                               seed=seed, max_clusters=opts.get("max_clusters", 500),
                               n_groups=kc.get("n_groups", 128))
        return self

    # ------------------------------------------------------------------ fitting
    def fit(self, name: str, rows: Any, y: Any) -> Any:
        """Fit candidate ``name``'s head on pool rows ``rows`` with labels ``y``.

        Warm-started from the candidate's previous weights. Not refitted when
        ``(rows, y)`` is what it was fitted on; copied from another candidate's
        head fitted on the same ``(rows, y)``.

        Parameters
        ----------
        name : str
            The candidate (any string; usually its strategy).
        rows : array-like of int, shape (n,)
            Pool indices of its labeled training items.
        y : array-like, shape (n,)
            Their labels (class values of ``classes``).

        Returns
        -------
        LastLayerHead
            The candidate's head (do not refit it yourself; use this method).
        """
        import copy
        import time

        t0 = time.perf_counter()
        rows = np.asarray(rows)
        if rows.ndim != 1 or rows.dtype.kind not in "iu":
            raise InputError(f"rows must be a 1-D array of pool indices; got {rows.dtype} "
                             f"of shape {rows.shape}.")
        if rows.size and (rows.min() < 0 or rows.max() >= self.state.n_pool):
            raise InputError(f"rows must be pool indices in [0, {self.state.n_pool}); got "
                             f"values in [{rows.min()}, {rows.max()}].")
        y = np.asarray(y)
        if y.shape != rows.shape:
            raise InputError(f"y must hold one label per row ({rows.size}); got shape {y.shape}.")
        key = _digest(rows, y)
        head = self.heads.get(name)
        if head is not None and head.is_fitted and self._key.get(name) == key:
            self.counters["fits_skipped"] += 1
        else:
            twin = next((c for c, k in self._key.items()
                         if k == key and c != name and self.heads[c].is_fitted), None)
            if twin is not None:
                self.heads[name] = copy.deepcopy(self.heads[twin])
                self.counters["fits_shared"] += 1
            else:
                if head is None:
                    head = self.heads[name] = self._head_cls(self.classes, **self.head_params)
                with self._threads():
                    head.fit(self.X[rows], y, classes=self.classes, stats=self.stats)
                self.counters["fits"] += 1
            self._key[name] = key
            self._forget_probs()
        self.timings.setdefault(name, {})["fit"] = time.perf_counter() - t0
        return self.heads[name]

    def drop(self, name: str) -> None:
        """Forget candidate ``name`` (eliminated): its head and its probabilities."""
        self.heads.pop(name, None)
        self._key.pop(name, None)
        self._forget_probs()

    def _forget_probs(self) -> None:
        live = set(self._key.values())
        for key in [k for k in self._probs if k not in live]:
            del self._probs[key]

    # ------------------------------------------------------------------ probabilities
    def probs(self, name: str) -> np.ndarray:
        """Pool probabilities ``(N, C)`` of candidate ``name``'s head.

        Computed once per distinct head; the first call computes those of every
        fitted head still missing, in one matrix product over the pool.
        """
        key = self._key.get(name)
        if key is None:
            raise InputError(f"candidate {name!r} has no fitted head; call fit({name!r}, rows, y) "
                             "first.")
        if key not in self._probs:
            self._batch_probs()
        return self._probs[key]

    def _batch_probs(self) -> None:
        todo: dict[str, Any] = {}
        for c, key in self._key.items():
            if key not in self._probs and key not in todo:
                todo[key] = self.heads[c]
        if not todo:
            return
        X = self.X
        Ws, bs = [], []
        for head in todo.values():
            W = head.coef_ / head.scale_
            Ws.append(W)
            bs.append(head.intercept_ - W @ head.mean_)
        W_all = np.concatenate(Ws).T.astype(X.dtype)  # (d, C * heads)
        with self._threads():
            logits = (X @ W_all).astype(np.float64)
        logits += np.concatenate(bs)
        C = len(self.classes)
        for j, key in enumerate(todo):
            z = logits[:, j * C:(j + 1) * C]
            z = z - z.max(axis=1, keepdims=True)
            np.exp(z, out=z)
            z /= z.sum(axis=1, keepdims=True)
            self._probs[key] = z
        self.counters["probs_heads"] += len(todo)

    # ------------------------------------------------------------------ selecting
    def select(self, name: str, k: int, *, labeled: Any, rng: Any, strategy: str | None = None,
               **params: Any) -> np.ndarray:
        """Candidate ``name`` picks ``k`` items with its strategy and its head.

        Parameters
        ----------
        name : str
            The candidate; its strategy is ``strategy`` or, by default, ``name``.
        k : int
        labeled : array-like of shape (N,), bool
            Items that may not be picked (the candidate's ``d^l`` and anything
            blocked); also the k-center centers, as in ``strategies.select``.
        rng : int or numpy.random.Generator
        **params
            Strategy options (added to ``strategy_params[name]``).

        Returns
        -------
        indices : ndarray of shape (k,), int64
        """
        import time

        t0 = time.perf_counter()
        strat = name if strategy is None else strategy
        needs = strategies.requirements(strat)
        opts = {**self.strategy_params.get(name, {}), **params}
        inputs: dict[str, Any] = {}
        with self._threads():
            t1 = time.perf_counter()
            if "mc_probs" in needs:
                rng = np.random.default_rng(rng) if not isinstance(
                    rng, np.random.Generator) else rng
                head = self.heads.get(name)
                if head is None or not head.is_fitted:
                    raise InputError(f"candidate {name!r} has no fitted head; call fit first.")
                inputs["probs"] = head.predict_proba_mc(self.X, self.mc_samples, rng)
            elif "probs" in needs:
                inputs["probs"] = self.probs(name)
            t_probs = time.perf_counter() - t1
            picks = strategies.select(strat, k, labeled=labeled, rng=rng, state=self.state,
                                      **inputs, **opts)
        self.timings.setdefault(name, {}).update(probs=t_probs,
                                                 select=time.perf_counter() - t0)
        return picks
