"""PSHEA in a real worker process (strategy.type: auto): human labels, events, journal, restart."""

from __future__ import annotations

import functools
import os
import signal

import numpy as np
import pytest

from alaas_lab.agent import Pshea
from alaas_lab.client import RemoteError
from alaas_lab.config import load_config
from alaas_lab.journal import Journal
from alaas_lab.server import Server
from alaas_lab.worker import PoolSession
from alaas_lab.worker.auto import SEED, STATE_EVENT

from . import conftest

CLASSES = [str(i) for i in range(10)]
CANDIDATES = ["random", "margin", "entropy", "least_confidence"]
#: PSHEA rounds fit a head per candidate: a longer default wait than the other tests'
wait_for = functools.partial(conftest.wait_for, timeout=60.0)


def auto_config(tmp_path, **params):
    return {
        "name": "auto",
        "active_learning": {
            "strategy": {"type": "auto", "candidates": CANDIDATES,
                         "params": {"max_rounds": 4, "min_delta": 0, **params}},
            "model": {"name": "flatten", "batch_size": 64},
        },
        "classes": CLASSES,
        "budget": {"total": 400, "per_round": 15, "initial": 20},
        "cache_dir": str(tmp_path / "cache"),
    }


def round_done(events, rnd):
    return [e for e in events if e.msg_type == "progress" and e.content.get("stage") == "pshea"
            and e.content.get("round") == rnd]


def label_round(client, events, y, budget=15):
    """Query a round, label every item the human is asked, wait for PSHEA's verdict."""
    sel = client.query(budget)
    client.label_many(sel.item_ids, [y[i] for i in sel.item_ids], labeler="human")
    wait_for(lambda: round_done(events, sel.round))
    return sel


@pytest.fixture
def server(tmp_path):
    servers = []

    def start(**params):
        srv = Server(config=auto_config(tmp_path, **params), session_dir=tmp_path / "session")
        servers.append(srv.start())
        return srv

    yield start
    for srv in servers:
        srv.kill()


@pytest.mark.slow
def test_pshea_runs_in_the_worker_with_human_labels(server, digits):
    X, y = digits
    srv = server()
    client = srv.client()
    events = []
    client.subscribe(events.append)
    client.push_data(X[:800])
    client.push_data(X[1200:], role="eval", labels=list(y[1200:]))

    seed = label_round(client, events, y)
    assert seed.round == 1 and seed.strategy == "auto" and len(seed) == 20
    asked = set(seed.item_ids)
    for rnd in (2, 3, 4, 5):
        survivors = client.status()["strategies"]
        sel = client.query(15)
        assert sel.round == rnd and not asked & set(sel.item_ids)  # never asked twice
        assert len(sel) <= 15 * len(survivors)
        asked |= set(sel.item_ids)
        client.label_many(sel.item_ids, [y[i] for i in sel.item_ids], labeler="human")
        wait_for(lambda rnd=rnd: round_done(events, rnd))

    status = client.status()
    auto = status["auto"]
    assert auto["stopped"] and auto["stop_reason"] == "max_rounds reached: 4 strategy rounds"
    assert status["strategies"] == [auto["winner"]] and len(status["eliminated"]) == 3
    assert sorted(auto["eliminated"].values()) == [2, 3, 4]
    assert set(auto["eliminated"]) == set(status["eliminated"])
    # label reuse: the human labeled each item once; the paper's count is larger
    assert auto["labels_unique"] == len(asked)
    with pytest.raises(RemoteError, match="PSHEA has stopped: max_rounds reached"):
        client.query(15)

    # events: a round_result per strategy and round with the next round's forecast
    results = [e.content for e in events if e.msg_type == "round_result"]
    assert {(r["round"], r["strategy"]) for r in results if r["round"] == 2} == {
        (2, s) for s in CANDIDATES}
    assert all(r["forecast"] is not None and 0 <= r["forecast"] <= 1 for r in results)
    assert all(r["predicted"] is not None for r in results if r["round"] >= 2)
    gone = [e.content for e in events if e.msg_type == "eliminated"]
    assert [g["round"] for g in gone] == [2, 3, 4]
    assert all(g["reason"].startswith("lowest forecast for round") for g in gone)
    assert all(0 <= g["predicted"] <= 1 for g in gone)
    srv.stop()

    with Journal(srv.session_dir / "session.sqlite") as journal:
        assert journal.eliminated() == auto["eliminated"]
        assert len(journal.rounds(strategy=auto["winner"])) == 5  # seed + 4 strategy rounds
        humans = [r for r in journal.label_history() if r.labeler == "human"]
        assert len(humans) == auto["labels_unique"]
        picked = [s for s in journal.selections() if s.strategy != SEED]
        assert auto["labels_sum"] == 20 + len(picked) > auto["labels_unique"]
        rows = {(f.round, f.strategy): f for f in journal.forecasts()}
        for g in gone:
            assert rows[(g["round"], g["strategy"])].eliminated
            assert rows[(g["round"] + 1, g["strategy"])].predicted == pytest.approx(
                g["predicted"])
        state = Pshea.from_dict(journal.events(STATE_EVENT)[-1].payload["controller"])
        assert state.winner == auto["winner"] and state.stopped


@pytest.mark.slow
def test_a_killed_worker_continues_the_same_pshea_run(server, digits):
    X, y = digits
    srv = server()
    client = srv.client()
    events = []
    client.subscribe(events.append)
    client.push_data(X[:800])
    client.push_data(X[1200:], role="eval", labels=list(y[1200:]))
    label_round(client, events, y)
    label_round(client, events, y)  # round 2: first elimination
    before = client.status()
    assert before["round"] == 2 and len(before["strategies"]) == 3

    os.kill(srv.pid(), signal.SIGKILL)  # between rounds
    wait_for(lambda: not srv.is_alive())
    srv.process = None
    srv.start()
    client = srv.client()
    after = client.status()
    assert after["strategies"] == before["strategies"] and after["round"] == 2
    assert after["auto"] == before["auto"]

    events = []
    client.subscribe(events.append)
    sel = client.query(15)
    assert sel.round == 3
    half = sel.item_ids[: len(sel) // 2]
    client.label_many(half, [y[i] for i in half], labeler="human")
    os.kill(srv.pid(), signal.SIGKILL)  # in the middle of round 3
    wait_for(lambda: not srv.is_alive())
    srv.process = None
    srv.start()
    client = srv.client()
    events = []
    client.subscribe(events.append)
    again = client.query(15)  # the same round: what is left to label
    assert again.round == 3 and again.item_ids == sel.item_ids[len(half):]
    client.label_many(again.item_ids, [y[i] for i in again.item_ids], labeler="human")
    wait_for(lambda: round_done(events, 3))
    label_round(client, events, y)
    label_round(client, events, y)
    auto = client.status()["auto"]
    assert auto["stopped"] and sorted(auto["eliminated"].values()) == [2, 3, 4]
    assert auto["eliminated"].items() >= before["auto"]["eliminated"].items()
    srv.stop()
    with Journal(srv.session_dir / "session.sqlite") as journal:
        state = Pshea.from_dict(journal.events(STATE_EVENT)[-1].payload["controller"])
        observed = sorted({d.round for d in state.decisions if d.kind == "observe"})
        assert observed == [1, 2, 3, 4, 5]  # one continuous run, no round twice
        assert state.spent_unique == len([r for r in journal.label_history()
                                           if r.labeler == "human"])


@pytest.mark.slow
def test_killed_between_saving_the_state_and_the_rows_the_round_is_completed(tmp_path, digits):
    X, y = digits
    srv = Server(config=auto_config(tmp_path), session_dir=tmp_path / "session")
    srv.start(env={"ALAAS_FAILPOINTS": "pshea_state=2"})  # dies right after round 2's state
    try:
        client = srv.client()
        events = []
        client.subscribe(events.append)
        client.push_data(X[:800])
        client.push_data(X[1200:], role="eval", labels=list(y[1200:]))
        label_round(client, events, y)
        sel = client.query(15)
        client.label_many(sel.item_ids, [y[i] for i in sel.item_ids], labeler="human")
        wait_for(lambda: not srv.is_alive())
        with Journal(srv.session_dir / "session.sqlite") as journal:
            assert {r.round for r in journal.rounds()} == {1}  # the rows never came
            saved = Pshea.from_dict(journal.events(STATE_EVENT)[-1].payload["controller"])
        assert saved.round == 3 and len(saved.eliminated) == 1
        srv.process = None
        srv.start()  # no fail point now: the worker writes round 2 from the saved state
        client = srv.client()
        rounds = wait_for(lambda: [r for r in client.status()["rounds"] if r["round"] == 2])
        assert {r["strategy"] for r in rounds} == set(CANDIDATES)
        auto = client.status()["auto"]
        assert auto["round"] == 3 and auto["eliminated"] == saved.eliminated
        events = []
        client.subscribe(events.append)
        label_round(client, events, y)  # and the run goes on with round 3
        with Journal(srv.session_dir / "session.sqlite") as journal:
            state = Pshea.from_dict(journal.events(STATE_EVENT)[-1].payload["controller"])
            assert journal.eliminated() == state.eliminated and len(state.eliminated) == 2
        assert [d.round for d in state.decisions if d.kind == "observe"].count(2) == 4
    finally:
        srv.kill()


# ---------------------------------------------------------------- in process


def session(tmp_path, digits, **params):
    from alaas_lab.pipeline import thread_plan
    from alaas_lab.worker.ingest import Ingestor

    X, y = digits
    events = []
    s = PoolSession(load_config(auto_config(tmp_path, **params)), tmp_path / "s",
                    emit=lambda kind, content: events.append((kind, content)))
    ingest = Ingestor(s, thread_plan(2))
    ingest.push_arrays(X[:600])
    ingest.push_arrays(X[1200:])
    s.mark_eval(np.arange(600, 600 + len(X) - 1200), list(y[1200:]))
    return s, events


def test_label_reuse_asks_the_human_only_for_new_items(tmp_path, digits):
    _, y = digits
    s, events = session(tmp_path, digits)
    seed = s.query(15)
    assert seed["selections"].keys() == {SEED} and len(seed["item_ids"]) == 20
    assert s.query(15)["resumed"] and s.query(15)["item_ids"] == seed["item_ids"]
    done = s.label_many(seed["item_ids"], [y[i] for i in seed["item_ids"]])
    s.finish_round(done[-1]["round_complete"])
    q = s.query(15)
    picks = q["selections"]
    assert picks.keys() == set(CANDIDATES) and all(len(v) == 15 for v in picks.values())
    union = sorted({i for v in picks.values() for i in v})
    assert sorted(q["item_ids"]) == union and len(union) < 60  # margin/LC/entropy overlap
    done = s.label_many(q["item_ids"], [y[i] for i in q["item_ids"]])
    result = s.finish_round(done[-1]["round_complete"])
    ctrl = s.policy.ctrl
    assert ctrl.spent_unique == 20 + len(union) and ctrl.spent_sum == 20 + 60
    assert result["eliminated"] == [next(iter(ctrl.eliminated))]
    # each candidate's head learned from its own d^l only
    for c in CANDIDATES:
        assert len(s.policy.members(c)) == 35
        assert s.journal.rounds(strategy=c)[-1].n_labeled == 35
    kinds = [k for k, _ in events]
    assert kinds.count("round_result") == 8 and kinds.count("eliminated") == 1
    with pytest.raises(Exception, match="picks the strategies itself"):
        s.query(15, strategy="margin")
    s.close()


def test_bad_auto_options_are_config_errors(tmp_path, digits):
    from alaas_lab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"does not take; it accepts"):
        session(tmp_path, digits, beta=3)
    with pytest.raises(ConfigError, match="eliminate must be one of"):
        session(tmp_path / "b", digits, eliminate="all")
