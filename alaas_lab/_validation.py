"""Checks shared by the public functions: validate once, at the edge.

Each checker raises :class:`~alaas_lab.errors.InputError` whose message names
the argument, what was expected, what was received and how to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import InputError


def check_random_state(rng: Any, *, name: str = "rng") -> np.random.Generator:
    """Turn ``None``, an int seed or a ``Generator`` into a ``Generator``."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise InputError(
        f"{name} must be None, an int seed or a numpy.random.Generator; "
        f"got {type(rng).__name__}. Pass e.g. {name}=np.random.default_rng(0)."
    )


def check_count(value: Any, *, name: str, minimum: int = 0) -> int:
    """Check that ``value`` is an integer >= ``minimum`` and return it as int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value}.")
    return int(value)


def check_matrix(
    x: Any, *, name: str, ndim: int | tuple[int, ...] = 2, dtype: Any = np.float64
) -> np.ndarray:
    """Return ``x`` as a finite floating array with ``ndim`` dimensions."""
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} must be a numeric array; could not convert it: {exc}") from exc
    if arr.ndim not in allowed:
        shapes = " or ".join(f"{d}-D" for d in allowed)
        hint = " Use x.reshape(1, -1) for a single row." if arr.ndim == 1 and 2 in allowed else ""
        raise InputError(f"{name} must be {shapes}; got shape {arr.shape}.{hint}")
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(
            f"{name} contains NaN or infinite values (first at index {tuple(bad.tolist())}); "
            "remove or impute those rows before selecting."
        )
    return arr


def check_probabilities(probs: Any, *, name: str = "probs", atol: float = 1e-3) -> np.ndarray:
    """Check class probabilities: [N, C] or [T, N, C], in [0, 1], rows summing to 1."""
    arr = check_matrix(probs, name=name, ndim=(2, 3))
    if arr.shape[-1] < 2:
        raise InputError(f"{name} needs at least 2 classes (last axis); got shape {arr.shape}.")
    if (arr < 0).any() or (arr > 1 + atol).any():
        raise InputError(
            f"{name} must lie in [0, 1]; got values in [{arr.min():.4g}, {arr.max():.4g}]."
        )
    sums = arr.sum(axis=-1)
    off = np.abs(sums - 1.0) > atol
    if off.any():
        idx = tuple(np.argwhere(off)[0].tolist())
        raise InputError(
            f"{name} rows must sum to 1 (within {atol}); row {idx} sums to {sums[idx]:.6g}. "
            "Apply a softmax to logits before selecting."
        )
    return arr


def check_labeled_mask(labeled: Any, n: int, *, name: str = "labeled") -> np.ndarray:
    """Return a boolean mask of length ``n`` (all False when ``labeled`` is None)."""
    if labeled is None:
        return np.zeros(n, dtype=bool)
    mask = np.asarray(labeled)
    if mask.dtype != bool:
        raise InputError(
            f"{name} must be a boolean mask of length {n}; got dtype {mask.dtype}. "
            "To convert indices: mask = np.zeros(n, bool); mask[idx] = True."
        )
    if mask.shape != (n,):
        raise InputError(f"{name} must have shape ({n},) to match the pool; got {mask.shape}.")
    return mask
