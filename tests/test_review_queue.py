"""The review of suspect labels without a browser, against a real worker process.

Two rounds of digits are labeled with three seeded wrong answers each; the worker
scores the labels (out-of-fold heads, confident learning) and the review queue
shows the suspects. Keep, correct, skip and undo go through the wire and land in
the journal (who and when), and the labeler widget offers the same in its review
mode.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alaas_lab import Lab
from alaas_lab.client import Client
from alaas_lab.errors import InputError, RemoteError
from alaas_lab.journal import Journal
from alaas_lab.widgets import LabelingWidget
from alaas_lab.widgets.review_queue import ReviewQueue
from alaas_lab.worker.suspects import standing_reviews

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A worker with 300 digits, 80 labels of which 6 are wrong (seeded), scored."""
    tmp = tmp_path_factory.mktemp("review")
    d = load_digits()
    X, y = d.images[:300].astype(np.float32), d.target[:300]
    config = {"name": "review",
              "active_learning": {"strategy": {"type": "least_confidence"},
                                  "model": {"name": "flatten", "batch_size": 256}},
              "classes": CLASSES, "budget": {"total": 300, "per_round": 40, "initial": 40},
              "evaluation": {"holdout": 0.0}, "rounds": {"mode": "sync"},
              "cache_dir": str(tmp / "cache")}
    lab = Lab(config, tmp / "s", labeler="tester").start()
    lab.push(X)
    flipped = {}
    for _ in range(2):
        sel = lab.client.query(40)
        answers = [str(y[i]) for i in sel.item_ids]
        for k in range(3):
            i = int(sel.item_ids[k])
            flipped[i] = str((y[i] + 3) % 10)
            answers[k] = flipped[i]
        lab.client.label_many(sel.item_ids, answers, labeler="tester")
    lab.client.suspects(refresh=True, wait=True, timeout=120)
    yield lab, y, flipped
    lab.stop()


def _review(lab, labeler="reviewer") -> ReviewQueue:
    return ReviewQueue(Client(lab.client.url, key=lab.client.key, timeout=120),
                       labeler=labeler, close_workers=True)


def _reviews(lab, item=None):
    with Journal(lab.session_dir / "session.sqlite") as journal:
        return journal.reviews(item)


def _label(lab, item):
    rows = lab.labels()
    return rows[rows.item_id == item].label.iloc[0]


def test_suspects_show_the_human_label_and_the_heads_suggestion(session):
    lab, y, flipped = session
    q = _review(lab)
    q.step()
    assert q.state == "labeling" and q.classes == CLASSES
    items = q.items
    assert len(set(e.item_id for e in items) & set(flipped)) >= 4  # the seeded mistakes
    first = items[0].describe()
    assert first["loaded"] and first["kind"] in ("array", "image")
    review = first["review"]
    assert review["label"] == _label(lab, first["item_id"]) and review["rank"] == 1
    assert review["suggested"] in CLASSES and review["suggested"] != review["label"]
    confidences = [e.self_confidence for e in items]
    assert confidences == sorted(confidences)  # the most likely mistake first
    assert q.progress["open"] == len(items) and q.progress["reviewed"] == 0
    q.stop()


def test_keep_correct_skip_and_undo_are_journaled_and_nothing_is_lost(session):
    lab, y, flipped = session
    before = lab.status()["suspects"]
    q = _review(lab)
    q.step()
    wrong = [e for e in q.items if e.item_id in flipped][:2]
    right = next(e for e in q.items if e.item_id not in flipped)
    # a class key: the true class corrects the seeded mistake
    a = wrong[0]
    assert q.answer(a.item_id, str(y[a.item_id])) and q.flush(30)
    assert _label(lab, a.item_id) == str(y[a.item_id])
    (r,) = _reviews(lab, a.item_id)
    assert (r["kind"], r["before"], r["after"], r["labeler"]) == (
        "corrected", flipped[a.item_id], str(y[a.item_id]), "reviewer") and r["time"] > 0
    # Enter keeps a label: a confirmation, the label unchanged
    assert q.keep(right.item_id) and q.flush(30)
    assert [x["kind"] for x in _reviews(lab, right.item_id)] == ["confirmed"]
    # skip leaves it: nothing journaled, still open on the worker
    b = wrong[1]
    assert q.skip(b.item_id) and q.flush(30)
    assert _reviews(lab, b.item_id) == [] and b.item_id not in q.queued
    assert b.item_id in {r["item_id"] for r in lab.client.suspects()["items"]}
    counts = lab.status()["suspects"]
    assert counts["corrected"] == before["corrected"] + 1
    assert counts["confirmed"] == before["confirmed"] + 1
    assert [x.kind for x in q.actions] == ["correct", "confirm", "skip"]

    # Undo three times: the skip, the confirmation, the correction (the label comes back)
    assert q.undo() and q.queued[0] == b.item_id
    assert q.undo() and q.queued[0] == right.item_id and q.current.relabel
    assert q.undo() and q.queued[0] == a.item_id and q.flush(30)
    assert _label(lab, a.item_id) == flipped[a.item_id]
    assert [x["source"] for x in _reviews(lab, a.item_id)] == ["suspects", "undo"]
    assert standing_reviews(_reviews(lab, a.item_id)) == []
    counts = lab.status()["suspects"]
    assert (counts["corrected"], counts["confirmed"]) == (before["corrected"],
                                                          before["confirmed"])
    assert a.item_id in {r["item_id"] for r in lab.client.suspects()["items"]}  # open again
    # reviewed again after the undo: a correction, counted once; the label history keeps all
    assert q.answer(a.item_id, str(y[a.item_id])) and q.flush(30)
    assert lab.status()["suspects"]["corrected"] == before["corrected"] + 1
    rows = lab.labels(history=True)
    assert rows[rows.item_id == a.item_id].label.tolist() == [
        flipped[a.item_id], str(y[a.item_id]), flipped[a.item_id], str(y[a.item_id])]
    q.stop()


def test_bad_reviews_are_refused_with_a_reason(session):
    lab, y, flipped = session
    q = _review(lab)
    q.step()
    e = q.current
    assert not q.answer(e.item_id, "cat") and "not a class" in q.message
    assert not q.answer(12345, "1") and "already reviewed" in q.message
    assert not ReviewQueue(q.fetcher).undo()
    with pytest.raises(InputError, match="prefetch"):
        ReviewQueue(q.fetcher, prefetch=0)
    # an undo with nothing to take back is refused by the worker, naming the item
    unreviewed = next(i for i in q.queued if not _reviews(lab, i))
    with pytest.raises(RemoteError, match=f"item {unreviewed} .*no review to take back"):
        lab.client.relabel(unreviewed, _label(lab, unreviewed), undo=True)
    q.stop()


def test_the_labeler_widget_reviews_in_its_review_mode(session):
    lab, y, flipped = session
    w = LabelingWidget(lab.client, labeler="widget-reviewer")
    try:
        assert w.mode == "label" and w.wait_ready(60)
        deadline = time.monotonic() + 30
        while not w.progress.get("suspects") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert w.progress["suspects"] >= 1  # what the "Review N suspects" button shows
        label_item = w.current["item_id"]
        w.review()
        assert w.mode == "review" and w.wait_ready(60)
        deadline = time.monotonic() + 30
        while w.state != "labeling" and time.monotonic() < deadline:
            time.sleep(0.1)
        cur = w.current
        assert "review" in cur and w.slots[w.order[0]]["item_id"] == cur["item_id"]
        assert w.progress["review"] is True
        item = cur["item_id"]
        new = cur["review"]["suggested"]
        w.answer(new)  # a class key: a correction
        assert w.flush(30)
        (r,) = [x for x in _reviews(lab, item) if x["labeler"] == "widget-reviewer"]
        assert r["kind"] == "corrected" and r["after"] == new
        assert [h["action"] for h in w.history] == ["correct"]
        w.undo()
        assert w.current["item_id"] == item and w.flush(30)
        assert _label(lab, item) == cur["review"]["label"]
        w.label_mode()  # back to labeling: the queue kept its place
        assert w.mode == "label" and w.current["item_id"] == label_item
        assert all(not s or "review" not in s for s in w.slots)
    finally:
        w.close()
    with pytest.raises(InputError, match="one at a time"):
        LabelingWidget(lab.client, review=True, grid=8, start=False)


def test_the_pool_map_asks_for_its_fields_only_when_they_moved(session):
    """An idle session sends no arrays; a correction (the suspects moved) does."""
    from alaas_lab.widgets import PoolMap

    lab, y, flipped = session
    m = PoolMap(lab.client, poll=0.2)
    try:
        deadline = time.monotonic() + 120
        while not m.version and time.monotonic() < deadline:
            time.sleep(0.2)
        assert m.version and m.n == 300
        time.sleep(1.0)  # the polls see the same status
        idle = m.fetches
        time.sleep(1.5)  # ~7 polls
        assert m.fetches == idle
        suspect = np.frombuffer(m.suspect, dtype=np.uint8)
        ids = np.frombuffer(m.item_ids, dtype=np.int32)
        item = int(ids[suspect.argmax()])
        assert suspect.max() == 1
        lab.client.relabel(item, str(y[item]), labeler="mapper")  # reviewed: no longer open
        deadline = time.monotonic() + 30
        while m.fetches == idle and time.monotonic() < deadline:
            time.sleep(0.1)
        assert m.fetches > idle
        deadline = time.monotonic() + 30
        while (np.frombuffer(m.suspect, dtype=np.uint8)[ids == item][0]
               and time.monotonic() < deadline):
            time.sleep(0.1)
        assert not np.frombuffer(m.suspect, dtype=np.uint8)[ids == item][0]
    finally:
        m.close()
