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

Grid mode (``page_size``)
-------------------------
A *page* of up to ``page_size`` items is answered at once: the first queued items,
frozen when they are all loaded and ordered by the newest head's predicted class
(items without a suggestion first, then the classes in order; the least confident
first within a class). Each item starts with the suggestion as a *proposal*:
:meth:`LabelQueue.choose` sets its class, :meth:`LabelQueue.mark_skip` leaves it
out of the page's answers, and only :meth:`LabelQueue.confirm_page` sends anything:
one answer per item (its choice, else its proposal), each through the path of
:meth:`LabelQueue.answer`, and the skips through :meth:`LabelQueue.skip`. An item
with neither choice nor proposal blocks the confirmation. The whole page is one
Undo step: its answers are retracted, its skips taken back, and the page comes
back with the confirmed answers set as choices, so fixing one item and confirming
again loses nothing. The queue keeps two pages loaded (and, with ``lookahead``,
asks for more before fewer than two pages are queued), so the next page is there
the moment one is confirmed.

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

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import InputError, RemoteError
from ..protocol.messages import iso_time
from ._base import budget_total
from ._queue_core import QueueCore, check_count

__all__ = ["GRID_MAX", "UNDO_DEPTH", "Action", "LabelQueue", "QueueItem", "Worker"]

logger = logging.getLogger(__name__)

#: How many past actions (answers, skips, confirmed pages) Undo can take back.
UNDO_DEPTH = 10
#: The most items on one page in grid mode.
GRID_MAX = 64
#: Error codes (``RemoteError.reason``) of a query that mean the session is done.
_FINISHED = frozenset({"pool_exhausted",  # the pool is used up
                       "budget_spent", "over_budget",  # the label budget is (nearly) spent
                       "session_finished"})  # PSHEA stopped: target, budget or rounds
#: At most this many answers go in one ``label_many``.
_BATCH = 64
#: Seconds between the fetch thread's looks at the worker's suspect labels.
_SUSPECTS_POLL = 5.0


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
    choice : str or None
        Grid mode: the class set for it on its page (None: its proposal stands).
    skip_mark : bool
        Grid mode: left out of its page's answers (skipped when the page is confirmed).
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
    choice: str | None = None
    skip_mark: bool = False

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
    kind : {"answer", "skip", "leave", "page"}
        ``leave``: skipped again and left out of its round; ``page``: a confirmed page.
    item : QueueItem
        (``page``: its first item.)
    label : str or None
        The answer (``answer`` only).
    skips : int
        The item's skip count before the action.
    parts : list of Action
        ``page`` only: its answers, then its skips, in the order they were applied.
    order : list of QueueItem
        ``page`` only: the page's items in the order it showed them.
    """

    kind: str
    item: QueueItem
    label: Any = None
    skips: int = 0
    parts: list[Action] = field(default_factory=list)
    order: list[QueueItem] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        out = {"item_id": self.item.item_id, "label": self.label, "action": self.kind}
        if self.kind == "page":
            out["items"] = [p.describe() for p in self.parts]
            out["labels"] = sum(p.kind == "answer" for p in self.parts)
        return out


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


class LabelQueue(QueueCore):
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
    page_size : int, optional
        Grid mode: items per page (1 to ``GRID_MAX``); two pages are kept loaded.
        Default: one item at a time.
    lock : threading.RLock, optional
        Held while the state changes and while ``on_change`` runs; a view passes
        its own so that both change together.
    on_change : callable, optional
        Called with no argument (``lock`` held) after every change.
    close_workers : bool, default False
        Each thread closes its client when it ends.
    seq : iterator of int, optional
        Where the items' ``seq`` numbers come from (default: 1, 2, ...); a view that
        also shows a :class:`~alaas_lab.widgets.review_queue.ReviewQueue` passes one
        shared iterator, so a ``seq`` never names two items.
    """

    _kind = "label queue"
    _thread_names = ("alaas-labels", "alaas-prefetch")

    def __init__(self, worker: Worker, *, sender: Worker | None = None, labeler: str = "",
                 n: int | None = None, prefetch: int = 4,
                 classes: Sequence[str] | None = None, budget_total: int | None = None,
                 lookahead: bool | None = None, undo_depth: int = UNDO_DEPTH,
                 page_size: int | None = None, lock: threading.RLock | None = None,
                 on_change: Callable[[], None] | None = None,
                 close_workers: bool = False, seq: Iterator[int] | None = None) -> None:
        for name, value in (("n", n), ("prefetch", prefetch), ("undo_depth", undo_depth)):
            if value is not None:
                check_count(name, value)
        if page_size is not None and (isinstance(page_size, bool)
                                      or not isinstance(page_size, int)
                                      or not 1 <= page_size <= GRID_MAX):
            raise InputError(f"page_size must be an int from 1 to {GRID_MAX}; got "
                             f"{page_size!r}.")
        super().__init__(worker, sender=sender, labeler=labeler, prefetch=prefetch,
                         classes=classes, undo_depth=undo_depth, lock=lock,
                         on_change=on_change, close_workers=close_workers, seq=seq)
        self.n = n
        self.budget_total = budget_total
        self.lookahead = lookahead
        #: the worker's suspect labels (``status()["suspects"]``: ``open``, ``confirmed``,
        #: ``corrected``), read every ``_SUSPECTS_POLL`` s while the fetch thread runs
        self.suspects: dict[str, Any] = {}
        self._suspects_at = 0.0
        self._items: list[QueueItem] = []
        self._rounds: dict[int, _Round] = {}
        self._round = 0  # the newest selection's round
        self._left: dict[int, QueueItem] = {}  # left out: skipped twice
        self._labeled = 0
        self._budget_left: int | None = None
        self._pool = 0
        self._waiting_pool = False
        self._blocked = False  # lookahead: a query was refused or brought nothing new
        self.leases = False  # the worker leases items per labeler (next_items, leave_out)
        self._last_row = 0  # journal row of the last answer the worker acknowledged
        self._send_failing = False
        self.page_size = page_size or 0
        # loaded from the front: two pages in grid mode, so the next one is ready
        self._window = max(prefetch + 1, 2 * self.page_size)
        self._ahead = max(prefetch, 2 * self.page_size)  # lookahead: ask below this many
        self._page: list[QueueItem] = []  # grid mode: the open page, in display order
        self.page_id = 0  # grid mode: increases with every page opened

    # ------------------------------------------------------------ state
    @property
    def left_out(self) -> list[int]:
        """Items skipped twice and left out of their round."""
        with self.lock:
            return sorted(self._left)

    @property
    def progress(self) -> dict[str, Any]:
        """``round`` (the oldest round still being answered, else the newest),
        ``round_done``, ``round_size``, ``left_out``, ``labeled``, ``budget_total``,
        ``budget_left``, ``pool``, ``suspects`` (open suspect labels to review)."""
        with self.lock:
            rnd = min((r for r, info in self._rounds.items() if info.open), default=self._round)
            info = self._rounds.get(rnd, _Round())
            return {"round": rnd, "round_done": info.size - len(info.open) - len(info.left_out),
                    "round_size": info.size, "left_out": len(info.left_out),
                    "labeled": self._labeled, "budget_total": self.budget_total,
                    "budget_left": self._budget_left, "pool": self._pool,
                    "suspects": int(self.suspects.get("open") or 0)}

    def _showing(self) -> bool:
        """A page open (grid mode), else a loaded front item (lock held)."""
        return bool(self._page) if self.page_size else super()._showing()

    def _changed(self) -> None:
        """Re-form the page (grid mode), tell the view and wake the fetch thread."""
        if self.page_size:
            self._refresh_page()
        super()._changed()

    # ------------------------------------------------------------ actions
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
            self._undo.append(self._apply_answer(item, label))
            self.message = ""
            self._changed()
            return True

    def _apply_answer(self, item: QueueItem, label: str) -> Action:
        """Take a queued item out with its answer and send it (lock held; label checked)."""
        self._items.remove(item)
        item.label, item.choice, item.skip_mark = label, None, False
        self._send(item.item_id, label)
        if (info := self._rounds.get(item.round)) is not None:
            info.open.discard(item.item_id)
        self._labeled += 1
        return Action("answer", item, label=label, skips=item.skips)

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
            act = self._apply_skip(item)
            self._undo.append(act)
            self.message = (f"item {item_id} left out of round {item.round}: skipped twice "
                            "(Undo brings it back)" if act.kind == "leave" else
                            f"skipped item {item_id}: it comes back at the end of the round")
            self._changed()
            return True

    def _apply_skip(self, item: QueueItem) -> Action:
        """Move a queued item to the end, or leave it out of its round (lock held)."""
        self._items.remove(item)
        before = item.skips
        item.skips += 1
        item.choice, item.skip_mark = None, False
        info = self._rounds.get(item.round)
        others = any(e.skips == 0 and e.round == item.round for e in self._items)
        if before and not others and not (info and info.keep_all):
            item.left_out = True
            self._left[item.item_id] = item
            if self.leases:  # the worker takes it out of its round, for good
                self._send(item.item_id, _LEAVE)
            if info is not None:
                info.open.discard(item.item_id)
                info.left_out.add(item.item_id)
            return Action("leave", item, skips=before)
        item.seq = next(self._seq)
        self._items.append(item)
        return Action("skip", item, skips=before)

    def undo(self) -> bool:
        """Reverse the last action: an answer is retracted, a skip taken back.

        The item comes back to the front, unanswered, as it was before the action. A
        confirmed page (grid mode) comes back whole: its answers are retracted, its
        skips taken back, and it is the open page again with those answers as choices.
        """
        with self.lock:
            if not self._undo:
                return self._refuse(f"nothing to undo (the last {self.undo_depth} actions "
                                    "can be taken back)")
            act = self._undo.pop()
            if act.kind == "page":
                for part in reversed(act.parts):
                    self._undo_one(part)
                for part in act.parts:  # a proposal taken as it was stays a proposal
                    item = part.item
                    item.choice = None if part.label == self.proposal(item) else part.label
                    item.skip_mark = part.kind != "answer"
                self._page = list(act.order)
                self.page_id += 1
                n = sum(p.kind == "answer" for p in act.parts)
                self.message = (f"took back the page of {n} label(s): change what is wrong "
                                "and confirm it again")
            else:
                self._undo_one(act)
                self._page = []  # re-formed from the queue's front, choices kept
                item = act.item
                self.message = (f"took back {act.label!r} for item {item.item_id}: answer "
                                "again" if act.kind == "answer" else
                                f"took back the skip of item {item.item_id}")
            self._changed()
            return True

    def _undo_one(self, act: Action) -> None:
        """Reverse one answer, skip or leave: the item goes to the front (lock held)."""
        item = act.item
        info = self._rounds.get(item.round)
        if act.kind == "answer":
            self._send(item.item_id, None)  # a retraction: the journal keeps both rows
            item.label, item.relabel = None, True
            self._labeled -= 1
        else:  # a skip or a leave: the item may be queued (or given back by the worker)
            if act.kind == "leave" and self.leases:
                self._send(item.item_id, _RETURN)
            if item in self._items:
                self._items.remove(item)
            self._left.pop(item.item_id, None)
            item.left_out = False
            if info is not None:
                info.left_out.discard(item.item_id)
        item.skips = act.skips
        item.seq = next(self._seq)
        self._items.insert(0, item)
        self._seen.add(item.item_id)
        if info is not None:
            info.open.add(item.item_id)

    # ------------------------------------------------------------ grid mode: pages
    @property
    def page(self) -> list[QueueItem]:
        """Grid mode: the open page's items, in the order it shows them (a copy)."""
        with self.lock:
            return list(self._page)

    def proposal(self, item: QueueItem) -> str | None:
        """The class proposed for an item: its suggestion, when that is a class."""
        s = item.suggestion
        return str(s["label"]) if s is not None and str(s["label"]) in self.classes else None

    def page_answer(self, item: QueueItem) -> str | None:
        """What confirming the page sends for an item: its choice, else its proposal
        (None: skipped, or neither)."""
        return None if item.skip_mark else item.choice or self.proposal(item)

    def describe_page(self) -> list[dict[str, Any]]:
        """What a view shows of the open page: each item's :meth:`QueueItem.describe`
        plus ``proposal``, ``choice``, ``skip`` and ``answer`` (see :meth:`page_answer`)."""
        with self.lock:
            return [e.describe() | {"proposal": self.proposal(e), "choice": e.choice,
                                    "skip": e.skip_mark, "answer": self.page_answer(e)}
                    for e in self._page]

    def _page_item(self, item_id: int) -> QueueItem | None:
        return next((e for e in self._page if e.item_id == item_id), None)

    def choose(self, item_id: int, label: Any) -> bool:
        """Set the class of an item on the open page (nothing is sent until confirmed)."""
        with self.lock:
            item = self._page_item(item_id)
            if item is None:
                return self._refuse(f"item {item_id} is not on the page shown")
            label = str(label)
            if label not in self.classes:
                return self._refuse(f"{label!r} is not a class ({', '.join(self.classes)})")
            item.choice, item.skip_mark = label, False
            self.message = ""
            self._changed()
            return True

    def mark_skip(self, item_id: int, skip: bool | None = None) -> bool:
        """Leave an item of the open page out of its answers (``skip=None``: toggle)."""
        with self.lock:
            item = self._page_item(item_id)
            if item is None:
                return self._refuse(f"item {item_id} is not on the page shown")
            item.skip_mark = not item.skip_mark if skip is None else bool(skip)
            self.message = ""
            self._changed()
            return True

    def confirm_page(self, page_id: int | None = None) -> bool:
        """Answer every item of the open page; each answer is saved on its own.

        Parameters
        ----------
        page_id : int, optional
            The page the view confirms; another one (replaced meanwhile) is refused.

        Returns
        -------
        applied : bool
            False (with :attr:`message` saying why) when there is no page, it is not
            ``page_id``, or an item has neither a choice nor a proposal.
        """
        with self.lock:
            if not self._page:
                return self._refuse("no page to confirm yet: the next items are loading")
            if page_id is not None and page_id != self.page_id:
                return self._refuse(f"page {page_id} is no longer shown (page "
                                    f"{self.page_id} is): look at it and confirm again")
            missing = [e.item_id for e in self._page
                       if not e.skip_mark and self.page_answer(e) is None]
            if missing:
                some = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
                return self._refuse(f"{len(missing)} item(s) have no proposal yet (items "
                                    f"{some}): give each a class, or skip it, then confirm")
            order = list(self._page)
            answers = [(e, self.page_answer(e)) for e in order if not e.skip_mark]
            parts = [self._apply_answer(e, label) for e, label in answers]
            parts += [self._apply_skip(e) for e in order if e.skip_mark]
            self._undo.append(Action("page", order[0], parts=parts, order=order))
            self._page = []
            skipped = len(order) - len(answers)
            self.message = (f"page confirmed: {len(answers)} label(s) saved"
                            + (f", {skipped} skipped" if skipped else ""))
            self._changed()
            return True

    def _refresh_page(self) -> None:
        """Drop page items answered elsewhere; with none left, open the next page once
        its items are loaded (lock held)."""
        queued = {id(e) for e in self._items}
        self._page = [e for e in self._page if id(e) in queued]
        if self._page:
            return
        front = self._items[: self.page_size]
        if front and all(e.payload is not None for e in front):
            self._page = self._page_order(front)
            self.page_id += 1

    def _page_order(self, items: list[QueueItem]) -> list[QueueItem]:
        """Items without a proposal first, then by proposed class (the classes' order),
        the least confident first within a class, then in queue order."""
        index = {c: i for i, c in enumerate(self.classes)}

        def key(pos_item: tuple[int, QueueItem]) -> tuple[int, float, int]:
            pos, e = pos_item
            label = self.proposal(e)
            if label is None:
                return (-1, 0.0, pos)
            conf = (e.suggestion or {}).get("confidence")
            return (index[label], 1.0 if conf is None else float(conf), pos)

        return [e for _, e in sorted(enumerate(items), key=key)]

    # ------------------------------------------------------------ sender
    def _next_batch(self) -> list[tuple[int, Any]]:
        """The answers to send next, in order, no item twice (``_out`` held)."""
        if self._outbox[0][1] is _LEAVE or self._outbox[0][1] is _RETURN:
            return [self._outbox.popleft()]  # not an answer: on its own
        batch: list[tuple[int, Any]] = []
        while (self._outbox and len(batch) < _BATCH
               and self._outbox[0][1] is not _LEAVE and self._outbox[0][1] is not _RETURN
               and all(self._outbox[0][0] != i for i, _ in batch)):
            batch.append(self._outbox.popleft())
        return batch

    def _sent(self, n: int) -> None:
        super()._sent(n)
        self._wake.set()  # a round may be due now that its answers are saved

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
    def _idle_seconds(self) -> float:
        # an empty queue asks again soon: the worker may be landing a fit right now
        return 0.15 if not self._items and not self._finished else 1.0

    def _poll(self) -> None:
        self._poll_suspects()

    def _poll_suspects(self) -> None:
        """Every ``_SUSPECTS_POLL`` s: the worker's suspect counts (for a "Review" button)."""
        if time.monotonic() - self._suspects_at < _SUSPECTS_POLL:
            return
        self._suspects_at = time.monotonic()
        found = self.fetcher.status().get("suspects") or {}
        with self.lock:
            if found != self.suspects:
                self.suspects = found
                self._changed()

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
        self.suspects = status.get("suspects") or self.suspects
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
                need = [e for e in self._items[: self._window] if e.payload is None]
            if need:  # a page (or prefetch + 1 items) per request: the front comes first
                self._load(need[: max(self.page_size, self.prefetch + 1)])
            elif not self._advance():
                return

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
                     and len(self._items) < self._ahead)
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
