"""The pipeline monitor: per-stage progress and throughput, cache hits, quarantined items."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import traitlets

from ..client import Client
from ._base import RefreshingWidget, connect, front_end_module

__all__ = ["PipelineMonitor"]

#: Quarantined items kept for display (the worker's journal keeps them all).
MAX_QUARANTINE_ROWS = 500
_STAGE_KEYS = ("name", "workers", "items_in", "items_out", "items_per_s", "queue_depth",
               "queue_capacity", "busy_s")


class PipelineMonitor(RefreshingWidget):
    """Watch pushes go through fetch → decode → embed → store.

    Traits (the contract with ``js/monitor.js``)
    ------------------------------------------------------
    stages : list of dict
        Per stage of the running (or last) push: ``name``, ``workers``, ``items_in``,
        ``items_out``, ``items_per_s``, ``queue_depth``, ``queue_capacity``, ``busy_s``.
        A stage that batches counts batches on one side (embed emits one output per
        batch, store takes them), so the items a stage has done are
        ``max(items_in, items_out)``.
    push : dict
        ``running``, ``done``, ``total`` (items to compute), ``wall_s``, ``failed``
        (items quarantined so far, per stage: an item that failed passes through the
        later stages, which count it), and after it ends ``cache_hits``, ``embedded``,
        ``n_items``, ``seconds``, ``quarantined``.
    totals : dict
        ``n_items`` (every item: pool, evaluation, quarantined), ``n_embedded``,
        ``n_quarantined``, ``n_eval`` (from status, asked again at most once a second
        while a push runs), and over the pushes this widget saw: ``cache_hits``,
        ``embedded``, ``pushes``.
    quarantined : list of dict
        ``item_id``, ``uri``, ``stage``, ``reason`` (the most recent ``MAX_QUARANTINE_ROWS``).
    state : str
        ``starting``, ``idle``, ``running`` or ``error``.

    Parameters are those of :class:`~alaas_lab.widgets.Dashboard` (no ``poll``): it
    refreshes after each push, asking ``status`` and, with the cursor of its last
    ``history`` request, the quarantine if it changed.
    """

    _esm = front_end_module("monitor.js")

    stages = traitlets.List(traitlets.Dict()).tag(sync=True)
    push = traitlets.Dict().tag(sync=True)
    totals = traitlets.Dict().tag(sync=True)
    quarantined = traitlets.List(traitlets.Dict()).tag(sync=True)
    state = traitlets.Unicode("starting").tag(sync=True)
    updated = traitlets.Float(0.0).tag(sync=True)

    def __init__(self, client: Client | None = None, *,
                 connection_file: str | Path | None = None, start: bool = True) -> None:
        super().__init__()
        self._client = connect(client, connection_file, timeout=10.0)
        self._cache_hits = 0
        self._embedded = 0
        self._pushes = 0
        self._failed: dict[str, int] = {}  # the running push's quarantined items per stage
        self._asked = 0.0  # when a progress event last asked for the counts
        if start:
            self.start()

    def start(self) -> PipelineMonitor:
        """Load the session's counts and quarantine, then follow pipeline events."""
        self.refresh()
        self._subscribe(self._client, self.on_event, ["progress", "push_done", "quarantined"])
        self._start_refresher(self._client, 0)
        return self

    def refresh(self) -> None:
        """Counts from the worker's status, and its quarantine list if that changed."""
        if self.stopped:
            return
        status = self._worker_status()
        past = None if status is None else self._worker_history(["quarantine"])
        if status is None or past is None:
            return
        rows = past.get("quarantine")
        with self._state():
            self._set_totals(status)
            if rows is not None:
                merged = {q["item_id"]: q for q in rows}
                merged.update({q["item_id"]: q for q in self.quarantined})
                self.quarantined = list(merged.values())[-MAX_QUARANTINE_ROWS:]
            self.state = "running" if self.push.get("running") else "idle"
            self.error, self.updated = "", time.time()

    def _set_totals(self, status: dict[str, Any]) -> None:
        self.totals = {"n_items": int(status.get("n_items") or 0),
                       "n_embedded": int(status.get("n_embedded") or 0),
                       "n_quarantined": int(status.get("n_quarantined") or 0),
                       "n_eval": int(status.get("n_eval") or 0),
                       "cache_hits": self._cache_hits, "embedded": self._embedded,
                       "pushes": self._pushes}

    def on_event(self, event: Any) -> None:
        """Apply one ``progress``, ``push_done`` or ``quarantined`` event."""
        c = event.content
        refresh = False
        with self._state():
            if event.msg_type == "progress" and c.get("stages") is not None:
                self.stages = [{k: s.get(k) for k in _STAGE_KEYS} for s in c["stages"]]
                self.push = {"running": True, "done": c.get("done"), "total": c.get("total"),
                             "wall_s": c.get("wall_s"), "failed": dict(self._failed)}
                self.state = "running"
                now = time.monotonic()
                if now - self._asked >= 1.0:  # the pool's counts move during a push
                    self._asked = now
                    refresh = True
            elif event.msg_type == "push_done":
                self._cache_hits += int(c.get("cache_hits") or 0)
                self._embedded += int(c.get("embedded") or 0)
                self._pushes += 1
                pipeline = c.get("pipeline") or {}
                # the rows describe the last push: one that computed nothing has none
                self.stages = [{k: s.get(k) for k in _STAGE_KEYS}
                               for s in pipeline.get("stages") or []]
                self.push = {**self.push, "running": False,
                             **{k: c.get(k) for k in ("n_items", "cache_hits", "embedded",
                                                      "seconds")},
                             "done": int(c.get("embedded") or 0),
                             "total": int(c.get("embedded") or 0),
                             "wall_s": pipeline.get("wall_s") or c.get("seconds"),
                             "quarantined": len(c.get("quarantined") or []),
                             "failed": dict(self._failed)}
                self._failed = {}
                self.state = "idle"
                refresh = True
            elif event.msg_type == "quarantined":
                row = {"item_id": int(c["item_id"]), "uri": c.get("uri") or "",
                       "stage": c.get("stage") or "", "reason": c.get("reason") or ""}
                rows = [q for q in self.quarantined if q["item_id"] != row["item_id"]]
                self.quarantined = [*rows, row][-MAX_QUARANTINE_ROWS:]
                if row["stage"]:
                    self._failed[row["stage"]] = self._failed.get(row["stage"], 0) + 1
                    if self.push.get("running"):
                        self.push = {**self.push, "failed": dict(self._failed)}
            self.updated = time.time()
        if refresh:
            self.request_refresh()
