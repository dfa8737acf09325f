"""The labeling widget: one key per class, Skip, Undo, and the next items always ready.

Design (Prodigy's: the next task is always there, every answer is saved at once)
------------------------------------------------------------------------------
The kernel side keeps a queue of the items to show, front first. The first
``N_SLOTS`` of them are mirrored into the browser: ``slots[i]`` holds an item's
metadata and ``slot_i`` its image bytes (raw bytes on the wire, never base64);
``order`` lists the slots in queue order. An item keeps its slot while it is in
that window, so each answer sends the bytes of one new item, not the whole queue.

A key press shows the next slot *in the browser*, with no round trip: the browser
sends ``{"type": "answer", "seq", "item_id", "label"}`` and skips the items it has
answered but whose ``seq`` the kernel has not acknowledged (``acked``) yet. The
kernel's handler only moves the item to the history and puts the answer on a
queue; a sender thread (its own socket) sends it to the worker, which journals it
before replying. What the widget resumes (pending items, the answers Undo can take
back, who picked each item) it asks the worker for (``history``); it never opens
the worker's files. A prefetch thread (another socket) keeps the first
``prefetch + 1`` queued items loaded (``item_data``) and, once every item of the
current selection is answered, asks for the next selection (``query``) while the
worker retrains. Nothing in the shell thread waits on the worker.

The worker completes a round, and retrains, when the last item of its selection
is labeled; a new ``query`` before that would start the next round and leave the
previous one unfinished. So the widget queries when the current selection is
answered: what remains in the queue then (answers taken back with Undo, items of
older rounds) is labeled while the worker trains.
"""

from __future__ import annotations

import getpass
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import traitlets

from ..client import Client, RemoteError
from ..errors import InputError
from ..protocol.messages import iso_time
from ._base import JS_DIR, SessionWidget, budget_total, connect
from .keys import ACTION_CODES, key_map

__all__ = ["N_SLOTS", "UNDO_DEPTH", "LabelingWidget"]

logger = logging.getLogger(__name__)

#: Items mirrored in the browser at once (the current one and those after it).
N_SLOTS = 6
#: How many past answers Undo can take back.
UNDO_DEPTH = 10
#: Error codes (``RemoteError.reason``) of a query that mean the session is done.
_FINISHED = frozenset({"pool_exhausted",  # the pool is used up
                       "budget_spent", "over_budget",  # the label budget is (nearly) spent
                       "session_finished"})  # PSHEA stopped: target, budget or rounds


@dataclass
class _Entry:
    item_id: int
    round: int | None
    strategy: str
    seq: int
    payload: dict[str, Any] | None = None
    skips: int = 0
    label: Any = None
    relabel: bool = False  # an answer taken back with Undo


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


def _default_labeler() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers)
        return "labeler"


class LabelingWidget(SessionWidget):
    """Label the items the worker selects, one key per class.

    Traits (the whole contract with ``alaas_lab/js/labeler.js``)
    ------------------------------------------------------------
    classes : list of str
        Class names, in the worker's order.
    key_labels, key_codes : list of str, length n_classes
        The key shown on each class's button and its ``KeyboardEvent.code``.
        (Not ``keys``: ipywidgets uses that name for the list of synced traits.)
    action_codes : dict
        ``{"skip": "Space", "undo": "Backspace"}``.
    slots : list of dict, length N_SLOTS
        ``{}`` for a free slot, else ``seq`` (unique per showing), ``item_id``,
        ``uri``, ``round``, ``strategy`` (which strategy asked for it), ``loaded``,
        ``kind`` (image | text | array | error), ``mime``, ``text``, ``values``,
        ``skips``, ``relabel`` (an answer taken back with Undo).
    slot_0 … slot_5 : bytes
        Image bytes (PNG) of the item in that slot; empty for text.
    order : list of int
        Slots in queue order; ``order[0]`` is the item to answer now.
    acked : int
        ``seq`` of the last front-end message the kernel has applied.
    history : list of dict
        The last ``UNDO_DEPTH`` answers (oldest first): ``item_id``, ``label``.
    progress : dict
        ``round``, ``round_done``, ``round_size``, ``labeled``, ``budget_total``,
        ``budget_left``, ``pool``.
    state : str
        ``starting``, ``labeling``, ``waiting`` (queue empty: loading, training, or
        the pool still filling), ``done`` (budget or pool used up), ``error``, or
        ``stopped`` (by :meth:`shutdown`: a newer labeling widget took over, or the
        session stopped).
    message, error : str
        A status line, and the last error (e.g. the worker is gone).
    labeler : str
        Who answers; stored with every label.

    Front-end messages: ``{"type": "answer" | "skip" | "undo" | "retry", "seq", ...}``;
    each is acknowledged by ``acked = seq``.

    Parameters
    ----------
    client : Client, optional
        A client of the worker; the widget opens its own sockets to the same address.
    connection_file : path, optional
        The worker's ``worker.json`` (instead of ``client``).
    n : int, optional
        Items to ask for per selection. Default: the config's ``budget.per_round``.
    budget_total, round_budget : int, optional
        The session's label budget, for the progress display.
    classes : sequence of str, optional
        Default: what the worker says (its config's classes).
    keys : str or sequence of str, optional
        One key per class (see :func:`~alaas_lab.widgets.keys.key_map`).
    labeler : str, optional
        Default: the login name.
    prefetch : int, default 4
        Items kept loaded ahead of the current one (at least 3).
    start : bool, default True
        Start the sender and prefetch threads now.
    """

    _esm = JS_DIR / "labeler.js"

    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    key_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    key_codes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    action_codes = traitlets.Dict(dict(ACTION_CODES)).tag(sync=True)
    slots = traitlets.List(traitlets.Dict(), default_value=[{}] * N_SLOTS).tag(sync=True)
    slot_0 = traitlets.Bytes(b"").tag(sync=True)
    slot_1 = traitlets.Bytes(b"").tag(sync=True)
    slot_2 = traitlets.Bytes(b"").tag(sync=True)
    slot_3 = traitlets.Bytes(b"").tag(sync=True)
    slot_4 = traitlets.Bytes(b"").tag(sync=True)
    slot_5 = traitlets.Bytes(b"").tag(sync=True)
    order = traitlets.List(traitlets.Int()).tag(sync=True)
    acked = traitlets.Int(0).tag(sync=True)
    history = traitlets.List(traitlets.Dict()).tag(sync=True)
    progress = traitlets.Dict().tag(sync=True)
    state = traitlets.Unicode("starting").tag(sync=True)
    labeler = traitlets.Unicode("").tag(sync=True)
    autofocus = traitlets.Bool(True).tag(sync=True)

    def __init__(self, client: Client | None = None, *,
                 connection_file: str | Path | None = None, n: int | None = None,
                 budget_total: int | None = None, round_budget: int | None = None,
                 classes: Sequence[str] | None = None,
                 keys: Sequence[str] | str | None = None, labeler: str | None = None,
                 prefetch: int = 4, autofocus: bool = True, start: bool = True) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or not (
                3 <= prefetch <= N_SLOTS - 1):
            raise InputError(f"prefetch (items kept loaded ahead) must be an int from 3 to "
                             f"{N_SLOTS - 1}; got {prefetch!r}.")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise InputError(f"n (items per selection) must be an int >= 1; got {n!r}; "
                             "leave it out for the config's budget.per_round.")
        super().__init__(labeler=labeler or _default_labeler(), autofocus=autofocus)
        self.prefetch = prefetch
        self._n = n or round_budget
        self._budget_total = budget_total
        self._keys_arg = keys
        self._answer_client = connect(client, connection_file, timeout=5.0)
        self._fetch_client = connect(client, connection_file, timeout=600.0)
        self._seq = itertools.count(1)
        self._queue: list[_Entry] = []
        self._history: deque[_Entry] = deque(maxlen=UNDO_DEPTH)
        self._slot_seq: list[int | None] = [None] * N_SLOTS
        self._round = 0
        self._round_open: set[int] = set()  # items of the current selection not yet answered
        self._round_size = 0
        self._dropped: dict[int, _Entry] = {}  # skipped twice: the round closes without them
        self._labeled = 0
        self._budget_left: int | None = None
        self._pool = 0
        self._finished = False
        self._waiting_pool = False  # a push is filling the pool (or nothing was pushed)
        self._bootstrapped = False
        self._ready = threading.Event()
        self._wake = threading.Event()
        self._answers: queue.Queue[tuple[int, Any] | None] = queue.Queue()
        self._last_row = 0  # journal row of the last answer the worker acknowledged
        self._send_failing = False
        if classes is not None:
            self._set_classes(list(classes))
        self.on_msg(self._on_front_msg)
        self._threads: list[threading.Thread] = []
        if start:
            self.start()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> LabelingWidget:
        """Start the sender and prefetch threads (once)."""
        if not self._threads:
            for name, target in (("alaas-labels", self._send_loop),
                                 ("alaas-prefetch", self._prefetch_loop)):
                thread = threading.Thread(target=target, name=name, daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Block until the first item is loaded (or the widget is done or failed)."""
        return self._ready.wait(timeout)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every answer given so far is saved by the worker."""
        deadline = time.monotonic() + timeout
        while self._answers.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _stop(self) -> None:
        """Stop asking for items; answers already given are still sent (for up to 10 s)."""
        self._answers.put(None)
        self._wake.set()
        for thread in self._threads:
            thread.join(10.0)

    # ------------------------------------------------------------ Python API
    @property
    def current(self) -> dict[str, Any] | None:
        """The item shown now (its slot metadata), or None."""
        with self._lock:
            return self._slot_meta(self._queue[0]) if self._queue else None

    @property
    def queued(self) -> list[int]:
        """Item ids waiting to be answered, front first."""
        with self._lock:
            return [e.item_id for e in self._queue]

    def answer(self, label: Any) -> None:
        """Answer the current item (as the browser does on a key press)."""
        item = self.current
        if item is None:
            raise RuntimeError("no item is waiting for an answer.")
        self._receive({"type": "answer", "item_id": item["item_id"], "label": label})

    def skip(self) -> None:
        item = self.current
        if item is not None:
            self._receive({"type": "skip", "item_id": item["item_id"]})

    def undo(self) -> None:
        self._receive({"type": "undo"})

    # ------------------------------------------------------------ front-end messages
    def _on_front_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        self._receive(content)

    def _receive(self, content: dict[str, Any]) -> None:
        kind = content.get("type")
        seq = content.get("seq")
        with self._state():
            try:
                if self.stopped:  # its threads are gone: an answer here would be lost
                    self.message = f"stopped: {self._stop_reason}"
                elif kind == "answer":
                    self._answer(int(content["item_id"]), content.get("label"))
                elif kind == "skip":
                    self._skip(int(content["item_id"]))
                elif kind == "undo":
                    self._undo()
                elif kind == "retry":
                    self.error = ""
                    if self.state == "error":
                        self.state = "waiting"
                else:
                    self.message = f"ignored an unknown message type {kind!r}"
            finally:
                if isinstance(seq, int) and seq > self.acked:
                    self.acked = seq
                self._sync()
        self._wake.set()

    def _find(self, item_id: int) -> _Entry | None:
        return next((e for e in self._queue if e.item_id == item_id), None)

    def _answer(self, item_id: int, label: Any) -> None:
        entry = self._find(item_id)
        if entry is None:  # answered twice (a stale key press): the first answer stands
            self.message = f"item {item_id} was already answered"
            return
        label = str(label)
        if label not in self.classes:
            self.message = f"{label!r} is not a class ({', '.join(self.classes)})"
            return
        self._queue.remove(entry)
        entry.label = label
        self._history.append(entry)
        self._answers.put((entry.item_id, label))
        if entry.item_id in self._round_open:
            self._round_open.discard(entry.item_id)
        self._labeled += 1
        self.message = ""

    def _skip(self, item_id: int) -> None:
        entry = self._find(item_id)
        if entry is None:
            return
        self._queue.remove(entry)
        others = any(e.skips == 0 for e in self._queue)
        if entry.skips and not others:
            # skipped again with nothing else left: the round closes without it
            self._round_open.discard(item_id)
            self._dropped[item_id] = entry
            self.message = f"item {item_id} left out of round {entry.round}"
            return
        entry.skips += 1
        entry.seq = next(self._seq)
        self._queue.append(entry)
        self.message = f"skipped item {item_id}: it comes back at the end of the round"

    def _undo(self) -> None:
        if not self._history:
            self.message = f"nothing to undo (the last {UNDO_DEPTH} answers can be changed)"
            return
        entry = self._history.pop()
        self._answers.put((entry.item_id, None))  # retract: the journal keeps both rows
        previous, entry.label = entry.label, None
        entry.seq = next(self._seq)
        entry.relabel = True
        self._queue.insert(0, entry)
        if entry.round == self._round and entry.item_id not in self._dropped:
            self._round_open.add(entry.item_id)
        self._labeled -= 1
        self.message = f"took back {previous!r} for item {entry.item_id}: answer again"

    # ------------------------------------------------------------ state → traits
    def _slot_meta(self, e: _Entry) -> dict[str, Any]:
        meta: dict[str, Any] = {"seq": e.seq, "item_id": e.item_id, "round": e.round,
                                "strategy": e.strategy, "skips": e.skips,
                                "relabel": e.relabel, "loaded": e.payload is not None}
        if e.payload is not None:
            p = e.payload
            meta.update(uri=p.get("uri", ""), kind=p.get("kind", "error"),
                        mime=p.get("mime", ""), text=p.get("text", ""))
            if p.get("kind") == "array":
                meta["values"] = [round(float(v), 4) for v in p.get("values", [])]
        return meta

    def _sync(self) -> None:
        """Mirror the queue's front into the slots (call with the lock held)."""
        window = self._queue[:N_SLOTS]
        wanted = {e.seq for e in window}
        slot_seq = [s if s in wanted else None for s in self._slot_seq]
        slots = list(self.slots)
        for slot, seq in enumerate(slot_seq):
            if seq is None and self._slot_seq[slot] is not None:
                slots[slot] = {}
                setattr(self, f"slot_{slot}", b"")
        order = []
        for e in window:
            if e.seq in slot_seq:
                slot = slot_seq.index(e.seq)
            else:
                slot = slot_seq.index(None)
                slot_seq[slot] = e.seq
            meta = self._slot_meta(e)
            if slots[slot] != meta:
                slots[slot] = meta
                data = (e.payload or {}).get("data") or b""
                setattr(self, f"slot_{slot}", bytes(data))
            order.append(slot)
        self._slot_seq = slot_seq
        self.slots = slots
        self.order = order
        self.history = [{"item_id": e.item_id, "label": e.label} for e in self._history]
        self.progress = {
            "round": self._round,
            "round_done": self._round_size - len(self._round_open) - len(self._dropped),
            "round_size": self._round_size, "labeled": self._labeled,
            "budget_total": self._budget_total, "budget_left": self._budget_left,
            "pool": self._pool,
        }
        if self.state in ("error", "stopped") or not self._bootstrapped:
            return
        if self._queue and self._queue[0].payload is not None:
            self.state = "labeling"
        elif self._finished and not self._queue:
            self.state = "done"
        else:
            self.state = "waiting"

    def _set_classes(self, classes: list[str]) -> None:
        bindings = key_map(classes, keys=self._keys_arg)
        with self._state():
            self.classes = [b.label for b in bindings]
            self.key_labels = [b.key for b in bindings]
            self.key_codes = [b.code for b in bindings]

    # ------------------------------------------------------------ sender thread
    def _send_loop(self) -> None:
        try:
            while True:
                answer = self._answers.get()  # blocks: no polling while nobody labels
                if answer is None:  # put by _stop, behind every answer given before it
                    self._answers.task_done()
                    return
                self._deliver(*answer)
                self._answers.task_done()
                self._wake.set()
        finally:
            self._answer_client.close()

    def _deliver(self, item_id: int, label: Any) -> None:
        """Send one answer; on a timeout wait for the worker, then resend only if it is lost.

        A request that timed out may still reach the worker when it wakes up, so a
        blind resend could land *after* a later retraction of the same item. Once the
        worker answers again, its history tells whether the first request arrived.
        """
        client = self._answer_client
        what = "retraction" if label is None else f"label {label!r}"
        attempt = 0
        give_up = time.monotonic() + 10.0
        while True:
            sent_at = time.time() - 1.0
            try:
                self._last_row = client.label(item_id, label, labeler=self.labeler)
                break
            except RemoteError as exc:  # refused: retrying will not help
                self._update(error=f"the worker refused the {what} for item {item_id}: "
                                   f"{exc.evalue}")
                return
            except Exception as exc:  # worker gone or hung: keep the answer, retry
                self._send_failing = True
                self._update(error=f"could not save the answer for item {item_id} ({exc}); "
                                   "retrying — answers are kept in order.")
            landed = None
            while landed is None:  # wait until the worker answers, then ask what it holds
                if self._closed.is_set() and time.monotonic() > give_up:
                    logger.error("labeling widget closed; the %s for item %d is not saved",
                                 what, item_id)
                    return
                attempt += 1
                try:
                    client.hello()
                    time.sleep(0.2)  # let a request still in flight land first
                    landed = self._landed(item_id, label, sent_at)
                except Exception:
                    time.sleep(min(5.0, 0.25 * 2 ** attempt))
            if landed:
                break
        if self._send_failing:
            self._send_failing = False
            self._update(error="")

    def _landed(self, item_id: int, label: Any, since: float) -> bool:
        """Whether the worker holds ``label`` for ``item_id`` by this labeler, sent after ``since``.

        Asks for this labeler's rows after the last acknowledged one (``history``).
        """
        rows = self._answer_client.history(self._last_row, ["labels"],
                                           labeler=self.labeler)["labels"]
        after = iso_time(since)  # the worker's format: such strings compare as times
        return any(r["item_id"] == item_id and r["label"] == label and r["time"] >= after
                   for r in rows)

    # ------------------------------------------------------------ prefetch thread
    def _prefetch_loop(self) -> None:
        try:
            self._prefetch()
        finally:
            self._fetch_client.close()

    def _prefetch(self) -> None:
        backoff = 0.0
        started = False
        while not self._closed.is_set():
            self._wake.clear()  # before the work: a wake-up during it is not lost
            try:
                if not started:
                    self._bootstrap()
                    started = True
                self._top_up()
                backoff = 0.0
            except Exception as exc:
                logger.debug("labeling widget: prefetch failed", exc_info=True)
                refused = isinstance(exc, RemoteError)
                self._update(error=f"{type(exc).__name__}: {exc}",
                             state="error" if refused else self.state)
                self._ready.set()
                backoff = min(10.0, max(0.5, backoff * 2))
                if refused:  # wait for "retry" rather than hammer the worker
                    while self.state == "error" and not self._closed.is_set():
                        self._wake.wait(0.5)
                        self._wake.clear()
                    continue
                self._closed.wait(backoff)
                continue
            self._wake.wait(1.0)

    def _bootstrap(self) -> None:
        """Classes, budget and progress from the worker; pending items and Undo from its history."""
        client = self._fetch_client
        hello = client.hello()
        if not self.classes:
            self._set_classes(list(hello.get("classes") or []))
        if not self.classes:
            raise RemoteError("ConfigError", "the worker's config lists no classes; add "
                              "'classes: [...]' to it to label with this widget.", {})
        status = client.status()
        rnd = int(status.get("round") or 0)
        past = client.history(0, ["labels", "pending", "selections"], current=True,
                              labeler=self.labeler, round=rnd)
        pending, recent = past["pending"], past["labels"][-UNDO_DEPTH:]
        with self._state():
            self._apply_status(status)
            self._round = rnd
            current = [p for p in pending if p["round"] == self._round]
            self._round_open = {p["item_id"] for p in current}
            self._round_size = len(past["selections"]) or len(current)
            for p in pending:
                self._queue.append(_Entry(p["item_id"], p["round"], p["strategy"],
                                          next(self._seq)))
            for r in recent:
                self._history.append(_Entry(r["item_id"], r["round"], r["strategy"] or "",
                                            next(self._seq), label=r["label"]))
            self._bootstrapped = True
            self._sync()

    def _apply_status(self, status: dict[str, Any]) -> None:
        self._labeled = int(status.get("n_labeled") or 0)
        left = status.get("budget_left")
        self._budget_left = None if left is None else int(left)
        if self._budget_total is None:
            self._budget_total = budget_total(status)
        self._pool = int(status.get("n_items") or 0) - int(status.get("n_eval") or 0)

    def _top_up(self) -> None:
        """Load the next items' content; ask for a new selection once this one is answered."""
        while not self._closed.is_set():
            with self._lock:
                need = [e for e in self._queue[: self.prefetch + 1] if e.payload is None]
                answered = not self._round_open and not self._finished
            if need:
                self._load(need)
            elif not answered or not self._next_selection():
                return

    def _load(self, entries: list[_Entry]) -> None:
        items = self._fetch_client.item_data([e.item_id for e in entries])
        by_id = {int(it["item_id"]): it for it in items}
        with self._state():
            for e in entries:
                e.payload = by_id.get(e.item_id) or {"kind": "error",
                                                     "text": "the worker sent no content"}
            self._sync()
        self._ready.set()

    def _next_selection(self) -> bool:
        """Query the next selection; False when done, waiting for the pool, or closing."""
        while self._answers.unfinished_tasks:  # the worker must have every answer first
            if self._closed.is_set():
                return False
            time.sleep(0.005)
        client = self._fetch_client
        if not self._waiting_pool:
            with self._state():
                self.message = (f"round {self._round} answered: the worker is training; "
                                "the next items follow" if self._round else "asking for items")
                self._sync()
        if self._dropped:  # items skipped twice stay unlabeled: close the round without them
            try:
                client.fit()
            except RemoteError as exc:  # e.g. PSHEA: a round needs every pick labeled
                with self._state():
                    for e in self._dropped.values():
                        e.seq = next(self._seq)
                        self._queue.append(e)
                    self._round_open |= set(self._dropped)
                    self._dropped.clear()
                    self.message = (f"the round cannot close without the skipped item(s): "
                                    f"{exc.evalue}")
                    self._sync()
                return True
            self._dropped.clear()
        status = client.status()
        with self._lock:
            self._apply_status(status)
            left = self._budget_left
        n = self._n or 10
        if left is not None and left <= 0:
            return self._finish(f"budget spent: {self._labeled} labels "
                                f"(budget.total {self._budget_total})")
        n = n if left is None else min(n, left)
        available = _available(status)
        if "n_embedded" in status:
            if waiting := _pool_wait(status, available, n):
                return self._wait_for_pool(waiting)
            if available <= 0:
                return self._finish("every pool item is labeled or waiting: push more data "
                                    "(%alaas push) and make a new labeling widget")
            n = min(n, available)
        try:
            sel = client.query(n)
        except RemoteError as exc:
            if exc.reason not in _FINISHED:
                raise
            if waiting := _pool_wait(client.status(), 0, 1):  # more items are coming
                return self._wait_for_pool(waiting)
            return self._finish(exc.evalue)
        self._waiting_pool = False
        try:  # who picked each item (PSHEA: several strategies); else the reply's name
            picked = client.history(include=["selections"], round=sel.round)["selections"]
        except Exception:
            logger.debug("labeling widget: no selections for round %d", sel.round, exc_info=True)
            picked = []
        strategies = {r["item_id"]: r["strategy"] for r in picked}
        per_item = getattr(sel, "strategies", None) or [None] * len(sel.item_ids)
        with self._state():
            self._round = sel.round
            self._round_size = len(sel.item_ids)
            self._round_open = set(sel.item_ids)
            for item_id, strategy in zip(sel.item_ids, per_item, strict=True):
                name = strategy or strategies.get(item_id) or sel.strategy
                self._queue.append(_Entry(item_id, sel.round, name, next(self._seq)))
            self.message = ""
            self._sync()
        return True

    def _wait_for_pool(self, why: str) -> bool:
        """Show why no items come yet; the prefetch loop asks again in a second."""
        self._waiting_pool = True
        with self._state():
            self.message = why
            self._sync()
        return False

    def _finish(self, why: str) -> bool:
        with self._state():
            self._finished = True
            self.message = why
            self._sync()
        self._ready.set()
        return False
