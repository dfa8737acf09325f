"""Rounds: one interface for how a session selects and closes rounds.

A :class:`RoundPolicy` is chosen once, when the session opens: one strategy
(:class:`SingleStrategyRounds`, here) or PSHEA (:class:`~alaas_lab.worker.auto.AutoPilot`).
Both work through the pool's public API (:class:`~alaas_lab.worker.state.PoolSession`:
``lock``, masks, ``fit``, ``begin_round``, ``journal``, ``emit``) and select through
:func:`alaas_lab.strategies.select_with_model`, as the in-process learner does.

Threads: ``query`` and ``finish_round`` run on the worker's job thread. They copy
what they need under the pool's lock and do the model work (fits, strategies)
outside it, so labels, item requests and status never wait on them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .. import strategies
from ..errors import BudgetError, InputError

if TYPE_CHECKING:  # pragma: no cover
    from .state import PoolSession

__all__ = ["SEED_STRATEGY", "RoundPolicy", "SingleStrategyRounds", "check_budget"]

#: What selects the seed round, before any model exists (the paper's random seed set).
SEED_STRATEGY = "random"


class RoundPolicy(Protocol):
    """How a session selects items and closes rounds."""

    #: Whether a next selection may start before the last one is labeled (async rounds).
    selects_ahead: bool
    #: Whether the next round is started as soon as a round's fits land.
    advance_on_round_end: bool

    def query(self, budget: int, *, strategy: str | None = None) -> dict[str, Any]:
        """Select up to ``budget`` items for the human (a ``query_reply``)."""

    def finish_round(self, round_: int | None = None) -> dict[str, Any]:
        """Fit, evaluate and record a fully labeled round (a ``fit_reply``)."""

    def select_ahead(self, budget: int) -> None:
        """Async rounds: select (or prepare) the next items while the human labels."""

    def status(self) -> dict[str, Any]:
        """What this policy adds to the session's status."""


def check_budget(budget: Any) -> int:
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise InputError(f"budget must be an integer >= 1; got {budget!r}.")
    return int(budget)


class SingleStrategyRounds:
    """Rounds of one strategy (``active_learning.strategy.type``), random seed set first.

    Parameters
    ----------
    pool : PoolSession
    """

    selects_ahead = True
    advance_on_round_end = False

    def __init__(self, pool: PoolSession) -> None:
        self.pool = pool
        self.strategy = pool.config.active_learning.strategy.type

    def query(self, budget: int, *, strategy: str | None = None) -> dict[str, Any]:
        """Select ``budget`` items; they stay pending until labeled.

        Strategies that need a model select a random seed set until
        ``budget.initial`` items are labeled.
        """
        budget = check_budget(budget)
        p = self.pool
        with p.lock:
            name = strategy or self.strategy
            if name == "auto":
                raise InputError(
                    "strategy 'auto' (PSHEA) is driven by the automatic controller; "
                    "query with a zoo strategy or run the auto mode.", reason="unknown_strategy")
            if name not in strategies.names():
                raise InputError(f"unknown strategy {name!r}; choose one of "
                                 f"{', '.join(strategies.names())}.", reason="unknown_strategy")
            self._check_budget_left(budget)
            n_train = int(p.train_mask().sum())
            if n_train < max(1, p.config.budget.initial) and strategies.needs_model(name):
                name = SEED_STRATEGY  # no model yet: a random seed set, as the paper does
            blocked = p.unselectable()
            available = int((~blocked).sum())
            if budget > available:
                raise InputError(
                    f"budget={budget} but only {available} pool items are embedded, unlabeled "
                    f"and not already queued; ask for at most {available} or push more data.",
                    reason="pool_exhausted")
            rnd = p.round + 1
        # the model work runs without the lock: labels are never held up by a query
        model = p.fit_if_stale() if strategies.needs_model(name) else None
        # the configured params belong to the configured strategy, not to the seed round's
        configured = p.config.active_learning.strategy
        params = dict(configured.params) if name == configured.type else {}
        chosen = strategies.select_with_model(
            name, budget, embeddings=p.emb.matrix, labeled=blocked, model=model,
            rng=np.random.default_rng([p.config.seed, rnd - 1]), state=p.pool_state(),
            **params).tolist()
        queued, rnd = p.begin_round({name: chosen}, model=p.model_mark() if model else None)
        return {"round": rnd, "item_ids": queued, "uris": [p.uris[i] for i in queued],
                "strategy": name}

    def select_ahead(self, budget: int) -> None:
        """The next round, selected with the newest head, while this one is labeled."""
        self.query(budget)

    def _check_budget_left(self, budget: int) -> None:
        p = self.pool
        left = p.budget_left()
        if left == 0:
            raise BudgetError(
                f"the session's label budget is spent (budget.total="
                f"{p.config.budget.total} labels asked for); raise budget.total in the "
                "config to go on.", reason="budget_spent")
        if left is not None and budget > left:
            raise BudgetError(
                f"budget={budget} asks for more labels than the session's budget has left "
                f"({left} of budget.total={p.config.budget.total}); ask for at most {left}"
                " or raise budget.total in the config.")

    def finish_round(self, round_: int | None = None) -> dict[str, Any]:
        """Fit on every label, evaluate, record the round; emits ``round_result``."""
        p = self.pool
        rnd = p.round if round_ is None else round_
        t0 = time.perf_counter()
        p.fit()
        with p.lock:
            ev = p.eval_mask()
            scores: dict[str, float | None] = {"top1": None, "top5": None}
            if ev.any():
                scores = p.head.evaluate(p.emb.matrix[ev], p.codes[ev])
            strategy = next((s.strategy for s in p.journal.selections(round=rnd)), "none")
            n_labeled = int(p.train_mask().sum())
            extra = {"n_eval": int(ev.sum()), "fit_s": round(time.perf_counter() - t0, 4)}
            p.journal.record_round(rnd, strategy, n_labeled=n_labeled, top1=scores["top1"],
                                   top5=scores["top5"], extra=extra)
            p.head_round = rnd  # the head that now selects is this round's
            result = {"round": rnd, "strategy": strategy, "n_labeled": n_labeled,
                      "top1": scores["top1"], "top5": scores["top5"], **extra}
        p.emit("round_result", result)
        return result

    def status(self) -> dict[str, Any]:
        return {}
