"""PSHEA in the worker: ``active_learning.strategy.type: auto`` with human labels.

:class:`AutoPilot` drives the same controller as the simulated
:func:`alaas_lab.agent.run_pshea` (:class:`~alaas_lab.agent.pshea.Pshea`), with
the human as the oracle. :class:`~alaas_lab.worker.state.PoolSession` hands its
``query`` and ``finish_round`` to it when the config says ``auto``.

One round
---------
``query(k)``
    Round 1 is the seed round: ``budget.initial`` random items (``budget.per_round``
    when ``initial`` is 0, whatever ``k``), shared by every candidate (selection
    name ``auto:seed`` in the journal). In every later round each surviving
    candidate ``l`` selects ``min(k, plan)`` items (the plan gives
    ``budget.per_round``, less when ``budget.total`` runs short) from the pool
    minus its own labeled set ``d^l``, with its own head's probabilities. Its
    picks are journaled as its selection; the human is asked for the *union* of
    the picks that nobody has labeled yet (label reuse: an item already labeled
    is free). The reply lists
    that union (``item_ids``) and every candidate's picks (``selections``).
    Asked again before the round is labeled, it returns the same round's items.
``finish_round`` (runs by itself once the last item of the round is labeled)
    Each candidate's head (one :class:`~alaas_lab.models.LastLayerHead` per
    candidate) is fitted on its own ``d^l`` (training items only) and evaluated
    on the evaluation set; the controller observes the accuracies, forecasts,
    eliminates, and maybe stops. Then, in this order: the controller's state is
    journaled as a ``pshea_state`` event; each candidate's result goes to
    ``journal.record_round`` and its forecasts to ``journal.record_forecast``
    (the forecast for the next round in that round's row, the elimination on
    this round's row); events go out: ``round_result`` per candidate (``top1``,
    ``forecast`` for the next round, ``predicted`` for this one), ``eliminated``
    per dropped candidate (``predicted``, ``reason``) and ``progress`` with
    ``stage="pshea"`` (the stop reason and winner once stopped).

Threads
-------
Like the rest of the worker, the model work runs outside the session's state
lock so labels never wait on it: ``query`` and ``finish_round`` read the plan and
copy what they need under the lock, fit the heads and run the strategies without
it (they run on the worker's single job thread, the only one touching the heads),
and take the lock again to commit picks, the controller's update, the journal
rows and the events.

Restart
-------
The last ``pshea_state`` event restores the controller; ``d^l`` is rebuilt from
the journaled selections; heads are refitted on first use. A round whose state
was journaled but whose ``record_round`` rows were not (killed in between) is
completed from the saved state; a round whose selection was only partly
journaled is completed by selecting again for the missing candidates (selection
is seeded by ``(seed, round, candidate)``, so they pick what they would have).

Options (``active_learning.strategy.params`` when ``type`` is ``auto``)
-----------------------------------------------------------------------
``eliminate`` ("one" | "half" | "none"), ``min_delta``, ``patience``,
``max_rounds``, ``accounting`` ("unique" | "sum"), ``abscissa``, ``forecast``
(keyword arguments of the forecaster), ``strategy_params`` (``{strategy:
{option: value}}``). ``budget.total`` is ``b_max`` (0: none), ``budget.per_round``
the per-strategy budget, ``target_accuracy`` the target.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .. import strategies
from .._failpoints import failpoint
from ..agent.pshea import Pshea
from ..errors import ConfigError, InputError, ModelError
from ..models import LastLayerHead

if TYPE_CHECKING:  # pragma: no cover
    from .state import PoolSession

__all__ = ["SEED", "STATE_EVENT", "AutoPilot"]

logger = logging.getLogger(__name__)

#: Journal event kind holding the controller's state after each round.
STATE_EVENT = "pshea_state"
#: Selection name of the seed round's random items, shared by every candidate.
SEED = "auto:seed"
_OPTIONS = ("eliminate", "min_delta", "patience", "max_rounds", "accounting", "abscissa",
            "forecast", "strategy_params")


class _Snapshot(NamedTuple):
    X: np.ndarray  # (n, d) embeddings
    filled: np.ndarray  # (n,) rows embedded
    train: np.ndarray  # (n,) training labels (not eval, not held out)
    codes: np.ndarray  # (n,) class index, -1 unlabeled
    members: dict[str, np.ndarray]  # d^l of each survivor


class AutoPilot:
    """Runs PSHEA for one :class:`~alaas_lab.worker.state.PoolSession`.

    Parameters
    ----------
    session : PoolSession
        Its config's ``active_learning.strategy.type`` is ``"auto"``.
    """

    #: Round r+1's picks are prepared while round r is labeled (see :meth:`select_ahead`).
    selects_ahead = True
    advance_on_round_end = True

    def __init__(self, session: PoolSession) -> None:
        self.s = session
        cfg = session.config
        strat = cfg.active_learning.strategy
        opts = dict(strat.params or {})
        unknown = sorted(set(opts) - set(_OPTIONS))
        if unknown:
            raise ConfigError(
                f"config key 'active_learning.strategy.params' has {unknown}, which PSHEA "
                f"(type: auto) does not take; it accepts {list(_OPTIONS)}.")
        self.candidates = list(strat.candidates) or strategies.names()
        self.strategy_params: dict[str, dict[str, Any]] = dict(opts.pop("strategy_params", {})
                                                               or {})
        stray = sorted(set(self.strategy_params) - set(self.candidates))
        if stray:
            raise ConfigError(
                "config key 'active_learning.strategy.params.strategy_params' names "
                f"{stray}, which are not candidates {self.candidates}.")
        forecast_params = dict(opts.pop("forecast", {}) or {})
        per_round = cfg.budget.per_round
        self.seed_size = cfg.budget.initial or per_round
        try:
            self.ctrl = Pshea(
                self.candidates, budget_per_round=per_round, initial=self.seed_size,
                b_max=cfg.budget.total or None, target=cfg.target_accuracy, start_round=1,
                forecast_params=forecast_params, **opts)
        except InputError as exc:
            raise ConfigError(f"PSHEA (active_learning.strategy.type: auto): {exc}") from None
        #: ``{round: {strategy: {"top1", "top5", "n_labeled"}}}`` for replays
        self.results: dict[int, dict[str, dict[str, Any]]] = {}
        self.heads = {c: self._new_head() for c in self.candidates}
        self._fitted: dict[str, tuple[int, int]] = {}
        #: picks prepared for round ``_ahead_round`` while the round before is labeled
        self._ahead: dict[str, list[int]] = {}
        self._ahead_round: int | None = None
        self._restore()

    # ------------------------------------------------------------------ state
    def _new_head(self) -> LastLayerHead:
        # one BLAS thread: a head is small, and on a busy machine OpenBLAS's spinning
        # threads make each L-BFGS step many times slower; PSHEA fits one per candidate
        return LastLayerHead(self.s.classes or None, seed=self.s.config.seed, threads=1)

    def _restore(self) -> None:
        events = self.s.journal.events(STATE_EVENT)
        if not events:
            return
        payload = events[-1].payload
        saved = Pshea.from_dict(payload["controller"])
        if saved.to_dict()["params"] != self.ctrl.to_dict()["params"]:
            logger.warning("the config's PSHEA settings differ from the journaled run's; "
                           "continuing the journaled run")
        self.ctrl = saved
        self.results = {int(r): v for r, v in payload.get("results", {}).items()}
        logger.info("resumed PSHEA at round %d: %d surviving (%s)%s", self.ctrl.round,
                    len(self.ctrl.survivors), ", ".join(self.ctrl.survivors),
                    f"; stopped: {self.ctrl.stop_reason}" if self.ctrl.stopped else "")

    def _selection(self, round_: int, name: str) -> list[int]:
        return [x.item_id for x in self.s.journal.selections(round=round_, strategy=name)]

    def members(self, strategy: str, upto: int | None = None) -> np.ndarray:
        """``d^l``: the seed items and every item ``strategy`` selected (up to round ``upto``)."""
        rows = [x for x in self.s.journal.selections() if x.strategy in (SEED, strategy)
                and (upto is None or x.round <= upto)]
        return np.unique(np.array([x.item_id for x in rows], dtype=np.int64))

    def _snapshot(self) -> _Snapshot:
        """What the model work needs, copied under the state lock (labels keep arriving)."""
        ss = self.s
        return _Snapshot(ss.emb.matrix, ss.emb.filled.copy(), ss.train_mask(), ss.codes.copy(),
                         {c: self.members(c) for c in self.ctrl.survivors})

    def _fit(self, strategy: str, snap: _Snapshot) -> int:
        """Fit ``strategy``'s head on its own labeled set (if it changed); return its size.

        Runs outside the state lock, on ``snap``; only the job thread touches the heads.
        """
        rows = np.zeros(snap.train.shape[0], dtype=bool)
        ids = snap.members[strategy]
        rows[ids[ids < rows.size]] = True
        rows &= snap.train
        n = int(rows.sum())
        if n == 0:
            raise ModelError(f"PSHEA: {strategy!r} has no labeled training item yet; label the "
                             "seed round first.", reason="no_labels")
        mark = (n, int(np.flatnonzero(rows).sum()))
        if self._fitted.get(strategy) != mark or not self.heads[strategy].is_fitted:
            failpoint("fit")
            self.heads[strategy].fit(snap.X[rows], snap.codes[rows],
                                     classes=np.arange(len(self.s.classes)),
                                     standardize_on=snap.X[snap.filled])
            self._fitted[strategy] = mark
        return n

    # ------------------------------------------------------------------ query
    def query(self, budget: int, *, strategy: str | None = None) -> dict[str, Any]:
        """Start the next round (or return the one waiting for labels).

        The plan is read and the state copied under the session's lock; heads are
        fitted and strategies run outside it; the picks are committed under it again.
        """
        if strategy not in (None, "auto"):
            raise InputError(
                f"this session runs PSHEA (strategy.type: auto), which picks the strategies "
                f"itself; query without strategy= (got {strategy!r}), or start a session with "
                f"type: {strategy} to use one strategy.")
        with self.s.lock:
            plan = self.ctrl.plan()
            if plan.stop:
                raise InputError(
                    f"PSHEA has stopped: {plan.reason}. The winner is {self.ctrl.winner!r}; "
                    "see status()['auto'] for the whole run.", reason="session_finished")
            resume = self.s.round == plan.round  # selections journaled, round not finished
            if not resume and self.s.round != plan.round - 1:
                raise InputError(
                    f"the journal's round ({self.s.round}) does not follow PSHEA's "
                    f"({plan.round - 1}); this session directory mixes runs. Start a new one.")
            rnd = plan.round
            work = {SEED: plan.seed} if plan.seed else dict(plan.budgets)
            picks = {n: self._selection(rnd, n) for n in work} if resume else {}
            if not resume and self._ahead_round == rnd:  # prepared while the last was labeled
                picks.update({n: ids[: min(int(budget), k)] for n, ids in self._ahead.items()
                              if n in work and (k := work[n])})
                self._withdraw({n: ids for n, ids in self._ahead.items() if n not in work})
                self._ahead, self._ahead_round = {}, None
            todo = {n: k for n, k in work.items() if not picks.get(n)}
            blocked = {}
            for name in todo:
                mask = self._base_blocked()
                if name == SEED:
                    mask |= self.s.labeled
                else:
                    mask[self.members(name)] = True
                blocked[name] = mask
            snap = self._snapshot() if todo and not plan.seed else None
        for name, k in todo.items():
            if name != SEED:  # the seed set has the configured size
                k = min(int(budget), k)
            available = int((~blocked[name]).sum())
            if available < 1:
                with self.s.lock:
                    self.ctrl.stop(f"pool exhausted: nothing left for {name} to select")
                    self._save()
                raise InputError(f"PSHEA stopped: the pool has no item left for {name!r}; "
                                 "push more data and start a new session.",
                                 reason="pool_exhausted")
            picks[name] = self._pick(name, min(k, available), blocked[name], rnd, snap)
        with self.s.lock:
            # every candidate's picks (resumed ones are journaled again, unchanged)
            queue, _ = self.s.begin_round(picks, round_=rnd)
            complete = not queue and not self._recorded(rnd)  # every pick was labeled already
            reply = {"round": rnd, "item_ids": queue, "uris": [self.s.uris[i] for i in queue],
                     "strategy": "auto", "selections": picks, "resumed": resume,
                     "survivors": list(self.ctrl.survivors)}
        if complete:
            reply["result"] = self.finish_round(rnd)
        return reply

    def select_ahead(self, budget: int) -> None:
        """Keep the labeler busy: start the next round, or prepare its picks early.

        While round ``r`` is labeled, each survivor picks its round ``r + 1`` items with
        its head fitted on the labels so far; they are queued (``pending``) but not
        journaled. When ``r``'s fits land, :meth:`query` journals the survivors' picks
        as round ``r + 1`` and withdraws the unshown picks of a candidate eliminated.
        """
        with self.s.lock:
            plan = self.ctrl.plan()
            if plan.stop:
                return
            current = self.s.round
            labeling = current > 0 and not self._recorded(current)
            if not labeling:
                start = True
            else:
                start = False
                nxt = current + 1
                prepared = self._ahead if self._ahead_round == nxt else {}
                # a candidate with too few labels in its set yet picks on a later call
                ready = [n for n in self.ctrl.survivors
                         if n not in prepared and self._can_pick_ahead(n)]
                if not ready:
                    return  # prepared already, or waiting for labels
                blocked = {}
                pending = np.zeros(self.s.n_items, dtype=bool)
                pending[list(self.s.pending)] = True
                for name in ready:
                    mask = self._base_blocked() | pending
                    mask[self.members(name)] = True
                    blocked[name] = mask
                snap = self._snapshot()
        if start:
            self.query(budget)
            return
        picks: dict[str, list[int]] = {}
        for name, mask in blocked.items():
            available = int((~mask).sum())
            try:
                if available:
                    picks[name] = self._pick(name, min(budget, self.ctrl.budget_per_round,
                                                       available), mask, nxt, snap)
            except ModelError:  # no label in its set yet: it picks when the round ends
                continue
        with self.s.lock:
            if self.s.round != current:
                return  # the round moved on meanwhile: these picks are stale
            for name, ids in picks.items():
                self.s.queue_ahead(ids, nxt, name)
            if self._ahead_round != nxt:
                self._ahead, self._ahead_round = {}, nxt
            self._ahead.update(picks)

    def _can_pick_ahead(self, name: str) -> bool:
        """A model-free candidate always; one that needs a head once half its set is labeled.

        Early in the seed round a head would rest on a label or two; until half the set
        is in, the candidate picks when the round's fits land instead (the labeler has
        the model-free candidates' picks meanwhile).
        """
        if not strategies.needs_model(name):
            return True
        members = self.members(name)
        labeled = int(self.s.train_mask()[members[members < self.s.n_items]].sum())
        return labeled >= 1 and 2 * labeled >= len(members)

    def _withdraw(self, picks: dict[str, list[int]]) -> None:
        """Drop the prepared picks of eliminated candidates that no one was shown."""
        for ids in picks.values():
            self.s.withdraw(ids)

    def _base_blocked(self) -> np.ndarray:
        return ~self.s.emb.filled | self.s.quarantined | self.s.is_eval

    def _pick(self, name: str, k: int, blocked: np.ndarray, rnd: int,
              snap: _Snapshot | None) -> list[int]:
        if name == SEED:
            rng = np.random.default_rng([self.s.config.seed, rnd, 0])
            return strategies.select("random", k, labeled=blocked, rng=rng).tolist()
        assert snap is not None
        rng = np.random.default_rng([self.s.config.seed, rnd, 1 + self.candidates.index(name)])
        model = None
        if strategies.needs_model(name):
            self._fit(name, snap)
            model = self.heads[name]
        return strategies.select_with_model(
            name, k, embeddings=snap.X, labeled=blocked, rng=rng, model=model,
            state=self.s.pool_state(), **self.strategy_params.get(name, {})).tolist()

    # ------------------------------------------------------------------ finish
    def _recorded(self, rnd: int) -> bool:
        return any(r.round == rnd for r in self.s.journal.rounds())

    def finish_round(self, round_: int | None = None) -> dict[str, Any]:
        """Fit and evaluate every candidate on its own labels; let PSHEA decide.

        Checks and a copy of the state under the session's lock; the fits outside it;
        the controller's update, the journal and the events under it again.
        """
        with self.s.lock:
            rnd = self.s.round if round_ is None else int(round_)
            if rnd < self.ctrl.round:  # observed before a restart: write what is missing
                if rnd not in self.results:
                    raise InputError(f"round {rnd} is not a PSHEA round of this session.")
                return self._publish(rnd, replay=True)
            if rnd != self.ctrl.round or self.s.round != rnd:
                raise InputError(f"PSHEA is at round {self.ctrl.round} and has no selection for "
                                 f"round {rnd} yet; query first.", reason="not_ready")
            plan = self.ctrl.plan()
            if plan.stop:
                raise InputError(f"PSHEA has stopped: {plan.reason}.", reason="session_finished")
            names = [SEED] if plan.seed else list(plan.budgets)
            picks = {n: self._selection(rnd, n) for n in names}
            missing = [n for n, ids in picks.items() if not ids]
            if missing:
                raise InputError(f"round {rnd} has no selection for {missing} yet (the worker "
                                 "stopped mid-query); query again to complete it.",
                                 reason="not_ready")
            waiting = sorted({i for ids in picks.values() for i in ids
                              if not self.s.labeled[i] and not self.s.quarantined[i]})
            if waiting:
                raise InputError(f"round {rnd} still has {len(waiting)} item(s) to label "
                                 f"(e.g. {waiting[:5]}); label them first.", reason="not_ready")
            ev = self.s.eval_mask()
            if not ev.any():
                raise ModelError(
                    "PSHEA needs an evaluation set to compare strategies: push labeled items "
                    "with role='eval', or keep evaluation.holdout > 0 and label more items.",
                    reason="no_eval_set")
            snap = self._snapshot()
            X_ev, y_ev = snap.X[ev], snap.codes[ev]
            survivors = list(self.ctrl.survivors)
        t0 = time.perf_counter()
        results: dict[str, dict[str, Any]] = {}
        fit_first = survivors[:1] if plan.seed else survivors  # the seed set: one model for all
        for c in fit_first:
            n = self._fit(c, snap)
            scores = self.heads[c].evaluate(X_ev, y_ev)
            results[c] = {"top1": scores["top1"], "top5": scores["top5"], "n_labeled": n}
        for c in survivors[1:] if plan.seed else ():
            self.heads[c] = copy.deepcopy(self.heads[survivors[0]])
            self._fitted[c] = self._fitted[survivors[0]]
            results[c] = dict(results[survivors[0]])
        for r in results.values():
            r["fit_s"] = round(time.perf_counter() - t0, 4)
            r["n_eval"] = int(ev.sum())
        with self.s.lock:
            if plan.seed:
                n = results[survivors[0]]["n_labeled"]
                fresh = self._new_labels(rnd, picks)
                decisions = self.ctrl.observe(rnd, results[survivors[0]]["top1"],
                                              labels_spent=fresh, labels_sum=fresh,
                                              n_labeled=dict.fromkeys(survivors, n))
            else:
                decisions = self.ctrl.observe(
                    rnd, {c: r["top1"] for c, r in results.items()},
                    labels_spent=self._new_labels(rnd, picks),
                    labels_sum=sum(len(ids) for ids in picks.values()),
                    n_labeled={c: r["n_labeled"] for c, r in results.items()})
            self.results[rnd] = results
            self._save()
            failpoint("pshea_state")  # tests: killed after the state, before the rows
            logger.info("PSHEA round %d: %s", rnd, "; ".join(
                f"{d.kind} {d.strategy}" for d in decisions if d.kind in ("eliminate", "stop"))
                or "no elimination")
            return self._publish(rnd, replay=False)

    def _new_labels(self, rnd: int, picks: dict[str, list[int]]) -> int:
        """Labels this round asked of the human: picks whose first label came in this round.

        A pick that some earlier round had labeled was reused, and costs nothing.
        """
        union = {i for ids in picks.values() for i in ids}
        first: dict[int, int | None] = {}
        for row in self.s.journal.label_history():
            if row.item_id in union and row.label is not None:
                first.setdefault(row.item_id, row.round)
        return sum(1 for i in union if first.get(i) == rnd)

    def _save(self) -> None:
        self.s.journal.record_event(STATE_EVENT, {
            "controller": self.ctrl.to_dict(),
            "results": {str(r): v for r, v in self.results.items()}})

    def _publish(self, rnd: int, *, replay: bool) -> dict[str, Any]:
        """Journal rows and events of a finished round (idempotent)."""
        ctrl, results = self.ctrl, self.results[rnd]
        nxt = rnd + 1
        eliminated_now = {d.strategy: d for d in ctrl.decisions
                          if d.kind == "eliminate" and d.round == rnd}
        for c, r in results.items():
            prior = ctrl.forecasts[c].get(rnd)
            upcoming = ctrl.forecasts[c].get(nxt)
            extra = {"auto": True, "seed": rnd == ctrl.start_round and ctrl.initial > 0,
                     "predicted": prior.mean if prior else None,
                     "forecast": upcoming.mean if upcoming else None,
                     "forecast_std": upcoming.std if upcoming else None,
                     "n_eval": r.get("n_eval"), "fit_s": r.get("fit_s")}
            self.s.journal.record_round(rnd, c, n_labeled=r["n_labeled"], top1=r["top1"],
                                        top5=r["top5"], extra=extra)
            gone = eliminated_now.get(c)
            self.s.journal.record_forecast(rnd, c, actual=r["top1"], eliminated=gone is not None,
                                           reason=gone.reason if gone else None)
            if upcoming is not None:
                self.s.journal.record_forecast(nxt, c, predicted=upcoming.mean)
        events: list[tuple[str, dict[str, Any]]] = []
        for c, r in results.items():
            upcoming = ctrl.forecasts[c].get(nxt)
            prior = ctrl.forecasts[c].get(rnd)
            events.append(("round_result", {
                "round": rnd, "strategy": c, "n_labeled": r["n_labeled"], "top1": r["top1"],
                "top5": r["top5"], "forecast": upcoming.mean if upcoming else None,
                "predicted": prior.mean if prior else None, "eliminated": c in eliminated_now,
                "replay": replay}))
        for c, d in eliminated_now.items():
            events.append(("eliminated", {"round": rnd, "strategy": c, "predicted": d.predicted,
                                          "actual": d.actual, "reason": d.reason}))
        stop = next((d for d in ctrl.decisions if d.kind == "stop" and d.round == rnd), None)
        message = (f"round {rnd}: {len(ctrl.survivors)} of {len(ctrl.candidates)} strategies "
                   f"left; labels {ctrl.spent_unique} unique / {ctrl.spent_sum} summed")
        if stop is not None:
            message += f"; stopped: {stop.reason}; winner {stop.strategy}"
        events.append(("progress", {"stage": "pshea", "done": ctrl.strategy_rounds,
                                    "total": ctrl.max_rounds, "unit": "rounds",
                                    "message": message, "round": rnd}))
        for kind, content in events:
            self.s.emit(kind, content)
        best = max(results, key=lambda c: results[c]["top1"])
        return {"round": rnd, "strategy": "auto", "n_labeled": int(ctrl.spent_unique),
                "top1": results[best]["top1"], "top5": results[best]["top5"],
                "best": best, "results": results,
                "eliminated": sorted(eliminated_now), "survivors": list(ctrl.survivors),
                "stopped": ctrl.stopped, "stop_reason": ctrl.stop_reason,
                "winner": ctrl.winner}

    # ------------------------------------------------------------------ report
    def status(self) -> dict[str, Any]:
        """What ``status()`` shows about the run (merged into the session's status)."""
        c = self.ctrl
        return {
            "strategies": list(c.survivors),
            "eliminated": [s for s in c.candidates if s in c.eliminated],
            "auto": {
                "round": c.round, "candidates": list(c.candidates),
                "survivors": list(c.survivors), "eliminated": dict(c.eliminated),
                "labels_unique": c.spent_unique, "labels_sum": c.spent_sum,
                "best_accuracy": c.best_accuracy, "stopped": c.stopped,
                "stop_reason": c.stop_reason, "winner": c.winner,
                "forecasts": {s: (f.mean if (f := c.forecasts[s].get(c.round)) else None)
                              for s in c.survivors},
            },
        }
