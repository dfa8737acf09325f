"""PSHEA, the paper's Algorithm 1, as a pure and deterministic state machine.

Predictive-based Successive Halving Early-stop: race candidate strategies round
by round, forecast each one's next accuracy from its learning curve, drop the
worst-forecast one, stop when the target accuracy is reached, the budget is
spent or accuracy no longer improves.

:class:`Pshea` does no I/O and trains no model. A driver asks it what to do and
tells it what happened::

    ctrl = Pshea(["margin", "entropy", "coreset"], budget_per_round=20, initial=20,
                 b_max=400, target=0.95)
    while not (plan := ctrl.plan()).stop:
        if plan.seed:            # round 0: one random seed set, shared by every candidate
            ...label plan.seed random items, fit, evaluate -> a0...
            ctrl.observe(plan.round, a0, labels_spent=plan.seed)
        else:                    # each surviving strategy selects plan.budgets[s] items
            ...select, label (reusing labels already given), fit, evaluate...
            ctrl.observe(plan.round, {s: acc_s, ...}, labels_spent=new_labels,
                         labels_sum=selected_in_total, n_labeled={s: len(d_s), ...})
    ctrl.winner, ctrl.decisions

The simulated driver is :func:`alaas_lab.agent.run_pshea`; the worker's is
``alaas_lab/worker/auto.py``. Both persist :meth:`Pshea.to_dict` and resume with
:meth:`Pshea.from_dict`.

One round, as implemented
-------------------------
``observe(r, ...)`` does, in order:

1. records each surviving strategy's accuracy (``observe`` decisions, carrying
   the accuracy forecast for round ``r`` one round earlier);
2. forecasts each survivor's accuracy at the next round with
   :func:`alaas_lab.agent.forecast.forecast` on its history (``forecast``
   decisions); the abscissa is the strategy's labeled-set size ``|d^l|``
   (``abscissa="labels"``) or the round number (``abscissa="round"``), and the
   next point is one nominal ``budget_per_round`` further on;
3. checks the stop rules, in this order: ``target`` (best accuracy so far >=
   ``target``), ``budget`` (labels spent >= ``b_max``, or the next round cannot
   give every survivor at least one label), ``rounds`` (``max_rounds`` strategy
   rounds done), ``converged`` (the best accuracy so far rose by less than
   ``min_delta`` over the last ``patience`` rounds);
4. if it does not stop and more than one strategy survives, eliminates the
   survivor with the lowest forecast (``eliminate="one"``, Algorithm 1) or the
   worse half (``eliminate="half"``: successive halving, ``floor(|L|/2)`` go);
   ties go against the lower current accuracy, then the later candidate. No
   elimination after the seed round (every candidate has the same a0) and none in
   the round the run stops (no labels left to save).

When it stops, the winner is the survivor with the best latest accuracy.

Label accounting
----------------
Candidates share one label store: an item another strategy already had labeled
costs nothing. The driver reports both counts for each round: ``labels_spent``,
the labels newly asked of the human (unique), and ``labels_sum``, the paper's
``sum_l b_r^l`` (each strategy's selection counted in full). ``b_max`` is
compared against the first (``accounting="unique"``, default) or the second
(``accounting="sum"``). A round's per-strategy budget is cut so that even with no
overlap (the worst case for either count) it cannot overrun ``b_max``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InputError
from .forecast import Forecast, forecast
from .story import pshea_story

__all__ = ["STATE_VERSION", "Decision", "Plan", "Pshea"]

#: Version of :meth:`Pshea.to_dict`'s layout.
STATE_VERSION = 1
_ELIMINATE = ("one", "half", "none")
_ACCOUNTING = ("unique", "sum")
_ABSCISSA = ("labels", "round")


@dataclasses.dataclass(frozen=True)
class Decision:
    """One thing the controller decided or recorded.

    Attributes
    ----------
    round : int
    kind : {"observe", "forecast", "eliminate", "stop"}
        ``observe``: an accuracy came in (``actual``; ``predicted`` is what was
        forecast for it a round earlier, or None). ``forecast``: the prediction
        for the next round (``predicted``; ``actual`` is the current accuracy).
        ``eliminate``: the strategy leaves the race. ``stop``: the run ends;
        ``strategy`` is the winner.
    strategy : str or None
    reason : str
        Why, in words (model used, ranks, rule that fired).
    predicted, actual : float or None
    """

    round: int
    kind: str
    strategy: str | None
    reason: str
    predicted: float | None = None
    actual: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        return cls(int(d["round"]), str(d["kind"]), d.get("strategy"), str(d["reason"]),
                   d.get("predicted"), d.get("actual"))


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the next round should do.

    Attributes
    ----------
    round : int
    budgets : dict
        ``{strategy: k}``: how many items each surviving strategy selects
        (empty in the seed round and once stopped).
    seed : int
        Size of the random seed set shared by every candidate (seed round only,
        else 0).
    stop : bool
        The run is over; ``reason`` says why.
    reason : str or None
    """

    round: int
    budgets: dict[str, int]
    seed: int = 0
    stop: bool = False
    reason: str | None = None


class Pshea:
    """The PSHEA controller.

    Parameters
    ----------
    candidates : sequence of str
        Strategy names, distinct, at least one. Their order breaks ties.
    budget_per_round : int
        Items each surviving strategy selects per round (``b_r^l``), >= 1.
    initial : int, default 0
        Size of the random seed set labeled in the first round and shared by
        every candidate (the paper's pre-training). 0: no seed round.
    b_max : int, optional
        Label budget (see ``accounting``); None: unlimited.
    target : float, optional
        Stop once the best accuracy reaches it; None: never.
    max_rounds : int, optional
        Stop after this many strategy rounds (the seed round not counted).
    eliminate : {"one", "half", "none"}, default "one"
        Per round: drop the worst forecast (Algorithm 1), the worse half
        (successive halving), or nobody (every candidate every round: brute force).
    min_delta : float, default 0.001
        Convergence: stop when the best accuracy rose by less than this over the
        last ``patience`` strategy rounds. 0 disables the rule.
    patience : int, default 2
    accounting : {"unique", "sum"}, default "unique"
        Which label count ``b_max`` limits (module docstring).
    abscissa : {"labels", "round"}, default "labels"
        x-axis of the learning curves the forecaster fits.
    forecast_params : dict, optional
        Keyword arguments of :func:`~alaas_lab.agent.forecast.forecast`
        (``models``, ``select``, ...).
    start_round : int, default 0
        Number of the first round (a worker counts from 1).
    """

    def __init__(
        self,
        candidates: Sequence[str],
        *,
        budget_per_round: int,
        initial: int = 0,
        b_max: int | None = None,
        target: float | None = None,
        max_rounds: int | None = None,
        eliminate: str = "one",
        min_delta: float = 0.001,
        patience: int = 2,
        accounting: str = "unique",
        abscissa: str = "labels",
        forecast_params: Mapping[str, Any] | None = None,
        start_round: int = 0,
    ) -> None:
        if isinstance(candidates, str) or not isinstance(candidates, Sequence):
            raise InputError(f"candidates must be a list of strategy names; got {candidates!r}.")
        cands = list(candidates)
        if not cands or not all(isinstance(c, str) and c for c in cands):
            raise InputError(f"candidates must be non-empty strategy names; got {cands!r}.")
        if len(set(cands)) != len(cands):
            dup = sorted({c for c in cands if cands.count(c) > 1})
            raise InputError(f"candidates must be distinct; {dup} appear more than once.")
        self.candidates = cands
        self.budget_per_round = _count(budget_per_round, "budget_per_round", 1)
        self.initial = _count(initial, "initial", 0)
        self.b_max = None if b_max is None else _count(b_max, "b_max", 1)
        if target is not None and not (isinstance(target, numbers.Real) and 0 < target <= 1):
            raise InputError(f"target must be an accuracy in (0, 1] or None; got {target!r}.")
        self.target = None if target is None else float(target)
        self.max_rounds = None if max_rounds is None else _count(max_rounds, "max_rounds", 1)
        if eliminate not in _ELIMINATE:
            raise InputError(f"eliminate must be one of {_ELIMINATE}; got {eliminate!r}.")
        self.eliminate = eliminate
        if not (isinstance(min_delta, numbers.Real) and min_delta >= 0):
            raise InputError(f"min_delta must be a number >= 0; got {min_delta!r}.")
        self.min_delta = float(min_delta)
        self.patience = _count(patience, "patience", 1)
        if accounting not in _ACCOUNTING:
            raise InputError(f"accounting must be one of {_ACCOUNTING}; got {accounting!r}.")
        self.accounting = accounting
        if abscissa not in _ABSCISSA:
            raise InputError(f"abscissa must be one of {_ABSCISSA}; got {abscissa!r}.")
        self.abscissa = abscissa
        self.forecast_params = dict(forecast_params or {})
        try:  # check the forecaster's options now rather than at the first round
            forecast([1.0, 2.0], [0.5, 0.6], 3.0, **self.forecast_params)
        except TypeError as exc:
            raise InputError(f"forecast_params: {exc}; see alaas_lab.agent.forecast.forecast "
                             "for the options.") from None
        self.start_round = _count(start_round, "start_round", 0)
        if self.b_max is not None and self.initial > self.b_max:
            raise InputError(
                f"initial ({self.initial}) is larger than b_max ({self.b_max}); the seed set "
                "alone would overrun the budget. Lower initial or raise b_max.")
        # ---- state
        self.round = self.start_round
        self.survivors: list[str] = list(cands)
        self.eliminated: dict[str, int] = {}
        #: ``{strategy: [[round, x, accuracy], ...]}``
        self.history: dict[str, list[list[float]]] = {c: [] for c in cands}
        #: ``{strategy: {round: Forecast}}``: forecast *for* that round
        self.forecasts: dict[str, dict[int, Forecast]] = {c: {} for c in cands}
        self.best: list[float] = []  # best accuracy so far, after each observed round
        self.spent_unique = 0
        self.spent_sum = 0
        self.strategy_rounds = 0
        #: ``{strategy: |d^l|}``: labeled-set size of each candidate
        self.n_labeled: dict[str, int] = {c: 0 for c in cands}
        self.seeded = self.initial == 0
        self.decisions: list[Decision] = []
        self.stopped = False
        self.stop_reason: str | None = None
        self.winner: str | None = None

    # ------------------------------------------------------------------ queries
    @property
    def spent(self) -> int:
        """Labels spent in the accounting ``b_max`` limits."""
        return self.spent_unique if self.accounting == "unique" else self.spent_sum

    @property
    def best_accuracy(self) -> float | None:
        return self.best[-1] if self.best else None

    def accuracy(self, strategy: str) -> float | None:
        """Latest observed accuracy of ``strategy``."""
        h = self.history[self._known(strategy)]
        return h[-1][2] if h else None

    def prediction(self, strategy: str, round: int | None = None) -> Forecast | None:
        """The forecast for ``strategy`` at ``round`` (default: the next round)."""
        rnd = self.round if round is None else round
        return self.forecasts[self._known(strategy)].get(int(rnd))

    def leader(self) -> str:
        """The survivor with the best latest accuracy (ties: better forecast, then order)."""
        def key(s: str) -> tuple[float, float, int]:
            acc = self.accuracy(s)
            f = self.forecasts[s].get(self.round)
            return (-(acc if acc is not None else -1.0), -(f.mean if f else -1.0),
                    self.candidates.index(s))
        return min(self.survivors, key=key)

    def _round_budget(self, n_survivors: int) -> int:
        """Per-strategy budget of the next round so that it cannot overrun ``b_max``."""
        if self.b_max is None:
            return self.budget_per_round
        left = self.b_max - self.spent
        return max(0, min(self.budget_per_round, left // n_survivors))

    def plan(self) -> Plan:
        """What to run next (does not change the state)."""
        if self.stopped:
            return Plan(self.round, {}, 0, True, self.stop_reason)
        if not self.seeded:
            return Plan(self.round, {}, self.initial)
        k = self._round_budget(len(self.survivors))
        return Plan(self.round, {s: k for s in self.survivors})

    # ------------------------------------------------------------------ updates
    def observe(
        self,
        round: int,
        accuracies: Mapping[str, float] | float,
        labels_spent: int,
        *,
        labels_sum: int | None = None,
        n_labeled: Mapping[str, int] | None = None,
    ) -> list[Decision]:
        """Record a finished round and decide what follows.

        Parameters
        ----------
        round : int
            The round that :meth:`plan` announced.
        accuracies : dict or float
            ``{strategy: accuracy}`` for every survivor (fractions in [0, 1]). In
            the seed round one float (every candidate has the same model).
        labels_spent : int
            Labels newly asked of the human this round (unique).
        labels_sum : int, optional
            The paper's count: items selected this round summed over strategies.
            Default: the planned budgets (the seed size in the seed round).
        n_labeled : dict, optional
            ``{strategy: |d^l|}`` after the round; default: the planned count
            (seed plus every budget so far).

        Returns
        -------
        list of Decision
            The decisions made in this call (also appended to :attr:`decisions`).
        """
        if self.stopped:
            raise InputError(f"the run has stopped ({self.stop_reason}); nothing to observe.")
        if isinstance(round, bool) or not isinstance(round, numbers.Integral) or (
                round != self.round):
            raise InputError(f"round must be {self.round}, the round plan() announced; "
                             f"got {round!r}.")
        plan = self.plan()
        seed_round = plan.seed > 0
        accs = self._check_accuracies(accuracies, seed_round)
        spent = _count(labels_spent, "labels_spent", 0)
        planned = plan.seed if seed_round else sum(plan.budgets.values())
        total = planned if labels_sum is None else _count(labels_sum, "labels_sum", 0)
        if spent > total:
            raise InputError(f"labels_spent ({spent}) cannot exceed labels_sum ({total}): unique "
                             "labels are a subset of the labels selected.")
        xs = self._labeled_counts(n_labeled, plan, seed_round)

        made: list[Decision] = []
        self.spent_unique += spent
        self.spent_sum += total
        if not seed_round:
            self.strategy_rounds += 1
        self.seeded = True
        for s, acc in accs.items():
            self.n_labeled[s] = xs[s]
            x = float(xs[s]) if self.abscissa == "labels" else float(round)
            self.history[s].append([round, x, acc])
            prior = self.forecasts[s].get(round)
            made.append(Decision(round, "observe", s,
                                 "seed set" if seed_round else f"{plan.budgets[s]} selected",
                                 prior.mean if prior else None, acc))
        best = max(accs.values())
        self.best.append(max(best, self.best[-1]) if self.best else best)

        nxt = round + 1
        for s in self.survivors:
            f = self._forecast(s)
            self.forecasts[s][nxt] = f
            made.append(Decision(round, "forecast", s,
                                 f"{f.model} on {f.n_points} point(s), std {f.std:.4f}",
                                 f.mean, accs[s]))

        reason = self._stop_rule(seed_round)
        if reason is None and not seed_round and len(self.survivors) > 1:
            made.extend(self._eliminate(round, accs))
        self.round = nxt
        if reason is not None:
            made.append(self._stop(round, reason))
        self.decisions.extend(made)
        return made

    def stop(self, reason: str) -> Decision:
        """End the run from outside (e.g. the pool ran out); records and returns the decision."""
        if self.stopped:
            raise InputError(f"the run has already stopped ({self.stop_reason}).")
        d = self._stop(self.round - 1 if self.round > self.start_round else self.round,
                       str(reason))
        self.decisions.append(d)
        return d

    # ------------------------------------------------------------------ internals
    def _known(self, strategy: str) -> str:
        if strategy not in self.history:
            raise InputError(f"unknown strategy {strategy!r}; candidates are {self.candidates}.")
        return strategy

    def _check_accuracies(self, accuracies: Any, seed_round: bool) -> dict[str, float]:
        if seed_round and not isinstance(accuracies, Mapping):
            accuracies = {s: accuracies for s in self.survivors}
        if not isinstance(accuracies, Mapping):
            raise InputError("accuracies must be a dict {strategy: accuracy} for every survivor; "
                             f"got {type(accuracies).__name__}.")
        if set(accuracies) != set(self.survivors):
            raise InputError(
                f"accuracies must name exactly the surviving strategies {self.survivors}; "
                f"got {sorted(accuracies)}.")
        out = {}
        for s in self.survivors:  # candidate order, whatever the dict's order
            a = accuracies[s]
            if isinstance(a, bool) or not isinstance(a, numbers.Real) or not (
                    math.isfinite(a) and 0.0 <= a <= 1.0):
                raise InputError(f"accuracy of {s!r} must be a fraction in [0, 1]; got {a!r}.")
            out[s] = float(a)
        return out

    def _labeled_counts(self, n_labeled: Any, plan: Plan, seed_round: bool) -> dict[str, int]:
        if n_labeled is None:
            return {s: self.n_labeled[s] + (plan.seed if seed_round else plan.budgets[s])
                    for s in self.survivors}
        if not isinstance(n_labeled, Mapping) or not set(self.survivors) <= set(n_labeled):
            raise InputError(f"n_labeled must give |d^l| for every survivor {self.survivors}; "
                             f"got {n_labeled!r}.")
        return {s: _count(n_labeled[s], f"n_labeled[{s!r}]", 1) for s in self.survivors}

    def _forecast(self, s: str) -> Forecast:
        h = self.history[s]
        t = [p[1] for p in h]
        y = [p[2] for p in h]
        step = self.budget_per_round if self.abscissa == "labels" else 1
        return forecast(t, y, t[-1] + step, **self.forecast_params)

    def _stop_rule(self, seed_round: bool) -> str | None:
        best = self.best[-1]
        if self.target is not None and best >= self.target:
            return f"target reached: best accuracy {best:.4f} >= target {self.target:.4f}"
        if self.b_max is not None:
            if self.spent >= self.b_max:
                return (f"budget spent: {self.spent} of b_max={self.b_max} labels "
                        f"({self.accounting})")
            n_next = len(self.survivors) - (0 if seed_round else self._n_to_eliminate())
            if self._round_budget(max(n_next, 1)) < 1:
                return (f"budget spent: {self.b_max - self.spent} label(s) left of "
                        f"b_max={self.b_max}, not one per surviving strategy ({n_next})")
        if self.max_rounds is not None and self.strategy_rounds >= self.max_rounds:
            return f"max_rounds reached: {self.strategy_rounds} strategy rounds"
        if self.min_delta > 0 and self.strategy_rounds >= self.patience and len(
                self.best) > self.patience:
            gain = best - self.best[-1 - self.patience]
            if gain < self.min_delta:
                return (f"converged: best accuracy rose {gain:+.4f} over the last "
                        f"{self.patience} rounds (< min_delta {self.min_delta})")
        return None

    def _n_to_eliminate(self) -> int:
        n = len(self.survivors)
        if n <= 1 or self.eliminate == "none":
            return 0
        return 1 if self.eliminate == "one" else n // 2

    def _eliminate(self, round: int, accs: dict[str, float]) -> list[Decision]:
        nxt = round + 1
        order = sorted(
            self.survivors,
            key=lambda s: (self.forecasts[s][nxt].mean, accs[s], -self.candidates.index(s)))
        n_out = self._n_to_eliminate()
        out: list[Decision] = []
        gone = order[:n_out]
        kept = order[n_out:]
        floor_kept = self.forecasts[kept[0]][nxt].mean if kept else float("nan")
        for rank, s in enumerate(gone):
            f = self.forecasts[s][nxt]
            why = (f"lowest forecast for round {nxt}" if n_out == 1 else
                   f"forecast for round {nxt} ranked {len(order) - rank} of {len(order)}")
            out.append(Decision(
                round, "eliminate", s,
                f"{why}: {f.mean:.4f} ({f.model}) < {floor_kept:.4f} of {kept[0]}, "
                f"the lowest kept",
                f.mean, accs[s]))
            self.eliminated[s] = round
        self.survivors = [s for s in self.survivors if s not in gone]
        return out

    def _stop(self, round: int, reason: str) -> Decision:
        self.stopped = True
        self.stop_reason = reason
        self.winner = self.leader() if any(self.history[s] for s in self.survivors) else None
        acc = self.accuracy(self.winner) if self.winner else None
        return Decision(round, "stop", self.winner, reason, None, acc)

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """The whole state, JSON-ready; :meth:`from_dict` rebuilds an equal controller."""
        return {
            "version": STATE_VERSION,
            "params": {
                "candidates": list(self.candidates),
                "budget_per_round": self.budget_per_round,
                "initial": self.initial,
                "b_max": self.b_max,
                "target": self.target,
                "max_rounds": self.max_rounds,
                "eliminate": self.eliminate,
                "min_delta": self.min_delta,
                "patience": self.patience,
                "accounting": self.accounting,
                "abscissa": self.abscissa,
                "forecast_params": _plain(self.forecast_params),
                "start_round": self.start_round,
            },
            "state": {
                "round": self.round,
                "survivors": list(self.survivors),
                "eliminated": dict(self.eliminated),
                "history": {s: [list(p) for p in h] for s, h in self.history.items()},
                "forecasts": {s: {str(r): f.to_dict() for r, f in fs.items()}
                              for s, fs in self.forecasts.items()},
                "best": list(self.best),
                "spent_unique": self.spent_unique,
                "spent_sum": self.spent_sum,
                "strategy_rounds": self.strategy_rounds,
                "n_labeled": dict(self.n_labeled),
                "seeded": self.seeded,
                "decisions": [d.to_dict() for d in self.decisions],
                "stopped": self.stopped,
                "stop_reason": self.stop_reason,
                "winner": self.winner,
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Pshea:
        """Rebuild a controller saved with :meth:`to_dict`."""
        version = d.get("version") if isinstance(d, Mapping) else None
        if version != STATE_VERSION:
            raise InputError(f"PSHEA state version {version!r} is not {STATE_VERSION}; it was "
                             "written by another alaas_lab version or is not a PSHEA state.")
        p, s = d["params"], d["state"]
        obj = cls(**{**p, "forecast_params": dict(p.get("forecast_params") or {})})
        obj.round = int(s["round"])
        obj.survivors = list(s["survivors"])
        obj.eliminated = {k: int(v) for k, v in s["eliminated"].items()}
        obj.history = {k: [[int(r), float(x), float(a)] for r, x, a in v]
                       for k, v in s["history"].items()}
        obj.forecasts = {k: {int(r): Forecast.from_dict(f) for r, f in v.items()}
                         for k, v in s["forecasts"].items()}
        obj.best = [float(b) for b in s["best"]]
        obj.spent_unique = int(s["spent_unique"])
        obj.spent_sum = int(s["spent_sum"])
        obj.strategy_rounds = int(s["strategy_rounds"])
        obj.n_labeled = {k: int(v) for k, v in s["n_labeled"].items()}
        obj.seeded = bool(s["seeded"])
        obj.decisions = [Decision.from_dict(x) for x in s["decisions"]]
        obj.stopped = bool(s["stopped"])
        obj.stop_reason = s["stop_reason"]
        obj.winner = s["winner"]
        return obj

    def story(self) -> str:
        """The run so far in words, one line per round (:func:`~.story.pshea_story`)."""
        return pshea_story(self)

    def __repr__(self) -> str:
        state = f"stopped: {self.stop_reason}" if self.stopped else f"round {self.round}"
        return (f"Pshea({len(self.survivors)}/{len(self.candidates)} surviving, {state}, "
                f"spent {self.spent_unique} unique / {self.spent_sum} sum)")


def _count(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
