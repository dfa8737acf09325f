"""PSHEA with a simulated oracle: one :class:`ActiveLearner` per candidate strategy.

:func:`run_pshea` is the in-process driver of :class:`~alaas_lab.agent.pshea.Pshea`
(the worker, ``alaas_lab/worker/auto.py``, drives the same controller with human
labels). Each candidate ``l`` has its own learner: its own labeled set ``d^l``,
head and random stream. All of them share one label store, the oracle: an item
that some strategy already had labeled is free when another one selects it.

Every learner of a run starts from the same seed (``SeedSequence(seed)``, as in
:func:`alaas_lab.learner.simulate`), so the seed set is shared and each
strategy's curve, up to its elimination, is exactly what ``simulate`` gives for
that strategy and seed: PSHEA changes who keeps running, not what they pick.

This module is the one part of :mod:`alaas_lab.agent` that imports the rest of
the package (the learner and the models); the controller and the forecaster stay
pure.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._validation import check_count, check_matrix
from ..errors import InputError
from .pshea import Decision, Pshea

__all__ = ["PsheaResult", "run_pshea"]


@dataclasses.dataclass
class PsheaResult:
    """One PSHEA run: the controller's record and every learner's rounds.

    Attributes
    ----------
    controller : Pshea
        Final state: decisions, history, forecasts, survivors, winner.
    records : dict
        ``{strategy: [RoundRecord, ...]}``, round 0 (the shared seed set) first;
        a strategy's list ends at the round it was eliminated in.
    seed : int
    n_pool, n_test : int
    seconds : float
        Wall time of the run.
    """

    controller: Pshea
    records: dict[str, list[Any]]
    seed: int
    n_pool: int
    n_test: int
    seconds: float = 0.0

    @property
    def winner(self) -> str | None:
        return self.controller.winner

    @property
    def final_accuracy(self) -> float | None:
        """Latest top-1 accuracy of the winner."""
        return None if self.winner is None else self.controller.accuracy(self.winner)

    @property
    def labels_unique(self) -> int:
        """Labels asked of the oracle, each item once (the seed set included)."""
        return self.controller.spent_unique

    @property
    def labels_sum(self) -> int:
        """The paper's count: every strategy's selections summed (the seed set once)."""
        return self.controller.spent_sum

    @property
    def eliminated(self) -> dict[str, int]:
        return dict(self.controller.eliminated)

    @property
    def decisions(self) -> list[Decision]:
        return list(self.controller.decisions)

    def curve(self, strategy: str) -> np.ndarray:
        """Top-1 accuracy of ``strategy`` per round it ran, shape ``(rounds_run + 1,)``."""
        return np.array([r.top1 for r in self.records[strategy]])

    def forecast_errors(self) -> list[dict[str, Any]]:
        """Every forecast that met its round: ``round``, ``strategy``, ``predicted``,
        ``actual``, ``std``, ``model`` and ``n_points`` (history it was made from)."""
        out = []
        for s, fs in self.controller.forecasts.items():
            observed = {int(r): a for r, _, a in self.controller.history[s]}
            for rnd, f in sorted(fs.items()):
                if rnd in observed:
                    out.append({"round": rnd, "strategy": s, "predicted": f.mean,
                                "actual": observed[rnd], "std": f.std, "model": f.model,
                                "n_points": f.n_points})
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "n_pool": self.n_pool,
            "n_test": self.n_test,
            "seconds": self.seconds,
            "winner": self.winner,
            "final_accuracy": self.final_accuracy,
            "labels_unique": self.labels_unique,
            "labels_sum": self.labels_sum,
            "controller": self.controller.to_dict(),
            "records": {s: [r.to_dict() for r in rs] for s, rs in self.records.items()},
        }

    def to_table(self) -> str:
        """Accuracy per strategy and round; ``x`` marks the round a strategy was dropped."""
        ctrl = self.controller
        rounds = sorted({r.round for rs in self.records.values() for r in rs})
        width = max(len(s) for s in ctrl.candidates)
        head = f"{'strategy':<{width}}  " + "  ".join(f"{'r' + str(r):>6}" for r in rounds)
        lines = [
            f"PSHEA seed {self.seed}: pool {self.n_pool}, test {self.n_test}; winner "
            f"{self.winner} at {100 * (self.final_accuracy or 0):.2f}%; labels "
            f"{self.labels_unique} unique / {self.labels_sum} summed; {ctrl.stop_reason}",
            head, "-" * len(head)]
        for s in ctrl.candidates:
            by_round = {r.round: r.top1 for r in self.records[s]}
            cells = []
            for r in rounds:
                mark = "x" if ctrl.eliminated.get(s) == r else " "
                cells.append(f"{100 * by_round[r]:>5.1f}{mark}" if r in by_round else f"{'':>6}")
            lines.append(f"{s:<{width}}  " + "  ".join(cells))
        return "\n".join(lines)


def run_pshea(
    X: Any,
    y: Any,
    *,
    candidates: Sequence[str] | None = None,
    budget_per_round: int,
    rounds: int | None = 8,
    b_max: int | None = None,
    target: float | None = None,
    initial_labeled: int = 20,
    X_test: Any = None,
    y_test: Any = None,
    seed: int = 0,
    eliminate: str = "one",
    min_delta: float = 0.001,
    patience: int = 2,
    accounting: str = "unique",
    abscissa: str = "labels",
    forecast_params: Mapping[str, Any] | None = None,
    head_params: dict[str, Any] | None = None,
    strategy_params: Mapping[str, dict[str, Any]] | None = None,
    classes: Any = None,
    holdout: float = 0.25,
    mc_samples: int = 20,
    on_round: Callable[[int, dict[str, Any], list[Decision]], Any] | None = None,
) -> PsheaResult:
    """Run PSHEA over a pool with a simulated oracle (labels known in advance).

    Parameters
    ----------
    X : array-like of shape (n, d)
        Pool embeddings.
    y : array-like of shape (n,)
        Their labels, revealed only when some strategy selects the item.
    candidates : sequence of str, optional
        Strategies to race; default every registered one.
    budget_per_round : int
        Items each surviving strategy selects per round.
    rounds : int or None, default 8
        Most strategy rounds after the seed round (None: until another rule stops).
    b_max : int, optional
        Label budget (counted as ``accounting`` says), seed set included.
    target : float, optional
        Stop once some strategy reaches this test accuracy.
    initial_labeled : int, default 20
        Random seed set shared by every candidate (round 0), >= 1.
    X_test, y_test : array-like, optional
        Test set; without one a seeded ``holdout`` share of ``X`` is held out, as in
        :func:`~alaas_lab.learner.simulate`.
    seed : int, default 0
        Same seed, same run: split, seed set, every strategy's picks.
    eliminate, min_delta, patience, accounting, abscissa, forecast_params
        Passed to :class:`~alaas_lab.agent.pshea.Pshea`. ``eliminate="none"``
        runs every candidate every round (the brute-force baseline).
    head_params : dict, optional
        Keyword arguments of each learner's :class:`~alaas_lab.models.LastLayerHead`.
    strategy_params : dict, optional
        ``{strategy: {option: value}}`` for the strategies that take options.
    classes : int or sequence, optional
        Label set; default the distinct labels of ``y`` and ``y_test``.
    holdout : float, default 0.25
    mc_samples : int, default 20
        Dropout samples for ``bald``.
    on_round : callable, optional
        ``on_round(round, {strategy: RoundRecord}, decisions)`` after each round.

    Returns
    -------
    PsheaResult
    """
    from .. import strategies as _strategies
    from ..learner import ActiveLearner, RoundRecord, split_pool

    t_start = time.perf_counter()
    X = check_matrix(X, name="X")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise InputError(f"y must be 1-D with one label per row of X ({X.shape[0]}); "
                         f"got {y.shape}.")
    known = _strategies.names()
    cands = list(known if candidates is None else candidates)
    bad = [c for c in cands if c not in known]
    if bad:
        raise InputError(f"unknown strategies {bad} in candidates; choose from {known}.")
    budget = check_count(budget_per_round, name="budget_per_round", minimum=1)
    initial = check_count(initial_labeled, name="initial_labeled", minimum=1)
    seed = check_count(seed, name="seed")
    params = dict(strategy_params or {})
    stray = sorted(set(params) - set(cands))
    if stray:
        raise InputError(f"strategy_params names {stray}, which are not candidates {cands}.")
    split_seq, loop_seq = np.random.SeedSequence(seed).spawn(2)
    X_pool, y_pool, X_te, y_te = split_pool(X, y, X_test, y_test, holdout, split_seq)
    cls = np.unique(np.concatenate([y_pool, y_te])) if classes is None else classes
    ctrl = Pshea(cands, budget_per_round=budget, initial=initial, b_max=b_max, target=target,
                 max_rounds=rounds, eliminate=eliminate, min_delta=min_delta, patience=patience,
                 accounting=accounting, abscissa=abscissa, forecast_params=forecast_params)
    learners = {
        c: ActiveLearner(X_pool, classes=cls, strategy=c, head_params=head_params,
                         strategy_params=params.get(c), mc_samples=mc_samples,
                         seed=np.random.default_rng(loop_seq))
        for c in cands
    }
    asked = np.zeros(X_pool.shape[0], dtype=bool)  # the shared label store
    records: dict[str, list[RoundRecord]] = {c: [] for c in cands}

    while not (plan := ctrl.plan()).stop:
        work = {c: plan.seed for c in ctrl.survivors} if plan.seed else plan.budgets
        short = [c for c, k in work.items() if learners[c].n_unlabeled < k]
        if short:
            ctrl.stop(f"pool exhausted: {short[0]} has {learners[short[0]].n_unlabeled} "
                      f"unlabeled items left, fewer than the {work[short[0]]} it needs")
            break
        done: dict[str, RoundRecord] = {}
        new_labels = 0
        selected = 0
        first_pick: np.ndarray | None = None
        for c, k in work.items():
            learner = learners[c]
            t0 = time.perf_counter()
            if plan.seed:
                idx = learner.query(k, strategy="random")
                if first_pick is not None and not np.array_equal(idx, first_pick):
                    raise AssertionError("learners drew different seed sets")  # pragma: no cover
                first_pick = idx
            else:
                idx = learner.query(k)
            t_query = time.perf_counter() - t0
            fresh = idx[~asked[idx]]
            asked[fresh] = True
            new_labels += int(fresh.size)
            selected += int(idx.size)
            learner.teach(idx, y_pool[idx])
            learner.fit()
            scores = learner.evaluate(X_te, y_te)
            done[c] = learner.record(RoundRecord(
                round=plan.round, strategy="random" if plan.seed else c,
                n_labeled=learner.n_labeled, top1=scores["top1"], top5=scores["top5"],
                selected=idx, seconds=time.perf_counter() - t0, query_seconds=t_query))
            records[c].append(done[c])
        if plan.seed:
            accs: Any = done[ctrl.survivors[0]].top1
            decisions = ctrl.observe(plan.round, accs, labels_spent=new_labels,
                                     labels_sum=plan.seed)
        else:
            decisions = ctrl.observe(
                plan.round, {c: r.top1 for c, r in done.items()}, labels_spent=new_labels,
                labels_sum=selected, n_labeled={c: r.n_labeled for c, r in done.items()})
        if on_round is not None:
            on_round(plan.round, done, decisions)
    return PsheaResult(ctrl, records, seed, X_pool.shape[0], len(y_te),
                       time.perf_counter() - t_start)


