"""The AL agent: learning-curve forecasts and the PSHEA controller (paper, Algorithm 1).

Public API
----------
forecast.forecast(t, acc, t_next, *, models=..., select="mean") -> Forecast   (module function)
Pshea(candidates, *, target, b_max, budget_per_round, ...)   the controller: plan/observe
run_pshea(X, y, *, candidates, rounds, budget_per_round, ...) -> PsheaResult
RoundEngine(X, *, classes, ...)   one pool's heads, probabilities and strategy state, kept
                                  across rounds: fit(name, rows, y), select(name, k, ...)

:mod:`~alaas_lab.agent.forecast` and :mod:`~alaas_lab.agent.pshea` are pure
(numbers in, decisions out). :func:`run_pshea` drives them with one
:class:`~alaas_lab.learner.ActiveLearner` per candidate and a simulated oracle;
the worker drives the same controller with human labels (``worker/auto.py``).
See ``docs/pshea.md``.
"""

from __future__ import annotations

from typing import Any

from . import forecast
from .forecast import MODELS, Forecast
from .pshea import Decision, Plan, Pshea

__all__ = ["MODELS", "Decision", "Forecast", "Plan", "Pshea", "PsheaResult", "RoundEngine",
           "forecast", "run_pshea"]


def __getattr__(name: str) -> Any:
    # the simulated driver pulls in the learner and the models: load it on first use
    if name in ("run_pshea", "PsheaResult"):
        from . import runner

        return getattr(runner, name)
    if name == "RoundEngine":
        from .round import RoundEngine

        return RoundEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
