"""One round's selection with a model: its probabilities (or MC samples) and the embeddings.

Every caller that selects with a trained head — the in-process learner, the
worker's single-strategy rounds and each PSHEA candidate — goes through
:func:`select_with_model`, so what a strategy receives (and how many Monte-Carlo
samples BALD gets) is decided in one place.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from ._registry import requirements, select

__all__ = ["MC_SAMPLES", "Model", "needs_model", "select_with_model"]

#: Monte-Carlo dropout samples for strategies that need ``mc_probs`` (BALD).
MC_SAMPLES = 20


class Model(Protocol):
    """What a selection needs of a trained classifier (e.g. ``LastLayerHead``)."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...

    def predict_proba_mc(self, X: np.ndarray, n_samples: int,
                         rng: np.random.Generator) -> np.ndarray: ...


def needs_model(name: str) -> bool:
    """Whether strategy ``name`` needs a trained model's probabilities."""
    return bool(requirements(name) & {"probs", "mc_probs"})


def select_with_model(name: str, k: int, *, embeddings: np.ndarray, labeled: np.ndarray,
                      rng: np.random.Generator, model: Model | None = None,
                      mc_samples: int = MC_SAMPLES, **params: Any) -> np.ndarray:
    """Pick ``k`` items with strategy ``name``, giving it what it needs.

    Parameters
    ----------
    name : str
        A registered strategy.
    k : int
    embeddings : ndarray of shape (n_items, d)
    labeled : ndarray of shape (n_items,), bool
        Items that may not be picked (labeled, queued, not embedded...).
    rng : numpy.random.Generator
    model : Model, optional
        A fitted classifier; required when the strategy needs probabilities.
    mc_samples : int, default MC_SAMPLES
    **params
        The strategy's own options.

    Returns
    -------
    picks : ndarray of shape (k,), int64
    """
    needs = requirements(name)
    inputs: dict[str, Any] = {}
    if needs & {"probs", "mc_probs"}:
        if model is None:
            raise ValueError(f"strategy {name!r} needs a fitted model")  # caller's bug
        inputs["probs"] = (model.predict_proba_mc(embeddings, mc_samples, rng)
                           if "mc_probs" in needs else model.predict_proba(embeddings))
    if "embeddings" in needs:
        inputs["embeddings"] = embeddings
    picks = select(name, k, labeled=labeled, rng=rng, **inputs, **params)
    return np.asarray(picks, dtype=np.int64)
