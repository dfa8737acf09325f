"""BADGE: batch active learning by diverse gradient embeddings (Ash et al., ICLR 2020).

The gradient embedding of item ``i`` is the gradient of the cross-entropy loss
at the model's own prediction with respect to the last linear layer::

    g_i = (onehot(argmax p_i) - p_i) (outer) h_i        shape (C * d,)

where ``p_i`` are its class probabilities and ``h_i`` its penultimate-layer
embedding. BADGE seeds k-means++ on these vectors: the first center is the
item with the largest gradient norm (as in the authors' code), every further
one is drawn with probability proportional to its squared distance to the
nearest center so far (D^2 sampling).

``g`` is never built: with ``a_i = onehot - p_i``, ``<g_i, g_j> = <a_i, a_j>
<h_i, h_j>``, so ``|g_i - g_j|^2 = |a_i|^2 |h_i|^2 + |a_j|^2 |h_j|^2 - 2 <a_i,
a_j> <h_i, h_j>`` needs only the ``[N, C]`` and ``[N, d]`` blocks: memory
``O(N (C + d))`` instead of ``O(N C d)``, and ``O(N (C + d))`` time per pick,
done in blocks of queued centers (see ``_Seeding``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_random_state
from ._common import check_number, check_pool, mean_probs
from ._state import check_state

_ROW_CHUNK = 4096

__all__ = ["badge"]


def gradient_factors(probs: np.ndarray) -> np.ndarray:
    """``a = onehot(argmax p) - p``, the class factor of the gradient embedding.

    Parameters
    ----------
    probs : ndarray of shape (N, C)

    Returns
    -------
    a : ndarray of shape (N, C), float64
        Ties in ``argmax`` go to the lowest class index.
    """
    a = -np.asarray(probs, dtype=np.float64)
    a[np.arange(a.shape[0]), np.argmax(probs, axis=1)] += 1.0
    return a


class _Seeding:
    """D^2 sampling with deferred, blocked distance updates (exact distribution).

    ``d2`` holds each item's squared distance to the nearest *applied* center:
    an upper bound of its distance to all centers, since queued (pending)
    centers can only bring it closer. A draw proposes ``i`` with probability
    ``d2_i / sum(d2)`` from that stale table (one cumulative sum per flush),
    computes its exact distance ``e_i`` against the few pending centers, and
    accepts with probability ``e_i / d2_i``: rejection sampling, so accepted
    draws follow ``e`` exactly. Queued centers are applied ``block`` at a time
    as two matrix products (BLAS-3) instead of one pass over the pool per pick.
    With ``block=1`` nothing is ever pending and each pick takes exactly one
    ``rng.random()``, like the textbook loop.
    """

    def __init__(self, A: np.ndarray, H: np.ndarray, block: int, rng: np.random.Generator,
                 hsq: np.ndarray | None = None):
        self.A, self.H, self.block, self.rng = A, H, block, rng
        if hsq is None:
            hsq = np.einsum("ij,ij->i", H, H, dtype=np.float64)
        self.g2 = np.einsum("ij,ij->i", A, A) * hsq
        self.d2 = np.full(A.shape[0], np.inf)
        self.taken = np.zeros(A.shape[0], dtype=bool)
        self.pending: list[int] = []
        self.cs = None

    def _pair_d2(self, rows, cols) -> np.ndarray:
        """Exact squared gradient distances, shape (len(rows), len(cols))."""
        D = (self.A[rows] @ self.A[cols].T) * (self.H[rows] @ self.H[cols].T)
        D *= -2.0
        D += self.g2[rows, None]
        D += self.g2[None, cols]
        return np.maximum(D, 0.0, out=D)

    def flush(self) -> None:
        if self.pending:
            P = np.asarray(self.pending)
            self.pending = []
            n = self.A.shape[0]
            for r0 in range(0, n, _ROW_CHUNK):
                r1 = min(n, r0 + _ROW_CHUNK)
                d = self._pair_d2(slice(r0, r1), P).min(axis=1)
                np.minimum(self.d2[r0:r1], d, out=self.d2[r0:r1])
            self.d2[self.taken] = 0.0
        self.cs = np.cumsum(self.d2)

    def take(self, i: int) -> None:
        self.taken[i] = True
        self.pending.append(i)
        if len(self.pending) >= self.block or self.cs is None:  # the first center: no table yet
            self.flush()

    def _propose(self) -> int:
        cs = self.cs
        i = int(np.searchsorted(cs, self.rng.random() * cs[-1], side="right"))
        if i >= cs.size or self.d2[i] <= 0.0:  # u * total rounded up to the total
            i = int(np.flatnonzero(self.d2 > 0.0)[-1])
        return i

    def draw(self) -> int:
        """One index, with probability proportional to its exact squared distance."""
        for _ in range(32):
            if not self.cs[-1] > 0.0:
                break
            i = self._propose()
            if not self.pending:
                return i  # the table is exact
            if self.taken[i]:
                continue
            e = min(self.d2[i], float(self._pair_d2([i], self.pending).min()))
            if self.rng.random() * self.d2[i] < e:
                return i
        # many rejections (the queue removed most of the mass) or nothing left to weigh
        if self.pending:
            self.flush()
            return self.draw()
        return int(self.rng.choice(np.flatnonzero(~self.taken)))


def _badge(
    probs: np.ndarray,
    H: np.ndarray,
    labeled: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    block: int = 256,
    state: Any = None,
) -> np.ndarray:
    """Kernel of :func:`badge`; trusts its inputs (``probs`` 2-D, ``k <=`` unlabeled).

    With a ``state`` (whose pool is ``H``) the embeddings' squared norms are the
    state's, computed once per pool; the picks are the same.
    """
    picks = np.empty(k, dtype=np.int64)
    if k == 0:
        return picks
    cand = np.flatnonzero(~labeled)
    hsq = None if state is None else state.sq_norms[cand]
    seeding = _Seeding(gradient_factors(probs[cand]), H[cand], block, rng, hsq)
    c = int(np.argmax(seeding.g2))  # largest gradient norm, lowest index among ties
    for i in range(k):
        if i > 0:
            c = seeding.draw()
        picks[i] = cand[c]
        if i + 1 < k:
            seeding.take(c)
    return picks


def badge(
    probs: Any,
    embeddings: Any,
    k: int,
    *,
    labeled: Any = None,
    rng: Any = None,
    block: int = 256,
    state: Any = None,
) -> np.ndarray:
    """BADGE: k-means++ seeding on gradient embeddings (Ash et al. 2020).

    Combines uncertainty (large gradient norm) and diversity (D^2 sampling) in
    one pick rule; see the module docstring for the factorised distances.

    Parameters
    ----------
    probs : array-like of shape (N, C) or (T, N, C)
        Class probabilities (MC samples are averaged over T).
    embeddings : array-like of shape (N, d)
        Penultimate-layer embeddings ``h`` (the input of the last linear layer).
    k : int
        Number of items to pick.
    labeled : array-like of shape (N,), bool, optional
        Items already labeled (never picked, not part of the seeding).
    rng : None, int or numpy.random.Generator, optional
        Drives the D^2 sampling; same seed (and ``block``), same picks.
    block : int, default 256
        Centers queued before one blocked distance update. Any value samples
        from the same (exact) distribution, but consumes ``rng`` differently;
        ``block=1`` is the plain one-pass-per-pick loop.
    state : PoolState, optional
        Per-pool state (:class:`~alaas_lab.strategies.PoolState`) built for
        ``embeddings``: the embeddings are validated and their norms computed
        once per pool. The picks are the same as without it.

    Returns
    -------
    indices : ndarray of shape (k,), int64
        In the order seeded; the first is the largest-gradient-norm item.

    Notes
    -----
    Time ``O(k N (C + d))`` flops, done in blocks of ``block`` centers (plus
    ``O(N)`` per block and ``O(block (C + d))`` per proposal); memory
    ``O(N (C + d))``. If every remaining item sits on a center (duplicates), the
    rest is drawn uniformly.
    """
    state = check_state(state)
    k, p, H, lab = check_pool(
        k=k,
        probs=probs,
        embeddings=embeddings,
        labeled=labeled,
        need_probs=True,
        need_embeddings=True,
        who="badge",
        state=state,
    )
    block = int(check_number(block, name="block", low=1, integer=True))
    return _badge(mean_probs(p), H, lab, k, check_random_state(rng), block=block, state=state)


def _entry_badge(k, *, probs, embeddings, labeled, rng, block=256, state=None):
    """Registry entry: validated ``probs`` [N, C] and ``embeddings``."""
    block = int(check_number(block, name="block", low=1, integer=True))
    return _badge(probs, embeddings, labeled, k, rng, block=block, state=state)
