"""A job a worker recomputes on demand on its own thread; the newest request wins.

The pool map (:class:`~alaas_lab.worker.projection.Projector`) and the suspect
labels (:class:`~alaas_lab.worker.suspects.SuspectReview`) are recomputed when the
data changes, which may happen again while they run. :class:`BackgroundJob` runs
one computation at a time; the requests that come while it runs merge into one
more run after it, so the result always reflects the newest request and never
queues stale work.

Its thread runs at a lower CPU priority (nice +10, on Linux where a thread has its
own): a push or a fit the user waits for gets the cores first, and the job takes
what they leave. (Measured: the suspect scoring after a round of 2,000 labels took
1.5 s of both cores and slowed a push started meanwhile by a quarter.)
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["BackgroundJob"]

NICE = 10  # how much lower the job thread's priority is than the worker's


class BackgroundJob:
    """Runs ``work`` on its own thread when asked; asked while running, once more after.

    Parameters
    ----------
    work : callable
        The computation, with no argument; it handles its own errors (one that
        escapes is kept by the thread's future and shows only to :meth:`wait`).
    name : str
        The thread's name prefix.
    """

    def __init__(self, work: Callable[[], None], *, name: str) -> None:
        self._work = work
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name, initializer=_yield_cpu)
        self._running: Future | None = None
        self._again = False  # asked while running: run once more after

    @property
    def running(self) -> bool:
        """Whether a run is in progress or due."""
        with self._lock:
            return self._running is not None

    def request(self) -> None:
        """Run ``work`` now, or once more after the run in progress."""
        with self._lock:
            if self._running is not None:
                self._again = True
                return
            self._running = self._pool.submit(self._run)

    def wait(self, timeout: float | None = None) -> None:
        """Block until no run is in progress or due (TimeoutError after ``timeout`` s)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                running = self._running
            if running is None:
                return
            running.result(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Drop a run that is due; one in progress finishes on its own."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        try:
            self._work()
        finally:
            with self._lock:
                again, self._again = self._again, False
                self._running = self._pool.submit(self._run) if again else None


def _yield_cpu() -> None:
    """Lower this thread's priority (Linux: per thread; elsewhere it would be the process's)."""
    if sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + NICE)
        except OSError:  # not permitted here: run at the usual priority
            pass
