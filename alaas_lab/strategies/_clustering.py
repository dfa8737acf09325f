"""Clustering-based strategies: DBAL (diverse mini-batch) and TypiClust.

Both run one k-means of their own (k-means++ D^2 seeding, then a few Lloyd
iterations with empty clusters relocated to the farthest items), blocked and
in the pool's dtype, seeded from the caller's ``Generator`` (one
``rng.integers`` draw), so a seed fixes the selection. A
:class:`~alaas_lab.strategies.PoolState` keeps the clustering between rounds:
reused or warm-started from the previous round's centers; without one (or on
a state's first round) the same cold k-means runs, so a state never changes a
first round's picks. Their selection logic, given the clustering, lives in
small kernels that are tested on their own.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .._validation import check_random_state
from ..errors import InputError
from ._common import check_number, check_pool, mean_probs, top_k
from ._state import check_state
from ._uncertainty import _entropy_scores, _top2

__all__ = ["dbal", "typiclust"]

_ROW_CHUNK = 2048


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def _sqdist(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(len(A), len(B))`` in float64, clipped at 0."""
    A = np.asarray(A, dtype=np.float64)
    B = np.asarray(B, dtype=np.float64)
    D = A @ B.T
    D *= -2.0
    D += np.einsum("ij,ij->i", A, A)[:, None]
    D += np.einsum("ij,ij->i", B, B)[None, :]
    return np.maximum(D, 0.0, out=D)


# ----------------------------------------------------------------------------- DBAL
_DBAL_MEASURES = ("margin", "entropy")


def dbal_informativeness(probs: np.ndarray, measure: str) -> np.ndarray:
    """Non-negative informativeness used as DBAL's filter score and k-means weight.

    ``"margin"``: ``1 - (p_(1) - p_(2))`` in [0, 1] (Zhdanov 2019);
    ``"entropy"``: Shannon entropy in nats.
    """
    if measure == "margin":
        first, second = _top2(probs)
        return 1.0 - (first - second)
    return _entropy_scores(probs)


def _dbal_pick(
    X: np.ndarray, pre: np.ndarray, labels: np.ndarray, centers: np.ndarray, k: int
) -> np.ndarray:
    """From each cluster, the member nearest its center; missing slots filled in
    ``pre`` order (most informative first). Trusts its inputs.

    Parameters
    ----------
    X : ndarray of shape (N, d)
    pre : ndarray of shape (m,)
        Pre-filtered pool indices, most informative first.
    labels : ndarray of shape (m,)
        Cluster of each ``pre`` item.
    centers : ndarray of shape (k, d)

    Returns
    -------
    indices : ndarray of shape (k,), int64
        One per cluster, ordered by cluster id (ties to the earlier ``pre`` item).
    """
    diff = np.asarray(X[pre], dtype=np.float64) - centers[labels]
    d_own = np.einsum("ij,ij->i", diff, diff)
    picks = []
    for c in range(centers.shape[0]):
        members = np.flatnonzero(labels == c)
        if members.size:
            picks.append(pre[members[np.argmin(d_own[members])]])
    chosen = np.asarray(picks, dtype=np.int64)
    if chosen.size < k:  # empty clusters (duplicate points): fill by informativeness
        rest = pre[~np.isin(pre, chosen)][: k - chosen.size]
        chosen = np.concatenate([chosen, rest])
    return chosen


def _dbal(
    probs: np.ndarray,
    X: np.ndarray,
    labeled: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    beta: float,
    measure: str,
    state: Any = None,
) -> np.ndarray:
    """Kernel of :func:`dbal`; trusts its inputs (``probs`` 2-D; ``X`` is ``state.X``)."""
    if k == 0:
        return np.empty(0, dtype=np.int64)
    n_unlabeled = int(labeled.size - np.count_nonzero(labeled))
    score = dbal_informativeness(probs, measure)
    m = min(n_unlabeled, max(k, int(np.ceil(beta * k))))
    pre = top_k(score, m, labeled)
    if m == k:
        return pre
    w = score[pre]
    if not w.sum() > 0.0:
        w = np.ones_like(w)  # every item fully confident: plain k-means
    seed = _seed(rng)
    if state is None:
        Xp = X[pre]
        labels, centers = _weighted_kmeans(Xp, _sq_norms(Xp), w, k, seed)
    else:
        labels, centers = _dbal_kmeans(state, pre, w, k, seed)
    return _dbal_pick(X, pre, labels, centers, k)


def _sq_norms(X: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", X, X, dtype=np.float64)


def _relocate_empty(labels: np.ndarray, d2: np.ndarray, n_clusters: int,
                    weights: np.ndarray | None = None) -> np.ndarray:
    """Give every empty cluster one of the items farthest from their centers.

    The items with the largest (weighted) squared distance, ties to the lowest
    index, move to the empty clusters in id order (scikit-learn's rule); items
    sitting on their center are never moved. Returns ``labels`` (a copy if changed).
    """
    empty = np.flatnonzero(np.bincount(labels, minlength=n_clusters) == 0)
    if empty.size == 0:
        return labels
    score = d2 if weights is None else d2 * weights
    order = np.argsort(-score, kind="stable")
    far = order[score[order] > 0.0][: empty.size]
    labels = labels.copy()
    labels[far] = empty[: far.size]
    return labels


def _lloyd(X: np.ndarray, sq: np.ndarray, C: np.ndarray, max_iter: int,
           weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``max_iter`` (weighted) Lloyd iterations from centers ``C``.

    Each iteration relocates empty clusters (:func:`_relocate_empty`), moves
    every center to its members' (weighted) mean and reassigns the items; it
    stops when at most 0.1% of the labels changed. Returns ``(labels, centers,
    d2)``, the labels and squared distances those of the returned centers.
    """
    labels, d2 = _nearest(X, sq, C)
    for _ in range(max_iter):
        moved = _relocate_empty(labels, d2, C.shape[0], weights)
        C = _means(X, moved, C, weights)
        new, d2 = _nearest(X, sq, C)
        changed = int(np.count_nonzero(new != labels))
        labels = new
        if changed <= 1e-3 * labels.size:
            break
    return labels, C, d2


#: Lloyd iterations of DBAL's k-means: from k-means++ / from last round's centers.
_DBAL_ITERS = (8, 4)


def _weighted_kmeans(Xp: np.ndarray, sqp: np.ndarray, w: np.ndarray, k: int, seed: int,
                     init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """DBAL's weighted k-means of ``Xp`` into ``k`` clusters; returns ``(labels, centers)``.

    Cold (``init`` None): weighted k-means++ seeding (D^2 sampling), then up to
    ``_DBAL_ITERS[0]`` Lloyd iterations. Warm: start from ``init`` (last
    round's ``k`` centers); centers that no item is nearest to (their region
    was labeled or is no longer uncertain) are replaced by D^2 sampling from
    the kept ones, then up to ``_DBAL_ITERS[1]`` iterations.
    """
    rng = np.random.default_rng(seed)
    if init is None:
        C = Xp[_d2_seeding(Xp, sqp, k, rng, None, weights=w)].astype(np.float64)
        iters = _DBAL_ITERS[0]
    else:
        labels, d2 = _nearest(Xp, sqp, init)
        alive = np.bincount(labels, minlength=k) > 0
        C = init[alive]
        if C.shape[0] < k:
            new = _d2_seeding(Xp, sqp, k - C.shape[0], rng, d2, weights=w)
            C = np.vstack([C, Xp[new].astype(np.float64)])
        iters = _DBAL_ITERS[1]
    labels, C, _ = _lloyd(Xp, sqp, C, iters, weights=w)
    return labels, C


def _dbal_kmeans(state: Any, pre: np.ndarray, w: np.ndarray, k: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """DBAL's weighted k-means with a :class:`PoolState`: warm-started across rounds.

    The first call with a given ``k`` is the cold k-means of a stateless call
    (same picks); a later one starts from the previous round's centers (the
    uncertain regions move little between rounds).
    """
    memo = state.slot(("dbal",), dict)
    init = memo.get(k)
    state.counters["dbal:cold" if init is None else "dbal:warm"] += 1
    labels, C = _weighted_kmeans(state.X[pre], state.sq_norms[pre], w, k, seed, init)
    memo[k] = C
    return labels, C


def check_dbal_params(*, beta: Any = 10, measure: Any = "margin") -> tuple[float, str]:
    """Validate DBAL's ``beta`` (>= 1) and ``measure``."""
    beta = check_number(beta, name="beta", low=1.0)
    if measure not in _DBAL_MEASURES:
        raise InputError(f"measure must be one of {list(_DBAL_MEASURES)}; got {measure!r}.")
    return beta, measure


def dbal(
    probs: Any,
    embeddings: Any,
    k: int,
    *,
    labeled: Any = None,
    rng: Any = None,
    beta: float = 10,
    measure: str = "margin",
    state: Any = None,
) -> np.ndarray:
    """Diverse mini-batch active learning (Zhdanov 2019).

    1. Pre-filter the ``beta * k`` most informative unlabeled items (margin or
       entropy; ties to the lowest index).
    2. Weighted k-means with ``k`` clusters on their embeddings, sample weight =
       informativeness (weighted k-means++ seeding, then up to 8 Lloyd
       iterations, empty clusters relocated; seeded by ``rng``).
    3. Return, for each cluster, the member nearest its centre (distinct by
       construction; an empty cluster's slot goes to the next most informative
       item).

    Parameters
    ----------
    probs : array-like of shape (N, C) or (T, N, C)
        Class probabilities (MC samples are averaged).
    embeddings : array-like of shape (N, d)
        Pool embeddings to cluster.
    k : int
        Number of items to pick.
    labeled : array-like of shape (N,), bool, optional
        Items already labeled (never picked).
    rng : None, int or numpy.random.Generator, optional
        Seeds k-means; same seed, same picks.
    beta : float, default 10
        Pre-filter size factor (``>= 1``; capped at the unlabeled count).
    measure : {"margin", "entropy"}, default "margin"
        Informativeness: ``1 - (p_(1) - p_(2))`` (Zhdanov's choice) or entropy.
    state : PoolState, optional
        Per-pool state (:class:`~alaas_lab.strategies.PoolState`) built for
        ``embeddings``. The first round with a given ``k`` picks what a
        stateless call picks; later rounds start the k-means from the previous
        round's centers (those no item is nearest to re-seeded by D^2
        sampling) and run at most 4 Lloyd iterations.

    Returns
    -------
    indices : ndarray of shape (k,), int64
        Ordered by cluster id.

    Notes
    -----
    Time: k-means on ``beta * k`` points, ``O(iters * beta * k^2 * d)`` flops
    in blocked products (at most 8 iterations, 4 when warm-started).
    """
    state = check_state(state)
    k, p, X, lab = check_pool(
        k=k,
        probs=probs,
        embeddings=embeddings,
        labeled=labeled,
        need_probs=True,
        need_embeddings=True,
        who="dbal",
        state=state,
    )
    beta, measure = check_dbal_params(beta=beta, measure=measure)
    return _dbal(mean_probs(p), X, lab, k, check_random_state(rng), beta=beta, measure=measure,
                 state=state)


# ----------------------------------------------------------------------------- TypiClust
def _neighbours(X: np.ndarray, n_keep: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_keep`` nearest other rows of every row, nearest first (blocked).

    Returns
    -------
    ids : ndarray of shape (n, n_keep), int64
        Row numbers into ``X``.
    dist : ndarray of shape (n, n_keep), float64
        Their Euclidean distances, ascending.
    """
    n = X.shape[0]
    ids = np.empty((n, n_keep), dtype=np.int64)
    dist = np.empty((n, n_keep))
    for r0 in range(0, n, _ROW_CHUNK):
        r1 = min(n, r0 + _ROW_CHUNK)
        D = _sqdist(X[r0:r1], X)
        D[np.arange(r1 - r0), np.arange(r0, r1)] = np.inf  # not its own neighbour
        part = np.argpartition(D, n_keep - 1, axis=1)[:, :n_keep]
        d = np.take_along_axis(D, part, axis=1)
        order = np.lexsort((part, d), axis=1)  # by distance, then by row number
        ids[r0:r1] = np.take_along_axis(part, order, axis=1)
        dist[r0:r1] = np.sqrt(np.take_along_axis(d, order, axis=1))
    return ids, dist


def typicality(X: np.ndarray, n_neighbors: int) -> np.ndarray:
    """Inverse mean Euclidean distance to the ``n_neighbors`` nearest other rows.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    n_neighbors : int
        ``0 < n_neighbors < n``.

    Returns
    -------
    typicality : ndarray of shape (n,)
        ``1 / (mean kNN distance + 1e-5)`` (Hacohen et al. 2022); rows are
        processed in blocks, memory ``O(block * n)``.
    """
    _, dist = _neighbours(X, n_neighbors)
    return 1.0 / (dist.mean(axis=1) + 1e-5)


class _ClusterNeighbours:
    """Cached nearest-neighbour lists of one cluster's members.

    TypiClust recomputes typicality among a cluster's *remaining* items on every
    visit. Each member's nearest remaining neighbours are the first available
    entries of its sorted list over the members at caching time, so a list of
    ``knn + expected picks`` entries serves many visits; it is rebuilt only when
    some row runs short.
    """

    def __init__(self, X: np.ndarray, members: np.ndarray, n_keep: int):
        self.members = members  # ascending pool indices
        ids, self.dist = _neighbours(X[members], min(n_keep, members.size - 1))
        self.ids = members[ids]  # pool indices

    def typicality(self, idx: np.ndarray, available: np.ndarray, nn: int) -> np.ndarray | None:
        """Typicality of the items ``idx`` among ``available`` ones (None: rebuild).

        Also None when some of ``idx`` were not members at caching time (a list
        kept from an earlier round whose labeled set was larger).
        """
        rows = np.searchsorted(self.members, idx)
        if rows.size and (rows[-1] >= self.members.size or
                          not np.array_equal(self.members[np.minimum(rows, self.members.size - 1)],
                                             idx)):
            return None
        ok = available[self.ids[rows]]
        keep = ok & (np.cumsum(ok, axis=1) <= nn)
        if (keep.sum(axis=1) < nn).any():
            return None
        return 1.0 / ((self.dist[rows] * keep).sum(axis=1) / nn + 1e-5)


def _typiclust_pick(
    X: np.ndarray,
    clusters: np.ndarray,
    labeled: np.ndarray,
    k: int,
    *,
    knn: int,
    min_cluster_size: int,
    cache: dict[int, _ClusterNeighbours] | None = None,
) -> np.ndarray:
    """TypiClust's selection given a clustering of the whole pool; trusts its inputs.

    Clusters are visited in order (fewest labeled items first, then largest
    first, then lowest id), cycling when ``k`` exceeds their number; clusters
    of ``min_cluster_size`` items or fewer come only after the others run dry.
    From each visited cluster the most typical remaining unlabeled item is
    taken, typicality computed among those remaining items with
    ``min(knn, n_remaining // 2)`` neighbours (the authors' rule); typicalities
    within a relative 1e-12 of the best count as ties, won by the lowest index.

    Parameters
    ----------
    X : ndarray of shape (N, d)
    clusters : ndarray of shape (N,), int
        Cluster id of every pool item (labeled ones included).
    labeled : ndarray of shape (N,), bool
    k : int
    cache : dict, optional
        Neighbour lists by cluster id, kept by the caller for later calls on the
        same clustering (a :class:`~alaas_lab.strategies.PoolState`); a list that
        no longer serves is rebuilt, so the picks do not depend on it.

    Returns
    -------
    indices : ndarray of shape (k,), int64
    """
    n_clusters = int(clusters.max()) + 1 if clusters.size else 0
    sizes = np.bincount(clusters, minlength=n_clusters)
    covered = np.bincount(clusters[labeled], minlength=n_clusters)
    ids = np.arange(n_clusters)
    rank = np.lexsort((ids, -sizes, covered))
    big = rank[sizes[rank] > min_cluster_size]
    small = rank[(sizes[rank] <= min_cluster_size) & (sizes[rank] > 0)]
    available = ~labeled
    by_cluster = np.argsort(clusters, kind="stable")  # members in index order
    bounds = np.searchsorted(clusters[by_cluster], np.arange(n_clusters + 1))
    n_visited = max(1, big.size if big.size else small.size)
    n_keep = knn + -(-k // n_visited) + 1  # knn + the picks expected per cluster
    if cache is None:
        cache = {}
    picks: list[int] = []
    for visit in (big, small):
        while len(picks) < k:
            progressed = False
            for c in visit:
                if len(picks) == k:
                    break
                idx = by_cluster[bounds[c] : bounds[c + 1]]
                idx = idx[available[idx]]
                if idx.size == 0:
                    continue
                nn = min(knn, idx.size // 2)
                best = 0
                if nn > 0:
                    c = int(c)
                    typ = cache[c].typicality(idx, available, nn) if c in cache else None
                    if typ is None:
                        cache[c] = _ClusterNeighbours(X, idx, n_keep)
                        typ = cache[c].typicality(idx, available, nn)
                    # ties (mutual nearest neighbours always tie when knn = 1) go to the
                    # lowest index; rounding must not decide them
                    best = int(np.argmax(typ >= typ.max() * (1.0 - 1e-12)))
                picks.append(int(idx[best]))
                available[idx[best]] = False
                progressed = True
            if not progressed:
                break
    return np.asarray(picks, dtype=np.int64)


# ----------------------------------------------------------------------- k-means kept in a state
def _nearest(X: np.ndarray, sq: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest row of ``C`` for every row of ``X`` and the squared distance (blocked).

    The product runs in ``X``'s dtype (float32 pools stay float32); distances
    are float64, clipped at 0.
    """
    n = X.shape[0]
    Cx = np.asarray(C, dtype=X.dtype)
    csq = np.einsum("ij,ij->i", C, C)
    labels = np.empty(n, dtype=np.int64)
    d2 = np.empty(n)
    for r0 in range(0, n, _ROW_CHUNK):
        r1 = min(n, r0 + _ROW_CHUNK)
        D = (X[r0:r1] @ Cx.T).astype(np.float64)
        D *= -2.0
        D += csq[None, :]
        lab = D.argmin(axis=1)
        labels[r0:r1] = lab
        d2[r0:r1] = D[np.arange(r1 - r0), lab] + sq[r0:r1]
    return labels, np.maximum(d2, 0.0, out=d2)


def _means(X: np.ndarray, labels: np.ndarray, old: np.ndarray,
           weights: np.ndarray | None = None) -> np.ndarray:
    """Cluster (weighted) means, float64; an empty cluster keeps its ``old`` center."""
    from scipy import sparse

    k = old.shape[0]
    w = np.ones(labels.size) if weights is None else weights
    counts = np.bincount(labels, weights=w, minlength=k)
    onehot = sparse.csr_matrix(
        (w.astype(X.dtype), (labels, np.arange(labels.size))), shape=(k, labels.size))
    sums = np.asarray(onehot @ X, dtype=np.float64)
    out = old.astype(np.float64, copy=True)
    nz = counts > 0
    out[nz] = sums[nz] / counts[nz, None]
    return out


def _own_d2(X: np.ndarray, labels: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Squared distance of every row to its own center (float64)."""
    n = X.shape[0]
    d2 = np.empty(n)
    for r0 in range(0, n, _ROW_CHUNK):
        r1 = min(n, r0 + _ROW_CHUNK)
        diff = X[r0:r1].astype(np.float64) - C[labels[r0:r1]]
        d2[r0:r1] = np.einsum("ij,ij->i", diff, diff)
    return d2


def _d2_seeding(
    X: np.ndarray, sq: np.ndarray, n_new: int, rng: np.random.Generator, d2: np.ndarray | None,
    *, block: int = 64, weights: np.ndarray | None = None,
) -> np.ndarray:
    """``n_new`` k-means++ centers (D^2 sampling), given each row's ``d2`` to existing ones.

    ``d2=None``: no center yet, the first is uniform (with ``weights``: in
    proportion to them). Later draws follow ``weights * d2``. Queued centers are
    applied ``block`` at a time as one matrix product; in between, a draw
    proposed from the stale table is accepted with probability exact / stale
    (rejection sampling, so every draw follows the exact D^2 distribution).
    While nothing is queued the table is exact and a draw takes one
    ``rng.random()``: with ``block=1`` this is the textbook loop. Returns the
    chosen row indices.
    """
    n = X.shape[0]
    chosen: list[int] = []
    taken = np.zeros(n, dtype=bool)
    if d2 is None:
        if weights is None:
            first = int(rng.integers(n))
        else:
            cw = np.cumsum(weights)
            first = min(int(np.searchsorted(cw, rng.random() * cw[-1], side="right")), n - 1)
        chosen.append(first)
        taken[first] = True
        _, d2 = _nearest(X, sq, X[[first]].astype(np.float64))
    else:
        d2 = d2.copy()
    pending: list[int] = []

    def flush() -> np.ndarray:
        if pending:
            _, dp = _nearest(X, sq, X[pending].astype(np.float64))
            np.minimum(d2, dp, out=d2)
            pending.clear()
        d2[taken] = 0.0
        return np.cumsum(d2 if weights is None else d2 * weights)

    cs = flush()
    misses = 0
    while len(chosen) < min(n_new, n):
        total = cs[-1]
        if not total > 0.0:  # every row sits on a center: fill uniformly
            rest = np.flatnonzero(~taken)
            extra = rng.choice(rest, size=min(n_new - len(chosen), rest.size), replace=False)
            chosen.extend(int(i) for i in extra)
            break
        i = min(int(np.searchsorted(cs, rng.random() * total, side="right")), n - 1)
        if taken[i] or d2[i] <= 0.0:
            misses += 1
        else:
            e = d2[i]
            if pending:
                diff = X[pending].astype(np.float64) - X[i].astype(np.float64)
                e = min(e, float(np.einsum("ij,ij->i", diff, diff).min()))
            if not pending or rng.random() * d2[i] < e:  # exact table: always accepted
                chosen.append(i)
                taken[i] = True
                pending.append(i)
                misses = 0
            else:
                misses += 1
        if len(pending) >= block or misses > 32:
            cs = flush()
            misses = 0
    return np.asarray(chosen, dtype=np.int64)


class _Clustering:
    """One k-means clustering of the pool, with TypiClust's neighbour lists for it."""

    def __init__(self, labels: np.ndarray, centers: np.ndarray, d2: np.ndarray):
        self.labels, self.centers, self.d2 = labels, centers, d2
        self.neighbours: dict[int, _ClusterNeighbours] = {}

    @property
    def n_clusters(self) -> int:
        return int(self.centers.shape[0])


class _ClusteringMemo:
    """TypiClust's clusterings of one pool, kept by a :class:`PoolState`
    (a stateless call uses a fresh one: its cold k-means).

    A clustering with the requested number of clusters is reused as it is
    (with its neighbour lists). When more clusters are needed than the last
    clustering has (the labeled set grew), its centers are kept, the extra ones
    are added by D^2 sampling from each item's distance to its center, items
    closer to a new center move to it, and the means are updated: no pass over
    the pool against every center. Otherwise (the first call, or fewer clusters)
    k-means++ seeding and ``cold_iters`` Lloyd iterations on the whole pool.
    """

    def __init__(self, cold_iters: int = 4, keep: int = 3):
        self.cold_iters = cold_iters
        self.keep = keep
        self.by_k: dict[int, _Clustering] = {}
        self.last: _Clustering | None = None

    def get(self, X: np.ndarray, sq: np.ndarray, n_clusters: int, seed: int,
            counters: Any) -> _Clustering:
        hit = self.by_k.get(n_clusters)
        if hit is not None:
            counters["typiclust:reused"] += 1
            return hit
        rng = np.random.default_rng(seed)
        last = self.last
        if last is not None and last.n_clusters < n_clusters:
            counters["typiclust:warm"] += 1
            new = _d2_seeding(X, sq, n_clusters - last.n_clusters, rng, last.d2)
            C_new = X[new].astype(np.float64)
            lab_new, d_new = _nearest(X, sq, C_new)
            move = d_new < last.d2
            labels = last.labels.copy()
            labels[move] = lab_new[move] + last.n_clusters
            C = _means(X, labels, np.vstack([last.centers, C_new]))
            out = _Clustering(labels, C, _own_d2(X, labels, C))
        else:
            counters["typiclust:cold"] += 1
            C = X[_d2_seeding(X, sq, n_clusters, rng, None)].astype(np.float64)
            labels, C, d2 = _lloyd(X, sq, C, self.cold_iters)
            out = _Clustering(labels, C, d2)
        self.by_k[n_clusters] = out
        while len(self.by_k) > self.keep:
            self.by_k.pop(next(iter(self.by_k)))
        self.last = out
        return out


def _typiclust(
    X: np.ndarray,
    labeled: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    knn: int,
    min_cluster_size: int,
    max_clusters: int,
    state: Any = None,
) -> np.ndarray:
    """Kernel of :func:`typiclust`; trusts its inputs (``X`` is ``state.X`` with a state)."""
    if k == 0:
        return np.empty(0, dtype=np.int64)
    n_labeled = int(np.count_nonzero(labeled))
    n_clusters = min(n_labeled + k, max_clusters, X.shape[0])
    if state is None:
        got = _ClusteringMemo().get(X, _sq_norms(X), n_clusters, _seed(rng), Counter())
        clusters, cache = got.labels, None
    else:
        memo = state.slot(("typiclust",), _ClusteringMemo)
        got = memo.get(X, state.sq_norms, n_clusters, _seed(rng), state.counters)
        clusters, cache = got.labels, got.neighbours
    return _typiclust_pick(X, clusters, labeled, k, knn=knn, min_cluster_size=min_cluster_size,
                           cache=cache)


def prepare_typiclust(state: Any, n_clusters: int, seed: int) -> None:
    """Cluster ``state``'s pool into ``n_clusters`` ahead of a round (see ``_ClusteringMemo``)."""
    memo = state.slot(("typiclust",), _ClusteringMemo)
    memo.get(state.X, state.sq_norms, min(n_clusters, state.n_pool), seed, state.counters)


def check_typiclust_params(
    *, knn: Any = 20, min_cluster_size: Any = 5, max_clusters: Any = 500
) -> tuple[int, int, int]:
    """Validate TypiClust's options."""
    return (
        int(check_number(knn, name="knn", low=1, integer=True)),
        int(check_number(min_cluster_size, name="min_cluster_size", low=0, integer=True)),
        int(check_number(max_clusters, name="max_clusters", low=1, integer=True)),
    )


def typiclust(
    embeddings: Any,
    k: int,
    *,
    labeled: Any = None,
    rng: Any = None,
    knn: int = 20,
    min_cluster_size: int = 5,
    max_clusters: int = 500,
    state: Any = None,
) -> np.ndarray:
    """TypiClust (Hacohen, Dekel & Weinshall 2022): typical items of uncovered clusters.

    1. Cluster the whole pool (labeled and unlabeled) into
       ``min(|labeled| + k, max_clusters)`` clusters: k-means++ seeding, then
       up to 4 Lloyd iterations on the whole pool (the authors run
       scikit-learn's ``MiniBatchKMeans`` above 50 clusters: an approximate
       k-means too).
    2. Visit clusters with no labeled item first, largest first (then those
       with fewer labeled items), skipping clusters of ``min_cluster_size`` items
       or fewer until the others are exhausted; cycle if ``k`` is larger.
    3. From each, take the most *typical* unlabeled item: the inverse mean
       Euclidean distance to its ``knn`` nearest neighbours within the cluster.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        Pool embeddings (ideally self-supervised ones).
    k : int
        Number of items to pick.
    labeled : array-like of shape (N,), bool, optional
        Items already labeled (never picked; they mark clusters covered).
    rng : None, int or numpy.random.Generator, optional
        Seeds the clustering; same seed, same picks.
    knn : int, default 20
        Neighbours in the typicality estimate (fewer in small clusters).
    min_cluster_size : int, default 5
        Clusters this small are visited last (the authors drop them).
    max_clusters : int, default 500
        Cap on the number of clusters (the authors' cap).
    state : PoolState, optional
        Per-pool state (:class:`~alaas_lab.strategies.PoolState`) built for
        ``embeddings``. Its first round picks what a stateless call picks; the
        clustering is then kept and reused while the number of clusters stays
        the same; when it grows, the previous centers are kept and only the
        extra ones are added (see ``_ClusteringMemo``). Neighbour lists are
        kept too.

    Returns
    -------
    indices : ndarray of shape (k,), int64
        In the order of the visited clusters.

    Notes
    -----
    Time: one k-means on the pool, then ``O(n_c^2 d)`` per pick for a cluster
    of ``n_c`` remaining items (blocked; memory ``O(2048 n_c)``).
    """
    state = check_state(state)
    k, _, X, lab = check_pool(
        k=k, embeddings=embeddings, labeled=labeled, need_embeddings=True, who="typiclust",
        state=state,
    )
    knn, mcs, mxc = check_typiclust_params(
        knn=knn, min_cluster_size=min_cluster_size, max_clusters=max_clusters
    )
    return _typiclust(
        X, lab, k, check_random_state(rng), knn=knn, min_cluster_size=mcs, max_clusters=mxc,
        state=state,
    )


# ----------------------------------------------------------------------------- registry entries
def _entry_dbal(k, *, probs, embeddings, labeled, rng, beta=10, measure="margin", state=None):
    """Registry entry: validated ``probs`` [N, C] and ``embeddings``; checks options."""
    beta, measure = check_dbal_params(beta=beta, measure=measure)
    return _dbal(probs, embeddings, labeled, k, rng, beta=beta, measure=measure, state=state)


def _entry_typiclust(
    k, *, probs, embeddings, labeled, rng, knn=20, min_cluster_size=5, max_clusters=500,
    state=None,
):
    """Registry entry: validated ``embeddings``; checks options."""
    knn, mcs, mxc = check_typiclust_params(
        knn=knn, min_cluster_size=min_cluster_size, max_clusters=max_clusters
    )
    return _typiclust(embeddings, labeled, k, rng, knn=knn, min_cluster_size=mcs, max_clusters=mxc,
                      state=state)
