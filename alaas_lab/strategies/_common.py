"""Shared helpers of the strategy zoo: input checks at the edge and small kernels.

Public strategy functions call the ``check_*`` helpers here once, then hand
plain, trusted arrays to their private kernels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_count, check_labeled_mask, check_matrix, check_probabilities
from ..errors import InputError

__all__ = [
    "check_embeddings",
    "check_k",
    "check_number",
    "check_pool",
    "mean_probs",
    "top_k",
    "unlabeled_count_error",
]


def check_embeddings(embeddings: Any, *, name: str = "embeddings") -> np.ndarray:
    """Return ``embeddings`` as a finite 2-D float32 or float64 array (no copy if it is one)."""
    if embeddings is None:
        raise InputError(f"{name} is required; pass {name}=<array of shape (n_pool, n_features)>.")
    raw = np.asarray(embeddings) if not isinstance(embeddings, np.ndarray) else embeddings
    dtype = None if raw.dtype in (np.float32, np.float64) else np.float64
    return check_matrix(raw, name=name, ndim=2, dtype=dtype)


def mean_probs(probs: np.ndarray) -> np.ndarray:
    """Average MC samples ``[T, N, C] -> [N, C]``; return 2-D input unchanged."""
    return probs.mean(axis=0) if probs.ndim == 3 else probs


def unlabeled_count_error(k: int, n_unlabeled: int, n_pool: int) -> InputError:
    """The error for a request of more items than the pool has unlabeled."""
    return InputError(
        f"k={k} items asked for, but only {n_unlabeled} of the {n_pool} pool items are "
        f"unlabeled; ask for at most k={n_unlabeled}, or add items to the pool."
    )


def check_k(k: Any, labeled: np.ndarray) -> int:
    """Check ``0 <= k <= number of unlabeled items`` and return ``k`` as an int."""
    k = check_count(k, name="k", minimum=0)
    n_unlabeled = int(labeled.size - np.count_nonzero(labeled))
    if k > n_unlabeled:
        raise unlabeled_count_error(k, n_unlabeled, labeled.size)
    return k


def check_number(
    value: Any,
    *,
    name: str,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
) -> float:
    """Check a scalar option (``low <= value <= high``; ``low < value`` if ``low_open``)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    ok = isinstance(value, kinds) and not isinstance(value, bool)
    if ok and not integer:
        ok = bool(np.isfinite(value))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        what = "an integer" if integer else "a finite number"
        lo = "" if low is None else f" {'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{' and' if lo else ''} <= {high}"
        raise InputError(f"{name} must be {what}{lo}{hi}; got {value!r}.")
    return int(value) if integer else float(value)


def check_pool(
    *,
    k: Any,
    probs: Any = None,
    embeddings: Any = None,
    labeled: Any = None,
    need_probs: bool = False,
    need_mc: bool = False,
    need_embeddings: bool = False,
    who: str = "this strategy",
    state: Any = None,
) -> tuple[int, np.ndarray | None, np.ndarray | None, np.ndarray]:
    """Validate the pool inputs of one selection.

    Returns ``(k, probs, embeddings, labeled)`` where ``probs`` is ``[N, C]`` or
    ``[T, N, C]`` float64 (or None), ``embeddings`` ``[N, d]`` floating (or None)
    and ``labeled`` a boolean mask ``[N]``. With a ``state``
    (:class:`~alaas_lab.strategies.PoolState`) the embeddings are the state's,
    validated when it was built; ``embeddings`` may then be omitted, and if given
    must be that pool.
    """
    if state is not None:
        embeddings = state.resolve(embeddings, who=who)
    if need_mc and probs is None:
        raise InputError(
            f"{who} needs Monte-Carlo class probabilities: pass probs=<array of shape "
            "(n_samples, n_pool, n_classes)> (e.g. MC-dropout passes)."
        )
    if need_probs and probs is None:
        raise InputError(
            f"{who} needs class probabilities: pass probs=<array of shape (n_pool, n_classes)>."
        )
    if need_embeddings and embeddings is None:
        raise InputError(
            f"{who} needs embeddings: pass embeddings=<array of shape (n_pool, n_features)>."
        )
    p = None if probs is None else check_probabilities(probs, name="probs")
    if p is not None and need_mc and p.ndim != 3:
        raise InputError(
            f"{who} needs Monte-Carlo probabilities of shape (n_samples, n_pool, n_classes); "
            f"got probs of shape {p.shape}. Pass T stochastic forward passes stacked on axis 0, "
            "e.g. np.stack([model(x) for _ in range(20)])."
        )
    if state is not None:
        e = embeddings  # validated when the state was built
    else:
        e = None if embeddings is None else check_embeddings(embeddings)
    n_p = None if p is None else p.shape[-2]
    n_e = None if e is None else e.shape[0]
    if n_p is not None and n_e is not None and n_p != n_e:
        raise InputError(
            f"probs and embeddings describe pools of different sizes: probs has {n_p} items "
            f"(shape {p.shape}), embeddings has {n_e} (shape {e.shape}); pass both for the "
            "same pool, in the same order."
        )
    n = n_p if n_p is not None else n_e
    if n is None:
        if labeled is None:
            raise InputError(
                f"{who} cannot tell the pool size: pass labeled=<boolean mask of length n_pool>, "
                "probs or embeddings."
            )
        arr = np.asarray(labeled)
        if arr.ndim != 1:
            raise InputError(
                f"labeled must be a 1-D boolean mask of length n_pool; got shape {arr.shape}."
            )
        n = arr.shape[0]
    lab = check_labeled_mask(labeled, n, name="labeled")
    return check_k(k, lab), p, e, lab


def top_k(scores: np.ndarray, k: int, labeled: np.ndarray) -> np.ndarray:
    """Indices of the ``k`` highest ``scores`` among unlabeled items, best first.

    Ties are broken by the lowest index (a stable order), so results are
    reproducible. Runs in O(N + k log k).

    Parameters
    ----------
    scores : ndarray of shape (N,)
        Higher is more wanted. Must be free of NaN.
    k : int
        ``0 <= k <=`` number of unlabeled items.
    labeled : ndarray of shape (N,), bool
        Items that must not be returned.

    Returns
    -------
    indices : ndarray of shape (k,), int64
    """
    if k == 0:
        return np.empty(0, dtype=np.int64)
    cand = np.flatnonzero(~labeled)
    s = scores[cand]
    if k < cand.size:
        # the k-th largest value; everything above it is in, ties at it go by index
        kth = np.partition(s, cand.size - k)[cand.size - k]
        above = s > kth
        tied = np.flatnonzero(s == kth)[: k - int(np.count_nonzero(above))]
        keep = np.concatenate([np.flatnonzero(above), tied])
        cand, s = cand[keep], s[keep]
    order = np.lexsort((cand, -s))
    return cand[order].astype(np.int64, copy=False)
