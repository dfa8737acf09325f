"""The PSHEA dashboard: accuracy per strategy per round, forecasts, eliminations, budget.

It draws the paper's Fig. 5a live: one solid line of measured top-1 accuracy per
strategy and a dashed line of the forecaster's predictions, with an elimination
timeline below. The worker sends the session's rounds, forecasts and eliminations
(a ``history`` request) when the widget is made, so a restarted kernel shows the
whole session; then ``round_result`` and ``eliminated`` events extend it, and a
light poll (``status``, and ``history`` with its cursor: only what changed) keeps
the budget and the curves current. With one strategy it is a learning curve.

Forecast convention
-------------------
A ``round_result`` for round ``r`` carries ``forecast``: the accuracy predicted
for round ``r + 1`` (PSHEA's a*, made after round ``r``), unless the event names
the target round in ``forecast_round``. ``history``'s ``forecasts`` rows are
keyed by the round they predict. An ``eliminated`` event's ``predicted`` is the forecast
that removed the strategy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import traitlets

from ..client import Client
from ._base import RefreshingWidget, budget_total, connect, front_end_module

__all__ = ["Dashboard"]

#: What the worker selects with before a model exists (``worker/state.py: SEED_STRATEGY``).
_SEED_STRATEGY = "random"
#: The ``history`` sections the dashboard draws, and the keys of a result row.
_CURVES = ["rounds", "forecasts", "eliminations"]
_RESULT_KEYS = ("round", "strategy", "n_labeled", "top1", "top5")


def _upsert(rows: list[dict[str, Any]], row: dict[str, Any], keys: tuple[str, ...]
            ) -> list[dict[str, Any]]:
    """A new sorted list with ``row`` replacing the one with the same ``keys``."""
    out = [r for r in rows if any(r.get(k) != row.get(k) for k in keys)]
    merged = next((r for r in rows if all(r.get(k) == row.get(k) for k in keys)), {})
    out.append({**merged, **{k: v for k, v in row.items() if v is not None or k not in merged}})
    return sorted(out, key=lambda r: (r.get("round") or 0, str(r.get("strategy"))))


class Dashboard(RefreshingWidget):
    """Live predicted-vs-actual accuracy per strategy, eliminations and budget.

    Traits (the contract with ``js/dashboard.js``)
    --------------------------------------------------------
    results : list of dict
        ``round``, ``strategy``, ``n_labeled``, ``top1``, ``top5`` per strategy and round.
    forecasts : list of dict
        ``round`` (the round predicted), ``strategy``, ``predicted``.
    eliminations : list of dict
        ``round``, ``strategy``, ``predicted`` (the forecast that dropped it), ``reason``.
    strategies : list of str
        Every strategy the session races or uses, eliminated ones too, in a stable
        order (it fixes their colours); not the seed.
    seed : str
        The strategy of the worker's seed round (random picks before any model
        exists, when the session does not use ``random`` itself), drawn grey; or "".
    active : list of str
        Strategies still racing (PSHEA) or in use.
    budget : dict
        ``labeled``, ``total``, ``left``.
    round : int
    target : float or None
        The config's ``target_accuracy``, drawn as a dotted line.
    outcome : dict
        PSHEA's run (``status()["auto"]``): ``stopped``, ``stop_reason``, ``winner``,
        ``best_accuracy``, ``labels_unique``, ``labels_sum``; empty for one strategy.
    suspects : dict
        The suspect labels (``status()["suspects"]``): ``open`` (found and not yet
        reviewed), ``confirmed``, ``corrected``, and the last scoring's ``round``,
        ``n_scored``, ``computing``, ``error``; empty from a worker without them.
    state : str
        ``starting``, ``live`` or ``error``; ``updated`` is the time of the last update.

    Parameters
    ----------
    client, connection_file
        As for :class:`~alaas_lab.widgets.LabelingWidget`.
    target : float, optional
    budget_total : int, optional
    poll : float, default 2.0
        Seconds between ``status`` and ``history`` requests (budget spent, rounds,
        forecasts); 0 disables polling.
    """

    _esm = front_end_module("dashboard.js")

    results = traitlets.List(traitlets.Dict()).tag(sync=True)
    forecasts = traitlets.List(traitlets.Dict()).tag(sync=True)
    eliminations = traitlets.List(traitlets.Dict()).tag(sync=True)
    strategies = traitlets.List(traitlets.Unicode()).tag(sync=True)
    seed = traitlets.Unicode("").tag(sync=True)
    active = traitlets.List(traitlets.Unicode()).tag(sync=True)
    budget = traitlets.Dict().tag(sync=True)
    round = traitlets.Int(0).tag(sync=True)
    target = traitlets.Float(None, allow_none=True).tag(sync=True)
    outcome = traitlets.Dict().tag(sync=True)
    suspects = traitlets.Dict().tag(sync=True)
    state = traitlets.Unicode("starting").tag(sync=True)
    updated = traitlets.Float(0.0).tag(sync=True)

    def __init__(self, client: Client | None = None, *,
                 connection_file: str | Path | None = None, target: float | None = None,
                 budget_total: int | None = None, poll: float = 2.0,
                 start: bool = True) -> None:
        super().__init__(target=target)
        self._budget_total = budget_total
        self._poll = poll
        self._configured: set[str] = set()  # what the session races: a seed is none of them
        self._client = connect(client, connection_file, timeout=10.0)
        if start:
            self.start()

    def start(self) -> Dashboard:
        """Load the history, then follow events (and poll status) until :meth:`shutdown`."""
        self.refresh()
        self._subscribe(self._client, self.on_event, ["round_result", "eliminated", "progress",
                                                     "suspects_ready"])
        self._start_refresher(self._client, self._poll)
        return self

    # ------------------------------------------------------------ history + status
    def refresh(self) -> None:
        """Ask the worker's status and what changed in its rounds, forecasts, eliminations."""
        if self.stopped:
            return
        status = self._worker_status()
        past = None if status is None else self._worker_history(_CURVES)
        if status is None or past is None:
            return
        auto = status.get("auto") or {}
        with self._state():
            self._configured |= {*(status.get("strategies") or []),
                                 *(status.get("eliminated") or []),
                                 *(auto.get("candidates") or [])}
            self._merge_history(past)
            self._apply_status(status)
            self.state, self.error, self.updated = "live", "", time.time()

    def _merge_history(self, past: dict[str, Any]) -> None:
        """Merge a ``history`` reply's sections (those it holds: the ones that changed)."""
        results = list(self.results)
        for r in past.get("rounds") or []:
            results = _upsert(results, {k: r.get(k) for k in _RESULT_KEYS}, ("round", "strategy"))
        forecasts = list(self.forecasts)
        for f in past.get("forecasts") or []:
            forecasts = _upsert(forecasts, f, ("round", "strategy"))
        eliminations = list(self.eliminations)
        for e in past.get("eliminations") or []:
            if not any(x["strategy"] == e["strategy"] for x in eliminations):
                eliminations = _upsert(eliminations, e, ("strategy",))
        self.results, self.forecasts, self.eliminations = results, forecasts, eliminations
        self._add_strategies([r["strategy"] for r in results])

    def _apply_status(self, status: dict[str, Any]) -> None:
        total = self._budget_total if self._budget_total is not None else budget_total(status)
        self.budget = {"labeled": int(status.get("n_labeled") or 0), "total": total,
                       "left": status.get("budget_left")}
        self.round = int(status.get("round") or 0)
        gone = set(status.get("eliminated") or []) | {e["strategy"] for e in self.eliminations}
        racing = [s for s in status.get("strategies") or [] if s not in gone]
        auto = status.get("auto") or {}
        self._add_strategies(list(auto.get("candidates") or status.get("strategies") or []))
        self.active = racing
        found = status.get("suspects") or {}
        self.suspects = {k: found[k] for k in ("open", "confirmed", "corrected", "round",
                                                "n_scored", "computing", "error")
                         if k in found}
        if auto:
            self.outcome = {k: auto.get(k) for k in ("stopped", "stop_reason", "winner",
                                                      "best_accuracy", "labels_unique",
                                                      "labels_sum")}

    def _add_strategies(self, names: list[str]) -> None:
        """Add newly seen strategies; the seed round's goes to ``seed`` instead."""
        if (not self.seed and _SEED_STRATEGY in names and self._configured
                and _SEED_STRATEGY not in self._configured):
            self.seed = _SEED_STRATEGY
        known = list(self.strategies)
        new = [n for n in dict.fromkeys(names) if n and n not in known and n != self.seed]
        if new:
            self.strategies = known + new

    # ------------------------------------------------------------ events
    def on_event(self, event: Any) -> None:
        """Apply one worker event (``round_result``, ``eliminated`` or PSHEA's ``progress``)."""
        c = event.content
        if event.msg_type == "suspects_ready":  # the labels were scored again
            self.request_refresh()
            return
        if event.msg_type == "progress":
            if c.get("stage") == "pshea":
                self._update(message=c.get("message") or "")
                self.request_refresh()  # the run's outcome is in status()["auto"]
            return
        with self._state():
            if event.msg_type == "round_result":
                row = {k: c.get(k) for k in _RESULT_KEYS}
                self.results = _upsert(list(self.results), row, ("round", "strategy"))
                if c.get("predicted") is not None:  # what was forecast for this round
                    self.forecasts = _upsert(list(self.forecasts), {
                        "round": int(c["round"]), "strategy": c["strategy"],
                        "predicted": float(c["predicted"])}, ("round", "strategy"))
                if c.get("forecast") is not None:
                    target = c.get("forecast_round") or int(c["round"]) + 1
                    self.forecasts = _upsert(list(self.forecasts), {
                        "round": int(target), "strategy": c["strategy"],
                        "predicted": float(c["forecast"])}, ("round", "strategy"))
                self._add_strategies([c["strategy"]])
                self.round = max(self.round, int(c["round"]))
            elif event.msg_type == "eliminated":
                self.eliminations = _upsert(list(self.eliminations), {
                    "round": int(c["round"]), "strategy": c["strategy"],
                    "predicted": c.get("predicted"), "reason": c.get("reason") or ""},
                    ("strategy",))
                self._add_strategies([c["strategy"]])
                self.active = [s for s in self.active if s != c["strategy"]]
            self.state, self.updated = "live", time.time()
        if event.msg_type == "round_result":
            self.request_refresh()  # the budget moved with the round
