"""``%load_ext alaas_lab`` and ``%alaas`` in a real IPython shell, against a real worker."""

from __future__ import annotations

import csv
import threading
import time

import numpy as np
import pytest
import yaml
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from sklearn.datasets import load_digits

import alaas_lab
from alaas_lab import magics
from alaas_lab.journal import Journal
from alaas_lab.server import Server
from alaas_lab.widgets import Dashboard, LabelingWidget, PipelineMonitor


@pytest.fixture(scope="module")
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "alaas_lab")
    yield ip
    ip.run_line_magic("unload_ext", "alaas_lab")


@pytest.fixture
def config_file(tmp_path):
    cfg = {"name": "magics", "session_dir": str(tmp_path / "session"),
           "active_learning": {"strategy": {"type": "least_confidence"},
                               "model": {"name": "flatten", "batch_size": 64}},
           "data": {"kind": "array"}, "classes": [str(i) for i in range(10)],
           "budget": {"total": 50, "per_round": 10, "initial": 10},
           "cache_dir": str(tmp_path / "cache")}
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    yield path
    lab = magics.current_lab()
    if lab is not None:
        lab.close_widgets()
        lab.server.kill()
    magics._LAB = None
    srv = Server(config_path=path)
    if srv.is_alive():
        srv.kill()


def shown(capsys):
    return capsys.readouterr().out


def test_the_magic_documents_every_command(shell):
    doc = shell.find_line_magic("alaas").__doc__
    for command in ("start [config.yml]", "push <uri | glob | variable>", "label [n]",
                    "dashboard", "monitor", "status", "export labels.csv", "stop"):
        assert command in doc
    assert "Backspace" in doc and "worker.json" in doc


def test_usage_errors_say_what_to_do(shell, config_file):
    with pytest.raises(UsageError, match="needs a command: start, push"):
        shell.run_line_magic("alaas", "")
    with pytest.raises(UsageError, match="unknown command 'lable'"):
        shell.run_line_magic("alaas", "lable")
    with pytest.raises(UsageError, match=r"no session yet: run %alaas start config.yml"):
        shell.run_line_magic("alaas", "status")
    with pytest.raises(UsageError, match="%alaas label: argument n: invalid int"):
        shell.run_line_magic("alaas", "label ten")


def test_start_push_label_export_stop_and_restart(shell, config_file, tmp_path, capsys):
    d = load_digits()
    shell.user_ns.update(pool=d.images[:200].astype(np.float32),
                         X_eval=d.images[1500:].astype(np.float32),
                         y_eval=d.target[1500:].astype(str).tolist())
    y = d.target.astype(str)

    shell.run_line_magic("alaas", f"start {config_file}")
    assert "started a new session" in shown(capsys)
    lab = magics.current_lab()
    assert isinstance(lab, alaas_lab.Lab) and lab.is_alive()

    shell.run_line_magic("alaas", "push pool")
    assert "pushed 200 items to the pool" in shown(capsys)
    shell.run_line_magic("alaas", "push X_eval --eval y_eval")
    assert "pushed 297 items to the evaluation set" in shown(capsys)
    with pytest.raises(UsageError, match="'nope' is not a variable"):
        shell.run_line_magic("alaas", "push X_eval --eval nope")

    shell.run_line_magic("alaas", "label --labeler magic")
    widget = lab._labeler
    assert isinstance(widget, LabelingWidget) and widget.labeler == "magic"
    assert widget.wait_ready(30)
    for _ in range(10):
        while widget.current is None or not widget.current["loaded"]:
            time.sleep(0.01)
        widget.answer(y[widget.current["item_id"]])
    assert widget.flush(10)
    deadline = time.monotonic() + 60
    while not lab.status()["rounds"] and time.monotonic() < deadline:  # round 1's fit
        time.sleep(0.05)

    shell.run_line_magic("alaas", "dashboard")
    shell.run_line_magic("alaas", "monitor")
    assert isinstance(lab._widgets[-2], Dashboard)
    assert isinstance(lab._widgets[-1], PipelineMonitor)
    capsys.readouterr()

    shell.run_line_magic("alaas", "status")
    out = shown(capsys)
    assert "pool: 200 items, evaluation set: 297 (497 of the 497 embedded, 0 quarantined)" in out
    assert "labels: 10 of 50" in out and "round   1  random" in out

    shell.run_line_magic("alaas", f"export {tmp_path / 'labels.csv'}")
    assert "wrote 10 labels" in shown(capsys)
    with open(tmp_path / "labels.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and {r["labeler"] for r in rows} == {"magic"}
    assert all(r["label"] == y[int(r["item_id"])] for r in rows)
    assert {r["round"] for r in rows} == {"1"} and {r["strategy"] for r in rows} == {"random"}

    pid = lab.status()["pid"]
    # a kernel restart: the magic's state is gone, the worker is not
    magics._LAB = None
    shell.run_line_magic("alaas", f"start {config_file}")
    assert "attached to the running worker" in shown(capsys)
    assert magics.current_lab().status()["pid"] == pid

    shell.run_line_magic("alaas", "stop")
    assert "worker stopped" in shown(capsys)
    assert magics.current_lab() is None
    # started again on the same session: it resumes from the journal
    shell.run_line_magic("alaas", f"start {config_file}")
    assert "resumed from its journal" in shown(capsys)
    status = magics.current_lab().status()
    assert status["pid"] != pid and status["n_labeled"] == 10 and status["round"] >= 2
    with Journal(magics.current_lab().session_dir / "session.sqlite") as journal:
        assert len([r for r in journal.label_history() if r.labeler == "magic"]) == 10


def test_start_attaches_to_a_worker_started_elsewhere(shell, config_file, capsys):
    srv = Server(config_path=config_file).start()
    # the worker is this process's child: reap it when it dies, as its own kernel would
    threading.Thread(target=srv.process.wait, daemon=True).start()
    shell.run_line_magic("alaas", f"start --session {srv.session_dir}")
    assert "attached to the running worker" in shown(capsys)
    assert magics.current_lab().status()["pid"] == srv.pid()
    shell.run_line_magic("alaas", "stop --kill")
    assert "worker killed" in shown(capsys)
    assert not srv.is_alive()


def test_start_with_another_config_on_a_live_session_is_refused(shell, config_file, tmp_path,
                                                               capsys):
    shell.run_line_magic("alaas", f"start {config_file}")
    shown(capsys)
    pid = magics.current_lab().status()["pid"]
    cfg = yaml.safe_load(config_file.read_text())
    cfg["active_learning"]["strategy"]["type"] = "margin"
    other = tmp_path / "other.yml"
    other.write_text(yaml.safe_dump(cfg))
    with pytest.raises(UsageError, match=r"strategy\.type: 'least_confidence' \(worker\) vs "
                                         r"'margin' \(yours\)"):
        shell.run_line_magic("alaas", f"start {other}")
    assert magics.current_lab().config.active_learning.strategy.type == "least_confidence"
    shell.run_line_magic("alaas", f"start {config_file}")  # the same config goes on
    assert f"pid {pid}" in shown(capsys)
