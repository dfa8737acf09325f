"""Every reply and event a real worker sends matches its declared schema, key for key."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alaas_lab import Lab
from alaas_lab.errors import REASONS, RemoteError
from alaas_lab.protocol import MESSAGE_KINDS
from alaas_lab.protocol.messages import check_content, undeclared

CLASSES = [str(i) for i in range(10)]


def config(tmp, strategy="least_confidence"):
    return {"name": "schemas",
            "active_learning": {"strategy": {"type": strategy},
                                "model": {"name": "flatten", "batch_size": 64}},
            "classes": CLASSES, "budget": {"total": 60, "per_round": 10, "initial": 10},
            "evaluation": {"holdout": 0.0},
            "cache_dir": str(tmp / "cache")}


class Recorder:
    """Every reply (through ``Client.request``) and event a session produced."""

    def __init__(self, lab: Lab) -> None:
        self.seen: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        client = lab.client
        request = client.request

        def recording(msg_type, content=None, **kw):
            try:
                reply = request(msg_type, content, **kw)
            except RemoteError as exc:
                self.add("error", exc.content)
                raise
            self.add(f"{msg_type}_reply", reply)
            return reply

        client.request = recording
        self.stop = client.subscribe(lambda m: self.add(m.msg_type, m.content))

    def add(self, msg_type: str, content: dict) -> None:
        with self.lock:
            self.seen.append((msg_type, content))


def drive(lab: Lab, digits) -> Recorder:
    X, y = digits
    rec = Recorder(lab)
    lab.push(X[:300])
    lab.push(X[300:400], role="eval", labels=y[300:400])
    lab.client.push_data(X[400:420], asynchronous=True)
    for _ in range(3):
        sel = lab.client.query(10)
        lab.client.label_many(sel.item_ids, [str(y[i]) for i in sel.item_ids])
        time.sleep(0.3)
    lab.client.fit()
    lab.client.item_data(sel.item_ids[:2])
    try:  # PSHEA may have stopped (budget): then an error reply, also checked
        leased = lab.client.next_items(2, labeler="schema")
        if leased["item_ids"]:
            lab.client.leave_out(leased["item_ids"][0], labeler="schema")
    except RemoteError as exc:
        assert exc.reason in ("session_finished", "budget_spent", "over_budget")
    lab.client.history()
    lab.status()
    lab.client.hello()
    for bad in (lambda: lab.client.label(10_000, "3"),
                lambda: lab.client.label(sel.item_ids[0], "seven")):
        with pytest.raises(RemoteError):
            bad()
    time.sleep(0.5)
    rec.stop()
    return rec


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.images.astype(np.float32), d.target


@pytest.mark.parametrize("strategy", ["least_confidence", "auto"])
def test_every_message_matches_its_schema(tmp_path, digits, strategy):
    lab = Lab(config(tmp_path, strategy), tmp_path / "s").start()
    try:
        rec = drive(lab, digits)
    finally:
        lab.stop()
    types = {t for t, _ in rec.seen}
    assert {"push_data_reply", "query_reply", "label_many_reply", "status_reply", "error",
            "progress", "push_done", "round_result", "item_data_reply", "history_reply"} <= types
    problems = []
    for msg_type, content in rec.seen:
        assert msg_type in MESSAGE_KINDS, msg_type
        if problem := check_content(msg_type, content):
            problems.append(problem)
        if extra := undeclared(msg_type, content):
            problems.append(f"{msg_type} sends undeclared {extra}")
        if msg_type == "error":
            assert content["reason"] in REASONS
    assert not sorted(set(problems)), "\n".join(sorted(set(problems)))


def test_docs_list_every_message_type():
    import json
    import subprocess
    import sys
    from pathlib import Path

    # the built-in types, from a fresh process (other tests register their own)
    code = ("import json; from alaas_lab.protocol import MESSAGE_KINDS as K; "
            "print(json.dumps(list(K)))")
    names = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                      text=True, check=True).stdout)
    text = (Path(__file__).resolve().parents[1] / "docs" / "protocol.md").read_text()
    assert len(names) > 20 and [m for m in names if f"`{m}`" not in text] == []
