"""Lifetime: an idle worker exits and resumes on start; a script's worker can die with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from alaas_lab.client import Client
from alaas_lab.config import load_config
from alaas_lab.journal import Journal
from alaas_lab.server import Server
from alaas_lab.worker.loop import Worker

from .test_worker import make_config, wait_for

#: A script (or a notebook kernel) that starts a worker, says its pid, and waits to be killed.
SCRIPT = r"""
import json, sys, time
from alaas_lab.server import Server
srv = Server(config=json.loads(sys.argv[1]), session_dir=sys.argv[2],
             tie_to_parent=sys.argv[3] == "tied").start()
print(srv.pid(), flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie left to a non-reaping init counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def test_an_idle_worker_exits_and_start_resumes_the_session(tmp_path, digits):  # noqa: F811
    from alaas_lab.lab import Lab

    X, y = digits
    session = tmp_path / "s"
    lab = Lab(make_config(tmp_path, al_worker={"idle_timeout": 2}), session_dir=session).start()
    proc = lab.server.process
    lab.push(X[:40])
    selection = lab.client.query(5)
    lab.client.label_many(selection.item_ids[:3], [y[i] for i in selection.item_ids[:3]])
    last_request = time.monotonic()
    assert proc.wait(60) == 0  # it exits by itself, cleanly
    assert time.monotonic() - last_request >= 2
    assert not (session / "worker.json").exists()
    assert "al_worker.idle_timeout" in lab.server.log_tail()
    with Journal(session / "session.sqlite") as journal:  # left consistent
        assert len(journal) == 40 and len(journal.labels()) == 3

    again = Lab(session_dir=session).start()  # what a later %alaas start does
    try:
        assert again.how == "restarted"
        status = again.status()
        assert status["n_items"] == 40 and status["n_labeled"] == 3
        assert status["n_pending"] == 2  # the selection still waits for its last labels
    finally:
        again.stop()


def test_a_job_in_flight_or_a_request_keeps_the_worker_alive(tmp_path, digits):  # noqa: F811
    X, _ = digits
    worker = Worker(load_config(make_config(tmp_path, al_worker={"idle_timeout": 0.5})),
                    tmp_path / "s")

    def slow_push() -> dict:
        time.sleep(2.0)  # a long push: a slow store, a big pool
        return worker.ingestor.push_arrays(X[:50])

    worker._submit("push", slow_push, None)
    served = threading.Thread(target=worker.serve_forever)
    start = time.monotonic()
    served.start()
    try:
        time.sleep(1.5)
        assert served.is_alive()  # three idle timeouts later: the push still runs
        wait_for(lambda: worker.session.n_items == 50)
        with Client(worker.endpoint, key=worker.key, timeout=5) as client:
            for _ in range(8):  # requests every 0.25 s keep it too
                assert client.status()["n_items"] == 50
                time.sleep(0.25)
        served.join(30)
        assert not served.is_alive()
        assert time.monotonic() - start > 2.0 + 7 * 0.25 + 0.5 - 0.1  # the last request + idle
    finally:
        worker.stop()
        served.join(10)
    assert not (tmp_path / "s" / "worker.json").exists()


def test_with_server_stops_the_worker_on_exit(tmp_path):
    with Server(config=make_config(tmp_path), session_dir=tmp_path / "s") as srv:
        assert srv.tie_to_parent and srv.client(timeout=10).status()["state"] == "idle"
        pid = srv.pid()
    assert not alive(pid) and not srv.connection_file.exists()


@pytest.mark.parametrize("tie", ["tied", "default"])
def test_a_tied_worker_dies_with_its_script_a_default_one_outlives_it(tmp_path, tie):
    session = tmp_path / "s"
    script = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, json.dumps(make_config(tmp_path)), str(session), tie],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pid = None
    try:
        pid = int(script.stdout.readline())
        script.send_signal(signal.SIGKILL)  # the script (or the kernel) dies abruptly
        script.wait(10)
        if tie == "tied":
            wait_for(lambda: not alive(pid), timeout=20)
            assert not (session / "worker.json").exists()  # it stopped cleanly
        else:
            time.sleep(1.0)
            client = Client(connection_file=session / "worker.json", timeout=10)
            assert alive(pid) and client.status()["state"] == "idle"  # a new kernel attaches
            client.close()
            Server(config=make_config(tmp_path), session_dir=session).stop()
            wait_for(lambda: not alive(pid), timeout=20)
    finally:
        script.kill()
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_idle_timeout_is_checked_with_the_config():
    from alaas_lab.errors import ConfigError

    assert load_config({}).al_worker.idle_timeout == 4 * 3600
    assert load_config({"al_worker": {"idle_timeout": 0}}).al_worker.idle_timeout == 0
    with pytest.raises(ConfigError, match=r"'al_worker\.idle_timeout'"):
        load_config({"al_worker": {"idle_timeout": -1}})
