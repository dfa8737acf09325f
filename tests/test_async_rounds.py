"""Continuous labeling: leases per labeler, selections ahead of the human, model advice."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alaas_lab import Lab
from alaas_lab.errors import RemoteError

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.images.astype(np.float32), d.target.astype(str)


def start(tmp_path, digits, *, mode="async", lease_s=600.0, total=200, strategy="margin"):
    cfg = {"name": "async", "classes": CLASSES,
           "active_learning": {"strategy": {"type": strategy},
                               "model": {"name": "flatten", "batch_size": 64}},
           "budget": {"total": total, "per_round": 10, "initial": 10},
           "rounds": {"mode": mode, "lease_s": lease_s},
           "cache_dir": str(tmp_path / "cache")}
    lab = Lab(cfg, tmp_path / f"s-{mode}").start()
    X, y = digits
    lab.push(X[:400])
    lab.push(X[1000:1200], role="eval", labels=list(y[1000:1200]))
    return lab


def lease(client, n, labeler, timeout=60.0):
    """next_items until it brings items (``waiting``: the worker is busy or others hold them)."""
    deadline = time.monotonic() + timeout
    reply = client.next_items(n, labeler=labeler)
    while not reply["item_ids"] and reply["waiting"] and time.monotonic() < deadline:
        time.sleep(0.05)
        reply = client.next_items(n, labeler=labeler)
    return reply


def answer(client, reply, y, labeler):
    client.label_many(reply["item_ids"], [y[i] for i in reply["item_ids"]], labeler=labeler)


def test_two_labelers_never_get_the_same_item(tmp_path, digits):
    lab = start(tmp_path, digits, mode="sync")
    try:
        c = lab.client
        first = c.next_items(6, labeler="ann")
        second = c.next_items(6, labeler="bob")
        assert len(first["item_ids"]) == 6 and len(second["item_ids"]) == 4
        assert not set(first["item_ids"]) & set(second["item_ids"])
        assert c.next_items(6, labeler="cat") == {**c.next_items(6, labeler="cat"),
                                                   "item_ids": [], "waiting": True}
        again = c.next_items(6, labeler="ann")  # a re-run widget gets its own items back
        assert again["item_ids"] == first["item_ids"]
        # both answer one item: both answers are kept, the latest is the label
        item = first["item_ids"][0]
        c.label(item, "1", labeler="ann")
        c.label(item, "7", labeler="bob")
        rows = [r for r in c.history(include=["labels"])["labels"] if r["item_id"] == item]
        assert [(r["labeler"], r["label"]) for r in rows] == [("ann", "1"), ("bob", "7")]
        assert lab.labels().set_index("item_id").loc[item, "label"] == "7"
    finally:
        lab.stop()


def test_a_lease_expires_for_a_labeler_who_left(tmp_path, digits):
    lab = start(tmp_path, digits, mode="sync", lease_s=1.0)
    try:
        gone = lab.client.next_items(10, labeler="gone")["item_ids"]
        assert lab.client.next_items(10, labeler="here")["waiting"]
        time.sleep(1.2)
        assert lab.client.next_items(10, labeler="here")["item_ids"] == gone
    finally:
        lab.stop()


def test_async_rounds_keep_items_queued_and_the_newest_model_selects(tmp_path, digits):
    X, y = digits
    lab = start(tmp_path, digits, mode="async")
    try:
        c = lab.client
        waits, seen = 0, []
        for _ in range(50):  # 5 rounds' worth, one answer at a time, as a person labels
            reply = c.next_items(1, labeler="ann")
            while not reply["item_ids"]:
                waits += 1
                time.sleep(0.05)
                reply = c.next_items(1, labeler="ann")
            seen += reply["item_ids"]
            answer(c, reply, y, "ann")
            time.sleep(0.03)  # a fast person; no one answers 50 items in a blink
        assert len(set(seen)) == 50
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (len(lab.status()["rounds"]) < 5
                                               or lab.status()["n_pending"] == 0):
            time.sleep(0.1)
        status = lab.status()
        assert len(status["rounds"]) >= 5 and status["n_pending"] >= 10  # selected ahead
        rows = c.history(include=["labels"])["labels"]
        chosen = [r for r in rows if r["strategy"] == "margin"]
        assert chosen and all(r["model_n_labeled"] >= 10 for r in chosen)
        assert max(r["model_n_labeled"] for r in chosen) > 10  # newer heads chose later items
        item = c.next_items(1, labeler="ann")["item_ids"][0]
        advice = c.item_data([item])[0]
        assert advice["suggestion"]["label"] in CLASSES
        assert 0 < advice["suggestion"]["confidence"] <= 1
        assert advice["model"]["n_labeled"] >= 10 and advice["model"]["strategy"] == "margin"
        assert waits <= 3  # only the very first selection is waited for
    finally:
        lab.stop()


def test_sync_rounds_wait_for_the_round_and_the_budget_ends_it(tmp_path, digits):
    X, y = digits
    lab = start(tmp_path, digits, mode="sync", total=20)
    try:
        c = lab.client
        first = c.next_items(10, labeler="ann")
        assert first["rounds"] == [1] * 10 and lab.status()["n_pending"] == 10
        answer(c, first, y, "ann")
        second = lease(c, 10, "ann")  # round 2 once round 1's fit is done
        assert second["rounds"] == [2] * 10
        answer(c, second, y, "ann")
        with pytest.raises(RemoteError) as info:
            lease(c, 10, "ann")
        assert info.value.reason == "budget_spent"
    finally:
        lab.stop()


def test_pshea_prepares_the_next_round_while_this_one_is_labeled(tmp_path, digits):
    X, y = digits
    cfg = {"name": "auto-async", "classes": CLASSES,
           "active_learning": {"strategy": {"type": "auto",
                                            "candidates": ["margin", "entropy", "random"]},
                               "model": {"name": "flatten", "batch_size": 64}},
           "budget": {"total": 300, "per_round": 10, "initial": 10},
           "rounds": {"mode": "async"}, "cache_dir": str(tmp_path / "cache")}
    lab = Lab(cfg, tmp_path / "auto").start()
    try:
        lab.push(X[:400])
        lab.push(X[1000:1200], role="eval", labels=list(y[1000:1200]))
        c = lab.client
        waited, rounds_seen = [], set()
        for _ in range(60):  # the seed round and about 3 PSHEA rounds, one answer at a time
            t0 = time.perf_counter()
            reply = c.next_items(1, labeler="ann")
            while not reply["item_ids"]:
                time.sleep(0.02)
                reply = c.next_items(1, labeler="ann")
            waited.append(time.perf_counter() - t0)
            rounds_seen.update(reply["rounds"])
            answer(c, reply, y, "ann")
            time.sleep(0.05)  # a fast human
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and lab.status()["auto"]["round"] < 3:
            time.sleep(0.1)
        auto = lab.status()["auto"]
        assert auto["round"] >= 3 and max(rounds_seen) >= 4
        # after the seed round's first selection, no answer waited for a fit or a selection
        assert sum(w > 0.5 for w in waited[1:]) <= 1, sorted(waited)[-5:]
        hist = c.history(include=["labels", "rounds"])
        recorded = {}
        for r in hist["rounds"]:
            recorded.setdefault(r["round"], r["time"])
        assert {1, 2, 3} <= set(recorded)
        # the labeler answered round r+1's prepared picks before round r's fits were recorded
        early = [r for r in hist["labels"] if r["round"] - 1 in recorded
                 and r["time"] < recorded[r["round"] - 1]]
        assert early, "no pick of a next round was labeled while a round's fits ran"
    finally:
        lab.stop()


def test_an_item_left_out_closes_its_round_and_stays_out(tmp_path, digits):
    X, y = digits
    lab = start(tmp_path, digits, mode="sync")
    try:
        c = lab.client
        items = c.next_items(10, labeler="ann")["item_ids"]
        odd, rest = items[0], items[1:]
        c.leave_out(odd, labeler="ann")
        c.leave_out(odd, labeler="ann", undo=True)  # Undo: back in its round
        assert lab.status()["n_pending"] == 10
        c.leave_out(odd, labeler="ann")
        c.label_many(rest, [y[i] for i in rest], labeler="ann")
        deadline = time.monotonic() + 30
        while not lab.status()["rounds"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r["round"] for r in lab.status()["rounds"]] == [1]  # closed without it
        lab.stop()
        lab = Lab(session_dir=lab.session_dir).start()  # a restarted worker keeps it out
        later = []
        for _ in range(5):
            reply = lease(lab.client, 10, "bob")
            later += reply["item_ids"]
            lab.client.label_many(reply["item_ids"], [y[i] for i in reply["item_ids"]],
                                  labeler="bob")
        assert odd not in later and len(later) == 50
    finally:
        lab.stop()
