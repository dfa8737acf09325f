"""What :class:`~alaas_lab.widgets.label_queue.LabelQueue` and
:class:`~alaas_lab.widgets.review_queue.ReviewQueue` share: the queue-view interface.

:class:`QueueCore` holds the items shown front first, the undo stack, the change
notification, and the two threads: a *sender* that saves what the person did in
order (from an outbox it owns, never taking the view's lock) and a *fetch* thread
that loads the next items, backing off when the worker is unreachable and waiting
for :meth:`~QueueCore.retry` when it refuses. A subclass says what an action
sends (:meth:`~QueueCore._deliver`), how items arrive (:meth:`~QueueCore.bootstrap`,
:meth:`~QueueCore._top_up`) and how long the fetch thread idles
(:meth:`~QueueCore._idle_seconds`).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ..errors import InputError, RemoteError

logger = logging.getLogger(__name__)

_Queue = TypeVar("_Queue", bound="QueueCore")


def check_count(name: str, value: Any) -> None:
    """Refuse anything but an int >= 1 (a bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be an int >= 1; got {value!r}.")


class QueueCore:
    """Items shown front first, an undo stack, an ordered sender and a fetch thread.

    Parameters are those of the subclasses (see
    :class:`~alaas_lab.widgets.label_queue.LabelQueue`), checked by them.
    """

    #: How log lines name the queue.
    _kind = "queue"
    #: Names of the sender and the fetch thread.
    _thread_names = ("alaas-send", "alaas-fetch")

    def __init__(self, worker: Any, *, sender: Any, labeler: str, prefetch: int,
                 classes: Sequence[str] | None, undo_depth: int,
                 lock: threading.RLock | None, on_change: Callable[[], None] | None,
                 close_workers: bool, seq: Iterator[int] | None) -> None:
        self.fetcher, self.sender = worker, sender if sender is not None else worker
        self.labeler, self.prefetch, self.undo_depth = labeler, prefetch, undo_depth
        self.classes: list[str] = [str(c) for c in classes or ()]
        self.lock = lock if lock is not None else threading.RLock()
        self.on_change = on_change
        self.message = ""
        self.error = ""
        self.bootstrapped = False
        self._close_workers = close_workers
        self._seq = seq if seq is not None else itertools.count(1)
        self._items: list[Any] = []
        self._undo: deque[Any] = deque(maxlen=undo_depth)
        self._seen: set[int] = set()  # every item this queue was given
        self._finished = False
        self._failed = False  # the worker refused a request: wait for retry()
        self._ready = threading.Event()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._out = threading.Condition()  # its own lock: the sender never takes `lock`
        self._outbox: deque[tuple[Any, ...]] = deque()
        self._unsent = 0  # entries given and not yet saved (or refused)
        self._stopping = False
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ state
    @property
    def items(self) -> list[Any]:
        """Items waiting, front first (a copy)."""
        with self.lock:
            return list(self._items)

    @property
    def current(self) -> Any:
        """The item shown now (None: none)."""
        with self.lock:
            return self._items[0] if self._items else None

    @property
    def queued(self) -> list[int]:
        """Ids of the items waiting, front first."""
        with self.lock:
            return [e.item_id for e in self._items]

    @property
    def actions(self) -> list[Any]:
        """What Undo can take back, oldest first."""
        with self.lock:
            return list(self._undo)

    @property
    def state(self) -> str:
        """``starting``, ``labeling``, ``waiting``, ``done`` or ``error``."""
        with self.lock:
            if not self.bootstrapped:
                return "starting"
            if self._failed:
                return "error"
            if self._showing():
                return "labeling"
            return "done" if self._finished and not self._items else "waiting"

    def _showing(self) -> bool:
        """Whether there is something to act on now (lock held): a loaded front item."""
        return bool(self._items) and self._items[0].payload is not None

    def _changed(self) -> None:
        """Tell the view (lock held) and wake the fetch thread."""
        self._wake.set()
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # a view's bug must not lose what the person did
                logger.exception("%s: on_change failed", self._kind)

    def _refuse(self, message: str) -> bool:
        self.message = message
        self._changed()
        return False

    def _find(self, item_id: int) -> Any:
        return next((e for e in self._items if e.item_id == item_id), None)

    def _set_error(self, error: str) -> None:
        with self.lock:
            self.error = error
            self._changed()

    def retry(self) -> None:
        """After an error: clear it and let the fetch thread try again."""
        with self.lock:
            self.error = ""
            self._failed = False
            self._changed()

    # ------------------------------------------------------------ lifecycle
    def start(self: _Queue) -> _Queue:
        """Start the sender and fetch threads (once)."""
        if not self._threads:
            for name, target in zip(self._thread_names, (self._send_loop, self._fetch_loop),
                                    strict=True):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def step(self) -> None:
        """One pass of the worker side in this thread: save, bootstrap, load, ask.

        For a queue whose threads are not started (tests, scripts); errors propagate.
        """
        if self._threads:
            raise RuntimeError(f"the {self._kind}'s threads are running; step() is for a "
                               "queue that was not started.")
        self._deliver_all()
        self._refill()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Block until the first item is loaded (or there is none, or it failed)."""
        return self._ready.wait(timeout)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything given so far is saved by the worker (or refused)."""
        if not self._threads:
            self._deliver_all()
        with self._out:
            return self._out.wait_for(lambda: self._unsent == 0, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop fetching; what was given is still sent (for up to ``timeout`` s)."""
        self._closed.set()
        with self._out:
            self._stopping = True
            self._out.notify_all()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        if not self._threads and self._close_workers:  # never started: no thread owns them
            for worker in {id(w): w for w in (self.fetcher, self.sender)}.values():
                worker.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # ------------------------------------------------------------ sender
    def _send(self, *entry: Any) -> None:
        """Put an entry in the outbox; the sender saves entries in order."""
        with self._out:
            self._outbox.append(entry)
            self._unsent += 1
            self._out.notify_all()

    def _take(self, block: bool) -> list[tuple[Any, ...]] | None:
        """The entries to save next (:meth:`_next_batch`); [] when there are none yet,
        None once stopped and empty."""
        with self._out:
            while block and not self._outbox and not self._stopping:
                self._out.wait()
            if not self._outbox:
                return None if self._stopping else []
            return self._next_batch()

    def _next_batch(self) -> list[tuple[Any, ...]]:
        """Entries saved in one request (``_out`` held, outbox not empty): one here."""
        return [self._outbox.popleft()]

    def _sent(self, n: int) -> None:
        with self._out:
            self._unsent -= n
            self._out.notify_all()

    def _send_loop(self) -> None:
        try:
            while (batch := self._take(block=True)) is not None:
                self._deliver(batch)
                self._sent(len(batch))
        finally:
            if self._close_workers:
                self.sender.close()

    def _deliver_all(self) -> None:
        while batch := self._take(block=False):
            self._deliver(batch)
            self._sent(len(batch))

    def _deliver(self, batch: list[tuple[Any, ...]]) -> None:
        """Save a batch of outbox entries on the worker (the sender thread)."""
        raise NotImplementedError

    # ------------------------------------------------------------ fetch
    def bootstrap(self) -> None:
        """What the queue needs from the worker before the first item."""
        raise NotImplementedError

    def _top_up(self) -> None:
        """Load the next items' content; ask the worker for more when due."""
        raise NotImplementedError

    def _idle_seconds(self) -> float:
        """How long the fetch thread waits between passes unless woken (lock not held)."""
        return 1.0

    def _poll(self) -> None:
        """What else the fetch thread reads on each pass (nothing here)."""

    def _refill(self) -> None:
        if not self.bootstrapped:
            self.bootstrap()
        self._top_up()

    def _fetch_loop(self) -> None:
        backoff = 0.0
        try:
            while not self._closed.is_set():
                self._wake.clear()  # before the work: a wake-up during it is not lost
                try:
                    self._refill()
                    self._poll()
                    backoff = 0.0
                except Exception as exc:
                    logger.debug("%s: fetch failed", self._kind, exc_info=True)
                    with self.lock:
                        self.error = f"{type(exc).__name__}: {exc}"
                        self._failed = isinstance(exc, RemoteError)
                        self._changed()
                    self._ready.set()
                    if self._failed:  # wait for retry() rather than hammer the worker
                        while self._failed and not self._closed.is_set():
                            self._wake.wait(0.5)
                            self._wake.clear()
                        continue
                    backoff = min(10.0, max(0.5, backoff * 2))
                    self._closed.wait(backoff)
                    continue
                self._wake.wait(self._idle_seconds())
        finally:
            if self._close_workers:
                self.fetcher.close()

    def _load(self, items: list[Any]) -> None:
        """Fetch the content of ``items`` (``item_data``) and mark the queue ready."""
        data = self.fetcher.item_data([e.item_id for e in items])
        by_id = {int(it["item_id"]): it for it in data}
        with self.lock:
            for e in items:
                e.payload = by_id.get(e.item_id) or {"kind": "error",
                                                     "text": "the worker sent no content"}
            self._changed()
        self._ready.set()
