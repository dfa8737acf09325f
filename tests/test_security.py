"""A key by default: every worker signs its messages; a local process without the key gets nothing.

The worker is real (:class:`Server`); the second local process is played by a
subprocess or a raw ZeroMQ DEALER that knows only the worker's port.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest
import zmq

from alaas_lab.client import Client, WorkerUnavailable
from alaas_lab.errors import AlaasError
from alaas_lab.journal import Journal
from alaas_lab.protocol import DELIM, Session
from alaas_lab.server import Server

from .test_worker import make_config, wait_for

#: A second local process: it knows the port, not the key. It sends a ``label``
#: request unsigned, then signed with a wrong key, and prints what came back.
INTRUDER = r"""
import json, sys, zmq
from alaas_lab.protocol import DELIM, Session
url, wrong = sys.argv[1], bytes.fromhex(sys.argv[2])
sock = zmq.Context.instance().socket(zmq.DEALER)
sock.connect(url)
out = []
for key in (b"", wrong):
    sock.send_multipart([DELIM, *Session(key).serialize("label", {"item_id": 0, "label": "1"})])
    if not sock.poll(10000):
        out.append(None)
        continue
    frames = sock.recv_multipart()
    at = frames.index(DELIM)  # signature, header, content follow; none verifiable here
    out.append({"header": json.loads(frames[at + 2]), "content": json.loads(frames[at + 3])})
print(json.dumps(out))
"""


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def server(tmp_path):
    srv = Server(config=make_config(tmp_path), session_dir=tmp_path / "s").start()
    yield srv
    srv.kill()


def queued_item(client, X) -> int:
    client.push_data(X[:30])
    return client.query(5).item_ids[0]


def test_a_local_process_without_the_key_is_refused_and_the_worker_serves_on(
        server, tmp_path, digits):  # noqa: F811
    X, _ = digits
    client = server.client(timeout=10)
    item = queued_item(client, X)
    info = server.connection()
    assert len(bytes.fromhex(info["key"])) == 32 and mode(server.connection_file) == 0o600
    for where in ("config.yml", "worker.log"):  # the key is in the connection file only
        assert info["key"] not in (server.session_dir / where).read_text()

    out = subprocess.run([sys.executable, "-c", INTRUDER, server.url, os.urandom(32).hex()],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    unsigned, wrong = json.loads(out.stdout)
    for reply in (unsigned, wrong):
        assert reply is not None, "the worker did not answer"
        assert reply["header"]["msg_type"] == "error"
        assert reply["content"]["reason"] == "signature" and "traceback" not in reply["content"]
    assert "not signed" in unsigned["content"]["evalue"]
    assert "bad message signature" in wrong["content"]["evalue"]

    with pytest.raises(AlaasError, match=r"has no key.*connection_file"):
        Client(server.url)  # a URL alone: told to use the connection file
    with pytest.raises(WorkerUnavailable, match=r"refused the message.*connection_file") as no:
        Client(server.url, key=os.urandom(32), timeout=10).label(item, "1")
    assert no.value.reason == "signature"

    # nothing the intruders sent was applied, and the worker goes on serving its client
    with Journal(server.session_dir / "session.sqlite") as journal:
        assert journal.label_history() == []
    client.label(item, "1")
    assert client.status()["n_labeled"] == 1 and server.is_alive()


def test_a_replayed_signed_message_is_refused(server, digits):  # noqa: F811
    X, _ = digits
    client = server.client(timeout=10)
    item = queued_item(client, X)
    # what a process that could watch the loopback traffic once would hold: valid frames
    captured = Session(server.key).serialize("label", {"item_id": item, "label": "3"})
    replies = []
    for _ in range(2):  # the original, then the replay from another socket
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(server.url)
        sock.send_multipart([DELIM, *captured])
        assert sock.poll(10000), "the worker did not answer"
        replies.append(Session(server.key).deserialize(
            sock.recv_multipart()[1:]))  # a reply signed with the worker's key
        sock.close(0)
        client.label(item, "7")  # the owner changes the answer after each send
    assert replies[0].msg_type == "label_reply"
    assert replies[1].msg_type == "error" and replies[1].content["reason"] == "replay"
    with Journal(server.session_dir / "session.sqlite") as journal:
        assert [r.label for r in journal.label_history(item)] == ["3", "7", "7"]
        assert journal.labels()[item] == "7"  # the replay did not undo the owner's answer
    assert client.status()["n_labeled"] == 1


def test_a_client_with_a_stale_key_is_told_to_reattach(server):
    old = server.client(timeout=10)
    assert old.status()["state"] == "idle"
    server.stop()
    server.start()  # a new worker on the same session: a fresh key
    fresh = server.client(timeout=10)
    assert fresh.key != old.key and fresh.status()["state"] == "idle"
    with pytest.raises(WorkerUnavailable, match="refused the message") as stale:
        Client(fresh.url, key=old.key, timeout=10).status()
    assert stale.value.reason == "signature"


def test_ipc_sockets_live_in_a_private_folder(tmp_path, digits):  # noqa: F811
    X, _ = digits
    srv = Server(config=make_config(tmp_path, al_worker={"protocol": "ipc"}),
                 session_dir=tmp_path / "s").start()
    try:
        info = srv.connection()
        sockets = srv.session_dir / "sockets"
        assert mode(sockets) == 0o700 and mode(srv.connection_file) == 0o600
        for endpoint in (info["endpoint"], info["events"]):
            assert endpoint.startswith(f"ipc://{sockets}/")
        client = srv.client(timeout=10)
        events = []
        unsubscribe = client.subscribe(events.append)
        client.push_data(X[:3])
        wait_for(lambda: any(e.msg_type == "push_done" for e in events))  # signed events
        unsubscribe()
        assert client.status()["n_items"] == 3
        with pytest.raises(AlaasError, match="has no key"):
            Client(info["endpoint"])
        srv.stop()
        assert not srv.connection_file.exists()
    finally:
        srv.kill()


def test_serve_uses_a_key_and_a_lab_attaches_with_no_extra_step(tmp_path):
    import yaml

    from alaas_lab.lab import Lab

    config_file = tmp_path / "example.yml"
    config_file.write_text(yaml.safe_dump(make_config(tmp_path)))
    session = tmp_path / "served"
    proc = subprocess.Popen([sys.executable, "-m", "alaas_lab", "serve", str(config_file),
                             "--session-dir", str(session)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert str(session / "worker.json") in line and "Lab(session_dir=" in line
        wait_for((session / "worker.json").exists, timeout=60)
        assert mode(session / "worker.json") == 0o600
        assert json.loads((session / "worker.json").read_text())["key"]
        lab = Lab(session_dir=session).start()
        assert lab.how == "attached" and lab.status()["n_items"] == 0
        lab.stop()
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()


def test_an_empty_key_is_refused(tmp_path):
    from alaas_lab.config import load_config
    from alaas_lab.errors import ConfigError
    from alaas_lab.worker.loop import Worker

    with pytest.raises(AlaasError, match="at least 16 random bytes; got 0 bytes"):
        Server(config=make_config(tmp_path), session_dir=tmp_path / "s", key=b"")
    with pytest.raises(ConfigError, match="message key is empty"):
        Worker(load_config(make_config(tmp_path)), tmp_path / "s", key=b"")
    with pytest.raises(AlaasError, match="has no key"):
        Client("127.0.0.1:5555", key="")
