"""BALD: Bayesian active learning by disagreement (Houlsby et al. 2011; Gal et al. 2017)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import entr

from ._common import check_pool, top_k

__all__ = ["bald"]


def bald_scores(mc_probs: np.ndarray) -> np.ndarray:
    """Mutual information between the label and the model parameters; trusts its input.

    ``I[y; w | x] ~= H[mean_t p_t] - mean_t H[p_t]`` (nats), estimated from ``T``
    stochastic forward passes (e.g. MC dropout).

    Parameters
    ----------
    mc_probs : ndarray of shape (T, N, C)

    Returns
    -------
    scores : ndarray of shape (N,), float64
        Non-negative up to rounding; 0 when all passes agree.
    """
    predictive = entr(mc_probs.mean(axis=0)).sum(axis=1)
    expected = entr(mc_probs).sum(axis=2).mean(axis=0)
    return predictive - expected


def _bald(mc_probs: np.ndarray, k: int, labeled: np.ndarray) -> np.ndarray:
    """Kernel: top-``k`` unlabeled items by BALD score; ties to the lowest index."""
    return top_k(bald_scores(mc_probs), k, labeled)


def bald(probs: Any, k: int, *, labeled: Any = None) -> np.ndarray:
    """Pick the items on which stochastic forward passes disagree most (top-k BALD).

    Score: ``H[mean_t p_t(y|x)] - mean_t H[p_t(y|x)]``. This is the greedy top-k
    form of BALD (Gal, Islam & Ghahramani 2017), not BatchBALD.

    Parameters
    ----------
    probs : array-like of shape (T, N, C)
        Class probabilities from ``T`` stochastic passes (e.g. MC dropout).
    k : int
        Number of items to pick.
    labeled : array-like of shape (N,), bool, optional
        Items already labeled (never picked).

    Returns
    -------
    indices : ndarray of shape (k,), int64
        Highest mutual information first; ties to the lowest index.

    Examples
    --------
    >>> pass_1 = [[0.5, 0.5], [0.9, 0.1]]
    >>> pass_2 = [[0.5, 0.5], [0.1, 0.9]]
    >>> bald([pass_1, pass_2], 1).tolist()   # item 1 flips between the passes
    [1]
    """
    k, p, _, lab = check_pool(k=k, probs=probs, labeled=labeled, need_mc=True, who="bald")
    return _bald(p, k, lab)


def _entry_bald(k, *, probs, embeddings, labeled, rng):
    """Registry entry: ``probs`` is validated ``[T, N, C]``."""
    return _bald(probs, k, labeled)
