"""The labeling widget: a view of a :class:`~alaas_lab.widgets.label_queue.LabelQueue`.

Design (Prodigy's: the next task is always there, every answer is saved at once)
------------------------------------------------------------------------------
The queue (plain Python, ``label_queue.py``) holds the items to show, skips, the
undo stack, the rounds, the answers on their way to the worker and the next
selection; its threads talk to the worker. This widget only maps its state onto
traits and the browser's messages onto its methods.

The first ``N_SLOTS`` queued items are mirrored into the browser: ``slots[i]``
holds an item's metadata and ``slot_i`` its image bytes (raw bytes on the wire,
never base64); ``order`` lists the slots in queue order. An item keeps its slot
while it is in that window, so each answer sends the bytes of one new item, not
the whole queue. A key press shows the next slot *in the browser*, with no round
trip: the browser sends ``{"type": "answer", "seq", "item_id", "label"}`` and
hides the items it has answered until the kernel acknowledges them (``acked``).

Grid mode (``grid=N``) shows the queue's open *page* instead: ``page`` lists its
items (grouped by predicted class, each with its proposal, choice and skip mark)
and ``page_data`` their image bytes, sent once per page. The browser sends
``choose`` / ``page_skip`` per item and ``confirm_page`` for the page.

Review mode (``mode == "review"``, one item at a time) shows the worker's suspect
labels instead, from a :class:`~alaas_lab.widgets.review_queue.ReviewQueue`, in the
same slots: Enter keeps the label, a class key corrects it, Space leaves it,
Backspace undoes. ``{"type": "review"}`` opens it and ``{"type": "label_mode"}``
goes back; the label queue keeps its place meanwhile.
"""

from __future__ import annotations

import getpass
import itertools
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import traitlets

from ..client import Client
from ..errors import InputError
from ._base import FullSizeImages, SessionWidget, connect, front_end_module
from .keys import ACTION_CODES, key_map
from .label_queue import GRID_MAX, UNDO_DEPTH, LabelQueue
from .review_queue import ReviewQueue

__all__ = ["GRID_MAX", "N_SLOTS", "UNDO_DEPTH", "LabelingWidget"]

logger = logging.getLogger(__name__)

#: Items mirrored in the browser at once (the current one and those after it).
N_SLOTS = 6


def _default_labeler() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers)
        return "labeler"


class LabelingWidget(FullSizeImages, SessionWidget):
    """Label the items the worker selects, one key per class.

    Traits (the whole contract with ``js/labeler.js``)
    ------------------------------------------------------------
    classes : list of str
        Class names, in the worker's order.
    key_labels, key_codes : list of str, length n_classes
        The key shown on each class's button and its ``KeyboardEvent.code``.
        (Not ``keys``: ipywidgets uses that name for the list of synced traits.)
    action_codes : dict
        ``{"skip": "Space", "undo": "Backspace", "accept": "Enter"}``.
    n_slots, undo_depth : int
        ``N_SLOTS`` and how many actions Undo can take back (the queue's
        ``undo_depth``); read-only. The view reads them and never repeats them.
    slots : list of dict, length n_slots
        ``{}`` for a free slot, else ``seq`` (unique per showing), ``item_id``,
        ``uri``, ``round``, ``strategy`` (which strategy asked for it), ``loaded``,
        ``kind`` (image | text | array | error), ``mime``, ``text``, ``values``,
        ``skips``, ``relabel`` (an answer taken back with Undo), and when the worker
        sends them ``suggestion`` (``label``, ``confidence``: the newest head's guess)
        and ``model`` (``round``, ``n_labeled``, ``top1`` of that head).
    slot_0 … slot_5 : bytes
        Image bytes (PNG) of the item in that slot; empty for text.
    order : list of int
        Slots in queue order; ``order[0]`` is the item to answer now.
    acked : int
        ``seq`` of the last front-end message the kernel has applied.
    history : list of dict
        What Undo can take back, oldest first (at most ``undo_depth``):
        ``item_id``, ``label`` (None for a skip), ``action`` (answer | skip | leave).
    progress : dict
        ``round``, ``round_done``, ``round_size``, ``left_out``, ``labeled``,
        ``budget_total``, ``budget_left``, ``pool``.
    state : str
        ``starting``, ``labeling``, ``waiting`` (queue empty: loading, training, or
        the pool still filling), ``done`` (budget or pool used up), ``error``, or
        ``stopped`` (by :meth:`shutdown`: a newer labeling widget took over, or the
        session stopped).
    message, error : str
        A status line, and the last error (e.g. the worker is gone).
    labeler : str
        Who answers; stored with every label.
    full, full_data : dict, bytes
        The item shown at full size on the view's request (see
        :class:`~alaas_lab.widgets._base.FullSizeImages`).
    heartbeat, heartbeat_s : int, float
        Bumped every ``heartbeat_s`` seconds while the kernel side lives (see
        :class:`~alaas_lab.widgets._base.SessionWidget`).
    grid : int
        Items per page in grid mode; 0: one item at a time (``slots``).
    page, page_id : list of dict, int
        Grid mode: the open page's items in display order, each a ``slots`` entry
        plus ``proposal`` (the suggested class, or None), ``choice`` (the class
        set on the page, or None), ``skip`` and ``answer`` (what confirming sends:
        the choice, else the proposal; None if skipped or neither); ``page_id``
        changes with every page opened (also when Undo brings one back).
    page_data : list of bytes
        Grid mode: the PNG bytes of each ``page`` item (empty for text), same order.
    mode : str
        ``label`` or ``review`` (the suspect labels, one at a time: each slot's
        ``review`` holds ``label`` (the human's), ``suggested`` (the out-of-fold
        head's class), ``self_confidence`` and ``rank``; ``accept`` keeps the label,
        ``answer`` corrects it). ``progress`` then holds ``review`` (True),
        ``reviewed``, ``confirmed``, ``corrected``, ``skipped``, ``left``, ``total``,
        ``open``; in label mode ``progress["suspects"]`` counts the open suspects.

    Front-end messages: ``{"type": "answer" | "accept" | "skip" | "undo" | "retry" |
    "full_size" | "choose" | "page_skip" | "confirm_page" | "review" | "label_mode",
    "seq", ...}``; each is acknowledged by ``acked = seq``.

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
        Items kept loaded ahead of the current one (3 to ``N_SLOTS - 1``).
    lookahead : bool, optional
        Ask for the next selection before this one is answered (see
        :class:`~alaas_lab.widgets.label_queue.LabelQueue`). Default: the worker says.
    grid : int, optional
        Grid mode: answer pages of this many items (1 to ``GRID_MAX``, 64) at once.
        Default: one item at a time.
    review : bool, default False
        Open in review mode: the suspect labels first (not with ``grid``).
    start : bool, default True
        Start the queue's threads now.
    """

    _esm = front_end_module("labeler.js")

    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    key_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    key_codes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    action_codes = traitlets.Dict(dict(ACTION_CODES)).tag(sync=True)
    n_slots = traitlets.Int(N_SLOTS, read_only=True).tag(sync=True)
    undo_depth = traitlets.Int(UNDO_DEPTH, read_only=True).tag(sync=True)
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
    grid = traitlets.Int(0, read_only=True).tag(sync=True)
    page = traitlets.List(traitlets.Dict()).tag(sync=True)
    page_id = traitlets.Int(0).tag(sync=True)
    page_data = traitlets.List(traitlets.Bytes()).tag(sync=True)
    mode = traitlets.Unicode("label").tag(sync=True)

    def __init__(self, client: Client | None = None, *,
                 connection_file: str | Path | None = None, n: int | None = None,
                 budget_total: int | None = None, round_budget: int | None = None,
                 classes: Sequence[str] | None = None,
                 keys: Sequence[str] | str | None = None, labeler: str | None = None,
                 prefetch: int = 4, lookahead: bool | None = None, autofocus: bool = True,
                 grid: int | None = None, review: bool = False, start: bool = True
                 ) -> None:
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or not (
                3 <= prefetch <= N_SLOTS - 1):
            raise InputError(f"prefetch (items kept loaded ahead) must be an int from 3 to "
                             f"{N_SLOTS - 1}; got {prefetch!r}.")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise InputError(f"n (items per selection) must be an int >= 1; got {n!r}; "
                             "leave it out for the config's budget.per_round.")
        if grid is not None and (isinstance(grid, bool) or not isinstance(grid, int)
                                 or not 1 <= grid <= GRID_MAX):
            raise InputError(f"grid (thumbnails per page) must be an int from 1 to "
                             f"{GRID_MAX}; got {grid!r}; leave it out to label one item "
                             "at a time.")
        if review and grid:
            raise InputError("review=True shows the suspect labels one at a time; leave "
                             f"grid out (got grid={grid!r}).")
        if classes is not None:
            key_map(classes, keys=keys)  # bad keys fail here, not later in a thread
        super().__init__(labeler=labeler or _default_labeler(), autofocus=autofocus)
        self.set_trait("grid", grid or 0)
        self._page_key: tuple[int, ...] = ()
        self.prefetch = prefetch
        self._keys_arg = keys
        self._endpoint = (client, connection_file)  # for full-size images
        self._slot_seq: list[int | None] = [None] * N_SLOTS
        self._seq = itertools.count(1)  # one seq per showing, in both modes
        self._classes_arg = classes
        self.review_queue: ReviewQueue | None = None
        self.queue = LabelQueue(
            connect(client, connection_file, timeout=600.0),
            sender=connect(client, connection_file, timeout=5.0), labeler=self.labeler,
            n=n or round_budget, prefetch=prefetch, classes=classes,
            budget_total=budget_total, lookahead=lookahead, page_size=grid, lock=self._lock,
            on_change=self._on_queue_change, close_workers=True, seq=self._seq)
        self._started = False
        if review:
            self._open_review()
        self.set_trait("undo_depth", self.queue.undo_depth)  # what Undo can take back
        self.on_msg(self._on_front_msg)
        with self._state():
            self._sync()
        if start:
            self.start()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> LabelingWidget:
        """Start the queue's sender and fetch threads (once)."""
        self._started = True
        self.queue.start()
        if self.review_queue is not None:
            self.review_queue.start()
        return self

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Block until the first item is loaded (or the widget is done or failed)."""
        return self._active.wait_ready(timeout)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every answer (and review) given so far is saved by the worker."""
        review = self.review_queue
        return self.queue.flush(timeout) and (review is None or review.flush(timeout))

    def _stop(self) -> None:
        """Stop asking for items; answers already given are still sent (for up to 10 s)."""
        if self.review_queue is not None:
            self.review_queue.stop()
        self.queue.stop()

    # ------------------------------------------------------------ review mode
    @property
    def _active(self) -> LabelQueue | ReviewQueue:
        """The queue the view shows: the label queue, or the review of suspect labels."""
        if self.mode == "review" and self.review_queue is not None:
            return self.review_queue
        return self.queue

    def _open_review(self) -> None:
        """Show a fresh review of the suspect labels (lock held, or in ``__init__``)."""
        old = self.review_queue
        if old is not None:  # its reviews are still sent, on a thread of its own
            threading.Thread(target=old.stop, name="alaas-review-stop", daemon=True).start()
        client, connection_file = self._endpoint
        self.review_queue = ReviewQueue(
            connect(client, connection_file, timeout=600.0),
            sender=connect(client, connection_file, timeout=30.0), labeler=self.labeler,
            prefetch=self.prefetch, classes=self._classes_arg, undo_depth=self.undo_depth,
            lock=self._lock, on_change=self._on_queue_change, close_workers=True,
            seq=self._seq)
        self.mode = "review"  # the slots change over: a seq never names two items
        if self._started:
            self.review_queue.start()

    def review(self) -> LabelingWidget:
        """Review the suspect labels (what the view's "Review N suspects" button does)."""
        self._receive({"type": "review"})
        return self

    def label_mode(self) -> LabelingWidget:
        """Back to labeling new items (the view's "Back to labeling")."""
        self._receive({"type": "label_mode"})
        return self

    def keep(self) -> None:
        """Review mode: keep the current item's label (Enter); journaled as confirmed."""
        self.accept()

    # ------------------------------------------------------------ Python API
    @property
    def current(self) -> dict[str, Any] | None:
        """The item shown now (its slot metadata), or None."""
        item = self._active.current
        return None if item is None else item.describe()

    @property
    def queued(self) -> list[int]:
        """Item ids waiting to be answered (or reviewed), front first."""
        return self._active.queued

    def answer(self, label: Any) -> None:
        """Answer the current item (as the browser does on a key press)."""
        item = self.current
        if item is None:
            raise RuntimeError("no item is waiting for an answer.")
        self._receive({"type": "answer", "item_id": item["item_id"], "label": label})

    def accept(self) -> None:
        """Answer the current item with the model's suggestion (Enter)."""
        item = self.current
        if item is not None:
            self._receive({"type": "accept", "item_id": item["item_id"]})

    def skip(self) -> None:
        item = self.current
        if item is not None:
            self._receive({"type": "skip", "item_id": item["item_id"]})

    def undo(self) -> None:
        self._receive({"type": "undo"})

    # grid mode (``page`` holds the open page)
    def choose(self, item_id: int, label: Any) -> bool:
        """Set the class of an item on the page (a key on its thumbnail); False if refused."""
        return self._receive({"type": "choose", "item_id": item_id, "label": label})

    def skip_item(self, item_id: int) -> bool:
        """Leave a page item out of the page's answers, or take it back in (Space)."""
        return self._receive({"type": "page_skip", "item_id": item_id})

    def confirm(self) -> bool:
        """Confirm the page (Enter): each item's answer is saved as its own label.

        Returns whether it was applied; if not, :attr:`message` says why (e.g. an
        item without a proposal still needs a class).
        """
        return self._receive({"type": "confirm_page", "page_id": self.page_id})

    # ------------------------------------------------------------ front-end messages
    def _on_front_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        self._receive(content)

    def _receive(self, content: dict[str, Any]) -> bool:
        """Apply one front-end message; returns whether the queue applied it."""
        kind, seq = content.get("type"), content.get("seq")
        done = False
        with self._state():
            q = self._active
            try:
                if self.stopped:  # its threads are gone: an answer here would be lost
                    self.message = f"stopped: {self._stop_reason}"
                elif kind == "review":
                    if self.grid:
                        q.message = ("the review shows one item at a time: run %alaas label "
                                     "--review")
                    else:
                        self._open_review()
                        done = True
                elif kind == "label_mode":
                    self.mode = "label"
                    done = True
                elif isinstance(q, ReviewQueue) and kind not in (
                        "answer", "accept", "skip", "undo", "retry", "full_size"):
                    q.message = f"{kind!r} does nothing while reviewing suspect labels"
                elif kind == "answer":
                    done = q.answer(int(content["item_id"]), content.get("label"))
                elif kind == "accept":
                    done = q.accept(int(content["item_id"]))
                elif kind == "skip":
                    done = q.skip(int(content["item_id"]))
                elif kind == "undo":
                    done = q.undo()
                elif kind == "retry":
                    q.retry()
                    done = True
                elif kind == "full_size":  # the view's "Full size" button
                    self._load_full_size(int(content["item_id"]))
                    done = True
                elif kind == "choose":  # grid mode: a page item's class
                    done = q.choose(int(content["item_id"]), content.get("label"))
                elif kind == "page_skip":
                    done = q.mark_skip(int(content["item_id"]), content.get("skip"))
                elif kind == "confirm_page":
                    done = q.confirm_page(content.get("page_id"))
                else:
                    q.message = f"ignored an unknown message type {kind!r}"
            finally:
                if isinstance(seq, int) and seq > self.acked:
                    self.acked = seq
                self._sync()
        return done

    # ------------------------------------------------------------ queue → traits
    def _on_queue_change(self) -> None:
        with self._state():
            self._sync()

    def _sync(self) -> None:
        """Mirror the queue into the traits (call with the lock held)."""
        q = self._active
        if q.classes and q.classes != self.classes:
            self._set_classes(q.classes)
        if self.grid and q is self.queue:
            self._sync_page()
        else:
            self._sync_slots()
        self.history = [a.describe() for a in q.actions]
        self.progress = q.progress
        if self.stopped:
            return
        self.message, self.error, self.state = q.message, q.error, q.state

    def _sync_page(self) -> None:
        """Grid mode: the open page; its bytes only when its items change."""
        q = self.queue
        items = q.page
        key = (q.page_id, *(e.seq for e in items))
        if key != self._page_key:
            self._page_key = key
            self.page_data = [bytes((e.payload or {}).get("data") or b"") for e in items]
        self.page = q.describe_page()
        self.page_id = q.page_id

    def _sync_slots(self) -> None:
        """One item at a time: the first ``N_SLOTS`` queued items, each in its slot."""
        q = self._active
        window = q.items[:N_SLOTS]
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
            meta = e.describe()
            if slots[slot] != meta:
                slots[slot] = meta
                data = (e.payload or {}).get("data") or b""
                setattr(self, f"slot_{slot}", bytes(data))
            order.append(slot)
        self._slot_seq = slot_seq
        self.slots = slots
        self.order = order

    def _set_classes(self, classes: list[str]) -> None:
        try:
            bindings = key_map(classes, keys=self._keys_arg)
        except InputError as exc:
            self.queue.error = str(exc)
            bindings = key_map(classes)
        self.classes = [b.label for b in bindings]
        self.key_labels = [b.key for b in bindings]
        self.key_codes = [b.code for b in bindings]
