"""The worker as a real subprocess: requests, events, pipeline, cache, journal, crash recovery."""

from __future__ import annotations

import io
import os
import signal

import numpy as np
import pytest
import zmq
from PIL import Image

from alaas_lab.client import Client, RemoteError
from alaas_lab.config import load_config
from alaas_lab.journal import Journal
from alaas_lab.protocol import DELIM
from alaas_lab.server import Server
from alaas_lab.worker import PoolSession

from .conftest import wait_for

CLASSES = [str(i) for i in range(10)]


def make_config(tmp_path, **extra):
    base = {
        "name": "test",
        "active_learning": {"strategy": {"type": "least_confidence"},
                            "model": {"name": "flatten", "batch_size": 64}},
        "classes": CLASSES,
        "budget": {"total": 300, "per_round": 20, "initial": 20},
        "cache_dir": str(tmp_path / "cache"),
    }
    base.update(extra)
    return base


def write_pngs(images: np.ndarray, folder) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        path = folder / f"{i:05d}.png"
        Image.fromarray((img * 16).clip(0, 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    return paths


# ---------------------------------------------------------------- in process


def test_pool_session_rounds_and_resume(tmp_path, digits):
    X, y = digits
    config = load_config(make_config(tmp_path))
    session = PoolSession(config, tmp_path / "s")
    from alaas_lab.pipeline import thread_plan
    from alaas_lab.worker.ingest import Ingestor

    ingest = Ingestor(session, thread_plan(2))
    out = ingest.push_arrays(X[:600])
    assert out["embedded"] == 600 and session.emb.filled.all()
    ingest.push_arrays(X[1000:1300])
    session.mark_eval(np.arange(600, 900), list(y[1000:1300]))
    first = session.query(20)
    assert first["strategy"] == "random"  # no model yet: a random seed set
    session.label_many(first["item_ids"], [y[i] for i in first["item_ids"]])
    r1 = session.finish_round()
    second = session.query(20)
    assert second["strategy"] == "least_confidence"
    assert not set(first["item_ids"]) & set(second["item_ids"])
    results = session.label_many(second["item_ids"], [y[i] for i in second["item_ids"]])
    assert results[-1]["round_complete"] == 2
    r2 = session.finish_round()
    assert r2["n_labeled"] == 40 and r2["top1"] > r1["top1"] - 0.05 and r2["top1"] > 0.5
    session.close()

    again = PoolSession(config, tmp_path / "s")  # a restart: state comes back
    assert again.round == 2 and int(again.labeled.sum()) == 40 + 300
    assert again.emb.filled.all()  # embeddings from the cache
    assert np.array_equal(again.raw.get(5), X[5])  # raw rows for the labeling UI too
    assert [r.round for r in again.journal.rounds()] == [1, 2]
    again.close()


def test_bad_labels_and_budget_are_clear_errors(tmp_path, digits):
    X, y = digits
    config = load_config(make_config(tmp_path, budget={"total": 30, "per_round": 10}))
    session = PoolSession(config, tmp_path / "s")
    from alaas_lab.pipeline import thread_plan
    from alaas_lab.worker.ingest import Ingestor

    Ingestor(session, thread_plan(2)).push_arrays(X[:100])
    with pytest.raises(Exception, match=r"item 3: unknown label 'cat'; allowed labels"):
        session.label(3, "cat")
    with pytest.raises(Exception, match=r"item 500 is not in the pool"):
        session.label(500, "1")
    with pytest.raises(Exception, match=r"budget=40 asks for more labels than .* \(30 of"):
        session.query(40)
    session.close()


# ---------------------------------------------------------------- subprocess


@pytest.fixture
def server(tmp_path):
    servers = []

    def start(**extra):
        srv = Server(config=make_config(tmp_path, **extra), session_dir=tmp_path / "session")
        servers.append(srv.start())
        return srv

    yield start
    for srv in servers:
        srv.kill()


def test_papers_three_steps_and_events(server, digits):
    X, y = digits
    srv = server()
    client = Client(al_server_url=srv.url, key=srv.key)  # or srv.client()
    events = []
    unsubscribe = client.subscribe(events.append)
    reply = client.push_data(X[:800], asynchronous=False)
    assert reply["n_items"] == 800 and reply["embedded"] == 800
    client.push_data(X[1200:], role="eval", labels=list(y[1200:]))
    accuracies = []
    for _ in range(3):
        selected = client.query(budget=20)
        assert len(selected) == 20 and len(set(selected.item_ids)) == 20
        client.label_many(selected.item_ids, [y[i] for i in selected.item_ids], labeler="t")
        result = wait_for(lambda rnd=selected.round: [
            e for e in events if e.msg_type == "round_result" and e.content["round"] == rnd])
        accuracies.append(result[0].content["top1"])
    assert accuracies[-1] > 0.6
    assert {"progress", "push_done", "round_result"} <= {e.msg_type for e in events}
    status = client.status()
    assert status["n_labeled"] == 60 and status["round"] == 3 and status["n_eval"] == 597
    unsubscribe()
    srv.stop()
    assert not srv.is_alive()
    with Journal(srv.session_dir / "session.sqlite") as journal:
        assert len([lab for lab in journal.label_history() if lab.labeler == "t"]) == 60


def test_malformed_and_unknown_messages_get_error_replies(server):
    srv = server()
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(srv.url)
    sock.send_multipart([b"garbage", b"\xff\xfe"])
    assert sock.poll(5000)
    frames = sock.recv_multipart()
    assert DELIM in frames and b"error" in frames[frames.index(DELIM) + 2]
    sock.send_multipart([DELIM, b"", b'{"msg_id": "x"}', b"{}"])  # header missing fields
    assert sock.poll(5000)
    sock.recv_multipart()
    sock.close(0)
    client = srv.client()
    with pytest.raises(RemoteError, match="does not accept 'status_reply'"):
        client.request("status_reply", {"state": "x"})
    with pytest.raises(RemoteError, match=r"budget=5 but only 0 pool items"):
        client.query(5)
    assert client.status()["state"] == "idle"  # still serving


def test_push_files_quarantines_bad_items_and_warm_cache(server, tmp_path, digits):
    X, _ = digits
    paths = write_pngs(X[:200], tmp_path / "pool")
    (tmp_path / "pool" / "00007.png").write_bytes(b"not a png at all")
    missing = str(tmp_path / "pool" / "nope.png")
    srv = server(data={"kind": "image", "image_mode": "L"})
    client = srv.client()
    reply = client.push_data([*paths, missing])
    assert reply["embedded"] == 199 and reply["cache_hits"] == 0
    status = client.status()
    reasons = status["quarantine"]
    assert len(reasons) == 2
    assert any("00007.png" in r and "decode" in r for r in reasons.values())
    assert any("not found" in r for r in reasons.values())
    stages = [s["name"] for s in reply["pipeline"]["stages"]]
    assert stages == ["fetch", "decode", "embed", "store"]
    srv.stop()

    # a new session on the same cache: every good item is a hit, nothing is fetched
    warm = Server(config=make_config(tmp_path, data={"kind": "image", "image_mode": "L"}),
                  session_dir=tmp_path / "session2").start()
    try:
        again = warm.client().push_data(paths)
        assert again["cache_hits"] == 199 and again["embedded"] == 0
    finally:
        warm.kill()


@pytest.mark.s3
def test_push_from_s3(server, s3_bucket, digits):
    import s3fs

    X, _ = digits
    fs = s3fs.S3FileSystem(**s3_bucket)
    for i in range(40):
        buf = io.BytesIO()
        Image.fromarray((X[i] * 16).astype(np.uint8)).save(buf, format="PNG")
        fs.pipe(f"{s3_bucket.name}/pool/{i:03d}.png", buf.getvalue())
    srv = server(data={"kind": "image", "image_mode": "L", "storage_options": dict(s3_bucket)})
    reply = srv.client().push_data([f"{s3_bucket.url}/pool/*.png"])
    assert reply["n_items"] == 40 and reply["embedded"] == 40


def upload_pngs(images: np.ndarray, bucket, prefix: str) -> None:
    import s3fs

    files = {}
    for i, img in enumerate(images):
        buf = io.BytesIO()
        Image.fromarray((img * 16).clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
        files[f"{bucket.name}/{prefix}/{i:05d}.png"] = buf.getvalue()
    s3fs.S3FileSystem(**bucket).pipe(files)


@pytest.mark.slow
@pytest.mark.s3
def test_sigkill_mid_push_loses_no_label_and_the_round_completes(server, s3_bucket, digits):
    X, y = digits
    upload_pngs(X[:700], s3_bucket, "pool")  # the S3 server makes the push take seconds
    srv = server(data={"kind": "image", "image_mode": "L", "storage_options": dict(s3_bucket)})
    client = srv.client()
    first = client.push_data([f"{s3_bucket.url}/pool/0000*.png"])["item_ids"]
    selected = client.query(10)
    labeled = selected.item_ids[:7]
    client.label_many(labeled, [y[first.index(i)] for i in labeled])
    events = []
    client.subscribe(events.append, types=["progress"])
    client.push_data([f"{s3_bucket.url}/pool/*.png"], asynchronous=True)
    wait_for(lambda: any(0 < e.content["done"] < e.content["total"] for e in events),
             timeout=60)
    os.kill(srv.pid(), signal.SIGKILL)  # in the middle of the push
    wait_for(lambda: not srv.is_alive())

    srv.process = None
    srv.start()  # same session directory: resumes from the journal
    client = srv.client()
    status = wait_for(lambda: (s := client.status())["n_embedded"] == 700 and s, timeout=60)
    assert "resuming the push of" in srv.log_tail(200)
    assert status["n_labeled"] == 7 and status["n_pending"] == 3  # nothing lost
    rest = selected.item_ids[7:]
    client.label_many(rest, [y[first.index(i)] for i in rest])
    rounds = wait_for(lambda: client.status()["rounds"])
    assert rounds[-1]["round"] == selected.round and rounds[-1]["n_labeled"] > 0


def test_serve_from_a_terminal_and_a_remote_host_needs_a_key(tmp_path):
    import subprocess
    import sys

    import yaml

    config_file = tmp_path / "example.yml"
    config_file.write_text(yaml.safe_dump(make_config(tmp_path)))
    proc = subprocess.Popen([sys.executable, "-m", "alaas_lab", "serve", str(config_file),
                             "--session-dir", str(tmp_path / "s")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        connection = tmp_path / "s" / "worker.json"
        wait_for(connection.exists, timeout=60)
        client = Client(connection_file=connection)
        assert client.status()["n_items"] == 0
        client.stop()
        assert proc.wait(20) == 0
    finally:
        proc.kill()

    remote = make_config(tmp_path, al_worker={"host": "0.0.0.0", "port": 0})
    config_file.write_text(yaml.safe_dump(remote))
    out = subprocess.run([sys.executable, "-m", "alaas_lab", "serve", str(config_file),
                          "--session-dir", str(tmp_path / "r")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "reachable from other machines; a remote worker needs authentication" in out.stderr


def test_a_keyed_worker_refuses_clients_without_the_key(tmp_path):
    from alaas_lab.client import WorkerUnavailable
    from alaas_lab.errors import AlaasError

    srv = Server(config=make_config(tmp_path), session_dir=tmp_path / "s",
                 key=b"k" * 32).start()
    try:
        assert srv.client().status()["state"] == "idle"  # the connection file has the key
        assert srv.key == b"k" * 32
        with pytest.raises(AlaasError, match="has no key"):
            Client(srv.url)
        with pytest.raises(WorkerUnavailable, match="refused the message"):
            Client(srv.url, key=b"wrong" * 8, timeout=5).status()
    finally:
        srv.kill()


def test_item_data_for_the_labeling_ui(server, tmp_path, digits):
    X, _ = digits
    paths = write_pngs(X[:5], tmp_path / "files")
    srv = server()
    client = srv.client()
    ids = client.push_data(X[:10])["item_ids"]
    items = client.item_data(ids[:3])
    assert [it["item_id"] for it in items] == ids[:3]
    img = Image.open(io.BytesIO(items[0]["data"]))
    assert items[0]["kind"] == "image" and img.size[0] >= 64  # 8×8 digits are enlarged
    # the shown picture is the pushed array: brightest pixels in the same places
    shown = np.asarray(img.convert("L").resize((8, 8), Image.NEAREST), dtype=float)
    assert np.corrcoef(shown.ravel(), X[ids[0]].ravel())[0, 1] > 0.95
    srv.kill()

    srv2 = Server(config=make_config(tmp_path, data={"kind": "image", "image_mode": "L"}),
                  session_dir=tmp_path / "files-session").start()
    try:
        c2 = srv2.client()
        ids2 = c2.push_data(paths)["item_ids"]
        (item,) = c2.item_data(ids2[1:2])
        assert item["kind"] == "image" and item["uri"].endswith("00001.png")
        assert Image.open(io.BytesIO(item["data"])).format == "PNG"
    finally:
        srv2.kill()
