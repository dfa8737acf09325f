"""History over the wire: the worker reads its journal, the kernel asks (``history``).

The journal-level tests drive :func:`alaas_lab.worker.history.read_history` on a
journal written by hand; the others run real workers, the last one started with
``alaas-lab serve`` in a session directory the kernel-side process cannot read.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.datasets import load_digits

from alaas_lab.client import Client, RemoteError
from alaas_lab.errors import InputError
from alaas_lab.journal import Journal
from alaas_lab.lab import LABEL_COLUMNS
from alaas_lab.protocol.messages import HISTORY_SECTIONS
from alaas_lab.server import Server
from alaas_lab.worker.history import HistoryQuery, read_history

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("alaas-lab")
CLASSES = [str(i) for i in range(10)]
NOBODY = 65534


def history(journal: Journal, **content) -> dict:
    return read_history(journal, HistoryQuery.from_content(content))


@pytest.fixture
def journal(tmp_path):
    """Round 1 (random seed) labeled and fitted, round 2 (margin) half labeled, an eval set."""
    j = Journal(tmp_path / "session.sqlite", synchronous="NORMAL")
    j.add_items([f"u{i}" for i in range(10)])
    j.record_selection(1, "random", [0, 1])
    j.record_label(0, "cat", labeler="ana", round=1, strategy="random")
    j.record_label(1, "dog", labeler="bo", round=1, strategy="random")
    j.record_round(1, "random", n_labeled=2, top1=0.5)
    j.record_selection(2, "margin", [2, 3, 4])
    j.record_label(2, "cat", labeler="ana", round=2, strategy="margin")
    j.record_labels([8, 9], ["cat", "dog"], labeler="evaluation-set")
    j.record_event("eval_items", {"item_ids": [8, 9]})
    j.quarantine(7, "decode: truncated PNG")
    yield j
    j.close()


# ---------------------------------------------------------------- journal level


def test_every_section_as_plain_rows(journal):
    reply = history(journal)
    assert set(reply) == {*HISTORY_SECTIONS, "cursor", "more"} and reply["more"] is False
    labels = reply["labels"]
    assert [tuple(r) for r in labels] == [LABEL_COLUMNS] * 3  # the eval set's are left out
    assert [(r["item_id"], r["uri"], r["label"], r["labeler"]) for r in labels] == [
        (0, "u0", "cat", "ana"), (1, "u1", "dog", "bo"), (2, "u2", "cat", "ana")]
    assert labels[0]["time"].endswith("+00:00") and "T" in labels[0]["time"]
    # which model chose the item: none for the random seed, round 1's head for margin
    assert [(r["round"], r["strategy"], r["model_round"], r["model_n_labeled"])
            for r in labels] == [(1, "random", None, None), (1, "random", None, None),
                                 (2, "margin", 1, 2)]
    assert reply["rounds"] == [{"round": 1, "strategy": "random", "n_labeled": 2, "top1": 0.5,
                                "top5": None, "time": reply["rounds"][0]["time"]}]
    assert reply["pending"] == [{"item_id": 3, "round": 2, "strategy": "margin"},
                                {"item_id": 4, "round": 2, "strategy": "margin"}]
    assert reply["quarantine"] == [{"item_id": 7, "uri": "u7", "stage": "decode",
                                    "reason": "truncated PNG"}]
    assert len(reply["selections"]) == 5 and reply["forecasts"] == reply["eliminations"] == []
    json.dumps(reply, allow_nan=False)  # plain JSON: no NaN, no objects


def test_cursor_gives_each_label_row_once_and_unchanged_sections_not_again(journal):
    first = history(journal)
    again = history(journal, since=first["cursor"])
    assert again["labels"] == [] and set(again) == {"labels", "cursor", "more"}
    assert again["cursor"] == first["cursor"]
    row = journal.record_label(3, "dog", labeler="bo")  # pending changes with it
    journal.record_label(0, None, labeler="ana")  # a retraction is a row too
    nxt = history(journal, since=again["cursor"])
    assert [(r["row_id"], r["item_id"], r["label"]) for r in nxt["labels"]] == [
        (row, 3, "dog"), (row + 1, 0, None)]
    assert [p["item_id"] for p in nxt["pending"]] == [0, 4] and "rounds" in nxt  # 0: undone
    assert history(journal, since=nxt["cursor"])["labels"] == []
    # an int cursor is a label row: what comes after it, every other section whole
    assert [r["row_id"] for r in history(journal, since=row, include=["labels"])["labels"]] \
        == [row + 1]


def test_limit_pages_and_current_labels(journal):
    journal.record_label(0, "dog", labeler="bo")  # a changed answer
    journal.record_label(1, None, labeler="bo")  # a retraction
    rows, cursor, pages = [], 0, 0
    while True:
        reply = history(journal, since=cursor, include=["labels"], limit=2)
        rows += reply["labels"]
        cursor, pages = reply["cursor"], pages + 1
        if not reply["more"]:
            break
    assert pages == 3 and [r["item_id"] for r in rows] == [0, 1, 2, 0, 1]
    assert len({r["row_id"] for r in rows}) == len(rows)
    current = history(journal, include=["labels"], current=True)["labels"]
    assert [(r["item_id"], r["label"]) for r in current] == [(2, "cat"), (0, "dog")]
    mine = history(journal, include=["labels"], current=True, labeler="ana")["labels"]
    assert [r["item_id"] for r in mine] == [2]  # ana's "cat" for item 0 no longer stands
    evals = history(journal, include=["labels"], current=True, include_eval=True)["labels"]
    assert {r["item_id"] for r in evals} == {0, 2, 8, 9}


def test_pshea_rows_name_each_candidates_head_and_eliminations(journal):
    journal.record_round(1, "margin", n_labeled=2, top1=0.4)
    journal.record_round(1, "entropy", n_labeled=3, top1=0.45)
    journal.record_selection(2, "entropy", [3, 5])
    journal.record_forecast(2, "margin", predicted=0.55)
    journal.record_forecast(1, "random", eliminated=True, reason="lowest forecast")
    journal.record_forecast(2, "random", predicted=0.3)
    reply = history(journal, include=["labels", "pending", "selections", "forecasts",
                                      "eliminations"], round=2)
    assert reply["labels"][-1]["model_n_labeled"] == 2  # margin's own head, not entropy's
    assert reply["pending"][0] == {"item_id": 3, "round": 2, "strategy": "entropy, margin"}
    assert {r["item_id"]: r["strategy"] for r in reply["selections"]} == {
        2: "margin", 3: "entropy, margin", 4: "margin", 5: "entropy"}
    assert reply["eliminations"] == [{"round": 1, "strategy": "random", "predicted": 0.3,
                                      "reason": "lowest forecast"}]
    assert {(f["round"], f["strategy"]) for f in reply["forecasts"]} == {(2, "margin"),
                                                                          (2, "random")}


@pytest.mark.parametrize(("content", "match"), [
    ({"include": ["labels", "lables"]}, r"unknown section\(s\) \['lables'\]"),
    ({"since": "abc"}, "since= must be 0, a label row id or a reply's cursor"),
    ({"since": -1}, "since= must be 0"),
    ({"limit": 0}, r"limit= must be an int >= 1"),
    ({"round": True}, r"round= must be an int >= 0"),
])
def test_bad_requests_say_which_field(content, match):
    with pytest.raises(InputError, match=match):
        HistoryQuery.from_content(content)


def test_kernel_side_modules_never_import_the_journal():
    """The client, widgets and Lab talk to the worker; they read none of its files."""
    kernel = [ROOT / "alaas_lab" / name
              for name in ("client.py", "lab.py", "magics.py", "server.py")]
    kernel += sorted((ROOT / "alaas_lab" / "widgets").glob("*.py"))
    for path in kernel:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module or ''}.{a.name}" for a in node.names]
                names.append(node.module or "")
                assert not any(n.split(".")[-1] in ("journal", "history", "_history")
                               or "worker" in n for n in names), (path.name, names)
    code = ("import sys, alaas_lab.client, alaas_lab.widgets, alaas_lab.lab, alaas_lab.magics, "
            "alaas_lab.server; "
            "print('alaas_lab.journal' in sys.modules, 'alaas_lab.worker' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


# ---------------------------------------------------------------- over the wire


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.images.astype(np.float32), d.target.astype(str)


def make_config(tmp_path: Path) -> dict:
    return {"name": "history", "classes": CLASSES, "data": {"kind": "array"},
            "active_learning": {"strategy": {"type": "least_confidence"},
                                "model": {"name": "flatten", "batch_size": 64}},
            "budget": {"total": 100, "per_round": 5, "initial": 5},
            "cache_dir": str(tmp_path / "cache")}


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def two_rounds(client: Client, y: np.ndarray) -> list[int]:
    """Label round 1 (5 random picks), then 2 of round 2's 5; return the labeled ids."""
    first = client.query(5)
    client.label_many(first.item_ids, [y[i] for i in first.item_ids], labeler="kernel")
    wait_for(lambda: client.status()["rounds"])  # the round was fitted
    second = client.query(5)
    for i in second.item_ids[:2]:
        client.label(i, y[i], labeler="kernel")
    return first.item_ids + second.item_ids[:2]


def test_cursor_over_the_wire_and_hello_says_resumed(tmp_path, digits):
    X, y = digits
    srv = Server(config=make_config(tmp_path), session_dir=tmp_path / "s").start()
    try:
        client = srv.client()
        assert client.hello()["resumed"] is False
        client.push_data(X[:60])
        client.push_data(X[100:160], role="eval", labels=list(y[100:160]))
        first = client.history()
        assert first["labels"] == [] and first["rounds"] == [] and not first["more"]
        labeled = two_rounds(client, y)
        nxt = client.history(first["cursor"])
        assert [r["item_id"] for r in nxt["labels"]] == labeled  # each once, in order
        assert [r["model_round"] for r in nxt["labels"]] == [None] * 5 + [1, 1]
        assert [(r["round"], r["strategy"]) for r in nxt["rounds"]] == [(1, "random")]
        assert len(nxt["pending"]) == 3
        tail = client.history(nxt["cursor"], ["labels", "rounds"])
        assert tail["labels"] == [] and tail["rounds"]  # asked with other sections: sent
        client.label(nxt["pending"][0]["item_id"], "3", labeler="other")
        last = client.history(tail["cursor"], ["labels", "rounds"])
        assert [(r["labeler"], r["label"]) for r in last["labels"]] == [("other", "3")]
        assert "rounds" not in last  # unchanged since the cursor: not sent again
        with pytest.raises(RemoteError, match="unknown section"):
            client.history(include=["nope"])
        srv.stop()
        srv.start()
        assert srv.client().hello()["resumed"] is True
    finally:
        srv.kill()


# ---------------------------------------------------------------- the real thing

KERNEL = textwrap.dedent("""
    import csv, json, os, sys
    from pathlib import Path
    import pandas  # imported now: lazy imports would need the interpreter's files
    from alaas_lab.lab import Lab
    from alaas_lab.widgets import Dashboard, LabelingWidget  # noqa: F401

    private, kdir = Path(sys.argv[1]), Path(sys.argv[2])
    Lab(kdir / "config.yml", session_dir=kdir)  # the config check imports the zoo lazily
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)  # from here on, the worker's session directory is out of reach
    try:
        (private / "session.sqlite").read_bytes()
        sys.exit("the kernel could read the journal")
    except PermissionError:
        pass
    out = {}
    lab = Lab(kdir / "config.yml", session_dir=kdir, labeler="kernel").start()
    out["how"] = lab.how
    out["labels"] = lab.labels().to_dict("records")
    with open(lab.export(kdir / "labels.csv")) as f:
        out["csv"] = list(csv.DictReader(f))
    dash = lab.dashboard(poll=0)
    out["results"] = [(r["round"], r["strategy"]) for r in dash.results]
    w = lab.label()
    assert w.wait_ready(60), w.error
    out["queued"], out["undo"] = w.queued, [h["item_id"] for h in w.history]
    out["progress"] = w.progress
    cursor = lab.client.history(include=["labels"])["cursor"]
    w.answer("4")
    assert w.flush(10)
    out["new"] = lab.client.history(cursor, ["labels"])["labels"]
    lab.close_widgets()
    print(json.dumps(out, default=str))
""").replace("NOBODY", str(NOBODY))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to run the kernel as another user")
def test_a_kernel_that_cannot_read_the_session_uses_only_the_wire(tmp_path, digits):
    X, y = digits
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    kdir = Path(tempfile.mkdtemp(prefix="alaas-kernel-"))  # the kernel's side: its own
    os.chmod(kdir, 0o755)
    os.chown(kdir, NOBODY, NOBODY)
    config_file = kdir / "config.yml"
    config_file.write_text(yaml.safe_dump(make_config(tmp_path)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    log = open(tmp_path / "serve.log", "wb")  # closed below
    proc = subprocess.Popen([str(CLI), "serve", str(config_file), "--session-dir",
                             str(private)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        conn = wait_for(lambda: (private / "worker.json").is_file() and private / "worker.json")
        assert private.stat().st_mode & 0o777 == 0o700
        client = Client(connection_file=conn)
        client.push_data(X[:60])
        client.push_data(X[100:160], role="eval", labels=list(y[100:160]))
        labeled = two_rounds(client, y)
        shutil.copy(conn, kdir / "worker.json")  # what a user hands the remote notebook
        os.chown(kdir / "worker.json", NOBODY, NOBODY)
        os.chmod(kdir / "worker.json", 0o600)
        kernel = subprocess.run([sys.executable, "-c", KERNEL, str(private), str(kdir)],
                                capture_output=True, text=True, env=env, timeout=240,
                                cwd=kdir)
        assert kernel.returncode == 0, kernel.stdout + kernel.stderr
        out = json.loads(kernel.stdout.splitlines()[-1])
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        shutil.rmtree(kdir, ignore_errors=True)
    assert out["how"] == "attached"
    assert [r["item_id"] for r in out["labels"]] == labeled
    assert [r["model_round"] for r in out["labels"]][-2:] == [1, 1]
    assert [int(r["item_id"]) for r in out["csv"]] == labeled
    assert out["csv"][0]["time"].endswith("+00:00")
    assert out["results"] == [[1, "random"]]
    # the widget resumed: round 2's three pending items first, Undo reaches the answers
    assert len(out["queued"]) == 3 and not set(out["queued"]) & set(labeled)
    assert out["undo"] == labeled[-len(out["undo"]):] and len(out["undo"]) == 7
    assert out["progress"]["round"] == 2 and out["progress"]["round_done"] == 2
    assert [(r["item_id"], r["label"], r["labeler"]) for r in out["new"]] == [
        (out["queued"][0], "4", "kernel")]
