"""Stage-level parallelism: stages joined by bounded queues, all working at once.

A pipeline is a list of :class:`Stage` objects. Each stage runs ``workers``
threads; a thread takes up to ``batch_size`` items from the queue before it,
calls the stage's function on the batch and puts what comes out on the queue
after it. Bounded queues give backpressure: a fast fetch stage waits for a slow
embed stage instead of filling memory. This is the ALaaS paper's pipeline:
while batch *i* is embedded, batch *i+1* is decoded and batch *i+2* fetched.

Threads suffice because every heavy stage releases the GIL (socket and file
I/O, PIL decoding, torch kernels). The thread-count rule for a machine with
``c`` cores lives in :func:`thread_plan`.

A stage function receives a list and returns a list (of any length: it may
drop or split items). Per-item failures are the stage's business: it returns a
marker object (for example a quarantine record) that later stages pass on. An
exception escaping a stage function stops the pipeline and is re-raised by
:meth:`Pipeline.run`, with the stage named.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import PipelineError

logger = logging.getLogger(__name__)

__all__ = ["Pipeline", "PipelineError", "Stage", "StageStats", "ThreadPlan", "thread_plan"]

_END = object()  # sentinel: no more items from upstream


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
        Threads running ``fn`` concurrently (I/O stages want many).
    batch_size : int, default 1
        Most items handed to one call of ``fn``; a partial batch is flushed
        as soon as the queue before the stage runs dry, so latency stays low.
    max_wait_s : float, default 0.0
        How long a thread holding a partial batch waits for more items before
        it calls ``fn`` anyway (dynamic batching: full batches under load, low
        latency when the queue is quiet).
    passthrough : callable(item) -> bool, optional
        Items for which it returns True skip ``fn`` (e.g. quarantine records).
    """

    name: str
    fn: Callable[[list[Any]], list[Any]]
    workers: int = 1
    batch_size: int = 1
    max_wait_s: float = 0.0
    passthrough: Callable[[Any], bool] | None = None


@dataclass
class StageStats:
    """What one stage has done so far."""

    name: str
    workers: int
    items_in: int = 0
    items_out: int = 0
    calls: int = 0
    busy_s: float = 0.0  # summed over the stage's threads
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


@dataclass(frozen=True)
class ThreadPlan:
    """How many threads each CPU consumer gets on this machine."""

    cores: int
    decode_workers: int
    torch_threads: int
    fetch_in_flight: int = 32
    notes: str = field(default="", compare=False)


def thread_plan(cores: int | None = None, *, fetch_in_flight: int = 32) -> ThreadPlan:
    """The rule that keeps torch and decoding from fighting over the cores.

    Decoding and embedding run at the same time, so they split the cores
    instead of each assuming it has all of them: ``decode = max(1, c // 4)``
    threads (PIL decoding of small images is cheap next to a forward pass) and
    ``torch = max(1, c - decode)`` intra-op threads. Fetch threads wait on I/O
    and are not counted. On 2 cores: 1 decode thread, 1 torch thread — torch
    with 2 threads while another thread holds a core collapses, because its
    threads wait on each other at every barrier.
    """
    if cores is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    c = max(1, int(cores or 1))
    decode = max(1, c // 4)
    torch_threads = max(1, c - decode)
    notes = f"{c} cores: {decode} decode thread(s), {torch_threads} torch thread(s)"
    return ThreadPlan(c, decode, torch_threads, fetch_in_flight, notes=notes)


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
    """

    def __init__(self, stages: Sequence[Stage], *, queue_size: int = 64,
                 on_progress: Callable[[dict[str, Any]], None] | None = None,
                 progress_interval: float = 0.25) -> None:
        if not stages:
            raise ValueError("a pipeline needs at least one stage")
        self.stages = list(stages)
        self.queue_size = queue_size
        self.on_progress = on_progress
        self.progress_interval = progress_interval
        self.stats = [StageStats(s.name, s.workers, queue_capacity=queue_size) for s in stages]
        self._started = 0.0
        self._wall = 0.0

    def run(self, items: Iterable[Any]) -> Iterator[Any]:
        """Feed ``items`` through every stage; yield what the last stage emits.

        Results come in completion order. Stops early (and raises
        :class:`PipelineError`) when a stage function raises. Closing the
        returned generator early stops the threads.
        """
        queues = [queue.Queue(self.queue_size) for _ in range(len(self.stages) + 1)]
        stop = threading.Event()
        failure: list[BaseException] = []
        lock = threading.Lock()
        remaining = [s.workers for s in self.stages]  # live threads per stage
        self._started = time.perf_counter()

        def put(q: queue.Queue, item: Any) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def feed() -> None:
            try:
                for item in items:
                    if not put(queues[0], item):
                        return
            except BaseException as exc:  # the source itself failed
                failure.append(PipelineError(f"reading the pool's items failed: {exc}"))
                stop.set()
            finally:
                for _ in range(self.stages[0].workers):
                    put(queues[0], _END)

        def work(i: int) -> None:
            stage, stats = self.stages[i], self.stats[i]
            inbox, outbox = queues[i], queues[i + 1]
            done = False
            while not done and not stop.is_set():
                batch, done = self._take(inbox, stage.batch_size, stage.max_wait_s, stop)
                if not batch:
                    continue
                skip = [x for x in batch if stage.passthrough and stage.passthrough(x)]
                todo = [x for x in batch if not (stage.passthrough and stage.passthrough(x))]
                t0 = time.perf_counter()
                try:
                    out = stage.fn(todo) if todo else []
                except BaseException as exc:
                    failure.append(PipelineError(f"pipeline stage '{stage.name}' failed: "
                                                 f"{type(exc).__name__}: {exc}"))
                    failure[-1].__cause__ = exc
                    stop.set()
                    return
                with lock:
                    stats.busy_s += time.perf_counter() - t0
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
                for _ in range(self.stages[i + 1].workers if i + 1 < len(self.stages) else 1):
                    put(outbox, _END)

        threads = [threading.Thread(target=feed, name="pipeline-feed", daemon=True)]
        for i, stage in enumerate(self.stages):
            threads += [threading.Thread(target=work, args=(i,), daemon=True,
                                         name=f"pipeline-{stage.name}-{w}")
                        for w in range(stage.workers)]
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
        return {"wall_s": round(wall, 4), "stages": [s.as_dict(wall) for s in self.stats]}

    @staticmethod
    def _take(inbox: queue.Queue, size: int, max_wait: float,
              stop: threading.Event) -> tuple[list[Any], bool]:
        """Block for one item, then fill up to ``size`` for at most ``max_wait`` s."""
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
                return batch, True
            if not batch:
                deadline = time.perf_counter() + max_wait
            batch.append(item)
            if len(batch) >= size:
                return batch, False
        return batch, True

    def _monitor(self, queues: list[queue.Queue], stop: threading.Event) -> None:
        finished = False
        while not finished:
            finished = stop.wait(self.progress_interval)
            for stats, q in zip(self.stats, queues[:-1], strict=True):
                stats.queue_depth = q.qsize()
            if self.on_progress is not None:
                try:
                    self.on_progress(self.report())
                except Exception:  # a broken listener must not stop the work
                    logger.exception("progress listener failed")
