"""Per-pool state that the strategies reuse from one round to the next.

Active learning calls the same strategies on the same pool round after round;
only the labeled set (and the model's probabilities) change. A
:class:`PoolState` holds what depends on the pool alone, or changes a little
per round, so that a round does only the new work:

* the embeddings, validated once (shape, finite values);
* their squared norms (float64);
* for ``kcenter_greedy`` and ``coreset``: the pool sorted into coarse groups as a
  float64 copy, and exact nearest-center distance tables keyed by the set of
  centers they hold; a later call whose labeled set contains a stored set
  applies only the new centers (the picks stay exactly those of a fresh run);
* for ``typiclust``: the clustering of the pool, reused while the number of
  clusters does not change and warm-started from the previous centers when it
  grows, and each cluster's nearest-neighbour lists.

Pass it as ``state=`` to :func:`~alaas_lab.strategies.select` (or to the
strategy functions that take it); strategies that do not use it ignore it.
Without ``state`` every strategy is the same pure function as before.

A state belongs to one pool. It remembers a fingerprint of the embeddings
(shape, dtype, a hash of 256 evenly spaced rows and the float64 sum of all
values) and refuses, with an :class:`~alaas_lab.errors.InputError`, embeddings
that do not match it. Do not modify the embeddings in place while a state is
bound to them: build a new state for a new or changed pool.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_labeled_mask
from ..errors import InputError
from ._common import check_embeddings

__all__ = ["PoolState"]

_SAMPLE_ROWS = 256


def _fingerprint(X: np.ndarray) -> tuple[Any, ...]:
    """Shape, dtype, a hash of evenly spaced rows and the sum of every value."""
    n = X.shape[0]
    rows = np.unique(np.linspace(0, max(n - 1, 0), num=min(n, _SAMPLE_ROWS)).astype(np.int64))
    h = hashlib.blake2b(digest_size=16)
    if n:
        h.update(np.ascontiguousarray(X[rows]).tobytes())
    return X.shape, X.dtype.str, h.hexdigest(), float(X.sum(dtype=np.float64))


class PoolState:
    """What the strategies keep about one pool between rounds.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        The pool's embeddings, float32 or float64 (other dtypes are converted
        to float64). Validated once, here; kept without a copy when already a
        finite float array.

    Attributes
    ----------
    X : ndarray of shape (N, d)
        The validated embeddings.
    n_pool, n_features : int
    counters : collections.Counter
        What the caches did (``"kcenter:reused"``, ``"typiclust:reused"``, ...),
        for tests and benchmarks.

    Examples
    --------
    >>> import numpy as np
    >>> from alaas_lab import strategies
    >>> X = np.random.default_rng(0).normal(size=(200, 8))
    >>> state = strategies.PoolState(X)
    >>> labeled = np.zeros(200, dtype=bool); labeled[:5] = True
    >>> first = strategies.select("kcenter_greedy", 3, labeled=labeled, state=state)
    >>> labeled[first] = True  # labeled; the next round applies only these 3 centers
    >>> strategies.select("kcenter_greedy", 3, labeled=labeled, state=state).shape
    (3,)
    """

    def __init__(self, embeddings: Any) -> None:
        if isinstance(embeddings, PoolState):
            raise InputError("embeddings is already a PoolState; pass its array (state.X).")
        self.X = check_embeddings(embeddings)
        self.n_pool, self.n_features = self.X.shape
        self._print = _fingerprint(self.X)
        self._sq: np.ndarray | None = None
        self._slots: dict[Any, Any] = {}
        self.counters: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (f"PoolState({self.n_pool} x {self.n_features} {self.X.dtype}, "
                f"caches: {sorted(map(str, self._slots))})")

    # ------------------------------------------------------------------ identity
    def matches(self, embeddings: Any) -> bool:
        """Whether ``embeddings`` is this state's pool (same fingerprint)."""
        if not isinstance(embeddings, np.ndarray):
            embeddings = np.asarray(embeddings)
        if embeddings.shape != self.X.shape:
            return False
        if embeddings.dtype != self.X.dtype:
            return False
        return _fingerprint(embeddings) == self._print

    def resolve(self, embeddings: Any = None, *, who: str = "this strategy") -> np.ndarray:
        """The validated pool for a call given ``embeddings`` (None: the state's own).

        Raises
        ------
        InputError
            ``embeddings`` is not the pool this state was built for, or the
            state's own array was changed in place since.
        """
        if embeddings is None or embeddings is self.X:
            if _fingerprint(self.X) != self._print:
                raise InputError(
                    f"{who}: the embeddings of this PoolState were modified in place since it "
                    "was built; its caches no longer hold. Build a new "
                    "strategies.PoolState(embeddings) after changing the pool.")
            return self.X
        if not self.matches(embeddings):
            shape = getattr(embeddings, "shape", None)
            raise InputError(
                f"{who}: state= was built for another pool ({self.n_pool} x {self.n_features} "
                f"{self.X.dtype}) than these embeddings (shape {shape}); build one PoolState "
                "per pool, e.g. state = strategies.PoolState(embeddings), and pass it with "
                "that pool only.")
        return self.X

    # ------------------------------------------------------------------ caches
    @property
    def sq_norms(self) -> np.ndarray:
        """Squared Euclidean norm of every row, float64, shape ``(N,)``."""
        if self._sq is None:
            self._sq = np.einsum("ij,ij->i", self.X, self.X, dtype=np.float64)
        return self._sq

    def slot(self, key: Any, factory: Callable[[], Any]) -> Any:
        """The cache stored under ``key``, created by ``factory()`` on first use."""
        if key not in self._slots:
            self._slots[key] = factory()
            self.counters[f"{key[0] if isinstance(key, tuple) else key}:built"] += 1
        return self._slots[key]

    def prepare(
        self,
        labeled: Any = None,
        k: int = 0,
        *,
        names: Any = None,
        seed: int = 0,
        max_clusters: int = 500,
        n_groups: int = 128,
    ) -> PoolState:
        """Do ahead of time what the next round's strategies will need.

        Meant for idle time (while the human labels): builds the squared norms,
        and for the strategies in ``names`` (default: all that use a state) the
        k-center index with the distance table of ``labeled``, and TypiClust's
        clustering into ``min(|labeled| + k, max_clusters)`` clusters (seeded
        by ``seed``). Calling a strategy afterwards gives what it would have
        given without this call, except TypiClust, whose clustering is then
        seeded by ``seed`` rather than by the strategy's ``rng``.

        Parameters
        ----------
        labeled : array-like of shape (N,), bool, optional
            The labeled set the next round starts from (for ``kcenter_greedy``
            and ``coreset``; several calls keep several tables).
        k : int, default 0
            Items the next round selects (TypiClust's cluster count).
        names : iterable of str, optional
            The strategies to prepare for.
        seed : int, default 0
        max_clusters, n_groups : int
            As the strategies' options of the same name (their defaults).

        Returns
        -------
        self
        """
        lab = check_labeled_mask(labeled, self.n_pool, name="labeled")
        wanted = set(("kcenter_greedy", "coreset", "typiclust") if names is None else names)
        _ = self.sq_norms
        if wanted & {"kcenter_greedy", "coreset"}:
            from ._kcenter import prepare_kcenter

            prepare_kcenter(self, lab, n_groups=n_groups)
        if "typiclust" in wanted:
            from ._clustering import prepare_typiclust

            n_clusters = max(1, min(int(np.count_nonzero(lab)) + int(k), int(max_clusters)))
            prepare_typiclust(self, n_clusters, int(seed))
        return self

    def clear(self) -> None:
        """Drop every cache (the fingerprint stays)."""
        self._slots.clear()
        self._sq = None


def check_state(state: Any) -> PoolState | None:
    """``state`` must be None or a :class:`PoolState`."""
    if state is None or isinstance(state, PoolState):
        return state
    raise InputError(
        f"state must be None or a strategies.PoolState; got {type(state).__name__}. Build it "
        "once per pool: state = strategies.PoolState(embeddings).")
