"""The strategy zoo: pure functions that pick which pool items to label next.

Public API
----------
names()                       -> sorted list of registered strategy names
select(name, k, *, probs=None, embeddings=None, labeled=None, rng=None, **params)
                              -> np.ndarray of k distinct, unlabeled pool indices (int64)
register(name, fn, *, needs={"probs"}, clobber=False)
options(name)                 -> frozenset of keyword options it takes (None: any)
select_with_model(name, k, *, embeddings, labeled, rng, model=None, **params)
                              -> the same, with a trained model's probabilities (MC for BALD)
requirements(name)            -> frozenset, subset of {"probs", "mc_probs", "embeddings"}
registry                      -> read-only mapping name -> Strategy
PoolState(embeddings)         -> per-pool state reused across rounds (``state=`` of select)

Each strategy is also a plain function (``margin(probs, k, labeled=...)``,
``kcenter_greedy(embeddings, k, ...)``, ...) that validates its inputs and calls
a private kernel. See ``docs/strategies.md`` for the algorithms and their
references.
"""

from __future__ import annotations

from ._badge import badge
from ._bayesian import bald
from ._clustering import dbal, typiclust
from ._coreset import coreset
from ._kcenter import kcenter_greedy
from ._registry import (
    INPUTS,
    Strategy,
    StrategyError,
    names,
    options,
    register,
    registry,
    requirements,
    select,
)
from ._state import PoolState
from ._uncertainty import entropy, least_confidence, margin, random, ratio
from ._with_model import MC_SAMPLES, needs_model, select_with_model

__all__ = [
    "INPUTS",
    "MC_SAMPLES",
    "PoolState",
    "Strategy",
    "StrategyError",
    "badge",
    "bald",
    "coreset",
    "dbal",
    "entropy",
    "kcenter_greedy",
    "least_confidence",
    "margin",
    "names",
    "needs_model",
    "options",
    "random",
    "ratio",
    "register",
    "registry",
    "requirements",
    "select",
    "select_with_model",
    "typiclust",
]
