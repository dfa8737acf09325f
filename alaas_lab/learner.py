"""Pool-based active learning in one process: the loop the worker and PSHEA drive.

:class:`ActiveLearner` holds one session over a fixed pool of embeddings: which
items are labeled (and with what), the last-layer head, and a seeded generator.
It moves one step at a time, so a worker (human labels arriving over the wire)
and an automatic-strategy controller (one learner per candidate strategy) can
drive it::

    learner = ActiveLearner(X_pool, classes=range(10), strategy="least_confidence")
    idx = learner.query(20, strategy="random")   # round 0: a random seed set
    learner.teach(idx, labels_from_a_human)
    learner.fit()
    idx = learner.query(10)                      # the strategy's picks
    ...
    learner.evaluate(X_test, y_test)             # {"top1": ..., "top5": ..., "n": ...}

:func:`simulate` loops it with a simulated oracle (labels known in advance) and
returns a :class:`SimulationResult` with one :class:`RoundRecord` per round.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import strategies as _strategies
from ._validation import check_count, check_matrix, check_random_state
from .errors import AlaasError, InputError, ModelError
from .models.head import LastLayerHead, _check_classes, _encode

__all__ = ["ActiveLearner", "RoundRecord", "SimulationResult", "simulate"]



@dataclasses.dataclass(frozen=True)
class RoundRecord:
    """What one active-learning round did and reached.

    Attributes
    ----------
    round : int
        0 for the random seed set, then 1, 2, ...
    strategy : str
        Strategy that picked this round's items (``"random"`` in round 0).
    n_labeled : int
        Labeled items after the round.
    top1, top5 : float
        Test accuracy of the head refitted on them (fractions in [0, 1]).
    selected : ndarray of shape (k,)
        Pool indices labeled in this round, in the order picked.
    seconds : float
        Wall time of the round (query, fit and evaluation).
    query_seconds : float
        Of which selecting the items.
    """

    round: int
    strategy: str
    n_labeled: int
    top1: float
    top5: float
    selected: np.ndarray
    seconds: float
    query_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-ready)."""
        d = dataclasses.asdict(self)
        d["selected"] = self.selected.tolist()
        return d


class ActiveLearner:
    """One active-learning session over a pool of embeddings.

    Parameters
    ----------
    X : array-like of shape (n_pool, d)
        Embeddings of every pool item (labeled or not); strategies that need
        embeddings get these.
    classes : int or sequence of labels
        The label set (an int ``C`` means ``0 .. C-1``). Every class has a column in
        the head's probabilities from the start.
    strategy : str, default "random"
        Default strategy of :meth:`query`; one of ``alaas_lab.strategies.names()``.
    head : LastLayerHead, optional
        The classifier to train; default ``LastLayerHead(classes, seed=seed, **head_params)``.
    head_params : dict, optional
        Keyword arguments of the default head.
    strategy_params : dict, optional
        Extra keyword arguments for every ``strategies.select`` call.
    mc_samples : int, default strategies.MC_SAMPLES (20)
        Dropout samples for strategies that need ``mc_probs`` (BALD).
    seed : int or numpy.random.Generator, default 0
        Drives every random choice (strategies, MC dropout); same seed, same run.

    Attributes
    ----------
    head : LastLayerHead
    strategy : str
    history : list of RoundRecord
        Rounds recorded with :meth:`record`.
    """

    def __init__(
        self,
        X: Any,
        *,
        classes: Any,
        strategy: str = "random",
        head: LastLayerHead | None = None,
        head_params: dict[str, Any] | None = None,
        strategy_params: dict[str, Any] | None = None,
        mc_samples: int = _strategies.MC_SAMPLES,
        seed: int | np.random.Generator = 0,
    ) -> None:
        self.X = check_matrix(X, name="X")
        if self.X.shape[0] == 0:
            raise InputError("X is empty; the pool needs at least one item.")
        self.classes = _check_classes(classes, name="classes")
        self.strategy = _check_strategy(strategy)
        self.strategy_params = dict(strategy_params or {})
        self.mc_samples = check_count(mc_samples, name="mc_samples", minimum=1)
        self.rng = check_random_state(seed, name="seed")
        if head is not None and head_params:
            raise InputError("pass either head= or head_params=, not both.")
        if head is None:
            head_seed = seed if isinstance(seed, (int, np.integer)) else 0
            head = LastLayerHead(self.classes, seed=int(head_seed), **(head_params or {}))
        elif not isinstance(head, LastLayerHead):
            raise InputError(f"head must be a LastLayerHead; got {type(head).__name__}.")
        self.head = head
        n = self.X.shape[0]
        self._labels = np.full(n, -1, dtype=np.int64)  # class index, -1 = unlabeled
        self._pending = np.zeros(n, dtype=bool)
        self._stale = True
        self.history: list[RoundRecord] = []

    # ---------------------------------------------------------------- state
    @property
    def n_pool(self) -> int:
        """Items in the pool."""
        return int(self.X.shape[0])

    @property
    def labeled(self) -> np.ndarray:
        """Boolean mask of labeled items, shape ``(n_pool,)`` (a copy)."""
        return self._labels >= 0

    @property
    def n_labeled(self) -> int:
        return int((self._labels >= 0).sum())

    @property
    def n_unlabeled(self) -> int:
        return self.n_pool - self.n_labeled

    @property
    def pending(self) -> np.ndarray:
        """Indices handed out by :meth:`query` and not yet taught, sorted."""
        return np.flatnonzero(self._pending)

    @property
    def labels(self) -> np.ndarray:
        """Label of each labeled item in pool order, shape ``(n_labeled,)``."""
        return self.classes[self._labels[self._labels >= 0]]

    # ---------------------------------------------------------------- steps
    def query(
        self,
        k: int,
        *,
        strategy: str | None = None,
        exclude_pending: bool = True,
        **params: Any,
    ) -> np.ndarray:
        """Pick ``k`` unlabeled pool items to label next.

        Parameters
        ----------
        k : int
            How many, >= 1 and at most the unlabeled (not pending) items left.
        strategy : str, optional
            Overrides the learner's strategy for this call (e.g. ``"random"`` for the
            seed set).
        exclude_pending : bool, default True
            Leave out items an earlier query returned that are not labeled yet.
        **params
            Passed to the strategy, over ``strategy_params`` (which apply only when
            ``strategy`` is the learner's own).

        Returns
        -------
        indices : ndarray of shape (k,), int64
            Distinct pool indices, now marked pending until :meth:`teach`.
        """
        name = self.strategy if strategy is None else _check_strategy(strategy)
        k = check_count(k, name="k", minimum=1)
        blocked = self.labeled | (self._pending if exclude_pending else False)
        available = self.n_pool - int(blocked.sum())
        if k > available:
            raise InputError(
                f"k={k} items asked for, but only {available} of the {self.n_pool} pool items "
                f"are unlabeled{' and not pending' if exclude_pending else ''}; ask for at "
                f"most {available}."
            )
        if _strategies.needs_model(name):
            if self.n_labeled == 0:
                raise ModelError(
                    f"strategy {name!r} needs the model's probabilities, but no item is labeled "
                    "yet; label a seed set first (query(k, strategy='random'))."
                )
            if self._stale:
                self.fit()
        chosen = _strategies.select_with_model(
            name,
            k,
            embeddings=self.X,
            labeled=blocked,
            rng=self.rng,
            model=self.head if _strategies.needs_model(name) else None,
            mc_samples=self.mc_samples,
            # the learner's params belong to its own strategy, not to an override (a seed set)
            **{**(self.strategy_params if name == self.strategy else {}), **params},
        )
        chosen = np.asarray(chosen, dtype=np.int64).reshape(-1)
        if (
            chosen.shape[0] != k
            or len(np.unique(chosen)) != k
            or chosen.min() < 0
            or chosen.max() >= self.n_pool
            or blocked[chosen].any()
        ):
            raise AlaasError(
                f"strategy {name!r} returned {chosen.tolist()[:10]}..., not {k} distinct "
                "unlabeled pool indices; this is a bug in the strategy."
            )
        self._pending[chosen] = True
        return chosen

    def teach(self, indices: Any, labels: Any) -> None:
        """Record labels for pool items (new ones, or corrections).

        Parameters
        ----------
        indices : array-like of shape (m,)
            Distinct pool indices.
        labels : array-like of shape (m,)
            Their labels, each one of ``classes``.
        """
        idx = self._check_indices(indices)
        lab = np.asarray(labels)
        if lab.ndim != 1 or lab.shape[0] != idx.shape[0]:
            raise InputError(
                f"labels must be 1-D with one label per index ({idx.shape[0]}); "
                f"got shape {lab.shape}."
            )
        codes = _encode(lab, self.classes) if idx.size else np.zeros(0, np.int64)
        self._labels[idx] = codes
        self._pending[idx] = False
        self._stale = True

    def forget(self, indices: Any) -> None:
        """Remove labels (undo): the items return to the unlabeled pool."""
        idx = self._check_indices(indices)
        self._labels[idx] = -1
        self._pending[idx] = False
        self._stale = True

    def fit(self) -> LastLayerHead:
        """Refit the head on every labeled item (warm start from the last fit)."""
        mask = self.labeled
        if not mask.any():
            raise ModelError("no item is labeled yet; teach() some labels before fitting the head.")
        self.head.fit(
            self.X[mask],
            self.classes[self._labels[mask]],
            classes=self.classes,
            standardize_on=self.X,
        )
        self._stale = False
        return self.head

    def evaluate(self, X_test: Any, y_test: Any) -> dict[str, float]:
        """Top-1/top-5 accuracy of the head on a labeled test set (refits first if stale)."""
        if self._stale:
            self.fit()
        return self.head.evaluate(X_test, y_test)

    def record(self, record: RoundRecord) -> RoundRecord:
        """Append a round to :attr:`history` and return it."""
        self.history.append(record)
        return record

    def _check_indices(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise InputError(f"indices must be a 1-D integer array; got {idx.dtype} {idx.shape}.")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_pool):
            bad = idx[(idx < 0) | (idx >= self.n_pool)][0]
            raise InputError(f"index {int(bad)} is outside the pool of {self.n_pool} items.")
        if len(np.unique(idx)) != idx.size:
            raise InputError("indices contain repeats; give each pool item once.")
        return idx


@dataclasses.dataclass
class SimulationResult:
    """The rounds of one simulated session.

    Attributes
    ----------
    strategy : str
    seed : int
    records : list of RoundRecord
        Round 0 (random seed set) first.
    n_pool, n_test : int
    """

    strategy: str
    seed: int
    records: list[RoundRecord]
    n_pool: int
    n_test: int

    @property
    def accuracies(self) -> np.ndarray:
        """Top-1 accuracy per round, shape ``(rounds + 1,)``."""
        return np.array([r.top1 for r in self.records])

    @property
    def top5(self) -> np.ndarray:
        """Top-5 accuracy per round."""
        return np.array([r.top5 for r in self.records])

    @property
    def n_labeled(self) -> np.ndarray:
        """Labeled items after each round."""
        return np.array([r.n_labeled for r in self.records])

    @property
    def selected(self) -> np.ndarray:
        """Every pool index labeled, in the order picked (round 0 included)."""
        return np.concatenate([r.selected for r in self.records])

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "n_pool": self.n_pool,
            "n_test": self.n_test,
            "records": [r.to_dict() for r in self.records],
        }

    def to_table(self) -> str:
        """The rounds as a plain-text table."""
        head = f"{'round':>5}  {'labeled':>7}  {'top-1 %':>7}  {'top-5 %':>7}  {'seconds':>7}"
        lines = [
            f"strategy: {self.strategy}  seed: {self.seed}  pool: {self.n_pool}  "
            f"test: {self.n_test}",
            head,
            "-" * len(head),
        ]
        for r in self.records:
            lines.append(
                f"{r.round:>5}  {r.n_labeled:>7}  {100 * r.top1:>7.2f}  {100 * r.top5:>7.2f}  "
                f"{r.seconds:>7.3f}"
            )
        return "\n".join(lines)


def split_pool(X: np.ndarray, y: np.ndarray, X_test: Any, y_test: Any, holdout: float,
           split_seq: np.random.SeedSequence) -> tuple[np.ndarray, ...]:
    """Pool and test sets: the given test set, or a seeded hold-out split of ``X``."""
    if (X_test is None) != (y_test is None):
        raise InputError("pass both X_test and y_test, or neither (then a hold-out split is used).")
    if X_test is None:
        if not (isinstance(holdout, float) and 0 < holdout < 1):
            raise InputError(f"holdout must be a float in (0, 1); got {holdout!r}.")
        n_test = max(1, int(round(holdout * X.shape[0])))
        if n_test >= X.shape[0]:
            raise InputError(f"holdout={holdout} leaves no pool items out of {X.shape[0]}.")
        order = np.random.default_rng(split_seq).permutation(X.shape[0])
        test_idx, pool_idx = np.sort(order[:n_test]), np.sort(order[n_test:])
        return X[pool_idx], y[pool_idx], X[test_idx], y[test_idx]
    X_te = check_matrix(X_test, name="X_test")
    y_te = np.asarray(y_test)
    if X_te.shape[1] != X.shape[1]:
        raise InputError(
            f"X_test has {X_te.shape[1]} features but X has {X.shape[1]}; embed both alike.")
    if y_te.ndim != 1 or y_te.shape[0] != X_te.shape[0]:
        raise InputError(f"y_test must be 1-D with one label per row of X_test "
                         f"({X_te.shape[0]}); got {y_te.shape}.")
    return X, y, X_te, y_te


def simulate(
    X: Any,
    y: Any,
    *,
    strategy: str,
    rounds: int,
    budget_per_round: int,
    initial_labeled: int = 20,
    X_test: Any = None,
    y_test: Any = None,
    seed: int = 0,
    head_params: dict[str, Any] | None = None,
    strategy_params: dict[str, Any] | None = None,
    on_round: Callable[[RoundRecord], Any] | None = None,
    classes: Any = None,
    holdout: float = 0.25,
    mc_samples: int = _strategies.MC_SAMPLES,
    rounds_mode: str = "sync",
) -> SimulationResult:
    """Simulate pool-based active learning with an oracle that knows every label.

    Round 0 labels a random seed set of ``initial_labeled`` items; each later round
    lets ``strategy`` pick ``budget_per_round`` more. After every round the head is
    refitted (warm start) and evaluated on the test set.

    Parameters
    ----------
    X : array-like of shape (n, d)
        Pool embeddings.
    y : array-like of shape (n,)
        Their labels (revealed only when picked).
    strategy : str
        One of ``alaas_lab.strategies.names()``.
    rounds : int
        Rounds after round 0, >= 0.
    budget_per_round : int
        Items labeled per round, >= 1.
    initial_labeled : int, default 20
        Size of the random seed set, >= 1.
    X_test, y_test : array-like, optional
        Test set. Without one, a random ``holdout`` fraction of ``X`` is held out of
        the pool and used for testing.
    seed : int, default 0
        Same seed, same run. The hold-out split and the seed set depend only on the
        seed, so strategies compared at one seed start from the same labels.
    head_params, strategy_params : dict, optional
        Passed to :class:`~alaas_lab.models.LastLayerHead` and to the strategy.
    on_round : callable, optional
        Called with each :class:`RoundRecord` as soon as its round is done.
    classes : int or sequence, optional
        Label set; default the distinct labels of ``y`` and ``y_test``.
    holdout : float, default 0.25
        Fraction held out when no test set is given.
    mc_samples : int, default strategies.MC_SAMPLES (20)
        MC-dropout samples for BALD-type strategies.
    rounds_mode : {"sync", "async"}, default "sync"
        ``async`` models the worker's asynchronous rounds: round ``r`` is selected
        while round ``r - 1`` is still being labeled, so with a head that has not seen
        that round's labels (and at random before any label); a last record follows
        once the last round's labels are in.

    Returns
    -------
    SimulationResult
    """
    X = check_matrix(X, name="X")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise InputError(
            f"y must be 1-D with one label per row of X ({X.shape[0]}); got {y.shape}."
        )
    strategy = _check_strategy(strategy)
    rounds = check_count(rounds, name="rounds", minimum=0)
    budget = check_count(budget_per_round, name="budget_per_round", minimum=1)
    initial = check_count(initial_labeled, name="initial_labeled", minimum=1)
    seed = check_count(seed, name="seed")
    if rounds_mode not in ("sync", "async"):
        raise InputError(f"rounds_mode must be 'sync' or 'async'; got {rounds_mode!r}.")
    split_seq, loop_seq = np.random.SeedSequence(seed).spawn(2)

    X_pool, y_pool, X_te, y_te = split_pool(X, y, X_test, y_test, holdout, split_seq)
    cls = np.unique(np.concatenate([y_pool, y_te])) if classes is None else classes

    needed = initial + rounds * budget
    if needed > X_pool.shape[0]:
        raise InputError(
            f"initial_labeled + rounds * budget_per_round = {initial} + {rounds} * {budget} = "
            f"{needed} items, but the pool holds only {X_pool.shape[0]}; lower the budget or "
            "the rounds."
        )

    learner = ActiveLearner(
        X_pool,
        classes=cls,
        strategy=strategy,
        head_params=head_params,
        strategy_params=strategy_params,
        mc_samples=mc_samples,
        seed=np.random.default_rng(loop_seq),
    )
    unanswered: np.ndarray | None = None  # async: the round being labeled while we select
    for r in range(rounds + 2 if rounds_mode == "async" else rounds + 1):
        t0 = time.perf_counter()
        k, name = (initial, "random") if r == 0 else (budget, strategy)
        if rounds_mode == "async" and learner.n_labeled == 0:
            name = "random"  # no label has come back yet: no model
        idx = (learner.query(k, strategy=name) if r <= rounds
               else np.zeros(0, dtype=np.int64))
        t_query = time.perf_counter() - t0
        if rounds_mode == "async":  # the previous round's answers land now
            if unanswered is not None:
                learner.teach(unanswered, y_pool[unanswered])
            unanswered = idx
        else:
            learner.teach(idx, y_pool[idx])
        if learner.n_labeled == 0:
            continue
        learner.fit()
        scores = learner.evaluate(X_te, y_te)
        rec = learner.record(
            RoundRecord(
                round=r,
                strategy=name,
                n_labeled=learner.n_labeled,
                top1=scores["top1"],
                top5=scores["top5"],
                selected=idx,
                seconds=time.perf_counter() - t0,
                query_seconds=t_query,
            )
        )
        if on_round is not None:
            on_round(rec)
    return SimulationResult(strategy, seed, list(learner.history), X_pool.shape[0], len(y_te))


def _check_strategy(name: Any) -> str:
    known = _strategies.names()
    if not isinstance(name, str) or name not in known:
        raise InputError(f"unknown strategy {name!r}; choose one of {sorted(known)}.")
    return name

