"""Stage-level parallelism: stages joined by bounded queues, all working at once.

A pipeline is a list of :class:`Stage` objects. Each stage runs ``workers``
threads; a thread takes up to ``batch_size`` items from the queue before it,
calls the stage's function on the batch and puts what comes out on the queue
after it. Bounded queues give backpressure: a fast fetch stage waits for a slow
embed stage instead of filling memory. This is the ALaaS paper's pipeline:
while batch *i* is embedded, batch *i+1* is decoded and batch *i+2* fetched.

Threads suffice because every heavy stage releases the GIL (socket and file
I/O, image decoding, torch kernels). A stage starts ``max_workers`` threads of
which ``workers`` take work; a ``planner`` (called with each stage's measured
:class:`~alaas_lab.threads.StageRate` every few batches) can change how many
are active while the pipeline runs. The rule that gives threads to the slowest
stage lives in :mod:`alaas_lab.threads`. A stage function that needs to know
which of its stage's threads runs it (to give each its own share of something)
calls :func:`worker_index`.

A stage function receives a list and returns a list (of any length: it may
drop or split items). Per-item failures are the stage's business: it returns a
marker object (for example a quarantine record) that later stages pass on. An
exception escaping a stage function stops the pipeline and is re-raised by
:meth:`Pipeline.run`, with the stage named.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import PipelineError
from .threads import StageRate, ThreadPlan, thread_plan

logger = logging.getLogger(__name__)

__all__ = ["Pipeline", "PipelineError", "Planner", "Stage", "StageRate", "StageStats",
           "ThreadPlan", "thread_plan", "worker_index"]

Planner = Callable[[dict[str, StageRate]], Mapping[str, int] | None]

_END = object()  # sentinel: no more items from upstream
_local = threading.local()


def worker_index() -> int:
    """Which thread of its stage is calling (0, 1, ...); 0 outside a pipeline."""
    return getattr(_local, "worker", 0)


@dataclass
class Stage:
    """One step of the pipeline.

    Parameters
    ----------
    name : str
        Shown in progress events and errors.
    fn : callable(list) -> list
        The work, on a batch of items.
    workers : int, default 1
        Threads running ``fn`` concurrently at the start (I/O stages want many).
    max_workers : int, optional
        Threads started; a planner may activate up to this many. Defaults to
        ``workers``.
    batch_size : int, default 1
        Most items handed to one call of ``fn``; a partial batch is flushed
        as soon as the queue before the stage runs dry, so latency stays low.
    max_wait_s : float, default 0.0
        How long a thread holding a partial batch waits for more items before
        it calls ``fn`` anyway (dynamic batching: full batches under load, low
        latency when the queue is quiet).
    passthrough : callable(item) -> bool, optional
        Items for which it returns True skip ``fn`` (e.g. quarantine records).
    cpu_time : bool, default False
        Count a call's busy time as the CPU time of its thread (``time.thread_time``)
        instead of wall time: right for a stage that computes in its own thread, whose
        wall time also counts the waits for a core that other stages hold.
    """

    name: str
    fn: Callable[[list[Any]], list[Any]]
    workers: int = 1
    batch_size: int = 1
    max_wait_s: float = 0.0
    passthrough: Callable[[Any], bool] | None = None
    max_workers: int | None = None
    cpu_time: bool = False

    @property
    def threads(self) -> int:
        """Threads started for this stage."""
        return max(self.workers, self.max_workers or 0)


@dataclass
class StageStats:
    """What one stage has done so far."""

    name: str
    workers: int  # active threads
    items_in: int = 0
    items_out: int = 0
    calls: int = 0
    busy_s: float = 0.0  # summed over the stage's threads (CPU time for a cpu_time stage)
    queue_depth: int = 0  # items waiting before the stage
    queue_capacity: int = 0

    def throughput(self, wall_s: float) -> float:
        """Items per second over ``wall_s`` of pipeline wall time."""
        return self.items_out / wall_s if wall_s > 0 else 0.0

    def as_dict(self, wall_s: float) -> dict[str, Any]:
        return {
            "name": self.name, "workers": self.workers, "items_in": self.items_in,
            "items_out": self.items_out, "calls": self.calls, "busy_s": round(self.busy_s, 4),
            "queue_depth": self.queue_depth, "queue_capacity": self.queue_capacity,
            "items_per_s": round(self.throughput(wall_s), 2),
        }


class Pipeline:
    """Runs stages concurrently over a stream of items.

    Parameters
    ----------
    stages : sequence of Stage
    queue_size : int, default 64
        Capacity of each queue between stages (the backpressure bound).
    on_progress : callable(dict), optional
        Called from a monitor thread every ``progress_interval`` seconds (and
        once at the end) with ``{"wall_s", "stages": [StageStats.as_dict]}``.
    planner : callable(dict of str to StageRate) -> mapping of str to int, optional
        Called from the monitor thread once every stage still running has made
        ``plan_every`` calls since the last plan (and ``plan_interval`` seconds
        passed), with each stage's rate over that window; returns the number of
        active threads wanted per stage name (clamped to 1..``Stage.threads``),
        or None to keep them.
    """

    def __init__(self, stages: Sequence[Stage], *, queue_size: int = 64,
                 on_progress: Callable[[dict[str, Any]], None] | None = None,
                 progress_interval: float = 0.25, planner: Planner | None = None,
                 plan_interval: float = 0.2, plan_every: int = 2) -> None:
        if not stages:
            raise ValueError("a pipeline needs at least one stage")
        self.stages = list(stages)
        self.queue_size = queue_size
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self.planner = planner
        self.plan_interval = plan_interval
        self.plan_every = plan_every
        self.stats = [StageStats(s.name, s.workers, queue_capacity=queue_size) for s in stages]
        self.plans = 0  # times the planner changed the active threads
        self._active = [s.workers for s in stages]
        self._remaining = [s.threads for s in stages]
        self._wake = threading.Condition()
        self._started = 0.0
        self._wall = 0.0

    def set_workers(self, name: str, n: int) -> None:
        """Make ``n`` (clamped to 1..``Stage.threads``) threads of stage ``name`` take work."""
        with self._wake:
            for i, stage in enumerate(self.stages):
                if stage.name == name:
                    self._active[i] = max(1, min(stage.threads, int(n)))
                    self.stats[i].workers = self._active[i]
            self._wake.notify_all()

    def run(self, items: Iterable[Any]) -> Iterator[Any]:
        """Feed ``items`` through every stage; yield what the last stage emits.

        Results come in completion order. Stops early (and raises
        :class:`PipelineError`) when a stage function raises. Closing the
        returned generator early stops the threads.
        """
        queues = [queue.Queue(self.queue_size) for _ in range(len(self.stages) + 1)]
        ended = [False] * len(self.stages)  # the stage's input has ended
        stop = threading.Event()
        failure: list[BaseException] = []
        lock = threading.Lock()
        remaining = self._remaining = [s.threads for s in self.stages]  # live threads
        self._started = time.perf_counter()

        def put(q: queue.Queue, item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def end_of(i: int) -> None:  # the input of stage i has ended: one sentinel, a flag
            if i < len(self.stages):
                with self._wake:
                    ended[i] = True
                    self._wake.notify_all()
            put(queues[i], _END)

        def feed() -> None:
            try:
                for item in items:
                    if not put(queues[0], item):
                        return
            except BaseException as exc:  # the source itself failed
                failure.append(PipelineError(f"reading the pool's items failed: {exc}"))
                stop.set()
            finally:
                end_of(0)

        def idle(i: int, w: int) -> bool:
            """Wait while thread ``w`` of stage ``i`` is inactive; False: it may exit."""
            with self._wake:
                while w >= self._active[i] and not stop.is_set():
                    if ended[i]:  # the active threads drain the queue
                        return False
                    # woken by set_workers, an input's end or the run's end; the timeout
                    # is a safety net (a thread that wakes often costs the busy ones the GIL)
                    self._wake.wait(1.0)
            return True

        def work(i: int, w: int) -> None:
            stage, stats = self.stages[i], self.stats[i]
            inbox, outbox = queues[i], queues[i + 1]
            clock = time.thread_time if stage.cpu_time else time.perf_counter
            _local.worker = w
            done = False
            while not done and not stop.is_set():
                if w >= self._active[i] and not idle(i, w):
                    break
                batch, done = self._take(inbox, stage.batch_size, stage.max_wait_s, stop)
                if not batch:
                    continue
                skip = [x for x in batch if stage.passthrough and stage.passthrough(x)]
                todo = [x for x in batch if not (stage.passthrough and stage.passthrough(x))]
                t0 = clock()
                try:
                    out = stage.fn(todo) if todo else []
                except BaseException as exc:
                    failure.append(PipelineError(f"pipeline stage '{stage.name}' failed: "
                                                 f"{type(exc).__name__}: {exc}"))
                    failure[-1].__cause__ = exc
                    stop.set()
                    with self._wake:
                        self._wake.notify_all()
                    return
                with lock:
                    stats.busy_s += clock() - t0
                    stats.items_in += len(batch)
                    stats.items_out += len(out) + len(skip)
                    stats.calls += 1 if todo else 0
                for x in (*skip, *out):
                    if not put(outbox, x):
                        return
            with lock:
                remaining[i] -= 1
                last = remaining[i] == 0
            if last:  # the stage's final thread tells the next stage
                end_of(i + 1)

        threads = [threading.Thread(target=feed, name="pipeline-feed", daemon=True)]
        for i, stage in enumerate(self.stages):
            threads += [threading.Thread(target=work, args=(i, w), daemon=True,
                                         name=f"pipeline-{stage.name}-{w}")
                        for w in range(stage.threads)]
        monitor = threading.Thread(target=self._monitor, args=(queues, stop), daemon=True,
                                   name="pipeline-monitor")
        for t in threads:
            t.start()
        monitor.start()
        try:
            out = queues[-1]
            while True:
                try:
                    item = out.get(timeout=0.05)
                except queue.Empty:
                    if stop.is_set():
                        break
                    continue
                if item is _END:
                    break
                yield item
        finally:
            stop.set()
            with self._wake:
                self._wake.notify_all()
            for t in threads:
                t.join(timeout=5)
            self._wall = time.perf_counter() - self._started
            monitor.join(timeout=5)
        if failure:
            raise failure[0]

    @property
    def wall_s(self) -> float:
        """Wall time of the last (or current) run."""
        return self._wall or (time.perf_counter() - self._started if self._started else 0.0)

    def report(self) -> dict[str, Any]:
        """Per-stage statistics of the last run, as sent in progress events."""
        wall = self.wall_s
        return {"wall_s": round(wall, 4), "stages": [s.as_dict(wall) for s in self.stats],
                "plans": self.plans}

    @staticmethod
    def _take(inbox: queue.Queue, size: int, max_wait: float,
              stop: threading.Event) -> tuple[list[Any], bool]:
        """Block for one item, then fill up to ``size`` for at most ``max_wait`` s.

        The end sentinel is put back, so every thread of the stage sees it.
        """
        batch: list[Any] = []
        deadline = 0.0
        while not stop.is_set():
            timeout = 0.05 if not batch else max(0.0, deadline - time.perf_counter())
            try:
                item = inbox.get(timeout=timeout) if timeout > 0 else inbox.get_nowait()
            except queue.Empty:
                if batch:
                    return batch, False
                continue
            if item is _END:
                inbox.put_nowait(_END)  # room: this thread just took it, upstream is done
                return batch, True
            if not batch:
                deadline = time.perf_counter() + max_wait
            batch.append(item)
            if len(batch) >= size:
                return batch, False
        return batch, True

    def _window(self, since: list[tuple[int, int, float]], t0: float) -> dict[str, StageRate]:
        """Each stage's rate since the snapshot ``since`` taken at ``t0``."""
        wall = max(time.perf_counter() - t0, 1e-9)
        rates = {}
        for stats, active, (items0, _, busy0) in zip(self.stats, self._active, since,
                                                      strict=True):
            items, busy = stats.items_in - items0, stats.busy_s - busy0
            per_thread = items / busy if busy > 0 else 0.0
            rates[stats.name] = StageRate(per_thread * active, busy / wall)
        return rates

    def _snapshot(self) -> list[tuple[int, int, float]]:
        return [(s.items_in, s.calls, s.busy_s) for s in self.stats]

    def _monitor(self, queues: list[queue.Queue], stop: threading.Event) -> None:
        finished = False
        tick = self.progress_interval
        if self.planner is not None:
            tick = min(tick, max(self.plan_interval / 2, 0.01))
        last_progress = time.perf_counter()
        since, t_since = self._snapshot(), time.perf_counter()
        while not finished:
            finished = stop.wait(tick)
            now = time.perf_counter()
            if self.planner is not None and not finished and now - t_since >= self.plan_interval:
                if all(s.calls - c0 >= self.plan_every or left == 0  # a finished stage
                       for s, (_, c0, _), left in zip(self.stats, since, self._remaining,
                                                      strict=True)):
                    self._plan(self._window(since, t_since))
                    since, t_since = self._snapshot(), now
            if not finished and now - last_progress < self.progress_interval:
                continue
            last_progress = now
            for stats, q in zip(self.stats, queues[:-1], strict=True):
                stats.queue_depth = q.qsize()
            if self.on_progress is not None:
                try:
                    self.on_progress(self.report())
                except Exception:  # a broken listener must not stop the work
                    logger.exception("progress listener failed")

    def _plan(self, rates: dict[str, StageRate]) -> None:
        try:
            wanted = self.planner(rates) if self.planner is not None else None
        except Exception:  # a broken planner must not stop the work
            logger.exception("pipeline planner failed")
            return
        changed = False
        for name, n in (wanted or {}).items():
            i = next((j for j, s in enumerate(self.stages) if s.name == name), None)
            if i is not None and max(1, min(self.stages[i].threads, int(n))) != self._active[i]:
                self.set_workers(name, n)
                changed = True
        self.plans += changed
