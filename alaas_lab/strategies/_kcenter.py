"""K-center greedy (farthest-first traversal), exact and fast.

The textbook greedy (Gonzalez 1985; Sener & Savarese 2018, Alg. 1) keeps, for
every pool item, the distance to its nearest center, and repeatedly picks the
item farthest from all centers. Done naively that is one full pass over the
``N x d`` pool per pick, a memory-bound matrix-vector product. This kernel
returns the *same picks* but does far less work per pick:

1. **Deferred, blocked updates.** New centers are queued (up to ``block`` of
   them) instead of being applied to the whole pool at once. Applying a queue
   is one matrix-matrix product (compute-bound BLAS-3, ~20x the arithmetic rate
   of the matrix-vector product on the same data).
2. **Exact picks while updates are deferred.** After each flush the
   ``n_candidates`` items with the largest distances are copied aside; only
   they are updated against each new center (a small product). Every other
   item's stored distance is an upper bound of its true one, and ``tau``, the
   largest of them, bounds them all. The best candidate is the true farthest
   item whenever its exact distance is above ``tau``; otherwise the queue is
   flushed and the choice is made on exact distances. No pick is approximate.
3. **Triangle-inequality pruning.** The pool is split once into coarse groups
   (a few Lloyd steps on a subsample), stored contiguously. A queued center
   ``c`` can lower the distance of an item ``x`` in group ``g`` (anchor ``z_g``,
   radius ``R_g``, largest current distance ``m_g``) only if
   ``d(c, z_g) < R_g + sqrt(m_g)``; other (group, center) pairs are skipped.
   The same bound, per candidate, skips most candidate updates. On clustered
   embeddings most pairs are skipped, on structureless data none.

Distances are squared Euclidean, computed in float64 on a copy of the pool
(sorted by group, not centred, so integer-valued data stays exact) as
``|x|^2 + |c|^2 - 2 x.c``: ``O(N d)`` extra memory, never ``N x N``. Ties go to
the lowest pool index, as ``numpy.argmax`` does in the textbook loop. Threads:
the per-pick products run on one BLAS thread (threadpoolctl), the blocked
updates on the caller's BLAS setting.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_info, threadpool_limits

from .._validation import check_random_state
from ._common import check_number, check_pool
from ._state import check_state

__all__ = ["kcenter_greedy"]

_ROW_CHUNK = 4096  # rows per distance block: a block is _ROW_CHUNK x block float64


def _sqdist_rows(
    X: np.ndarray, sq: np.ndarray, C: np.ndarray, csq: np.ndarray, r0: int, r1: int
) -> np.ndarray:
    """Squared distances between rows ``X[r0:r1]`` and centers ``C`` (no clipping)."""
    D = X[r0:r1] @ C.T
    D *= -2.0
    D += sq[r0:r1, None]
    D += csq[None, :]
    return D


def _coarse_groups(X: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Split the rows of ``X`` into coarse groups for pruning.

    A few Lloyd steps on a fixed subsample give the anchors; every row joins its
    nearest anchor (computed in the input's dtype: only the kernel's speed
    depends on the groups, never its picks, so neither precision nor the fixed
    internal seed matter).

    Returns
    -------
    group : ndarray of shape (N,), int64
        Group id of each row (ids ``0..G-1``, every group non-empty).
    anchors : ndarray of shape (G, d), float64
    """
    n = X.shape[0]
    sub_rng = np.random.default_rng(0x5EED)
    sub = X[np.sort(sub_rng.choice(n, size=min(n, 32 * n_groups), replace=False))]
    sub = sub.astype(np.float64)
    Z = sub[sub_rng.choice(sub.shape[0], size=n_groups, replace=False)].copy()
    sub_sq = np.einsum("ij,ij->i", sub, sub)
    cols = np.arange(sub.shape[0])
    for _ in range(5):
        zsq = np.einsum("ij,ij->i", Z, Z)
        lab = _sqdist_rows(sub, sub_sq, Z, zsq, 0, sub.shape[0]).argmin(axis=1)
        counts = np.bincount(lab, minlength=n_groups)
        onehot = sparse.csr_matrix((np.ones(cols.size), (lab, cols)), shape=(n_groups, cols.size))
        nz = counts > 0
        Z[nz] = (onehot @ sub)[nz] / counts[nz, None]
    Zx = Z.astype(X.dtype)
    zsq = np.einsum("ij,ij->i", Zx, Zx)
    group = np.empty(n, dtype=np.int64)
    for r0 in range(0, n, _ROW_CHUNK):
        r1 = min(n, r0 + _ROW_CHUNK)
        D = X[r0:r1] @ Zx.T
        D *= -2.0
        D += zsq  # the row norm does not change which anchor is nearest
        group[r0:r1] = D.argmin(axis=1)
    used, group = np.unique(group, return_inverse=True)
    return group, Z[used]


class _PoolIndex:
    """The pool-only part of a traversal: rows sorted by coarse group, as float64.

    Everything here depends on the pool alone, so a
    :class:`~alaas_lab.strategies.PoolState` keeps it across rounds. Arrays are
    in *position* order (rows sorted by group); ``perm[pos]`` is the pool index
    of a position and ``pos_of`` its inverse.
    """

    def __init__(self, X: np.ndarray, n_groups: int):
        # The float64 copy is kept uncentred so integer-valued data gives exact ties.
        X = np.asarray(X)
        n, d = X.shape
        n_groups = max(1, min(n_groups, n // 8))
        if n_groups > 1:
            group, Z = _coarse_groups(X, n_groups)
            perm = np.argsort(group, kind="stable")
            group = group[perm]
            Xc = np.empty((n, d), dtype=np.float64)
            for r0 in range(0, n, _ROW_CHUNK):  # gather and widen in one pass
                Xc[r0 : r0 + _ROW_CHUNK] = X[perm[r0 : r0 + _ROW_CHUNK]]
            starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
        else:
            perm = np.arange(n)
            Xc = np.ascontiguousarray(X, dtype=np.float64)
            Z = Xc.mean(axis=0, keepdims=True)
            starts = np.zeros(1, dtype=np.int64)
        sq = np.einsum("ij,ij->i", Xc, Xc)
        self.X, self.sq, self.perm, self.n, self.Z = Xc, sq, perm, n, Z
        self.pos_of = np.empty(n, dtype=np.int64)
        self.pos_of[perm] = np.arange(n)
        self.starts = starts
        self.ends = np.r_[starts[1:], n]
        self.zsq = np.einsum("ij,ij->i", Z, Z)
        G = starts.size
        # group radius: the largest member distance to its anchor, in float64
        rad2 = np.empty(G)
        for g in range(G):
            s, e = starts[g], self.ends[g]
            rad2[g] = np.max(sq[s:e] + self.zsq[g] - 2.0 * (Xc[s:e] @ Z[g]))
        self.R = np.sqrt(np.maximum(rad2, 0.0))
        self.scale = float(sq.max(initial=0.0)) + 1.0
        self.slack = 1e-6 * np.sqrt(self.scale)  # absolute slack of the pruning tests
        self.group_of = np.repeat(np.arange(G), self.ends - starts)


class _FarthestFirst:
    """State of one farthest-first traversal (see the module docstring).

    All arrays are in *position* order (rows sorted by group); ``perm[pos]`` is
    the pool index of a position.
    """

    def __init__(
        self,
        X: np.ndarray | _PoolIndex,
        *,
        block: int,
        n_candidates: int,
        n_groups: int,
    ):
        ix = X if isinstance(X, _PoolIndex) else _PoolIndex(X, n_groups)
        self.index = ix
        self.X, self.sq, self.perm, self.n, self.Z = ix.X, ix.sq, ix.perm, ix.n, ix.Z
        self.pos_of, self.starts, self.ends, self.zsq = ix.pos_of, ix.starts, ix.ends, ix.zsq
        self.R, self.scale, self.slack, self.group_of = ix.R, ix.scale, ix.slack, ix.group_of
        n, G = self.n, self.starts.size
        self.mind = np.full(n, np.inf)
        self.gmax = np.full(G, np.inf)
        self.block = block
        self.n_candidates = n_candidates
        self.pending: list[int] = []
        self.flush_threads: int | None = None
        self.stats = {"flushes": 0, "pairs": 0, "pairs_full": 0, "picks_from_candidates": 0}

    def load(self, mind: np.ndarray) -> None:
        """Start from an exact distance table (position order; -1 marks centers)."""
        self.mind[:] = mind
        self.pending = []
        self.gmax = np.maximum.reduceat(self.mind, self.starts)

    # -- deferred updates ------------------------------------------------------------
    def flush(self) -> None:
        """Apply every queued center to the stored distances (pruned, blocked)."""
        if not self.pending:
            return
        threads = self.flush_threads
        with threadpool_limits(threads, user_api="blas") if threads else nullcontext():
            self._flush()

    def _flush(self) -> None:
        P = np.asarray(self.pending, dtype=np.int64)
        self.pending = []
        Cp = self.X[P]
        cn = self.sq[P]
        G = self.starts.size
        if G > 1:
            dz2 = self.zsq[:, None] + cn[None, :] - 2.0 * (self.Z @ Cp.T)
            dz = np.sqrt(np.maximum(dz2, 0.0))
            reach = self.R + np.sqrt(np.maximum(self.gmax, 0.0))
            # conservative slack: float error can only make us do more work, never less
            active = dz < reach[:, None] * (1.0 + 1e-6) + self.slack
            active[self.gmax < 0.0] = False  # every item of the group is taken
        else:
            active = np.ones((1, P.size), dtype=bool)
        mind = self.mind
        self.stats["flushes"] += 1
        self.stats["pairs_full"] += self.n * P.size
        sizes = self.ends - self.starts
        if sizes @ active.sum(axis=1) > 0.6 * self.n * P.size:
            # pruning would skip little: one contiguous pass is faster than many groups
            active = np.ones((1, P.size), dtype=bool)
            groups, starts, ends = [0], [0], [self.n]
        else:
            groups = np.flatnonzero(active.any(axis=1))
            starts, ends = self.starts, self.ends
        for g in groups:
            cols = np.flatnonzero(active[g])
            C, csq = (Cp, cn) if cols.size == P.size else (Cp[cols], cn[cols])
            s, e = int(starts[g]), int(ends[g])
            self.stats["pairs"] += (e - s) * cols.size
            for r0 in range(s, e, _ROW_CHUNK):
                r1 = min(e, r0 + _ROW_CHUNK)
                d = _sqdist_rows(self.X, self.sq, C, csq, r0, r1).min(axis=1)
                np.maximum(d, 0.0, out=d)
                np.minimum(mind[r0:r1], d, out=mind[r0:r1])  # taken items stay at -1
        self.gmax = np.maximum.reduceat(mind, self.starts)

    def add_centers(self, positions: np.ndarray) -> None:
        """Make ``positions`` centers (taken); used for the labeled set."""
        for i in range(0, positions.size, self.block):
            chunk = positions[i : i + self.block]
            self.mind[chunk] = -1.0
            self.pending.extend(chunk.tolist())
            self.flush()

    # -- picking ---------------------------------------------------------------------
    def _exact_argmax(self) -> int:
        v = self.mind.max()
        ties = np.flatnonzero(self.mind == v)
        return int(ties[np.argmin(self.perm[ties])]) if ties.size > 1 else int(ties[0])

    def run(self, k: int, out: np.ndarray, values: np.ndarray, start: int = 0) -> None:
        """Fill ``out[start:k]`` with the next picks (pool indices) and their distances."""
        n, M = self.n, self.n_candidates
        mind, perm = self.mind, self.perm
        cand = None
        tau = -np.inf
        cv = xc = csq = cR = cgroup = None
        i = start
        streak = 0  # picks served by the current candidate set
        while i < k:
            p = -1
            if cand is not None:
                j = int(np.argmax(cv))
                v = cv[j]
                if v > tau:
                    p = int(cand[j])
                    streak += 1
                    self.stats["picks_from_candidates"] += 1
                else:
                    cand = None
                    if streak < self.block // 4:  # candidates ran dry early: keep more
                        M = min(4 * self.n_candidates, 2 * M)
            if cand is None:
                streak = 0
                self.flush()
                p = self._exact_argmax()
                v = mind[p]
                # the M items with the largest exact distances, in pool-index order
                if M + 1 >= n:
                    cand = np.arange(n)
                    tau = -np.inf
                else:
                    part = np.argpartition(mind, n - M - 1)
                    tau = mind[part[n - M - 1]]
                    cand = part[n - M :]
                cand = cand[np.argsort(perm[cand], kind="stable")]
                cv = mind[cand].copy()
                xc = self.X[cand]
                csq = self.sq[cand]
                cR = self.R[self.group_of[cand]]
                cgroup = self.group_of[cand]
            if v < 0.0:  # pragma: no cover - callers guarantee k <= unlabeled count
                raise RuntimeError("k-center ran out of unlabeled items")
            out[i] = perm[p]
            values[i] = v
            i += 1
            mind[p] = -1.0
            self.pending.append(p)
            # update the candidates; by the triangle inequality p can only come
            # closer to a candidate c than sqrt(cv_c) if d(p, z_g) - R_g < sqrt(cv_c)
            xp = self.X[p]
            need = None
            if self.Z.shape[0] > 1:
                dz = np.sqrt(np.maximum(self.zsq + self.sq[p] - 2.0 * (self.Z @ xp), 0.0))
                low = dz[cgroup] - cR
                need = low < np.sqrt(np.maximum(cv, 0.0)) * (1.0 + 1e-6) + self.slack
                if np.count_nonzero(need) > 0.5 * cand.size:
                    need = None
            if need is None:
                d = xc @ xp
                d *= -2.0
                d += csq
                d += self.sq[p]
                np.minimum(cv, d, out=cv)
            else:
                rows = np.flatnonzero(need)
                d = xc[rows] @ xp
                d *= -2.0
                d += csq[rows]
                d += self.sq[p]
                cv[rows] = np.minimum(cv[rows], d)
            cv[cand == p] = -1.0
            if len(self.pending) >= self.block:
                cand = None


class _KCenterMemo:
    """What a :class:`~alaas_lab.strategies.PoolState` keeps for k-center traversals.

    The pool index, and a few exact nearest-center distance tables, each with
    the set of centers it holds. A traversal whose labeled set contains a
    stored set starts from that table and applies only the centers it lacks;
    since every entry is the exact minimum over its centers, the picks are
    those of a traversal from scratch.
    """

    def __init__(self, X: np.ndarray, n_groups: int, max_tables: int = 8):
        self.index = _PoolIndex(X, n_groups)
        self.max_tables = max_tables
        self.tables: list[tuple[np.ndarray, np.ndarray, int]] = []  # (centers, mind, count)

    def closest(self, labeled: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """The stored table with the most centers, all labeled, and the labeled items it lacks."""
        best, best_count = None, 0
        for centers, mind, count in self.tables:
            if count > best_count and not np.any(centers & ~labeled):
                best, best_count = (centers, mind), count
        if best is None:
            return None, np.flatnonzero(labeled)
        return best[1], np.flatnonzero(labeled & ~best[0])

    def remember(self, centers: np.ndarray, mind: np.ndarray) -> None:
        """Store an exact table (no pending centers) for the set ``centers``."""
        self.tables = [t for t in self.tables if not np.array_equal(t[0], centers)]
        self.tables.append((centers.copy(), mind.copy(), int(np.count_nonzero(centers))))
        del self.tables[: -self.max_tables]


def _kcenter_greedy(
    X: np.ndarray,
    labeled: np.ndarray,
    k: int,
    *,
    first: int | None = None,
    block: int = 256,
    n_candidates: int = 1024,
    n_groups: int = 128,
    return_values: bool = False,
    stats: dict[str, Any] | None = None,
    state: Any = None,
    remember_picks: bool = True,
    base: dict[str, Any] | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Kernel of :func:`kcenter_greedy`; trusts its inputs.

    Parameters
    ----------
    X : ndarray of shape (N, d)
        Finite embeddings.
    labeled : ndarray of shape (N,), bool
        Initial centers.
    k : int
        ``k <=`` number of unlabeled items.
    first : int, optional
        Pool index of the first pick, required when nothing is labeled.
    block, n_candidates, n_groups : int
        Tuning knobs (queue length, candidate count, coarse groups); they change
        speed, never the picks.
    return_values : bool
        Also return each pick's squared distance to its nearest center at the
        time it was picked (``inf`` for a ``first`` pick).
    stats : dict, optional
        Filled with work counters (flushes, distance pairs computed).
    state : PoolState, optional
        Keeps the pool index and exact distance tables between calls (``X`` must
        be ``state.X``). The table of the labeled set is stored, and with
        ``remember_picks`` also that of the labeled set plus the picks (what the
        next round's labeled set usually is).
    base : dict, optional
        Filled with ``"mind"``, every position's squared distance to the initial
        centers (labeled items, or the ``first`` pick; ``-1`` at the centers), and
        ``"index"``, the :class:`_PoolIndex` (position order).

    Returns
    -------
    picks : ndarray of shape (k,), int64
    values : ndarray of shape (k,), float64 (only with ``return_values``)
    """
    picks = np.empty(k, dtype=np.int64)
    values = np.empty(k, dtype=np.float64)
    if k > 0:
        memo = None
        if state is not None:
            memo = state.slot(("kcenter", n_groups), lambda: _KCenterMemo(state.X, n_groups))
            ff = _FarthestFirst(memo.index, block=block, n_candidates=n_candidates,
                                n_groups=n_groups)
        else:
            ff = _FarthestFirst(X, block=block, n_candidates=n_candidates, n_groups=n_groups)
        start = 0
        if labeled.any():
            new = np.flatnonzero(labeled)
            if memo is not None:
                table, new = memo.closest(labeled)
                if table is not None:
                    ff.load(table)
                    state.counters["kcenter:reused"] += 1
                state.counters["kcenter:centers_applied"] += int(new.size)
            ff.add_centers(ff.pos_of[new])
            if memo is not None and new.size:
                memo.remember(labeled, ff.mind)
        else:
            if first is None:
                raise ValueError("first is required when nothing is labeled")
            picks[0], values[0] = first, np.inf
            ff.add_centers(ff.pos_of[[first]])
            start = 1
        if base is not None:
            base["mind"], base["index"] = ff.mind.copy(), ff.index
        # The per-pick products are small: threading them costs more than it saves
        # (and hurts on a busy machine), so the pick loop runs on one BLAS thread
        # and only the blocked updates use the caller's BLAS thread setting.
        blas = [i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas and max(blas) > 1:
            ff.flush_threads = max(blas)
            with threadpool_limits(1, user_api="blas"):
                ff.run(k, picks, values, start)
        else:
            ff.run(k, picks, values, start)
        if memo is not None and remember_picks:
            ff.flush()  # the next round starts from here, with these picks labeled
            centers = labeled.copy()
            centers[picks] = True
            memo.remember(centers, ff.mind)
        if stats is not None:
            stats.update(ff.stats)
    return (picks, values) if return_values else picks


def prepare_kcenter(state: Any, labeled: np.ndarray, *, n_groups: int = 128) -> None:
    """Build ``state``'s pool index and the distance table of ``labeled`` ahead of a round."""
    memo = state.slot(("kcenter", n_groups), lambda: _KCenterMemo(state.X, n_groups))
    if not labeled.any():
        return
    table, new = memo.closest(labeled)
    if table is not None and new.size == 0:
        return
    ff = _FarthestFirst(memo.index, block=256, n_candidates=1024, n_groups=n_groups)
    if table is not None:
        ff.load(table)
    ff.add_centers(ff.pos_of[new])
    memo.remember(labeled, ff.mind)


def check_kcenter_params(
    *, block: Any = 256, n_candidates: Any = 1024, n_groups: Any = 128
) -> dict[str, int]:
    """Validate the speed knobs shared by :func:`kcenter_greedy` and ``coreset``."""
    return {
        "block": int(check_number(block, name="block", low=1, integer=True)),
        "n_candidates": int(check_number(n_candidates, name="n_candidates", low=1, integer=True)),
        "n_groups": int(check_number(n_groups, name="n_groups", low=1, integer=True)),
    }


def first_center(labeled: np.ndarray, rng: np.random.Generator) -> int | None:
    """The seed of a traversal: None if something is labeled, else a uniform draw."""
    if labeled.any():
        return None
    return int(rng.integers(labeled.size))


def kcenter_greedy(
    embeddings: Any,
    k: int,
    *,
    labeled: Any = None,
    rng: Any = None,
    block: int = 256,
    n_candidates: int = 1024,
    n_groups: int = 128,
    state: Any = None,
) -> np.ndarray:
    """Greedy k-center (farthest-first traversal) in Euclidean embedding space.

    Starting from the labeled items as centers, repeatedly pick the unlabeled
    item farthest from its nearest center (Sener & Savarese 2018, Alg. 1; the
    classic 2-approximation of the k-center problem). Picks are exactly those
    of the textbook loop, ties going to the lowest index; see the module
    docstring for how it avoids a pass over the pool per pick.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        Pool embeddings (labeled and unlabeled items).
    k : int
        Number of items to pick.
    labeled : array-like of shape (N,), bool, optional
        Initial centers (never picked).
    rng : None, int or numpy.random.Generator, optional
        Used only when nothing is labeled: the first pick is then uniform over
        the pool.
    block : int, default 256
        Centers queued before one blocked update of the whole pool.
    n_candidates : int, default 1024
        Items kept exactly up to date between blocked updates.
    n_groups : int, default 128
        Coarse groups for triangle-inequality pruning (1 disables it).
    state : PoolState, optional
        Per-pool state (:class:`~alaas_lab.strategies.PoolState`) built for
        ``embeddings``: keeps the grouped pool and exact nearest-center distances
        between calls, so a later round applies only the newly labeled centers.
        The picks are the same as without it.

    Returns
    -------
    indices : ndarray of shape (k,), int64
        In the order picked (each the farthest item at its turn).

    Notes
    -----
    Time ``O(f N d (|L| + k))`` flops in blocked products (``f`` the fraction
    of (group, center) pairs pruning keeps: 1 on structureless data, a few
    percent on clustered pools) plus at most ``O(k n_candidates d)`` for the
    candidates; memory ``O(N d)`` for a float64 copy of the pool.
    """
    state = check_state(state)
    k, _, X, lab = check_pool(
        k=k, embeddings=embeddings, labeled=labeled, need_embeddings=True, who="kcenter_greedy",
        state=state,
    )
    knobs = check_kcenter_params(block=block, n_candidates=n_candidates, n_groups=n_groups)
    first = first_center(lab, check_random_state(rng))
    return _kcenter_greedy(X, lab, k, first=first, state=state, **knobs)


def _entry_kcenter_greedy(
    k, *, probs, embeddings, labeled, rng, block=256, n_candidates=1024, n_groups=128, state=None
):
    """Registry entry: validated ``embeddings``; checks the speed knobs."""
    knobs = check_kcenter_params(block=block, n_candidates=n_candidates, n_groups=n_groups)
    return _kcenter_greedy(embeddings, labeled, k, first=first_center(labeled, rng), state=state,
                           **knobs)
