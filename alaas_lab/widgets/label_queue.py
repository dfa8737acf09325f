"""The label queue beneath the labeling widget: plain Python, no traits, no browser.

:class:`LabelQueue` holds what a labeler answers next and everything done to it:
the selections' items front first, skips, an undo stack of the last actions, the
round of each item, answers on their way to the worker, and the next selection.
:class:`~alaas_lab.widgets.LabelingWidget` is a view of it: it maps the queue's
state onto traits and its front-end messages onto :meth:`LabelQueue.answer`,
:meth:`~LabelQueue.skip`, :meth:`~LabelQueue.undo` and :meth:`~LabelQueue.accept`.
Tests drive the queue directly, against a real worker or a small fake of
:class:`Worker`.

Threads
-------
The actions change memory and put answers in an outbox; they never wait on the
worker. A *sender* thread (its own client) saves the answers in order, several in
one ``label_many`` when they pile up; a *fetch* thread (another client) loads the
next items' content (``item_data``) and asks for the next selection (``query``).
Without :meth:`LabelQueue.start`, :meth:`LabelQueue.step` does one pass of both in
the calling thread (tests, scripts).

When to ask for the next selection
----------------------------------
A worker that runs rounds synchronously completes a round (fit, evaluate, record)
when the last item of its selection is labeled; a query before that opens the
next round and leaves this one unrecorded. So by default the queue asks when the
newest selection is answered and every answer is saved; what is still queued then
(answers taken back, older rounds) is labeled while the worker trains. A worker
whose ``hello`` announces ``lookahead`` (``"lookahead": true`` or ``"lookahead"``
in ``features``) answers queries while a round is being labeled: the queue then
asks as soon as fewer than ``prefetch`` items are queued, so it never drains. A
refusal (``reason="not_ready"``) or a reply with no new item (a PSHEA worker
returns the round still being labeled) makes it wait until the newest selection
is answered, then ask again.

Skip and Undo
-------------
Skip moves the item to the end of the queue. Skipped again when every other item
of its round still queued has been skipped too, it is *left out*: the worker is
asked to close the round without it (``fit``; a PSHEA worker refuses, and the
item comes back). Undo reverses the last action, whichever it was: an answer is
retracted and its item shown again; a skip, or a leaving out, brings the item
back to the front, unanswered.

The worker keeps no record of skips. A queue made later (the label cell run
again, the kernel restarted) tells a left-out item from the worker's history: it
is still pending in a round the journal has recorded, and no one ever answered
it. Only a ``fit`` request from elsewhere in the middle of a round records a round
with other items pending; those would be taken for left out too.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import InputError, RemoteError
from ..protocol.messages import iso_time
from ._base import budget_total

__all__ = ["UNDO_DEPTH", "Action", "LabelQueue", "QueueItem", "Worker"]

logger = logging.getLogger(__name__)

#: How many past actions (answers, skips) Undo can take back.
UNDO_DEPTH = 10
#: Error codes (``RemoteError.reason``) of a query that mean the session is done.
_FINISHED = frozenset({"pool_exhausted",  # the pool is used up
                       "budget_spent", "over_budget",  # the label budget is (nearly) spent
                       "session_finished"})  # PSHEA stopped: target, budget or rounds
#: At most this many answers go in one ``label_many``.
_BATCH = 64


class Worker(Protocol):
    """What the queue asks of a worker: these :class:`~alaas_lab.client.Client` methods.

    ``query`` returns an object with ``round``, ``strategy`` and ``item_ids`` (and
    optionally ``strategies``, one name per item); errors are
    :class:`~alaas_lab.errors.RemoteError` with a ``reason`` code.
    """

    def hello(self) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...

    def query(self, budget: int) -> Any: ...

    def label(self, item: int, label: Any, *, labeler: str | None = None) -> int: ...

    def label_many(self, items: Sequence[int], labels: Sequence[Any], *,
                   labeler: str | None = None) -> list[int]: ...

    def item_data(self, items: Sequence[int]) -> list[dict[str, Any]]: ...

    def history(self, since: int | str = 0, include: Sequence[str] | None = None,
                limit: int | None = None, *, current: bool = False,
                include_eval: bool = False, labeler: str | None = None,
                round: int | None = None) -> dict[str, Any]: ...

    def fit(self) -> dict[str, Any]: ...

    def next_items(self, n: int, *, labeler: str | None = None) -> dict[str, Any]: ...

    def leave_out(self, item: int, *, labeler: str | None = None, undo: bool = False
                  ) -> None: ...


@dataclass
class QueueItem:
    """One item to answer.

    Attributes
    ----------
    item_id : int
    round : int or None
        The round whose selection holds it.
    strategy : str
        Who asked for it (PSHEA: several names joined by ``", "``).
    seq : int
        Unique per showing (new after a skip or an undo); a view keys on it.
    payload : dict or None
        Its ``item_data`` (``kind``, ``data``, ``text``, ``uri``, and when the worker
        sends them ``suggestion`` and ``model``); None until loaded.
    skips : int
        Times it was skipped.
    label : str or None
        The answer given (None: unanswered).
    relabel : bool
        An answer taken back with Undo.
    left_out : bool
        Skipped twice: its round closes without it.
    """

    item_id: int
    round: int | None
    strategy: str
    seq: int
    payload: dict[str, Any] | None = None
    skips: int = 0
    label: Any = None
    relabel: bool = False
    left_out: bool = False

    @property
    def suggestion(self) -> dict[str, Any] | None:
        """The newest head's guess, ``{"label", "confidence"}``, if the worker sent one."""
        s = (self.payload or {}).get("suggestion")
        return s if isinstance(s, dict) and s.get("label") is not None else None

    @property
    def model(self) -> dict[str, Any] | None:
        """The head behind the suggestion, ``{"round", "n_labeled", "top1"}``, if sent."""
        m = (self.payload or {}).get("model")
        return m if isinstance(m, dict) else None

    def describe(self) -> dict[str, Any]:
        """What a view shows of it (JSON): ids, provenance, content fields, suggestion."""
        meta: dict[str, Any] = {"seq": self.seq, "item_id": self.item_id, "round": self.round,
                                "strategy": self.strategy, "skips": self.skips,
                                "relabel": self.relabel, "loaded": self.payload is not None}
        if self.payload is not None:
            p = self.payload
            meta.update(uri=p.get("uri", ""), kind=p.get("kind", "error"),
                        mime=p.get("mime", ""), text=p.get("text", ""))
            if p.get("kind") == "array":
                meta["values"] = [round(float(v), 4) for v in p.get("values", [])]
            if (s := self.suggestion) is not None:
                conf = s.get("confidence")
                meta["suggestion"] = {"label": str(s["label"]),
                                      "confidence": None if conf is None else float(conf)}
            if (m := self.model) is not None:
                meta["model"] = {k: m.get(k) for k in ("round", "n_labeled", "top1")}
        return meta


@dataclass
class Action:
    """One step Undo can take back.

    Attributes
    ----------
    kind : {"answer", "skip", "leave"}
        ``leave``: skipped again and left out of its round.
    item : QueueItem
    label : str or None
        The answer (``answer`` only).
    skips : int
        The item's skip count before the action.
    """

    kind: str
    item: QueueItem
    label: Any = None
    skips: int = 0

    def describe(self) -> dict[str, Any]:
        return {"item_id": self.item.item_id, "label": self.label, "action": self.kind}


@dataclass
class _Round:
    size: int = 0
    open: set[int] = field(default_factory=set)  # queued, not answered, not left out
    left_out: set[int] = field(default_factory=set)
    closed: bool = False  # recorded by the worker without its left-out items
    keep_all: bool = False  # the worker refused to close it without every item (PSHEA)


def _available(status: dict[str, Any]) -> int:
    """Pool items a query can select: embedded, not labeled, not evaluation, not pending.

    A quarantined item never got embedded, so it is not among ``n_embedded``.
    """
    return int(status.get("n_embedded") or 0) - sum(
        int(status.get(k) or 0) for k in ("n_labeled", "n_eval", "n_pending"))


def _pool_wait(status: dict[str, Any], available: int, n: int) -> str:
    """Why to wait for the pool instead of asking for ``n`` items ("" when there is none).

    A push in flight (running, queued, or items not embedded yet) or a pool with
    nothing pushed is not the end of the session: more items are coming.

    Parameters
    ----------
    status : dict
        The worker's ``status`` reply.
    available : int
        Pool items embedded, not labeled and not selected.
    n : int
        Items the next selection asks for.
    """
    count = {k: int(status.get(k) or 0) for k in ("n_items", "n_embedded", "n_quarantined",
                                                 "n_eval", "jobs_queued")}
    expected = count["n_items"] - count["n_quarantined"]
    filling = (status.get("state") == "push" or count["jobs_queued"] > 0
               or count["n_embedded"] < expected)
    if filling and available < n:
        queued = f"; {count['jobs_queued']} job(s) queued" if count["jobs_queued"] else ""
        return (f"waiting for the pool: {count['n_embedded']} of {expected} items "
                f"embedded{queued}")
    if count["n_items"] - count["n_eval"] <= 0:
        return "waiting for the pool: nothing pushed yet (%alaas push)"
    return ""


#: Outbox entries that are not answers: leave an item out of its round, or bring it back.
_LEAVE, _RETURN = object(), object()


def _announces_leases(hello: dict[str, Any]) -> bool:
    return "leases" in (hello.get("features") or ())


def _announces_lookahead(hello: dict[str, Any]) -> bool:
    return bool(hello.get("lookahead")) or "lookahead" in (hello.get("features") or ())


class LabelQueue:
    """The items a labeler answers next, with skip, undo, delivery and round tracking.

    Parameters
    ----------
    worker : Worker
        Used by the fetch thread (``hello``, ``status``, ``history``, ``item_data``,
        ``query``, ``fit``).
    sender : Worker, optional
        Used by the sender thread (``label``, ``label_many``, ``hello`` and
        ``history`` to check a failed delivery). Default: ``worker``; give another
        client so a slow query never holds up an answer.
    labeler : str, default ""
        Who answers; stored with every label.
    n : int, optional
        Items per selection (default 10), capped by the budget and the pool.
    prefetch : int, default 4
        Items kept loaded (``prefetch + 1`` from the front); with ``lookahead``, the
        next selection is asked for when fewer than this many are queued.
    classes : sequence of str, optional
        Default: the worker's (``hello``).
    budget_total : int, optional
        For :attr:`progress`; default: from the worker's status.
    lookahead : bool, optional
        Ask for the next selection before this one is answered. Default: whether the
        worker's ``hello`` announces it.
    undo_depth : int, default 10
        Actions Undo can take back.
    lock : threading.RLock, optional
        Held while the state changes and while ``on_change`` runs; a view passes
        its own so that both change together.
    on_change : callable, optional
        Called with no argument (``lock`` held) after every change.
    close_workers : bool, default False
        Each thread closes its client when it ends.
    """

    def __init__(self, worker: Worker, *, sender: Worker | None = None, labeler: str = "",
                 n: int | None = None, prefetch: int = 4,
                 classes: Sequence[str] | None = None, budget_total: int | None = None,
                 lookahead: bool | None = None, undo_depth: int = UNDO_DEPTH,
                 lock: threading.RLock | None = None,
                 on_change: Callable[[], None] | None = None,
                 close_workers: bool = False) -> None:
        for name, value in (("n", n), ("prefetch", prefetch), ("undo_depth", undo_depth)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 1):
                raise InputError(f"{name} must be an int >= 1; got {value!r}.")
        self.fetcher, self.sender = worker, sender if sender is not None else worker
        self.labeler, self.n, self.prefetch, self.undo_depth = labeler, n, prefetch, undo_depth
        self.classes: list[str] = [str(c) for c in classes or ()]
        self.budget_total = budget_total
        self.lookahead = lookahead
        self.lock = lock if lock is not None else threading.RLock()
        self.on_change = on_change
        self.message = ""
        self.error = ""
        self.bootstrapped = False
        self._close_workers = close_workers
        self._seq = itertools.count(1)
        self._items: list[QueueItem] = []
        self._undo: deque[Action] = deque(maxlen=undo_depth)
        self._rounds: dict[int, _Round] = {}
        self._round = 0  # the newest selection's round
        self._seen: set[int] = set()  # every item this queue was given
        self._left: dict[int, QueueItem] = {}  # left out: skipped twice
        self._labeled = 0
        self._budget_left: int | None = None
        self._pool = 0
        self._finished = False
        self._waiting_pool = False
        self._blocked = False  # lookahead: a query was refused or brought nothing new
        self.leases = False  # the worker leases items per labeler (next_items, leave_out)
        self._failed = False  # the worker refused a request: wait for retry()
        self._ready = threading.Event()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._out = threading.Condition()  # its own lock: the sender never takes `lock`
        self._outbox: deque[tuple[int, Any]] = deque()
        self._unsent = 0  # answers given and not yet saved (or refused)
        self._stopping = False
        self._last_row = 0  # journal row of the last answer the worker acknowledged
        self._send_failing = False
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ state
    @property
    def items(self) -> list[QueueItem]:
        """Items waiting for an answer, front first (a copy)."""
        with self.lock:
            return list(self._items)

    @property
    def current(self) -> QueueItem | None:
        """The item to answer now."""
        with self.lock:
            return self._items[0] if self._items else None

    @property
    def queued(self) -> list[int]:
        """Ids of the items waiting for an answer, front first."""
        with self.lock:
            return [e.item_id for e in self._items]

    @property
    def actions(self) -> list[Action]:
        """What Undo can take back, oldest first."""
        with self.lock:
            return list(self._undo)

    @property
    def left_out(self) -> list[int]:
        """Items skipped twice and left out of their round."""
        with self.lock:
            return sorted(self._left)

    @property
    def progress(self) -> dict[str, Any]:
        """``round`` (the oldest round still being answered, else the newest),
        ``round_done``, ``round_size``, ``left_out``, ``labeled``, ``budget_total``,
        ``budget_left``, ``pool``."""
        with self.lock:
            rnd = min((r for r, info in self._rounds.items() if info.open), default=self._round)
            info = self._rounds.get(rnd, _Round())
            return {"round": rnd, "round_done": info.size - len(info.open) - len(info.left_out),
                    "round_size": info.size, "left_out": len(info.left_out),
                    "labeled": self._labeled, "budget_total": self.budget_total,
                    "budget_left": self._budget_left, "pool": self._pool}

    @property
    def state(self) -> str:
        """``starting``, ``labeling``, ``waiting``, ``done`` or ``error``."""
        with self.lock:
            if not self.bootstrapped:
                return "starting"
            if self._failed:
                return "error"
            if self._items and self._items[0].payload is not None:
                return "labeling"
            return "done" if self._finished and not self._items else "waiting"

    def _changed(self) -> None:
        """Tell the view (lock held) and wake the fetch thread."""
        self._wake.set()
        if self.on_change is not None:
            try:
                self.on_change()
            except Exception:  # a view's bug must not lose an answer
                logger.exception("label queue: on_change failed")

    # ------------------------------------------------------------ actions
    def _find(self, item_id: int) -> QueueItem | None:
        return next((e for e in self._items if e.item_id == item_id), None)

    def _refuse(self, message: str) -> bool:
        self.message = message
        self._changed()
        return False

    def answer(self, item_id: int, label: Any) -> bool:
        """Answer a queued item; the answer is saved in the background.

        Returns
        -------
        applied : bool
            False (with :attr:`message` saying why) for an item not queued (answered
            already: the first answer stands) or a label that is not a class.
        """
        with self.lock:
            item = self._find(item_id)
            if item is None:
                return self._refuse(f"item {item_id} was already answered")
            label = str(label)
            if label not in self.classes:
                return self._refuse(f"{label!r} is not a class ({', '.join(self.classes)})")
            self._items.remove(item)
            item.label = label
            self._undo.append(Action("answer", item, label=label, skips=item.skips))
            self._send(item_id, label)
            if (info := self._rounds.get(item.round)) is not None:
                info.open.discard(item_id)
            self._labeled += 1
            self.message = ""
            self._changed()
            return True

    def accept(self, item_id: int) -> bool:
        """Answer an item with the model's suggestion (Enter); never done unasked."""
        with self.lock:
            item = self._find(item_id)
            if item is None:
                return self._refuse(f"item {item_id} was already answered")
            s = item.suggestion
            if s is None or str(s["label"]) not in self.classes:
                return self._refuse(f"no model suggestion for item {item_id}: answer it "
                                    "with its class key")
            return self.answer(item_id, s["label"])

    def skip(self, item_id: int) -> bool:
        """Move an item to the end; skipped again with nothing unskipped left, leave it out."""
        with self.lock:
            item = self._find(item_id)
            if item is None:
                return self._refuse(f"item {item_id} is not waiting for an answer")
            self._items.remove(item)
            before = item.skips
            item.skips += 1
            info = self._rounds.get(item.round)
            others = any(e.skips == 0 and e.round == item.round for e in self._items)
            if before and not others and not (info and info.keep_all):
                item.left_out = True
                self._left[item_id] = item
                if self.leases:  # the worker takes it out of its round, for good
                    self._send(item_id, _LEAVE)
                if info is not None:
                    info.open.discard(item_id)
                    info.left_out.add(item_id)
                self._undo.append(Action("leave", item, skips=before))
                self.message = (f"item {item_id} left out of round {item.round}: skipped twice "
                                "(Undo brings it back)")
            else:
                item.seq = next(self._seq)
                self._items.append(item)
                self._undo.append(Action("skip", item, skips=before))
                self.message = f"skipped item {item_id}: it comes back at the end of the round"
            self._changed()
            return True

    def undo(self) -> bool:
        """Reverse the last action: an answer is retracted, a skip taken back.

        The item comes back to the front, unanswered, as it was before the action.
        """
        with self.lock:
            if not self._undo:
                return self._refuse(f"nothing to undo (the last {self.undo_depth} actions "
                                    "can be taken back)")
            act = self._undo.pop()
            item = act.item
            info = self._rounds.get(item.round)
            if act.kind == "answer":
                self._send(item.item_id, None)  # a retraction: the journal keeps both rows
                item.label, item.relabel = None, True
                self._labeled -= 1
                self.message = f"took back {act.label!r} for item {item.item_id}: answer again"
            else:  # a skip or a leave: the item may be queued (or given back by the worker)
                if act.kind == "leave" and self.leases:
                    self._send(item.item_id, _RETURN)
                if item in self._items:
                    self._items.remove(item)
                self._left.pop(item.item_id, None)
                item.left_out = False
                if info is not None:
                    info.left_out.discard(item.item_id)
                self.message = f"took back the skip of item {item.item_id}"
            item.skips = act.skips
            item.seq = next(self._seq)
            self._items.insert(0, item)
            self._seen.add(item.item_id)
            if info is not None:
                info.open.add(item.item_id)
            self._changed()
            return True

    def retry(self) -> None:
        """After an error: clear it and let the fetch thread try again."""
        with self.lock:
            self.error = ""
            self._failed = False
            self._changed()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> LabelQueue:
        """Start the sender and fetch threads (once)."""
        if not self._threads:
            for name, target in (("alaas-labels", self._send_loop),
                                 ("alaas-prefetch", self._fetch_loop)):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def step(self) -> None:
        """One pass of the worker side in this thread: save answers, load items, select.

        For a queue whose threads are not started (tests, scripts); errors propagate.
        """
        if self._threads:
            raise RuntimeError("the queue's threads are running; step() is for a queue "
                               "that was not started.")
        self._deliver_all()
        if not self.bootstrapped:
            self.bootstrap()
        self._top_up()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Block until the first item is loaded (or the queue is done or failed)."""
        return self._ready.wait(timeout)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every answer given so far is saved by the worker (or refused)."""
        if not self._threads:
            self._deliver_all()
        with self._out:
            return self._out.wait_for(lambda: self._unsent == 0, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop asking for items; answers already given are still sent (for up to 10 s)."""
        self._closed.set()
        with self._out:
            self._stopping = True
            self._out.notify_all()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
        if not self._threads and self._close_workers:  # never started: no thread owns them
            for worker in {id(w): w for w in (self.fetcher, self.sender)}.values():
                worker.close()  # type: ignore[attr-defined]

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # ------------------------------------------------------------ sender
    def _send(self, item_id: int, label: Any) -> None:
        with self._out:
            self._outbox.append((item_id, label))
            self._unsent += 1
            self._out.notify_all()

    def _take(self, block: bool) -> list[tuple[int, Any]] | None:
        """The answers to send next, in order, no item twice; None once stopped and empty."""
        with self._out:
            while block and not self._outbox and not self._stopping:
                self._out.wait()
            if not self._outbox:
                return None if self._stopping else []
            if self._outbox[0][1] is _LEAVE or self._outbox[0][1] is _RETURN:
                return [self._outbox.popleft()]  # not an answer: on its own
            batch: list[tuple[int, Any]] = []
            while (self._outbox and len(batch) < _BATCH
                   and self._outbox[0][1] is not _LEAVE and self._outbox[0][1] is not _RETURN
                   and all(self._outbox[0][0] != i for i, _ in batch)):
                batch.append(self._outbox.popleft())
            return batch

    def _sent(self, n: int) -> None:
        with self._out:
            self._unsent -= n
            self._out.notify_all()
        self._wake.set()

    def _send_loop(self) -> None:
        try:
            while (batch := self._take(block=True)) is not None:
                self._deliver(batch)
                self._sent(len(batch))
        finally:
            if self._close_workers:
                self.sender.close()  # type: ignore[attr-defined]

    def _deliver_all(self) -> None:
        while batch := self._take(block=False):
            self._deliver(batch)
            self._sent(len(batch))

    def _set_error(self, error: str) -> None:
        with self.lock:
            self.error = error
            self._changed()

    def _deliver(self, batch: list[tuple[int, Any]]) -> None:
        """Save answers; after a failure wait for the worker and resend only what it lacks.

        A request that timed out may still reach the worker when it wakes up, so a
        blind resend could land *after* a later retraction of the same item. Once the
        worker answers again, its history tells which answers arrived.
        """
        if batch[0][1] is _LEAVE or batch[0][1] is _RETURN:
            item_id, what = batch[0]
            try:
                self.sender.leave_out(item_id, labeler=self.labeler, undo=what is _RETURN)
            except Exception as exc:
                self._set_error(f"could not leave item {item_id} out of its round: {exc}")
            return
        todo = batch
        while todo:
            sent_at = time.time() - 1.0
            ids, labels = [i for i, _ in todo], [lab for _, lab in todo]
            try:
                rows = ([self.sender.label(ids[0], labels[0], labeler=self.labeler)]
                        if len(todo) == 1 else
                        self.sender.label_many(ids, labels, labeler=self.labeler))
            except RemoteError as exc:  # refused: retrying will not help
                if len(todo) > 1:  # one at a time, so only the refused answer is lost
                    for one in todo:
                        self._deliver([one])
                    return
                what = "retraction" if labels[0] is None else f"label {labels[0]!r}"
                self._set_error(f"the worker refused the {what} for item {ids[0]}: "
                                f"{exc.evalue}")
                return
            except Exception as exc:  # worker gone or hung: keep the answers, retry
                self._send_failing = True
                self._set_error(f"could not save the answer for item {ids[0]} ({exc}); "
                                "retrying — answers are kept in order.")
                todo = self._missing(todo, sent_at)
                continue
            self._last_row = max(self._last_row, *rows)
            break
        if self._send_failing:
            self._send_failing = False
            self._set_error("")

    def _missing(self, todo: list[tuple[int, Any]], since: float) -> list[tuple[int, Any]]:
        """Once the worker answers again: the answers of ``todo`` it does not hold.

        Asks for this labeler's rows after the last acknowledged one (``history``).
        """
        attempt = 0
        give_up = time.monotonic() + 10.0
        after = iso_time(since)  # the worker's format: such strings compare as times
        while True:
            if self._closed.is_set() and time.monotonic() > give_up:
                logger.error("label queue closed; %d answer(s) not saved: %s", len(todo), todo)
                return []
            attempt += 1
            try:
                self.sender.hello()
                time.sleep(0.2)  # let a request still in flight land first
                rows = self.sender.history(self._last_row, ["labels"],
                                           labeler=self.labeler)["labels"]
                break
            except Exception:
                time.sleep(min(5.0, 0.25 * 2 ** attempt))
        held = {(r["item_id"], r["label"]) for r in rows if r["time"] >= after}
        return [a for a in todo if a not in held]

    # ------------------------------------------------------------ fetch
    def _fetch_loop(self) -> None:
        backoff = 0.0
        try:
            while not self._closed.is_set():
                self._wake.clear()  # before the work: a wake-up during it is not lost
                try:
                    if not self.bootstrapped:
                        self.bootstrap()
                    self._top_up()
                    backoff = 0.0
                except Exception as exc:
                    logger.debug("label queue: fetch failed", exc_info=True)
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
                self._wake.wait(1.0)
        finally:
            if self._close_workers:
                self.fetcher.close()  # type: ignore[attr-defined]

    def bootstrap(self) -> None:
        """Classes, budget and progress from the worker; pending items and Undo from history.

        An item pending in a round the journal has recorded, never answered by anyone,
        was skipped twice and left out: it stays out.
        """
        w = self.fetcher
        hello = w.hello()
        classes = self.classes or [str(c) for c in hello.get("classes") or ()]
        if not classes:
            raise RemoteError("ConfigError", "the worker's config lists no classes; add "
                              "'classes: [...]' to it to label with this widget.", {})
        status = w.status()
        rnd = int(status.get("round") or 0)
        past = w.history(0, ["labels", "pending", "selections", "rounds"], current=True,
                         labeler=self.labeler, round=rnd)
        recorded = {int(r["round"]) for r in past.get("rounds") or ()}
        pending = past["pending"]
        left = {p["item_id"] for p in pending if p["round"] in recorded}
        if left:  # never answered (an answer taken back left a row behind)
            rows = w.history(0, ["labels"])["labels"]
            left -= {r["item_id"] for r in rows}
        with self.lock:
            self.classes = classes
            self.leases = _announces_leases(hello)
            if self.lookahead is None:
                self.lookahead = _announces_lookahead(hello)
            self._apply_status(status)
            self._round = rnd
            current = {p["item_id"] for p in pending if p["round"] == rnd}
            if rnd:
                self._rounds[rnd] = _Round(size=len(past["selections"]) or len(current),
                                           open=current - left, left_out=current & left,
                                           closed=rnd in recorded)
            for p in pending:
                item = QueueItem(p["item_id"], p["round"], p["strategy"], next(self._seq))
                self._seen.add(item.item_id)
                if item.item_id in left:
                    item.skips, item.left_out = 2, True
                    self._left[item.item_id] = item
                else:
                    self._items.append(item)
            for r in past["labels"][-self.undo_depth:]:
                item = QueueItem(r["item_id"], r["round"], r["strategy"] or "",
                                 next(self._seq), label=r["label"])
                self._undo.append(Action("answer", item, label=r["label"]))
            if left:
                some = ", ".join(map(str, sorted(left)[:5]))
                self.message = (f"{len(left)} item(s) skipped twice stay left out of their "
                                f"round: {some}{', ...' if len(left) > 5 else ''}")
            self.bootstrapped = True
            self._changed()

    def _apply_status(self, status: dict[str, Any]) -> None:
        self._labeled = int(status.get("n_labeled") or 0)
        left = status.get("budget_left")
        self._budget_left = None if left is None else int(left)
        if self.budget_total is None:
            self.budget_total = budget_total(status)
        self._pool = int(status.get("n_items") or 0) - int(status.get("n_eval") or 0)

    def _top_up(self) -> None:
        """Load the next items' content; close a round or ask for a selection when due."""
        while not self._closed.is_set():
            with self.lock:
                need = [e for e in self._items[: self.prefetch + 1] if e.payload is None]
            if need:
                self._load(need)
            elif not self._advance():
                return

    def _load(self, items: list[QueueItem]) -> None:
        data = self.fetcher.item_data([e.item_id for e in items])
        by_id = {int(it["item_id"]): it for it in data}
        with self.lock:
            for e in items:
                e.payload = by_id.get(e.item_id) or {"kind": "error",
                                                     "text": "the worker sent no content"}
            self._changed()
        self._ready.set()

    def _advance(self) -> bool:
        """Close the newest round without its left-out items, or query, when due.

        Returns whether something changed (then the fetch loop looks again).
        """
        with self.lock:
            if self._finished:
                return False
            newest = self._rounds.get(self._round)
            answered = newest is None or not newest.open
            early = ((self.lookahead or self.leases) and not self._blocked
                     and len(self._items) < self.prefetch)
            if self.leases:  # the worker leases items and closes rounds itself
                if not early:
                    return False
                answered = not self._items
            elif not (answered or early):
                return False
            close = (answered and not self.leases and newest is not None and newest.left_out
                     and not newest.closed)
        if answered and not self._wait_flushed():  # the worker must have every answer first
            return False
        if close:
            return self._close_round(self._round)
        return self._next_selection(answered)

    def _wait_flushed(self) -> bool:
        if not self._threads:
            self._deliver_all()
        with self._out:
            while self._unsent and not self._closed.is_set():
                self._out.wait(0.1)
            return not self._unsent

    def _close_round(self, rnd: int) -> bool:
        """Ask the worker to record round ``rnd`` without its left-out items (``fit``)."""
        try:
            self.fetcher.fit()
        except RemoteError as exc:  # e.g. PSHEA: a round needs every pick labeled
            with self.lock:
                info = self._rounds[rnd]
                for item_id in sorted(info.left_out):
                    item = self._left.pop(item_id)
                    item.left_out, item.seq = False, next(self._seq)
                    self._items.append(item)
                info.open |= info.left_out
                info.left_out.clear()
                info.keep_all = True
                self.message = (f"round {rnd} cannot close without the skipped item(s): "
                                f"{exc.evalue}")
                self._changed()
            return True
        with self.lock:
            self._rounds[rnd].closed = True
        return True

    def _next_selection(self, answered: bool) -> bool:
        """Query the next selection; False when done, waiting, refused or closing."""
        w = self.fetcher
        if self.leases:  # the worker knows what is queued, spent and selectable
            try:
                return self._lease(self.n or 10)
            except RemoteError as exc:
                if exc.reason not in _FINISHED:
                    raise
                if waiting := _pool_wait(w.status(), 0, 1):  # more items are coming
                    return self._wait_for_pool(waiting)
                return self._finish(exc.evalue)
        if answered and not self._waiting_pool:
            with self.lock:
                self.message = (f"round {self._round} answered: the worker is training; the "
                                "next items follow" if self._round else "asking for items")
                self._changed()
        status = w.status()
        with self.lock:
            self._apply_status(status)
            left = self._budget_left
        if left is not None and left <= 0:
            return self._finish(f"budget spent: {self._labeled} labels "
                                f"(budget.total {self.budget_total})")
        n = self.n or 10
        n = n if left is None else min(n, left)
        if "n_embedded" in status:
            available = _available(status)
            if waiting := _pool_wait(status, available, n):
                return self._wait_for_pool(waiting)
            if available <= 0:
                return self._finish("every pool item is labeled or waiting: push more data "
                                    "(%alaas push) and make a new labeling widget")
            n = min(n, available)
        try:
            sel = w.query(n)
        except RemoteError as exc:
            if exc.reason == "not_ready":  # ask again once this selection is answered
                with self.lock:
                    self._blocked = True
                return False
            if exc.reason not in _FINISHED:
                raise
            if waiting := _pool_wait(w.status(), 0, 1):  # more items are coming
                return self._wait_for_pool(waiting)
            return self._finish(exc.evalue)
        new = [i for i in sel.item_ids if i not in self._seen]
        if not new:  # the round still being labeled, again: wait until it is answered
            with self.lock:
                self._blocked = True
            return False
        try:  # who picked each item (PSHEA: several strategies); else the reply's name
            picked = w.history(include=["selections"], round=sel.round)["selections"]
        except Exception:
            logger.debug("label queue: no selections for round %d", sel.round, exc_info=True)
            picked = []
        by_item = {r["item_id"]: r["strategy"] for r in picked}
        per_item = dict(zip(sel.item_ids, getattr(sel, "strategies", None)
                            or [None] * len(sel.item_ids), strict=True))
        with self.lock:
            self._blocked = self._waiting_pool = False
            self._round = max(self._round, sel.round)
            info = self._rounds.setdefault(sel.round, _Round())
            info.size += len(new)
            info.open.update(new)
            self._seen.update(new)
            for item_id in new:
                name = per_item[item_id] or by_item.get(item_id) or sel.strategy
                self._items.append(QueueItem(item_id, sel.round, name, next(self._seq)))
            self.message = ""
            self._changed()
        return True

    def _lease(self, n: int) -> bool:
        """Ask the worker for this labeler's next items (``next_items``)."""
        reply = self.fetcher.next_items(n, labeler=self.labeler)
        with self.lock:
            new = [(i, r, st) for i, r, st in zip(reply["item_ids"], reply.get("rounds") or [],
                                                   reply.get("strategies") or [], strict=True)
                   if i not in self._seen]
            if not new and self._items:
                return False
        if not new:  # other labelers hold what is queued, or the worker is busy (a push?)
            if waiting := _pool_wait(self.fetcher.status(), 0, 1):
                return self._wait_for_pool(waiting)
            with self.lock:
                self.message = "waiting for the next items (the worker is selecting)"
                self._changed()
            return False
        with self.lock:
            self._waiting_pool = False
            for item_id, rnd, strategy in new:
                self._round = max(self._round, rnd)
                info = self._rounds.setdefault(rnd, _Round())
                info.size += 1
                info.open.add(item_id)
                self._seen.add(item_id)
                self._items.append(QueueItem(item_id, rnd, strategy, next(self._seq)))
            self.message = ""
            self._changed()
        return True

    def _wait_for_pool(self, why: str) -> bool:
        """Show why no items come yet; the fetch loop asks again in a second."""
        with self.lock:
            self._waiting_pool = True
            self.message = why
            self._changed()
        return False

    def _finish(self, why: str) -> bool:
        with self.lock:
            self._finished = True
            self.message = why
            self._changed()
        self._ready.set()
        return False
