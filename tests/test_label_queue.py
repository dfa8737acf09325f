"""LabelQueue without a browser: skip, undo, left-out items, prefetch, suggestions, delivery.

Bookkeeping runs against :class:`FakeWorker`, an in-memory stand-in for the
:class:`~alaas_lab.widgets.label_queue.Worker` methods with the worker's rules
(pending items, rounds recorded when fully labeled or by ``fit``, journal rows
kept on retraction). The queue is driven with ``step()`` (no threads) unless a
test is about the threads. ``tests/test_widgets.py`` runs the same paths against a
real worker process.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from alaas_lab.errors import InputError, RemoteError, WorkerUnavailable
from alaas_lab.protocol.messages import iso_time
from alaas_lab.widgets.label_queue import LabelQueue, QueueItem, _available, _pool_wait

CLASSES = ["cat", "dog", "bird"]


class FakeWorker:
    """A worker in memory: every request is logged in ``calls``.

    Parameters
    ----------
    n_items : int
        Pool size; items are selected in id order.
    lookahead : bool
        ``hello`` announces that queries are answered while a round is labeled.
    refuse_early : bool
        A query while the newest round has unlabeled items is refused (``not_ready``).
    resend_round : bool
        A query while the newest round has unlabeled items returns that round again
        (as a PSHEA worker does).
    suggest : bool
        ``item_data`` carries ``suggestion`` and ``model``.
    refuse_fit : bool
        ``fit`` with unlabeled items in the round is refused (PSHEA).
    """

    def __init__(self, n_items: int = 40, *, lookahead: bool = False,
                 refuse_early: bool = False, resend_round: bool = False,
                 suggest: bool = False, refuse_fit: bool = False) -> None:
        self.n_items, self.lookahead, self.suggest = n_items, lookahead, suggest
        self.refuse_early, self.resend_round, self.refuse_fit = (refuse_early, resend_round,
                                                                 refuse_fit)
        self.lock = threading.Lock()
        self.rows: list[dict] = []
        self.selections: dict[int, list[int]] = {}
        self.recorded: list[int] = []
        self.calls: list[tuple] = []
        self.lose_replies = 0  # the next label requests are applied, their replies lost
        self.lose_requests = 0  # the next label requests never arrive
        self.label_delay = 0.0  # seconds each label request takes

    @property
    def round(self) -> int:
        return max(self.selections, default=0)

    def standing(self) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        for r in self.rows:
            out[r["item_id"]] = r["label"]
        return out

    def pending(self) -> list[dict]:
        labels, seen, out = self.standing(), set(), []
        for rnd in sorted(self.selections):
            for i in self.selections[rnd]:
                if labels.get(i) is None and i not in seen:
                    seen.add(i)
                    out.append({"item_id": i, "round": rnd, "strategy": "fake"})
        return out

    def _open(self, rnd: int) -> list[int]:
        labels = self.standing()
        return [i for i in self.selections.get(rnd, []) if labels.get(i) is None]

    # the Worker interface
    def hello(self) -> dict:
        self.calls.append(("hello",))
        return {"classes": CLASSES, "lookahead": self.lookahead}

    def status(self) -> dict:
        self.calls.append(("status",))
        with self.lock:
            labeled = sum(v is not None for v in self.standing().values())
            return {"round": self.round, "n_items": self.n_items, "n_embedded": self.n_items,
                    "n_labeled": labeled, "n_eval": 0, "n_pending": len(self.pending()),
                    "budget_left": None, "state": "idle"}

    def query(self, budget: int) -> SimpleNamespace:
        self.calls.append(("query", budget))
        with self.lock:
            if self._open(self.round):
                if self.refuse_early:
                    raise RemoteError("InputError", f"round {self.round} is being labeled",
                                      {"reason": "not_ready"})
                if self.resend_round:
                    return SimpleNamespace(round=self.round, strategy="fake",
                                           item_ids=list(self.selections[self.round]))
            taken = {i for ids in self.selections.values() for i in ids}
            free = [i for i in range(self.n_items) if i not in taken]
            if not free:
                raise RemoteError("InputError", "the pool is used up",
                                  {"reason": "pool_exhausted"})
            rnd = self.round + 1
            self.selections[rnd] = free[:budget]
            return SimpleNamespace(round=rnd, strategy="fake", item_ids=free[:budget])

    def label(self, item: int, label, *, labeler=None) -> int:
        return self.label_many([item], [label], labeler=labeler)[0]

    def label_many(self, items, labels, *, labeler=None) -> list[int]:
        self.calls.append(("label", list(items), list(labels)))
        time.sleep(self.label_delay)
        if self.lose_requests:
            self.lose_requests -= 1
            raise WorkerUnavailable("no reply (request lost)")
        with self.lock:
            if any(lab is not None and lab not in CLASSES for lab in labels):
                raise RemoteError("InputError", "not a class", {"reason": "bad_label"})
            first = len(self.rows) + 1
            for i, lab in zip(items, labels, strict=True):
                rnd = next((r for r, ids in sorted(self.selections.items()) if i in ids), 0)
                self.rows.append({"row_id": len(self.rows) + 1, "item_id": i, "label": lab,
                                  "labeler": labeler, "time": iso_time(time.time()),
                                  "round": rnd, "strategy": "fake"})
            for rnd in self.selections:  # a round is recorded once fully labeled
                if rnd not in self.recorded and not self._open(rnd):
                    self.recorded.append(rnd)
        if self.lose_replies:
            self.lose_replies -= 1
            raise WorkerUnavailable("no reply (reply lost)")
        return list(range(first, first + len(items)))

    def item_data(self, items) -> list[dict]:
        self.calls.append(("item_data", list(items)))
        extra = lambda i: ({"suggestion": {"label": CLASSES[i % 3], "confidence": 0.75},  # noqa: E731
                            "model": {"round": 2, "n_labeled": 20, "top1": 0.81}}
                           if self.suggest else {})
        return [{"item_id": i, "kind": "text", "text": f"item {i}", "uri": f"text:{i}",
                 **extra(i)} for i in items]

    def history(self, since=0, include=None, limit=None, *, current=False,
                include_eval=False, labeler=None, round=None) -> dict:
        self.calls.append(("history", tuple(include or ())))
        with self.lock:
            rows = [r for r in self.rows if r["row_id"] > int(since)]
            if current:
                latest = {r["item_id"]: r for r in rows}
                rows = sorted((r for r in latest.values() if r["label"] is not None),
                              key=lambda r: r["row_id"])
            if labeler is not None:
                rows = [r for r in rows if r["labeler"] == labeler]
            picks = [(rnd, i) for rnd, ids in sorted(self.selections.items()) for i in ids
                     if round is None or rnd == round]
            return {"labels": [dict(r) for r in rows], "pending": self.pending(),
                    "selections": [{"item_id": i, "round": rnd, "strategy": "fake"}
                                   for rnd, i in picks],
                    "rounds": [{"round": r} for r in self.recorded], "cursor": "0",
                    "more": False}

    def fit(self) -> dict:
        self.calls.append(("fit",))
        with self.lock:
            if self.refuse_fit and self._open(self.round):
                raise RemoteError("InputError", f"round {self.round} still has items to label",
                                  {"reason": "not_ready"})
            if self.round not in self.recorded:
                self.recorded.append(self.round)
            return {"round": self.round}

    def close(self) -> None:
        self.calls.append(("close",))

    def count(self, method: str) -> int:
        return sum(c[0] == method for c in self.calls)


def make(worker: FakeWorker, **kwargs) -> LabelQueue:
    q = LabelQueue(worker, labeler="tester", n=kwargs.pop("n", 5), **kwargs)
    q.step()
    return q


# ---------------------------------------------------------------- undo reverses the last action


def test_skip_then_undo_takes_back_the_skip_not_the_answer_before_it():
    worker = FakeWorker()
    q = make(worker)
    assert q.queued == [0, 1, 2, 3, 4] and q.state == "labeling"
    assert q.answer(0, "cat")
    assert q.skip(1) and q.queued == [2, 3, 4, 1]
    assert [a.describe() for a in q.actions] == [
        {"item_id": 0, "label": "cat", "action": "answer"},
        {"item_id": 1, "label": None, "action": "skip"}]
    assert q.undo()
    # the skipped item is back in front, unanswered and unmarked; the answer stands
    assert q.queued == [1, 2, 3, 4] and q.current.skips == 0 and not q.current.relabel
    assert "took back the skip of item 1" in q.message
    q.step()
    assert [c[1:] for c in worker.calls if c[0] == "label"] == [([0], ["cat"])]
    assert worker.standing() == {0: "cat"}
    assert q.undo()  # now the answer
    assert q.queued == [0, 1, 2, 3, 4] and q.current.relabel
    q.step()
    assert worker.standing() == {0: None}  # retracted: the journal keeps both rows
    assert not q.undo() and "nothing to undo" in q.message


def test_undo_stack_is_bounded_and_each_item_gets_a_new_seq():
    worker = FakeWorker()
    q = make(worker, n=20, undo_depth=3)
    first = q.current.seq
    for _ in range(4):
        q.skip(q.current.item_id)
    assert q.items[-4].item_id == 0 and q.items[-4].seq != first  # a new showing
    assert len(q.actions) == 3
    for _ in range(3):
        assert q.undo()
    assert not q.undo() and "the last 3 actions" in q.message
    assert q.queued[:2] == [1, 2]  # the first skip fell out of the window


# ---------------------------------------------------------------- skipped twice: left out


def test_skipped_twice_is_left_out_and_the_round_closes_without_it():
    worker = FakeWorker()
    q = make(worker)
    q.skip(0)
    for i in (1, 2, 3, 4):
        q.answer(i, "dog")
    assert q.queued == [0] and q.current.skips == 1
    q.skip(0)  # again, nothing unskipped left in its round
    assert q.queued == [] and q.left_out == [0] and "left out of round 1" in q.message
    assert q.progress["left_out"] == 1 and q.progress["round_done"] == 4
    q.step()
    assert worker.recorded == [1] and worker.count("fit") == 1  # closed without it
    assert q.progress["round"] == 2 and q.queued == [5, 6, 7, 8, 9]
    assert 0 not in worker.standing()


def test_undo_brings_a_left_out_item_back_to_the_front():
    worker = FakeWorker()
    q = make(worker, n=2)
    q.skip(0)
    q.skip(1)
    q.skip(0)  # both skipped before: 0 is left out
    assert q.left_out == [0] and q.queued == [1]
    assert q.undo()
    assert q.queued == [0, 1] and q.left_out == [] and q.current.skips == 1
    assert q.progress["left_out"] == 0


def test_a_left_out_item_stays_out_of_a_new_queue():
    worker = FakeWorker()
    q = make(worker)
    q.skip(0)
    for i in (1, 2, 3, 4):
        q.answer(i, "dog")
    q.skip(0)
    q.step()
    q.answer(5, "cat")
    q.undo()  # an answer taken back: its item comes back, unlike the left-out one
    q.step()
    assert worker.recorded == [1] and q.queued == [5, 6, 7, 8, 9]
    q.stop()
    fresh = make(worker)  # a new widget (or kernel): it knows only what the worker says
    assert 0 not in fresh.queued and fresh.left_out == [0]
    assert fresh.queued == [5, 6, 7, 8, 9]
    assert "1 item(s) skipped twice stay left out of their round: 0" in fresh.message
    assert fresh.progress == {**fresh.progress, "round": 2, "round_size": 5, "round_done": 0}


def test_an_answer_taken_back_in_a_recorded_round_comes_back_after_a_restart():
    worker = FakeWorker()
    q = make(worker)
    for i in range(5):
        q.answer(i, "cat")
    q.step()  # round 1 recorded, round 2 selected
    q.undo()
    assert q.queued[:2] == [4, 5]  # the undo of an answer of round 1 ...
    q.step()
    assert worker.recorded == [1] and worker.standing()[4] is None
    fresh = make(worker)
    assert fresh.queued[0] == 4 and fresh.left_out == []  # ... is not taken for a skip


def test_a_round_that_needs_every_item_gives_the_left_out_item_back():
    worker = FakeWorker(refuse_fit=True)  # PSHEA: a round closes only fully labeled
    q = make(worker, n=2)
    q.skip(0)
    q.answer(1, "dog")
    q.skip(0)
    assert q.left_out == [0]
    q.step()
    assert q.queued == [0] and q.left_out == [] and "cannot close without" in q.message
    q.undo()  # the leaving out, though the worker gave the item back already
    assert q.queued == [0] and q.current.skips == 1
    q.skip(0)  # the round cannot close without it: it only goes round again
    assert q.queued == [0] and q.left_out == []
    q.answer(0, "bird")
    q.step()
    assert worker.recorded == [1] and q.progress["round"] == 2


# ---------------------------------------------------------------- the next selection


def test_a_synchronous_worker_is_asked_once_the_selection_is_answered_and_saved():
    worker = FakeWorker()
    q = make(worker)
    for i in range(4):
        q.answer(i, "cat")
        q.step()
    assert worker.count("query") == 1 and len(q.queued) == 1
    q.answer(4, "cat")
    q.step()
    # every answer reached the worker before the query (which would open round 2)
    last_label = max(k for k, c in enumerate(worker.calls) if c[0] == "label")
    second_query = [k for k, c in enumerate(worker.calls) if c[0] == "query"][1]
    assert last_label < second_query and worker.recorded == [1]
    assert q.queued == [5, 6, 7, 8, 9] and q.progress["round"] == 2


def test_the_threads_ask_for_the_next_selection_after_every_answer_is_saved():
    worker = FakeWorker()
    worker.label_delay = 0.1  # a slow worker: answers are still on their way
    q = LabelQueue(worker, labeler="tester", n=5).start()
    try:
        assert q.wait_ready(5)
        for i in range(5):
            q.answer(i, "cat")
        deadline = time.monotonic() + 10
        while worker.count("query") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = [k for k, c in enumerate(worker.calls) if c[0] == "query"][1]
        saved = sorted(i for c in worker.calls[:second] if c[0] == "label" for i in c[1])
        assert saved == [0, 1, 2, 3, 4] and worker.recorded == [1]
    finally:
        q.stop()


def test_with_lookahead_the_queue_never_drains():
    worker = FakeWorker(lookahead=True)
    q = make(worker, prefetch=3)
    sizes = []
    for _ in range(20):
        q.answer(q.current.item_id, "bird")
        q.step()
        sizes.append(len(q.queued))
    assert min(sizes) >= 3  # asked while 2 items were left, not once they ran out
    assert worker.count("query") == 5 and worker.recorded == [1, 2, 3, 4]
    assert q.progress["round"] == 5


def test_a_refused_early_query_is_asked_again_when_the_round_is_answered():
    worker = FakeWorker(lookahead=True, refuse_early=True)
    q = make(worker, prefetch=3)
    q.answer(0, "cat")
    q.answer(1, "cat")
    q.answer(2, "cat")
    q.step()  # 2 left < prefetch: asks, refused
    assert worker.count("query") == 2 and q.queued == [3, 4]
    q.answer(3, "cat")
    q.step()  # still not answered: it does not ask again
    assert worker.count("query") == 2
    q.answer(4, "cat")
    q.step()
    assert worker.count("query") == 3 and q.queued == [5, 6, 7, 8, 9]


def test_a_query_that_returns_the_round_being_labeled_adds_nothing():
    worker = FakeWorker(lookahead=True, resend_round=True)
    q = make(worker, prefetch=3)
    for i in range(3):
        q.answer(i, "dog")
    q.step()
    assert worker.count("query") == 2 and q.queued == [3, 4]  # no item twice
    assert q.progress["round_size"] == 5
    q.answer(3, "dog")
    q.answer(4, "dog")
    q.step()
    assert q.queued == [5, 6, 7, 8, 9] and q.progress["round"] == 2


def test_lookahead_is_what_the_worker_announces():
    assert not make(FakeWorker()).lookahead
    assert make(FakeWorker(lookahead=True)).lookahead
    assert not make(FakeWorker(lookahead=True), lookahead=False).lookahead


def test_the_pool_used_up_is_done():
    worker = FakeWorker(n_items=3)
    q = make(worker)
    for i in range(3):
        q.answer(i, "cat")
    q.step()
    assert q.state == "done" and "every pool item is labeled" in q.message


# ---------------------------------------------------------------- model suggestion


def test_suggestion_and_model_are_shown_and_never_answered_unasked():
    worker = FakeWorker(suggest=True)
    q = make(worker)
    meta = q.current.describe()
    assert meta["suggestion"] == {"label": "cat", "confidence": 0.75}
    assert meta["model"] == {"round": 2, "n_labeled": 20, "top1": 0.81}
    q.step()
    assert worker.count("label") == 0  # loading a suggestion answers nothing
    assert q.accept(0)  # Enter
    assert q.accept(1)
    q.step()
    assert worker.standing() == {0: "cat", 1: "dog"}
    assert q.actions[-1].describe() == {"item_id": 1, "label": "dog", "action": "answer"}


def test_accept_without_a_suggestion_is_refused():
    worker = FakeWorker()
    q = make(worker)
    assert "suggestion" not in q.current.describe()
    assert not q.accept(0) and "no model suggestion for item 0" in q.message
    assert q.queued[0] == 0
    item = QueueItem(7, 1, "x", 1, payload={"kind": "text", "suggestion": {"label": None}})
    assert item.suggestion is None and "suggestion" not in item.describe()


# ---------------------------------------------------------------- delivery


def test_answers_that_pile_up_go_in_one_label_many_in_order():
    worker = FakeWorker()
    q = make(worker, n=8)
    for i in range(3):
        q.answer(i, "cat")
    q.undo()  # item 2 twice: a batch holds each item once
    q.answer(2, "bird")
    q.step()
    sent = [c[1:] for c in worker.calls if c[0] == "label"]
    assert sent == [([0, 1, 2], ["cat", "cat", "cat"]), ([2], [None]), ([2], ["bird"])]
    assert worker.standing() == {0: "cat", 1: "cat", 2: "bird"}


def test_a_lost_reply_is_not_resent_and_a_lost_request_is():
    worker = FakeWorker()
    q = make(worker)
    worker.lose_replies = 1
    q.answer(0, "cat")
    q.step()
    assert [r["item_id"] for r in worker.rows] == [0]  # applied once, not twice
    worker.lose_requests = 1
    q.answer(1, "dog")
    q.step()
    assert [(r["item_id"], r["label"]) for r in worker.rows] == [(0, "cat"), (1, "dog")]
    assert q.error == "" and q.flush(1)


def test_a_refused_answer_shows_and_the_others_in_its_batch_are_saved():
    worker = FakeWorker()
    q = make(worker)
    q.classes.append("fish")  # a class the worker does not know
    q.answer(0, "cat")
    q.answer(1, "fish")
    q.answer(2, "dog")
    q.step()
    assert worker.standing() == {0: "cat", 2: "dog"}
    assert "refused the label 'fish' for item 1" in q.error


def test_threads_deliver_and_select_in_the_background():
    worker = FakeWorker()
    changes = []
    q = LabelQueue(worker, labeler="tester", n=5, on_change=lambda: changes.append(1))
    q.start()
    try:
        assert q.wait_ready(5) and q.state == "labeling"
        with pytest.raises(RuntimeError, match="step"):
            q.step()
        for _ in range(7):
            deadline = time.monotonic() + 5
            while q.current is None or q.current.payload is None:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            q.answer(q.current.item_id, "cat")
        assert q.flush(5) and len(worker.rows) == 7 and changes
    finally:
        q.stop()
    assert not any(t.is_alive() for t in q._threads)


# ---------------------------------------------------------------- arguments and pool


def test_arguments_are_checked():
    with pytest.raises(InputError, match=r"prefetch must be an int >= 1; got 0"):
        LabelQueue(FakeWorker(), prefetch=0)
    with pytest.raises(InputError, match=r"n must be an int >= 1; got True"):
        LabelQueue(FakeWorker(), n=True)


@pytest.mark.parametrize(("status", "available", "expected"), [
    ({"state": "push", "n_items": 400, "n_embedded": 120, "n_eval": 100}, 5, "120 of 400"),
    ({"state": "idle", "n_items": 400, "n_embedded": 100, "n_eval": 100, "jobs_queued": 1}, 0,
     "100 of 400 items embedded; 1 job(s) queued"),
    ({"state": "idle", "n_items": 400, "n_embedded": 390, "n_quarantined": 10, "n_eval": 100},
     0, ""),  # all embedded but the quarantined ones: a pool used up is done
    ({"state": "push", "n_items": 400, "n_embedded": 300, "n_eval": 100}, 10, ""),  # enough
    ({"state": "idle", "n_items": 100, "n_embedded": 100, "n_eval": 100}, 0, "nothing pushed"),
])
def test_pool_wait_reads_the_status_numbers(status, available, expected):
    why = _pool_wait(status, available, 10)  # 10 items asked for
    assert expected in why if expected else why == ""


def test_available_counts_quarantined_items_once():
    # quarantined items never got embedded: subtracting them again hid labelable items
    status = {"n_items": 412, "n_embedded": 400, "n_quarantined": 12, "n_labeled": 30,
              "n_eval": 100, "n_pending": 10}
    assert _available(status) == 260


# ---------------------------------------------------------------- grid mode: pages


class Proposing(FakeWorker):
    """Suggestions with their own confidences; items in ``unsure`` get none."""

    def __init__(self, *args, unsure=(), **kwargs) -> None:
        super().__init__(*args, suggest=True, **kwargs)
        self.unsure = set(unsure)

    def item_data(self, items) -> list[dict]:
        out = super().item_data(items)
        for it in out:
            i = it["item_id"]
            if i in self.unsure:
                del it["suggestion"]
            else:
                it["suggestion"]["confidence"] = round(0.3 + 0.07 * ((i * 7) % 9), 2)
        return out


def reference_page_order(items, classes):
    """The page's order, spelled out: unproposed first (queue order), then each class in
    the classes' order, least confident first, ties in queue order."""
    unproposed = [e for e in items if e.suggestion is None]
    by_class = []
    for c in classes:
        mine = [(e.suggestion["confidence"], pos, e) for pos, e in enumerate(items)
                if e.suggestion is not None and e.suggestion["label"] == c]
        by_class += [e for _, _, e in sorted(mine, key=lambda t: (t[0], t[1]))]
    return unproposed + by_class


def test_a_page_is_grouped_by_predicted_class():
    worker = Proposing(unsure={2, 7})
    q = make(worker, n=12, page_size=9)
    assert q.page_id == 1 and len(q.page) == 9 and q.state == "labeling"
    front = q.items[:9]
    assert [e.item_id for e in q.page] == [e.item_id for e in
                                           reference_page_order(front, CLASSES)]
    assert [e.item_id for e in q.page[:2]] == [2, 7]  # those needing a class come first
    meta = q.describe_page()
    assert [m["proposal"] for m in meta[:2]] == [None, None]
    assert all(m["proposal"] == CLASSES[m["item_id"] % 3] == m["answer"] for m in meta[2:])
    assert worker.count("label") == 0  # proposals are never sent unasked


def test_confirm_sends_one_label_per_item_and_the_next_page_is_ready():
    worker = FakeWorker(suggest=True)
    q = make(worker, n=12, page_size=4, prefetch=3)
    assert all(e.payload is not None for e in q.items[:8])  # two pages loaded
    page = q.page
    assert q.choose(page[1].item_id, "bird") and q.mark_skip(page[2].item_id)
    assert not q.choose(99, "cat") and "item 99 is not on the page" in q.message
    assert not q.choose(page[0].item_id, "fish") and "'fish' is not a class" in q.message
    calls = len(worker.calls)
    assert q.confirm_page(q.page_id)
    assert len(worker.calls) == calls  # nothing asked of the worker on the way
    assert q.page_id == 2 and len(q.page) == 4  # the next page, at once
    assert "page confirmed: 3 label(s) saved, 1 skipped" in q.message
    assert not q.confirm_page(1) and "page 1 is no longer shown" in q.message
    q.step()
    sent = [c[1:] for c in worker.calls if c[0] == "label"]
    expected = {page[0].item_id: CLASSES[page[0].item_id % 3], page[1].item_id: "bird",
                page[3].item_id: CLASSES[page[3].item_id % 3]}
    assert sent == [(list(expected), list(expected.values()))]  # one label_many, in order
    assert worker.standing() == expected
    assert {r["labeler"] for r in worker.rows} == {"tester"} and all(r["time"]
                                                                    for r in worker.rows)
    assert q.queued[-1] == page[2].item_id and q.items[-1].skips == 1  # skipped: at the end


def test_a_page_without_proposals_is_confirmed_only_once_each_item_has_a_class():
    worker = FakeWorker()  # the seed round: no head, no suggestion
    q = make(worker, n=5, page_size=5)
    ids = [e.item_id for e in q.page]
    assert not q.confirm_page()
    assert q.message.startswith("5 item(s) have no proposal yet (items 0, 1, 2, 3, 4)")
    for i in ids[:4]:
        q.choose(i, "dog")
    assert not q.confirm_page() and "(items 4)" in q.message and q.page_id == 1
    q.mark_skip(4)
    q.mark_skip(4)  # a toggle: back in the page's answers
    assert not q.confirm_page()
    q.mark_skip(4, True)
    assert q.confirm_page()
    q.step()
    assert worker.standing() == dict.fromkeys(ids[:4], "dog")


def test_undo_brings_the_confirmed_page_back_and_nothing_is_lost():
    worker = Proposing()
    q = make(worker, n=10, page_size=5)
    page = q.page
    q.choose(page[0].item_id, "dog" if q.proposal(page[0]) != "dog" else "cat")
    chosen = page[0].choice
    q.mark_skip(page[4].item_id)
    q.confirm_page()
    q.step()
    before = dict(worker.standing())
    assert len(before) == 4 and q.actions[-1].describe()["labels"] == 4
    assert q.undo() and "took back the page of 4 label(s)" in q.message
    assert [e.item_id for e in q.page] == [e.item_id for e in page] and q.page_id == 3
    assert page[0].choice == chosen and page[4].skip_mark  # as confirmed
    assert all(e.choice is None for e in page[1:])  # proposals stay proposals
    assert page[4].skips == 0 and q.queued[:5] == [e.item_id for e in page]
    q.step()
    assert all(worker.standing()[i] is None for i in before)  # retracted, rows kept
    assert q.confirm_page()
    q.step()
    assert worker.standing() == before and len(worker.rows) == 12
    assert q.undo() and not q.undo()  # the page again, then nothing before it


def test_undo_of_a_single_answer_reforms_the_page_with_its_item():
    worker = FakeWorker(suggest=True)
    q = make(worker, n=10)
    q.answer(0, "bird")  # one at a time, then a new (grid) queue on the same session
    q.step()
    grid = make(worker, n=10, page_size=4)
    assert [a.describe()["action"] for a in grid.actions] == ["answer"]
    grid.choose(grid.page[0].item_id, "dog")
    kept = grid.page[0]
    assert grid.undo()
    grid.step()
    assert 0 in [e.item_id for e in grid.page] and grid.page_id == 2
    assert kept.choice == "dog"  # a choice stays with its item, on the page or later


def test_with_lookahead_the_queue_keeps_two_pages():
    worker = FakeWorker(lookahead=True, suggest=True)
    q = make(worker, n=5, page_size=6, prefetch=3)
    sizes = []
    for _ in range(4):
        assert q.confirm_page()
        q.step()
        sizes.append(len(q.queued))
    assert min(sizes) >= 12 and len(q.page) == 6  # this page and the next one


def test_page_size_is_checked():
    for bad in (0, -1, 65, 2.0, True):
        with pytest.raises(InputError, match=r"page_size must be an int from 1 to 64"):
            LabelQueue(FakeWorker(), page_size=bad)
