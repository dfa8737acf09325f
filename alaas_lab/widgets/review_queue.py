"""The review of suspect labels beneath the labeler's review mode: plain Python, no browser.

After each round the worker flags human labels that the data contradicts (out-of-fold
predictions of the head, confident learning: ``alaas_lab/worker/suspects.py``).
:class:`ReviewQueue` shows them one at a time, most likely mistake first, each with
the human's label and the head's out-of-fold suggestion:

- :meth:`~ReviewQueue.keep` (Enter) keeps the label: journaled as a *confirmation*;
- :meth:`~ReviewQueue.answer` with a class (its key) journals a *correction* when the
  class differs (with who and when; the new label trains the next head) and a
  confirmation when it is the label itself;
- :meth:`~ReviewQueue.skip` leaves the label as it is, unreviewed (it stays a suspect);
- :meth:`~ReviewQueue.undo` takes back the last of these: a review is undone on the
  worker (``relabel`` with ``undo``: the label from before comes back, the counts drop
  it) and the item is shown again.

It has the methods and properties of :class:`~alaas_lab.widgets.label_queue.LabelQueue`
that :class:`~alaas_lab.widgets.LabelingWidget` maps onto traits (``items``,
``current``, ``actions``, ``progress``, ``state``, ``message``, ``error``,
``answer``, ``accept``, ``skip``, ``undo``, ``retry``, ``start``, ``step``,
``flush``, ``stop``), so one view shows either. Reviews are saved in order by a
sender thread (its own client); a fetch thread asks for the suspects and loads
the items' content.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import RemoteError
from ._queue_core import QueueCore, check_count
from .label_queue import UNDO_DEPTH, Action, QueueItem

__all__ = ["ReviewItem", "ReviewQueue", "Reviewer"]

logger = logging.getLogger(__name__)

#: Suspects asked for at once.
_PAGE = 50
#: Seconds the first request waits for the worker to score the labels.
_FIRST_WAIT = 120.0


class Reviewer(Protocol):
    """What the review asks of a worker: these :class:`~alaas_lab.client.Client` methods."""

    def hello(self) -> dict[str, Any]: ...

    def suspects(self, *, refresh: bool = False, wait: bool = False, limit: int | None = None,
                 timeout: float = 600.0) -> dict[str, Any]: ...

    def relabel(self, item: int, label: Any, *, labeler: str | None = None,
                undo: bool = False) -> dict[str, Any]: ...

    def item_data(self, items: Sequence[int]) -> list[dict[str, Any]]: ...


@dataclass
class ReviewItem(QueueItem):
    """A suspect label to review (a :class:`QueueItem` with what the worker found).

    Attributes
    ----------
    given : str
        The label a person gave it (what Enter keeps).
    suggested : str
        The class the out-of-fold head is confident it belongs to.
    self_confidence : float
        The out-of-fold probability of ``given`` (low: likely a mistake).
    rank : int
        1 for the most likely mistake when it was scored.
    """

    given: str = ""
    suggested: str = ""
    self_confidence: float = 0.0
    rank: int = 0

    def describe(self) -> dict[str, Any]:
        """:meth:`QueueItem.describe` plus ``review``: ``label`` (the human's),
        ``suggested``, ``self_confidence``, ``rank``."""
        return super().describe() | {"review": {
            "label": self.given, "suggested": self.suggested,
            "self_confidence": round(float(self.self_confidence), 4), "rank": self.rank}}


class ReviewQueue(QueueCore):
    """The suspect labels a person reviews next, with keep, correct, skip and undo.

    Its :attr:`actions` (what Undo can take back) are of kinds ``confirm``,
    ``correct`` and ``skip``.

    Parameters
    ----------
    worker : Reviewer
        Used by the fetch thread (``hello``, ``suspects``, ``item_data``).
    sender : Reviewer, optional
        Used by the sender thread (``relabel``). Default: ``worker``.
    labeler : str, default ""
        Who reviews; journaled with every review.
    prefetch : int, default 4
        Items kept loaded ahead of the current one.
    classes : sequence of str, optional
        Default: the worker's (``hello``).
    undo_depth : int, default 10
        Reviews and skips Undo can take back.
    lock : threading.RLock, optional
        Held while the state changes and while ``on_change`` runs.
    on_change : callable, optional
        Called with no argument (``lock`` held) after every change.
    close_workers : bool, default False
        Each thread closes its client when it ends.
    seq : iterator of int, optional
        Where the items' ``seq`` numbers come from; a view that also shows a
        :class:`~alaas_lab.widgets.label_queue.LabelQueue` passes the same one.
    """

    _kind = "review queue"
    _thread_names = ("alaas-reviews", "alaas-review-fetch")

    def __init__(self, worker: Reviewer, *, sender: Reviewer | None = None,
                 labeler: str = "", prefetch: int = 4, classes: Sequence[str] | None = None,
                 undo_depth: int = UNDO_DEPTH, lock: threading.RLock | None = None,
                 on_change: Callable[[], None] | None = None, close_workers: bool = False,
                 seq: Iterator[int] | None = None) -> None:
        for name, value in (("prefetch", prefetch), ("undo_depth", undo_depth)):
            check_count(name, value)
        super().__init__(worker, sender=sender, labeler=labeler, prefetch=prefetch,
                         classes=classes, undo_depth=undo_depth, lock=lock,
                         on_change=on_change, close_workers=close_workers, seq=seq)
        self.page_size = 0  # one item at a time (the view reads it)
        self._items: list[ReviewItem] = []
        self._counts = {"open": 0, "confirmed": 0, "corrected": 0}
        self._done = {"confirmed": 0, "corrected": 0, "skipped": 0}  # by this review
        self._computing = False

    # ------------------------------------------------------------ state
    @property
    def progress(self) -> dict[str, Any]:
        """``review`` (True), ``reviewed``, ``confirmed``, ``corrected``, ``skipped`` (by
        this review), ``left`` (queued here), ``total`` (given to this review), and the
        worker's counts ``open``, ``confirmed_all``, ``corrected_all``."""
        with self.lock:
            d = self._done
            return {"review": True, "reviewed": d["confirmed"] + d["corrected"],
                    "confirmed": d["confirmed"], "corrected": d["corrected"],
                    "skipped": d["skipped"], "left": len(self._items),
                    "total": len(self._seen), "open": self._counts["open"],
                    "confirmed_all": self._counts["confirmed"],
                    "corrected_all": self._counts["corrected"]}

    # ------------------------------------------------------------ actions
    def answer(self, item_id: int, label: Any) -> bool:
        """Review an item with a class: its own label confirms it, another corrects it.

        Returns
        -------
        applied : bool
            False (with :attr:`message` saying why) for an item not queued or a label
            that is not a class.
        """
        with self.lock:
            item = self._find(item_id)
            if item is None:
                return self._refuse(f"item {item_id} was already reviewed")
            label = str(label)
            if label not in self.classes:
                return self._refuse(f"{label!r} is not a class ({', '.join(self.classes)})")
            kind = "confirm" if label == item.given else "correct"
            self._items.remove(item)
            item.label = label
            self._send(item.item_id, label, False)
            self._done["confirmed" if kind == "confirm" else "corrected"] += 1
            self._undo.append(Action(kind, item, label=label, skips=item.skips))
            self.message = (f"kept {label!r} for item {item_id}" if kind == "confirm" else
                            f"corrected item {item_id}: {item.given!r} → {label!r}")
            self._changed()
            return True

    def keep(self, item_id: int) -> bool:
        """Keep an item's label (Enter): journaled as a confirmation."""
        with self.lock:
            item = self._find(item_id)
            if item is None:
                return self._refuse(f"item {item_id} was already reviewed")
            return self.answer(item_id, item.given)

    accept = keep  # the view's Enter ("accept") keeps the label in review mode

    def skip(self, item_id: int) -> bool:
        """Leave an item's label as it is, unreviewed (it stays a suspect on the worker)."""
        with self.lock:
            item = self._find(item_id)
            if item is None:
                return self._refuse(f"item {item_id} is not waiting for a review")
            self._items.remove(item)
            item.skips += 1
            self._done["skipped"] += 1
            self._undo.append(Action("skip", item, skips=item.skips - 1))
            self.message = f"left item {item_id}'s label {item.given!r} unreviewed"
            self._changed()
            return True

    def undo(self) -> bool:
        """Take back the last review or skip: the item is shown again, first.

        A review is undone on the worker too: the label from before it comes back
        and the journal records the undo (``relabel`` with ``undo``).
        """
        with self.lock:
            if not self._undo:
                return self._refuse(f"nothing to undo (the last {self.undo_depth} reviews "
                                    "can be taken back)")
            act = self._undo.pop()
            item = act.item
            if act.kind == "skip":
                self._done["skipped"] -= 1
                self.message = f"took back the skip of item {item.item_id}"
            else:
                self._send(item.item_id, item.given, True)
                self._done["confirmed" if act.kind == "confirm" else "corrected"] -= 1
                item.relabel = True
                self.message = (f"took back the review of item {item.item_id}: its label is "
                                f"{item.given!r} again; review it again")
            item.label, item.skips = None, act.skips
            item.seq = next(self._seq)
            self._items.insert(0, item)
            self._changed()
            return True

    # ------------------------------------------------------------ sender
    def _deliver(self, batch: list[tuple[int, str, bool]]) -> None:
        """Save one review (``(item, label, undo)``) in order; a worker that does not
        answer is asked again.

        A refusal (``RemoteError``) shows as :attr:`error` and is not retried.
        """
        [(item_id, label, undo)] = batch
        attempt = 0
        while True:
            try:
                self.sender.relabel(item_id, label, labeler=self.labeler or None, undo=undo)
                break
            except RemoteError as exc:
                what = "undo of the review" if undo else f"review {label!r}"
                self._set_error(f"the worker refused the {what} for item {item_id}: "
                                f"{exc.evalue}")
                return
            except Exception as exc:  # worker gone or slow: keep it, in order
                if self._closed.is_set() and attempt >= 3:
                    logger.error("review queue closed; review of item %d not saved", item_id)
                    return
                attempt += 1
                self._set_error(f"could not save the review of item {item_id} ({exc}); "
                                "retrying — reviews are kept in order.")
                time.sleep(min(5.0, 0.25 * 2 ** attempt))
        if attempt:
            self._set_error("")

    # ------------------------------------------------------------ fetch
    def _idle_seconds(self) -> float:
        return 2.0 if self._computing or self._finished else 1.0

    def bootstrap(self) -> None:
        """The classes from the worker, then the first suspects (waiting for the scores)."""
        classes = self.classes or [str(c) for c in self.fetcher.hello().get("classes") or ()]
        if not classes:
            raise RemoteError("ConfigError", "the worker's config lists no classes; add "
                              "'classes: [...]' to it to review labels.", {})
        reply = self.fetcher.suspects(wait=True, timeout=_FIRST_WAIT, limit=_PAGE)
        with self.lock:
            self.classes = classes
            self.bootstrapped = True
            self._take_rows(reply)

    def _take_rows(self, reply: dict[str, Any]) -> None:
        """Queue the suspects of a ``suspects`` reply not seen before (lock held)."""
        self._counts = {k: int(reply.get(k) or 0) for k in ("open", "confirmed", "corrected")}
        self._computing = bool(reply.get("computing"))
        new = [r for r in reply.get("items") or () if int(r["item_id"]) not in self._seen]
        for r in new:
            item = ReviewItem(int(r["item_id"]), None, "suspect", next(self._seq),
                              given=str(r["label"]), suggested=str(r["suggested"]),
                              self_confidence=float(r.get("self_confidence") or 0.0),
                              rank=int(r.get("rank") or 0))
            self._seen.add(item.item_id)
            self._items.append(item)
        self._finished = not new and not self._computing and not self._items
        if self._finished:
            self.message = (self.message or "") if self._seen else (
                "no suspect labels to review" + (f": {reply['error']}" if reply.get("error")
                                                 else " (the worker scores them after each "
                                                 "round, from 20 labels on)"))
            self._ready.set()
        self._changed()

    def _top_up(self) -> None:
        """Load the next suspects' content; ask for more when few are queued."""
        while not self._closed.is_set():
            with self.lock:
                need = [e for e in self._items[: self.prefetch + 1] if e.payload is None]
                low = len(self._items) < self.prefetch and not self._finished
            if need:
                self._load(need)
            elif low:
                reply = self.fetcher.suspects(limit=len(self._seen) + _PAGE)
                with self.lock:
                    before = len(self._items)
                    self._take_rows(reply)
                    if len(self._items) == before:
                        return
            else:
                return
