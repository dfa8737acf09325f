"""Widgets against a real worker subprocess: traits, front-end messages, prefetch, undo, restart.

The browser's side of the contract is played by sending the exact messages
``js/labeler.js`` sends (through ipywidgets' custom-message path) and
reading the traits it reads; ``tests/browser`` drives the real front-end.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from alaas_lab import Lab
from alaas_lab.errors import AlaasError, InputError
from alaas_lab.journal import Journal
from alaas_lab.protocol import Session
from alaas_lab.widgets import Dashboard, LabelingWidget, key_map
from alaas_lab.widgets.keys import DEFAULT_KEYS
from alaas_lab.widgets.labeler import N_SLOTS, UNDO_DEPTH

from .conftest import wait_for

CLASSES = [str(i) for i in range(10)]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")  # shared: later sessions hit the cache


def config(cache_dir, **extra):
    base = {"name": "widgets",
            "active_learning": {"strategy": {"type": "least_confidence"},
                                "model": {"name": "flatten", "batch_size": 64}},
            "data": {"kind": "array"}, "classes": CLASSES,
            "budget": {"total": 100, "per_round": 10, "initial": 10},
            "target_accuracy": 0.9, "cache_dir": str(cache_dir),
            "rounds": {"mode": "sync"}}  # the paper's loop: rounds in order (async: below)
    base.update(extra)
    return base


@pytest.fixture
def lab(tmp_path, cache_dir, digits):
    """A started Lab on a real worker with 300 digits in the pool and an evaluation set."""
    X, y = digits
    labs = []

    def make(**extra):
        lab = Lab(config(cache_dir, **extra), tmp_path / "session", labeler="tester").start()
        labs.append(lab)
        return lab

    lab = make()
    lab.push(X[:300])
    lab.push(X[1500:], role="eval", labels=list(y[1500:]))
    lab.make = make
    yield lab
    for one in labs:
        one.close_widgets()
        one.server.kill()


def event(msg_type, content):
    """An event as it comes off the wire (serialized and parsed by the protocol)."""
    wire = Session(b"")
    return wire.deserialize(wire.serialize(msg_type, content))


class Front:
    """Plays the browser: sends labeler.js's messages, numbered like it numbers them."""

    def __init__(self, widget: LabelingWidget) -> None:
        self.w = widget
        self.seq = widget.acked

    def send(self, **msg):
        self.seq += 1
        self.w._handle_custom_msg({**msg, "seq": self.seq}, [])
        return self.seq

    def shown(self):
        """The slot metadata labeler.js shows: the first slot in ``order``."""
        wait_for(lambda: self.w.order and self.w.slots[self.w.order[0]].get("loaded"))
        return self.w.slots[self.w.order[0]]

    def answer(self, y, label=None):
        item = self.shown()
        self.send(type="answer", item_id=item["item_id"],
                  label=label if label is not None else str(y[item["item_id"]]))
        return item["item_id"]


# ---------------------------------------------------------------- key map


def test_key_map_number_row_then_letters():
    bindings = key_map([f"c{i}" for i in range(40)])
    assert [b.key for b in bindings[:11]] == [*"1234567890", "A"]
    assert [b.code for b in bindings[:11]] == [*(f"Digit{d}" for d in "1234567890"), "KeyA"]
    assert bindings[35].key == "Z" and bindings[35].code == "KeyZ"
    assert bindings[36].key == "" and bindings[36].code == ""  # past 36: a button only
    assert len(DEFAULT_KEYS) == 36 and len(set(DEFAULT_KEYS)) == 36


def test_key_map_gives_single_character_classes_their_own_key():
    # digits: "3" answers class "3", not the class in the fourth place ("2")
    digits = key_map(CLASSES)
    assert [b.key for b in digits] == CLASSES
    assert [b.code for b in digits] == [f"Digit{d}" for d in CLASSES]
    assert [(b.key, b.code) for b in key_map(["b", "a", "7"])] == [
        ("B", "KeyB"), ("A", "KeyA"), ("7", "Digit7")]
    assert [b.label for b in key_map(["b", "a"])] == ["b", "a"]  # names keep their case
    # names that are not single digits or letters keep the positional map
    assert [b.key for b in key_map(["cat", "dog"])] == ["1", "2"]
    assert [b.key for b in key_map(["cat", "d"])] == ["1", "2"]
    assert [b.key for b in key_map(["é", "-", "ß"])] == ["1", "2", "3"]
    # names that share a key (letters are case-insensitive) keep it too
    assert [b.key for b in key_map(["a", "A", "b"])] == ["1", "2", "3"]
    # keys= still wins
    assert [b.key for b in key_map(CLASSES, keys=DEFAULT_KEYS[:10])] == [*"1234567890"]


def test_key_map_custom_keys_and_errors():
    assert [b.code for b in key_map(CLASSES, keys="0123456789")][:2] == ["Digit0", "Digit1"]
    assert key_map(["cat", "dog"], keys=["c", "D"])[0].key == "C"
    with pytest.raises(InputError, match=r"one key per class: 2 classes .* but 1 keys"):
        key_map(["cat", "dog"], keys="c")
    with pytest.raises(InputError, match=r"distinct; 'C' is given to both 'cat' and 'dog'"):
        key_map(["cat", "dog"], keys="cc")
    with pytest.raises(InputError, match=r"single digits or letters .*Space, Backspace and Enter"):
        key_map(["cat", "dog"], keys=["c", " "])


# ---------------------------------------------------------------- labeler


def test_labeler_traits_prefetch_and_slots(lab, digits):
    _, y = digits
    with pytest.raises(InputError, match=r"prefetch .* from 3 to 5; got 2"):
        lab.label(prefetch=2)
    with pytest.raises(InputError, match=r"n \(items per selection\) must be an int >= 1"):
        lab.label(0.5)
    w = lab.label()
    assert w.wait_ready(30) and w.state == "labeling"
    assert w.classes == CLASSES and w.key_labels == CLASSES  # digit classes: their own key
    assert w.key_codes == [b.code for b in key_map(CLASSES)]
    assert w.action_codes == {"skip": "Space", "undo": "Backspace", "accept": "Enter"}
    assert (w.n_slots, w.undo_depth) == (N_SLOTS, UNDO_DEPTH)  # the view reads them
    # the window: N_SLOTS items in order, the first prefetch+1 with content in bytes traits
    wait_for(lambda: sum(s.get("loaded", False) for s in w.slots) >= w.prefetch + 1)
    assert len(w.order) == N_SLOTS and sorted(w.order) == list(range(N_SLOTS))
    first = w.slots[w.order[0]]
    assert first["round"] == 1 and first["strategy"] == "random" and first["kind"] == "image"
    for slot in w.order[: w.prefetch + 1]:
        data = getattr(w, f"slot_{slot}")
        assert isinstance(data, bytes) and data.startswith(PNG)  # raw bytes, not base64
    assert w.progress["round_size"] == 10 and w.progress["budget_total"] == 100

    front = Front(w)
    before = {i: (dict(w.slots[i]), getattr(w, f"slot_{i}")) for i in range(N_SLOTS)}
    answered = front.answer(y)
    assert w.acked == front.seq  # the kernel acknowledged the message it applied
    assert answered not in w.queued and w.history[-1] == {
        "item_id": answered, "label": str(y[answered]), "action": "answer"}
    # only the freed slot changed: each answer ships one new item's bytes, not the queue
    changed = [i for i in range(N_SLOTS)
               if (w.slots[i], getattr(w, f"slot_{i}")) != before[i]]
    assert changed == [before_slot for before_slot in range(N_SLOTS)
                       if before[before_slot][0].get("item_id") == answered]
    # the queue stays topped up: at least prefetch items loaded behind the current one
    wait_for(lambda: sum(w.slots[s].get("loaded", False) for s in w.order) >= w.prefetch + 1)
    assert w.flush(10)
    with Journal(lab.session_dir / "session.sqlite") as journal:
        rows = [r for r in journal.label_history() if r.labeler == "tester"]
    assert [(r.item_id, r.label, r.round, r.strategy) for r in rows] == [
        (answered, str(y[answered]), 1, "random")]


def test_labels_reach_the_journal_and_the_next_round_is_queried(lab, digits):
    _, y = digits
    w = lab.label()
    front = Front(w)
    first_round = [front.answer(y) for _ in range(10)]
    # the selection is answered: the widget asks for round 2 while the worker retrains
    wait_for(lambda: w.progress["round"] == 2 and w.state == "labeling", timeout=60)
    nxt = front.shown()
    assert nxt["round"] == 2 and nxt["strategy"] == "least_confidence"
    assert not set(w.queued) & set(first_round)
    with Journal(lab.session_dir / "session.sqlite") as journal:
        mine = [r for r in journal.label_history() if r.labeler == "tester"]
        assert [r.item_id for r in mine] == first_round
        assert all(r.round == 1 and r.strategy == "random" for r in mine)
        assert [(r.round, r.strategy, r.n_labeled) for r in journal.rounds()] == [
            (1, "random", 10)]


def test_the_model_suggests_an_answer_and_enter_takes_it(lab, digits):
    _, y = digits
    w = lab.label()
    front = Front(w)
    first = front.shown()
    assert "suggestion" not in first and "model" not in first  # no head yet: random picks
    for _ in range(10):
        front.answer(y)
    wait_for(lambda: w.progress["round"] == 2 and w.state == "labeling", timeout=60)
    item = front.shown()
    (top1,) = [r["top1"] for r in lab.status()["rounds"]]
    # the head of round 1 chose it (10 labels) and guesses its class; nothing is answered
    assert item["model"] == {"round": 1, "n_labeled": 10, "top1": top1}
    guess = item["suggestion"]
    assert guess["label"] in CLASSES and 0 < guess["confidence"] <= 1
    assert w.flush(10) and len(lab.labels()) == 10
    front.send(type="accept", item_id=item["item_id"])  # Enter
    assert w.history[-1] == {"item_id": item["item_id"], "label": guess["label"],
                             "action": "answer"}
    assert w.flush(10)
    assert lab.labels().set_index("item_id")["label"][item["item_id"]] == guess["label"]


def test_undo_takes_back_the_last_ten_answers(lab, digits):
    _, y = digits
    w = lab.label()
    front = Front(w)
    answered = [front.answer(y, label="0") for _ in range(12)]  # deliberately wrong
    assert len(w.history) == UNDO_DEPTH
    for expected in reversed(answered[-UNDO_DEPTH:]):
        front.send(type="undo")
        shown = front.shown()
        assert shown["item_id"] == expected and shown["relabel"]
    assert w.history == []
    front.send(type="undo")
    assert "nothing to undo" in w.message and w.acked == front.seq
    # answer them again, correctly
    for expected in answered[-UNDO_DEPTH:]:
        assert front.answer(y) == expected
    assert w.flush(10)
    with Journal(lab.session_dir / "session.sqlite") as journal:
        history = journal.label_history()
        labels = journal.labels()
    retracted = [r.item_id for r in history if r.label is None]
    assert retracted == list(reversed(answered[-UNDO_DEPTH:]))
    assert labels[answered[0]] == "0" and labels[answered[1]] == "0"  # out of the window
    assert all(labels[i] == str(y[i]) for i in answered[2:])


def test_skip_then_undo_takes_back_the_skip_not_the_answer_before_it(lab, digits):
    _, y = digits
    w = lab.label()
    front = Front(w)
    answered = front.answer(y)
    skipped = front.shown()["item_id"]
    front.send(type="skip", item_id=skipped)
    assert w.queued[-1] == skipped and w.history[-1] == {"item_id": skipped, "label": None,
                                                         "action": "skip"}
    front.send(type="undo")
    shown = front.shown()
    assert shown["item_id"] == skipped and shown["skips"] == 0 and not shown["relabel"]
    assert w.history == [{"item_id": answered, "label": str(y[answered]), "action": "answer"}]
    assert w.flush(10)
    with Journal(lab.session_dir / "session.sqlite") as journal:  # no retraction went out
        assert [(r.item_id, r.label) for r in journal.label_history()
                if r.labeler == "tester"] == [(answered, str(y[answered]))]


def test_an_item_skipped_twice_is_left_out_and_stays_out_when_the_cell_is_rerun(lab, digits):
    _, y = digits
    w = lab.label()
    front = Front(w)
    skipped = front.shown()["item_id"]
    front.send(type="skip", item_id=skipped)
    assert w.queued[-1] == skipped and "comes back" in w.message
    for _ in range(9):
        front.answer(y)
    again = front.shown()
    assert again["item_id"] == skipped and again["skips"] == 1
    front.send(type="skip", item_id=skipped)  # again, with nothing else left
    assert w.queue.left_out == [skipped] and skipped not in w.queued
    wait_for(lambda: w.progress["round"] == 2, timeout=60)
    with Journal(lab.session_dir / "session.sqlite") as journal:
        assert [r.round for r in journal.rounds()] == [1]  # the round was fitted without it
        assert skipped not in journal.labels()
    round2 = list(w.queued)
    rerun = lab.label()  # %alaas label again: only the worker's history tells what happened
    assert rerun.wait_ready(30)
    assert skipped not in rerun.queued and rerun.queue.left_out == [skipped]
    assert rerun.queued == round2 and "skipped twice stay left out" in rerun.message


def test_with_lookahead_the_next_selection_comes_before_this_one_is_answered(
        tmp_path, cache_dir, digits):
    X, y = digits
    lab = Lab(config(cache_dir, rounds={"mode": "async"}), tmp_path / "async").start()
    lab.push(X[:300])
    w = LabelingWidget(connection_file=lab.connection_file, n=10, labeler="tester")
    try:
        assert w.wait_ready(60) and w.queue.lookahead and w.queue.leases  # from its hello
        front = Front(w)
        for _ in range(7):  # 3 left, fewer than prefetch (4): the queue asks for round 2
            front.answer(y)
        wait_for(lambda: len(w.queued) > 3, timeout=60)
        rounds = [e.round for e in w.queue.items]
        assert rounds[:3] == [1, 1, 1] and set(rounds[3:]) == {2}
        assert w.progress["round_done"] == 7
    finally:
        w.close()
        lab.stop()


@pytest.fixture
def stalled_url():
    """``.url`` of a server that answers nothing (then 404) until ``.release()``."""
    gate = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            gate.wait(60)
            self.send_error(404)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    yield SimpleNamespace(url=f"http://127.0.0.1:{server.server_address[1]}/slow.png",
                          release=gate.set)
    gate.set()
    server.shutdown()
    server.server_close()


def test_the_labeler_waits_for_a_push_in_flight_instead_of_finishing(tmp_path, cache_dir,
                                                                    digits, stalled_url):
    # lab.push(X, wait=False); lab.label(): the pool is still filling, the session is not done
    X, y = digits
    lab = Lab(config(cache_dir), tmp_path / "filling", labeler="tester").start()
    try:
        lab.push(X[1500:], role="eval", labels=list(y[1500:]))
        w = lab.label()
        wait_for(lambda: "nothing pushed yet" in w.message)  # an empty pool: not done either
        assert w.state == "waiting"
        lab.push([stalled_url.url, stalled_url.url + "?2"], wait=False)  # a push that hangs ...
        lab.push(X[:300], wait=False)  # ... and the pool's push queued behind it
        wait_for(lambda: "job(s) queued" in w.message)
        assert w.message.startswith("waiting for the pool: ") and "embedded" in w.message
        time.sleep(1.5)  # the widget asks again each second; it keeps waiting
        assert w.state == "waiting" and "waiting for the pool" in w.message
        stalled_url.release()
        wait_for(lambda: w.state == "labeling", timeout=60)  # the items arrived: label them
        item = w.current
        assert item["round"] == 1 and item["strategy"] == "random"
        w.answer(str(y[item["item_id"]]))
        assert w.flush(10) and w.progress["round_size"] == 10
        assert lab.labels()["item_id"].tolist() == [item["item_id"]]
    finally:
        lab.close_widgets()
        lab.server.kill()


def test_a_label_never_waits_on_the_worker_and_errors_show(lab, digits):
    _, y = digits
    w = lab.label()
    front = Front(w)
    front.shown()
    pid = lab.server.pid()
    os.kill(pid, signal.SIGSTOP)  # the worker hangs
    try:
        t0 = time.perf_counter()
        ids = [front.answer(y) for _ in range(3)]  # items already queued keep coming
        assert time.perf_counter() - t0 < 1.0
        assert w.queued[0] not in ids and len(w.history) == 3
        wait_for(lambda: "could not save the answer" in w.error, timeout=20)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert w.flush(30)  # nothing lost: the answers go out in order once it is back
    wait_for(lambda: w.error == "", timeout=10)
    with Journal(lab.session_dir / "session.sqlite") as journal:
        assert [r.item_id for r in journal.label_history() if r.labeler == "tester"][:3] == ids


def test_a_new_labeler_stops_the_old_one_after_sending_its_answers(lab, digits):
    _, y = digits
    old = lab.label()
    front = Front(old)
    given = [front.answer(y) for _ in range(3)]
    new = lab.label()  # e.g. %alaas label run again
    assert old.state == "stopped" and "newer labeling widget" in old.message
    front.send(type="answer", item_id=old.queued[0], label="1")  # a key press on the old view
    assert "stopped" in old.message and len(old.history) == 3
    assert new.wait_ready(30) and new.state == "labeling"
    assert not set(new.queued) & set(given) and len(new.queued) == 7  # the round's rest
    with Journal(lab.session_dir / "session.sqlite") as journal:
        assert [r.item_id for r in journal.label_history() if r.labeler == "tester"] == given


def test_restart_resumes_pending_items_undo_and_curves(lab, digits):
    _, y = digits
    w = lab.label()
    front = Front(w)
    for _ in range(10):
        front.answer(y)
    wait_for(lambda: w.progress["round"] == 2 and w.state == "labeling", timeout=60)
    done = [front.answer(y) for _ in range(4)]
    pending = list(w.queued)
    assert w.flush(10)
    lab.close_widgets()
    lab.server.kill()  # the worker dies; then the kernel restarts: a fresh Lab
    again = lab.make()
    assert again.how == "restarted"
    w2 = again.label()
    assert w2.wait_ready(30)
    assert w2.queued[: len(pending)] == pending  # the rest of round 2 comes first
    assert w2.progress["round"] == 2 and w2.progress["round_done"] == 4
    assert [h["item_id"] for h in w2.history][-4:] == done  # Undo reaches back
    Front(w2).send(type="undo")
    assert Front(w2).shown()["item_id"] == done[-1]
    dash = again.dashboard(poll=0)
    assert [(r["round"], r["strategy"]) for r in dash.results] == [(1, "random")]
    assert dash.strategies == ["least_confidence"] and dash.seed == "random"  # from the journal
    assert dash.budget["labeled"] == 13 and dash.target == 0.9

    # a second Lab in another "kernel" attaches to the live worker instead
    third = Lab(session_dir=again.session_dir).start()
    assert third.how == "attached" and third.status()["pid"] == again.status()["pid"]


# ---------------------------------------------------------------- dashboard


def test_dashboard_follows_round_results_and_loads_pshea_history(lab, digits):
    _, y = digits
    dash = lab.dashboard(poll=0.2)
    assert dash.state == "live" and dash.results == [] and dash.budget["total"] == 100
    w = lab.label()
    front = Front(w)
    for _ in range(10):
        front.answer(y)
    wait_for(lambda: dash.results, timeout=60)  # a round_result event
    (r1,) = dash.results
    assert r1["round"] == 1 and r1["strategy"] == "random" and 0 < r1["top1"] <= 1
    wait_for(lambda: dash.budget["labeled"] == 10)  # the status poll
    # the seed round (random: no model yet) is not a second strategy racing
    assert dash.strategies == dash.active == ["least_confidence"] and dash.seed == "random"

    # PSHEA's records (forecasts, an elimination) in the journal come back with the history
    with Journal(lab.session_dir / "session.sqlite") as journal:
        journal.record_round(1, "margin", n_labeled=10, top1=0.5)
        journal.record_forecast(2, "margin", predicted=0.55)
        journal.record_forecast(2, "entropy", predicted=0.41, eliminated=True,
                                reason="lowest forecast")
    fresh = Dashboard(connection_file=lab.connection_file, poll=0)
    try:
        assert {(r["round"], r["strategy"]) for r in fresh.results} == {(1, "random"),
                                                                       (1, "margin")}
        assert fresh.forecasts == [{"round": 2, "strategy": "entropy", "predicted": 0.41},
                                   {"round": 2, "strategy": "margin", "predicted": 0.55}]
        assert fresh.eliminations == [{"round": 2, "strategy": "entropy", "predicted": 0.41,
                                       "reason": "lowest forecast"}]
        # events as PSHEA publishes them (the worker's auto mode is not in this tree yet)
        fresh.on_event(event("round_result", {"round": 2, "strategy": "margin",
                                              "n_labeled": 20, "top1": 0.6, "forecast": 0.7}))
        fresh.on_event(event("eliminated", {"round": 2, "strategy": "margin",
                                            "predicted": 0.7, "reason": "r"}))
        assert {"round": 3, "strategy": "margin", "predicted": 0.7} in fresh.forecasts
        assert "margin" not in fresh.active
        assert {e["strategy"] for e in fresh.eliminations} == {"entropy", "margin"}
    finally:
        fresh.close()


def test_pshea_rounds_drive_the_labeler_and_dashboard(tmp_path, cache_dir, digits):
    pytest.importorskip("alaas_lab.worker.auto")  # PSHEA's worker side
    X, y = digits
    candidates = ["random", "margin", "entropy"]
    cfg = config(cache_dir, active_learning={
        "strategy": {"type": "auto", "candidates": candidates},
        "model": {"name": "flatten", "batch_size": 64}}, target_accuracy=0.99)
    lab = Lab(cfg, tmp_path / "auto", labeler="tester").start()
    try:
        lab.push(X[:400])
        lab.push(X[1500:], role="eval", labels=list(y[1500:]))
        w, dash = lab.label(), lab.dashboard(poll=0.2)
        assert dash.strategies == candidates  # known before any round, from status
        front = Front(w)
        asked = {}
        while len({r["round"] for r in dash.results}) < 3:
            item = front.shown()
            asked[item["item_id"]] = (item["round"], item["strategy"])
            front.answer(y)
        # each item names who asked for it: the seed set, then the candidates' picks
        assert {s for r, s in asked.values() if r == 1} == {"auto:seed"}
        later = {name for r, s in asked.values() if r == 2 for name in s.split(", ")}
        assert later == set(candidates)
        wait_for(lambda: dash.eliminations and dash.outcome.get("labels_sum"))
        assert dash.seed == ""  # random races here: its rounds are no seed

        def by_round():
            rounds: dict[int, set[str]] = {}
            for r in dash.results:
                rounds.setdefault(r["round"], set()).add(r["strategy"])
            return rounds

        gone = {e["strategy"] for e in dash.eliminations if e["round"] == 2}
        assert len(gone) == 1  # Algorithm 1: one per round, none after the seed round
        wait_for(lambda: by_round()[3] == set(candidates) - gone)
        assert by_round()[1] == by_round()[2] == set(candidates)
        (out, *_) = dash.eliminations
        assert out["round"] == 2 and out["reason"].startswith("lowest forecast for round 3")
        mine = {(f["round"], f["strategy"]): f["predicted"] for f in dash.forecasts}
        assert mine[(3, out["strategy"])] == pytest.approx(out["predicted"])
        assert out["strategy"] not in dash.active
        # a restarted kernel's dashboard reads the same race from the journal
        again = Dashboard(connection_file=lab.connection_file, poll=0)
        try:
            assert again.results == dash.results and again.eliminations[0]["strategy"] == \
                out["strategy"]
            assert again.eliminations[0]["predicted"] == pytest.approx(out["predicted"])
        finally:
            again.close()
    finally:
        lab.close_widgets()
        lab.server.kill()


# ---------------------------------------------------------------- monitor


def write_pngs(images, folder):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        path = folder / f"{i:04d}.png"
        Image.fromarray((img * 16).clip(0, 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_monitor_shows_stages_cache_hits_and_quarantine(tmp_path, cache_dir, digits):
    X, _ = digits
    paths = write_pngs(X[:120], tmp_path / "pool")
    (tmp_path / "pool" / "0005.png").write_bytes(b"not a png")
    lab = Lab(config(cache_dir, data={"kind": "image", "image_mode": "L"}),
              tmp_path / "s1").start()
    try:
        mon = lab.monitor()
        assert mon.state == "idle" and mon.quarantined == []
        lab.push(str(tmp_path / "pool" / "*.png"))
        wait_for(lambda: mon.totals.get("pushes") == 1 and mon.quarantined)
        assert [s["name"] for s in mon.stages] == ["fetch", "decode", "embed", "store"]
        assert mon.stages[0]["items_out"] == 120 and mon.push["embedded"] == 119
        (q,) = mon.quarantined
        assert q["uri"].endswith("0005.png") and q["stage"] == "decode" and q["reason"]
        assert mon.totals["n_quarantined"] == 1 and mon.totals["cache_hits"] == 0
    finally:
        lab.stop()
    # a new session on the same cache: every good item is a hit
    lab2 = Lab(config(cache_dir, data={"kind": "image", "image_mode": "L"}),
               tmp_path / "s2").start()
    try:
        mon2 = lab2.monitor()
        lab2.push(paths)
        wait_for(lambda: mon2.totals.get("pushes") == 1)
        assert mon2.totals["cache_hits"] == 119 and mon2.totals["embedded"] == 0
        assert mon2.push["cache_hits"] == 119 and mon2.totals["n_items"] == 120
        late = lab2.monitor()  # made after the push: the quarantine comes from the journal
        (q,) = late.quarantined
        assert q["uri"].endswith("0005.png") and q["stage"] == "decode"
    finally:
        lab2.stop()


# ---------------------------------------------------------------- export


def test_export_and_labels_table(lab, digits, tmp_path):
    _, y = digits
    w = lab.label()
    front = Front(w)
    ids = [front.answer(y) for _ in range(5)]
    front.send(type="undo")
    front.answer(y, label="7")
    assert w.flush(10)
    table = lab.labels()
    assert list(table.columns) == ["item_id", "uri", "label", "labeler", "time", "round",
                                   "strategy", "row_id", "model_round", "model_n_labeled"]
    assert table["model_round"].isna().all()  # round 1: random picks, no model chose them
    assert table["item_id"].tolist() == ids
    assert table["label"].tolist() == [str(y[i]) for i in ids[:4]] + ["7"]
    assert set(table["labeler"]) == {"tester"} and set(table["strategy"]) == {"random"}
    assert table["uri"].str.startswith("array:").all() and (table["round"] == 1).all()
    assert len(lab.labels(include_eval=True)) == 5 + 297
    assert lab.labels(history=True)["label"].isna().sum() == 1  # the retraction

    out = lab.export(tmp_path / "labels.csv")
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert [int(r["item_id"]) for r in rows] == ids and rows[-1]["label"] == "7"
    assert rows[0]["time"].endswith("+00:00") and rows[0]["strategy"] == "random"
    lines = (lab.export(tmp_path / "labels.jsonl", history=True)).read_text().splitlines()
    assert [json.loads(x)["label"] for x in lines][-2:] == [None, "7"]
    try:
        import pyarrow.parquet as pq
    except ImportError:
        with pytest.raises(AlaasError, match="pip install pyarrow"):
            lab.export(tmp_path / "labels.parquet")
    else:
        back = pq.read_table(lab.export(tmp_path / "labels.parquet")).to_pylist()
        assert [r["item_id"] for r in back] == ids
    with pytest.raises(AlaasError, match=r"must end in \.csv, \.jsonl or \.parquet"):
        lab.export(tmp_path / "labels.xlsx")


def test_pshea_async_the_labeler_never_waits_across_round_ends(tmp_path, cache_dir, digits):
    """Issue 13: three PSHEA round boundaries, one answer at a time; the next item is there."""
    X, y = digits
    cfg = config(cache_dir, rounds={"mode": "async"},
                 active_learning={"strategy": {"type": "auto",
                                               "candidates": ["margin", "entropy", "random"]},
                                  "model": {"name": "flatten", "batch_size": 64}},
                 budget={"total": 300, "per_round": 10, "initial": 10})
    lab = Lab(cfg, tmp_path / "auto-async", labeler="tester").start()
    lab.push(X[:400])
    lab.push(X[1500:], role="eval", labels=list(y[1500:]))
    w = LabelingWidget(connection_file=lab.connection_file, n=10, labeler="tester")
    try:
        front = Front(w)
        front.shown()
        gaps = []
        for _ in range(75):  # the seed round, two PSHEA rounds of up to 30, into a third
            front.answer(y)
            t0 = time.perf_counter()
            wait_for(lambda: w.order and w.slots[w.order[0]].get("loaded"), timeout=60)
            gaps.append(time.perf_counter() - t0)
            time.sleep(0.05)
        wait_for(lambda: lab.status()["auto"]["round"] >= 3, timeout=60)
        assert max(gaps) < 0.5, sorted(gaps)[-5:]  # never an empty labeler
        assert len({e["round"] for e in lab.client.history(include=["rounds"])["rounds"]}) >= 3
    finally:
        w.close()
        lab.stop()
