"""Core-set selection: the robust k-center of Sener & Savarese (2018), without a MIP solver.

Sener & Savarese (ICLR 2018, section 4.2 and Alg. 2) improve the greedy
k-center solution ``s_g`` (radius ``delta``) by a binary search over the
covering radius ``r`` in ``[delta / 2, delta]``: a radius is *feasible* when
``k`` new centers plus the labeled ones cover every pool item within ``r``,
except at most ``Xi`` outliers. They decide feasibility with a mixed-integer
program (Gurobi). Here that oracle is the greedy maximum-coverage heuristic,
restricted to a candidate net:

1. Candidates: the first ``m = candidate_factor * k + Xi`` picks of the exact
   k-center greedy (a net of the pool; its first ``k`` picks are ``s_g``, and
   ``delta`` is the distance of pick ``k + 1``).
2. Every (item, candidate) pair within ``delta`` is stored (sparse, built in
   blocks; never ``N x N``), with each item's distance to the labeled set.
3. ``feasible(r)``: repeat ``k`` times: take the candidate whose ``r``-ball
   holds the most still-uncovered items (ties: earliest in the net), mark them
   covered. Feasible when at most ``Xi`` items stay uncovered.
4. Binary search over the distinct pair distances in ``[delta / 2, delta]``
   (the snapping of Alg. 2). The centers of the smallest feasible radius win;
   if no radius is feasible, ``s_g`` is returned. If coverage completes before
   ``k`` centers, the rest is filled in net (farthest-first) order.

So, unlike ``kcenter_greedy``, ``coreset`` may leave up to ``Xi`` far-away
items uncovered (it is robust to outliers), and it places centers where they
cover the most items rather than at the farthest one.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_random_state
from ..errors import InputError
from ._common import check_number, check_pool
from ._kcenter import (
    _ROW_CHUNK,
    _kcenter_greedy,
    _sqdist_rows,
    check_kcenter_params,
    first_center,
)
from ._state import check_state

__all__ = ["coreset"]


def _check_pairs(nnz: int, max_pairs: int) -> None:
    if nnz > max_pairs:
        raise InputError(
            f"coreset: more than max_pairs={max_pairs} (item, candidate) pairs lie within "
            "the greedy radius; lower candidate_factor, or raise max_pairs if memory "
            "allows (each pair costs about 50 bytes)."
        )


def _ranges(indptr: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(indptr[r], indptr[r + 1])`` for every ``r`` in ``rows``."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offs = np.repeat(starts - np.cumsum(lens) + lens, lens)
    return offs + np.arange(total)


class _CoverGraph:
    """(item, candidate) pairs within the greedy radius, in both CSR orders.

    Built over a k-center pool index (items are *positions*, rows sorted by
    coarse group); ``lab_d2`` (positions) is every item's squared distance to
    the fixed centers, already known from the traversal. A (group, candidate)
    pair is skipped when the triangle inequality puts the whole group beyond
    the radius, so on clustered pools most distances are never computed. The
    coverage search does not depend on the order of the items, so it picks
    what a graph over the pool in index order would pick.
    """

    def __init__(
        self, ix: Any, net_pos: np.ndarray, radius2: float, max_pairs: int, lab_d2: np.ndarray
    ):
        n = ix.n
        C, csq = ix.X[net_pos], ix.sq[net_pos]
        # tiny slack so a pair exactly at the radius survives rounding; the search
        # itself only ever compares stored values against stored values
        limit = radius2 * (1.0 + 1e-12)
        dz = np.sqrt(np.maximum(ix.zsq[:, None] + csq[None, :] - 2.0 * (ix.Z @ C.T), 0.0))
        reach = (ix.R + np.sqrt(max(radius2, 0.0)))[:, None] * (1.0 + 1e-6) + ix.slack
        active = dz <= reach
        pts, cands, d2s = [], [], []
        nnz = 0
        for g in np.flatnonzero(active.any(axis=1)):
            cols = np.flatnonzero(active[g])
            Cg, cg = C[cols], csq[cols]
            for r0 in range(int(ix.starts[g]), int(ix.ends[g]), _ROW_CHUNK):
                r1 = min(int(ix.ends[g]), r0 + _ROW_CHUNK)
                D = _sqdist_rows(ix.X, ix.sq, Cg, cg, r0, r1)
                np.maximum(D, 0.0, out=D)
                i, j = np.nonzero(D <= limit)
                nnz += i.size
                _check_pairs(nnz, max_pairs)
                pts.append(i + r0)
                cands.append(cols[j])
                d2s.append(D[i, j])
        self.lab_d2 = lab_d2
        self._index_pairs(n, net_pos.size, pts, cands, d2s)

    def _index_pairs(self, n: int, m: int, pts: list, cands: list, d2s: list) -> None:
        """Both CSR orders of the pairs (``pts`` come in item order)."""
        pt = np.concatenate(pts).astype(np.int64) if pts else np.empty(0, dtype=np.int64)
        cj = np.concatenate(cands).astype(np.int64) if cands else np.empty(0, dtype=np.int64)
        d2 = np.concatenate(d2s) if d2s else np.empty(0)
        self.m = m
        # by item (rows are produced in item order already)
        self.item_ptr = np.searchsorted(pt, np.arange(n + 1))
        self.item_cand, self.item_d2 = cj, d2
        # by candidate
        order = np.argsort(cj, kind="stable")
        self.cand_ptr = np.searchsorted(cj[order], np.arange(self.m + 1))
        self.cand_item, self.cand_d2 = pt[order], d2[order]
        self.pair_item = pt

    def distinct_radii(self, low2: float, high2: float) -> np.ndarray:
        """Sorted distinct pair distances (squared) in ``[low2, high2]``."""
        d = self.item_d2
        return np.unique(d[(d >= low2) & (d <= high2)])

    def greedy_cover(self, r2: float, k: int) -> tuple[list[int], int]:
        """Greedy max coverage with ``k`` candidate balls of squared radius ``r2``.

        Returns the chosen net positions (in order) and the number of items left
        uncovered. Distances within a relative ``1e-12`` of ``r2`` count as
        inside: the radius is itself a stored distance, and an item at exactly
        that distance from another center (the greedy radius is such a tie by
        construction) must not fall out because the two were rounded apart.
        """
        r2 = r2 * (1.0 + 1e-12)
        covered = self.lab_d2 <= r2
        within = self.item_d2 <= r2
        live = within & ~covered[self.pair_item]
        count = np.bincount(self.item_cand[live], minlength=self.m).astype(np.int64)
        chosen: list[int] = []
        for _ in range(k):
            c = int(np.argmax(count))
            if count[c] <= 0:
                break
            chosen.append(c)
            s, e = self.cand_ptr[c], self.cand_ptr[c + 1]
            items = self.cand_item[s:e][self.cand_d2[s:e] <= r2]
            new = items[~covered[items]]
            covered[new] = True
            idx = _ranges(self.item_ptr, new)
            hit = self.item_cand[idx][self.item_d2[idx] <= r2]
            np.subtract.at(count, hit, 1)
            count[c] = -1  # its count is 0 now; never pick it twice
        return chosen, int(np.count_nonzero(~covered))


def _coreset(
    X: np.ndarray,
    labeled: np.ndarray,
    k: int,
    *,
    first: int | None,
    outliers: int,
    candidate_factor: float,
    max_pairs: int = 50_000_000,
    knobs: dict[str, int] | None = None,
    info: dict[str, Any] | None = None,
    state: Any = None,
) -> np.ndarray:
    """Kernel of :func:`coreset`; trusts its inputs (``k <=`` unlabeled count).

    The distances to the labeled set come from the net's traversal, and the
    pair search skips the traversal's coarse groups out of reach. With a
    ``state`` (:class:`~alaas_lab.strategies.PoolState`, ``X`` its pool) the
    net starts from the state's distance tables; the picks are the same.
    """
    knobs = knobs or {}
    n_unlabeled = int(labeled.size - np.count_nonzero(labeled))
    if k == 0:
        return np.empty(0, dtype=np.int64)
    m = min(n_unlabeled, max(k, int(np.ceil(candidate_factor * k)) + outliers))
    base: dict[str, Any] = {}
    net, vals = _kcenter_greedy(X, labeled, m, first=first, return_values=True, state=state,
                                remember_picks=False, base=base, **knobs)
    if m == k:  # no spare candidates: nothing to improve on the greedy solution
        return net
    delta2 = float(vals[k])  # squared radius of the greedy solution s_g
    # a first pick drawn when nothing was labeled stays a center, like a labeled item
    # (the traversal's initial table is 0 there too)
    n_fixed = 0 if first is None else 1
    cands = net[n_fixed:]
    ix = base["index"]
    graph = _CoverGraph(ix, ix.pos_of[cands], delta2, max_pairs, np.maximum(base["mind"], 0.0))
    # Alg. 2: r in [delta/2, delta]. The top gets the pairs' own slack: the pair that
    # defines delta is computed apart from delta itself, and rounding must not drop
    # the one radius at which the greedy solution is known to be feasible
    radii = graph.distinct_radii(delta2 / 4.0, delta2 * (1.0 + 1e-12))
    lo, hi = 0, radii.size - 1
    best = None
    checks = 0
    while lo <= hi:
        mid = (lo + hi) // 2
        chosen, uncovered = graph.greedy_cover(float(radii[mid]), k - n_fixed)
        checks += 1
        if uncovered <= outliers:
            best = (float(radii[mid]), chosen)
            hi = mid - 1
        else:
            lo = mid + 1
    if info is not None:
        info.update(
            greedy_radius=float(np.sqrt(delta2)),
            radius=None if best is None else float(np.sqrt(best[0])),
            checks=checks,
            pairs=int(graph.item_d2.size),
            candidates=int(cands.size),
        )
    if best is None:
        return net[:k]
    chosen = np.asarray(best[1], dtype=np.int64)
    taken = np.zeros(cands.size, dtype=bool)
    taken[chosen] = True
    fill = np.flatnonzero(~taken)[: k - n_fixed - chosen.size]
    return np.concatenate([net[:n_fixed], cands[chosen], cands[fill]])


def check_coreset_params(
    *, outliers: Any = 1e-4, candidate_factor: Any = 2.0, n_pool: int
) -> tuple[int, float]:
    """Validate ``outliers`` (int count or float fraction) and ``candidate_factor``."""
    if isinstance(outliers, (float, np.floating)):
        frac = check_number(outliers, name="outliers", low=0.0, high=1.0)
        xi = int(np.floor(frac * n_pool))
    else:
        xi = int(check_number(outliers, name="outliers", low=0, integer=True))
    factor = check_number(candidate_factor, name="candidate_factor", low=1.0)
    return xi, factor


def coreset(
    embeddings: Any,
    k: int,
    *,
    labeled: Any = None,
    rng: Any = None,
    outliers: int | float = 1e-4,
    candidate_factor: float = 2.0,
    max_pairs: int = 50_000_000,
    block: int = 256,
    n_candidates: int = 1024,
    n_groups: int = 128,
    state: Any = None,
) -> np.ndarray:
    """Core-set selection (Sener & Savarese 2018): robust k-center by binary search.

    Starts from the greedy k-center solution and searches for the smallest
    radius that ``k`` centers (chosen by greedy maximum coverage from a
    farthest-first candidate net) cover, allowing ``outliers`` uncovered items.
    See the module docstring for the exact procedure and how it differs from
    :func:`~alaas_lab.strategies.kcenter_greedy`.

    Parameters
    ----------
    embeddings : array-like of shape (N, d)
        Pool embeddings.
    k : int
        Number of items to pick.
    labeled : array-like of shape (N,), bool, optional
        Existing centers (never picked).
    rng : None, int or numpy.random.Generator, optional
        Used only when nothing is labeled, to draw the first center.
    outliers : int or float, default 1e-4
        The outlier budget ``Xi``: an int is a count, a float a fraction of the
        pool (the paper uses ``1e-4 * N``).
    candidate_factor : float, default 2.0
        The candidate net holds ``candidate_factor * k + Xi`` items.
    max_pairs : int, default 50_000_000
        Refuse (with an error) to store more (item, candidate) pairs than this.
    block, n_candidates, n_groups : int
        Speed knobs of the underlying k-center greedy.
    state : PoolState, optional
        Per-pool state (:class:`~alaas_lab.strategies.PoolState`) built for
        ``embeddings``; reuses the distance tables of earlier rounds (see
        ``kcenter_greedy``). The picks are the same as without it.

    Returns
    -------
    indices : ndarray of shape (k,), int64

    Notes
    -----
    Time: the greedy net (see ``kcenter_greedy``), ``O(N m d)`` for the pair
    distances, then ``O(log P)`` coverage checks of ``O(P + k m)`` each, where
    ``P`` is the number of stored pairs.
    """
    state = check_state(state)
    k, _, X, lab = check_pool(
        k=k, embeddings=embeddings, labeled=labeled, need_embeddings=True, who="coreset",
        state=state,
    )
    xi, factor = check_coreset_params(
        outliers=outliers, candidate_factor=candidate_factor, n_pool=lab.size
    )
    max_pairs = int(check_number(max_pairs, name="max_pairs", low=1, integer=True))
    knobs = check_kcenter_params(block=block, n_candidates=n_candidates, n_groups=n_groups)
    first = first_center(lab, check_random_state(rng))
    return _coreset(
        X,
        lab,
        k,
        first=first,
        outliers=xi,
        candidate_factor=factor,
        max_pairs=max_pairs,
        knobs=knobs,
        state=state,
    )


def _entry_coreset(
    k,
    *,
    probs,
    embeddings,
    labeled,
    rng,
    outliers=1e-4,
    candidate_factor=2.0,
    max_pairs=50_000_000,
    block=256,
    n_candidates=1024,
    n_groups=128,
    state=None,
):
    """Registry entry: validated ``embeddings``; checks the options."""
    xi, factor = check_coreset_params(
        outliers=outliers, candidate_factor=candidate_factor, n_pool=labeled.size
    )
    max_pairs = int(check_number(max_pairs, name="max_pairs", low=1, integer=True))
    knobs = check_kcenter_params(block=block, n_candidates=n_candidates, n_groups=n_groups)
    return _coreset(
        embeddings,
        labeled,
        k,
        first=first_center(labeled, rng),
        outliers=xi,
        candidate_factor=factor,
        max_pairs=max_pairs,
        knobs=knobs,
        state=state,
    )
