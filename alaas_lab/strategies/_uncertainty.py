"""Uncertainty sampling and the random baseline.

Each strategy scores every unlabeled item from the model's class probabilities
and returns the ``k`` highest scores, most uncertain first. Ties go to the
lowest pool index, so a selection is reproducible. Monte-Carlo probabilities
``[T, N, C]`` are averaged over ``T`` first.

References: Settles, "Active Learning Literature Survey" (2009), section 3.1;
Munro, "Human-in-the-Loop Machine Learning" (2021), ch. 3 (ratio of confidence).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import entr

from .._validation import check_count, check_random_state
from ._common import check_pool, mean_probs, top_k

__all__ = ["entropy", "least_confidence", "margin", "random", "ratio"]


# ----------------------------------------------------------------------------- scores
def _least_confidence_scores(p: np.ndarray) -> np.ndarray:
    """``1 - max_c p_c`` for ``p`` of shape (N, C)."""
    return 1.0 - p.max(axis=1)


def _top2(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and second-largest probability of each row of ``p`` (N, C)."""
    part = np.partition(p, p.shape[1] - 2, axis=1)
    return part[:, -1], part[:, -2]


def _margin_scores(p: np.ndarray) -> np.ndarray:
    """``-(p_(1) - p_(2))``: a small gap between the top two classes is uncertain."""
    first, second = _top2(p)
    return second - first


def _ratio_scores(p: np.ndarray) -> np.ndarray:
    """``p_(2) / p_(1)`` (ratio of confidence), in [0, 1]; 1 is a dead heat."""
    first, second = _top2(p)
    return second / first  # first >= 1/C > 0 for rows that sum to 1


def _entropy_scores(p: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-sum_c p_c log p_c`` in nats (``0 log 0 = 0``)."""
    return entr(p).sum(axis=1)


_SCORES = {
    "least_confidence": _least_confidence_scores,
    "margin": _margin_scores,
    "ratio": _ratio_scores,
    "entropy": _entropy_scores,
}


def uncertainty_scores(probs: np.ndarray, measure: str) -> np.ndarray:
    """Uncertainty of each item (higher = more uncertain); trusts its inputs.

    Parameters
    ----------
    probs : ndarray of shape (N, C) or (T, N, C)
        Valid class probabilities (MC samples are averaged over T).
    measure : {"least_confidence", "margin", "ratio", "entropy"}

    Returns
    -------
    scores : ndarray of shape (N,), float64
    """
    return _SCORES[measure](mean_probs(probs))


def _uncertainty(probs: np.ndarray, k: int, labeled: np.ndarray, measure: str) -> np.ndarray:
    """Kernel: top-``k`` unlabeled items by ``measure``; trusts its inputs."""
    return top_k(uncertainty_scores(probs, measure), k, labeled)


def _public(measure: str, probs: Any, k: Any, labeled: Any) -> np.ndarray:
    k, p, _, lab = check_pool(k=k, probs=probs, labeled=labeled, need_probs=True, who=measure)
    return _uncertainty(p, k, lab, measure)


# ----------------------------------------------------------------------------- public
def least_confidence(probs: Any, k: int, *, labeled: Any = None) -> np.ndarray:
    """Pick the items whose most likely class is least probable.

    Score ``1 - max_c p_c``; the ``k`` highest win, ties to the lowest index.

    Parameters
    ----------
    probs : array-like of shape (N, C) or (T, N, C)
        Class probabilities of the pool (rows sum to 1); MC samples are averaged.
    k : int
        Number of items to pick, ``0 <= k <=`` number of unlabeled items.
    labeled : array-like of shape (N,), bool, optional
        Items already labeled (never picked). Default: none.

    Returns
    -------
    indices : ndarray of shape (k,), int64
        Pool indices, most uncertain first.

    Examples
    --------
    >>> least_confidence([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]], 2).tolist()
    [1, 2]
    """
    return _public("least_confidence", probs, k, labeled)


def margin(probs: Any, k: int, *, labeled: Any = None) -> np.ndarray:
    """Pick the items with the smallest gap between their two most likely classes.

    Score ``-(p_(1) - p_(2))``; ties go to the lowest index.

    Parameters
    ----------
    probs : array-like of shape (N, C) or (T, N, C)
        Class probabilities (C >= 2); MC samples are averaged.
    k : int
        Number of items to pick.
    labeled : array-like of shape (N,), bool, optional
        Items already labeled (never picked).

    Returns
    -------
    indices : ndarray of shape (k,), int64
        Most uncertain first.

    Examples
    --------
    >>> margin([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.8, 0.1, 0.1]], 1).tolist()
    [1]
    """
    return _public("margin", probs, k, labeled)


def ratio(probs: Any, k: int, *, labeled: Any = None) -> np.ndarray:
    """Pick the items with the highest ratio ``p_(2) / p_(1)`` (ratio of confidence).

    Parameters
    ----------
    probs : array-like of shape (N, C) or (T, N, C)
        Class probabilities (C >= 2); MC samples are averaged.
    k : int
        Number of items to pick.
    labeled : array-like of shape (N,), bool, optional
        Items already labeled (never picked).

    Returns
    -------
    indices : ndarray of shape (k,), int64
        Most uncertain first; ties to the lowest index.
    """
    return _public("ratio", probs, k, labeled)


def entropy(probs: Any, k: int, *, labeled: Any = None) -> np.ndarray:
    """Pick the items whose predicted class distribution has the highest entropy.

    Parameters
    ----------
    probs : array-like of shape (N, C) or (T, N, C)
        Class probabilities; MC samples are averaged (the entropy of the mean).
    k : int
        Number of items to pick.
    labeled : array-like of shape (N,), bool, optional
        Items already labeled (never picked).

    Returns
    -------
    indices : ndarray of shape (k,), int64
        Highest entropy first; ties to the lowest index.
    """
    return _public("entropy", probs, k, labeled)


def _random(n: int, k: int, labeled: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Kernel: ``k`` unlabeled indices uniformly without replacement."""
    pool = np.flatnonzero(~labeled)
    return rng.choice(pool, size=k, replace=False).astype(np.int64, copy=False)


def random(
    k: int, *, n_pool: int | None = None, labeled: Any = None, rng: Any = None
) -> np.ndarray:
    """Pick ``k`` unlabeled items uniformly at random, without replacement.

    The lower-bound baseline of every active-learning comparison.

    Parameters
    ----------
    k : int
        Number of items to pick.
    n_pool : int, optional
        Pool size; needed only when ``labeled`` is not given.
    labeled : array-like of shape (N,), bool, optional
        Items already labeled (never picked).
    rng : None, int or numpy.random.Generator, optional
        Source of randomness; same seed, same picks.

    Returns
    -------
    indices : ndarray of shape (k,), int64
        In the order drawn.

    Examples
    --------
    >>> sorted(random(3, n_pool=3, rng=0).tolist())
    [0, 1, 2]
    """
    if labeled is None and n_pool is not None:
        labeled = np.zeros(check_count(n_pool, name="n_pool"), dtype=bool)
    k, _, _, lab = check_pool(k=k, labeled=labeled, who="random")
    return _random(lab.size, k, lab, check_random_state(rng))


# ----------------------------------------------------------------------------- registry entries
# Called by ``select`` with validated pool inputs (probs already 2-D).
def _entry_least_confidence(k, *, probs, embeddings, labeled, rng):
    return _uncertainty(probs, k, labeled, "least_confidence")


def _entry_margin(k, *, probs, embeddings, labeled, rng):
    return _uncertainty(probs, k, labeled, "margin")


def _entry_ratio(k, *, probs, embeddings, labeled, rng):
    return _uncertainty(probs, k, labeled, "ratio")


def _entry_entropy(k, *, probs, embeddings, labeled, rng):
    return _uncertainty(probs, k, labeled, "entropy")


def _entry_random(k, *, probs, embeddings, labeled, rng):
    return _random(labeled.size, k, labeled, rng)
