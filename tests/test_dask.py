"""The embed stage on a real Dask cluster (LocalCluster: 2 worker processes on 127.0.0.1).

Every test compares against the in-process pipeline on the same files: the same
embeddings (bit for bit, with the ``flatten`` backbone), the same quarantine reasons
and the same selections; a Dask worker killed in the middle of a push; a scheduler
that cannot be reached.
"""

from __future__ import annotations

import operator
import os
import signal
import socket
import time

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from alaas_lab.config import load_config
from alaas_lab.executors import KEY_PREFIX, DaskExecutor, ExecutorError, worker_state
from alaas_lab.pipeline import PipelineError, thread_plan
from alaas_lab.server import Server
from alaas_lab.worker import PoolSession
from alaas_lab.worker.ingest import Ingestor

distributed = pytest.importorskip("distributed")

CLASSES = [str(i) for i in range(10)]
N_FILES = 400


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.images.astype(np.float32), d.target.astype(str)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as lc:
        yield lc


@pytest.fixture(scope="module")
def dask_client(cluster):
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def pngs(tmp_path_factory, digits):
    """400 digit PNGs, one corrupt PNG and one that a listing named but is gone."""
    X, _ = digits
    folder = tmp_path_factory.mktemp("pool")
    paths = []
    for i, img in enumerate(X[:N_FILES]):
        path = folder / f"{i:05d}.png"
        Image.fromarray((img * 16).clip(0, 255).astype(np.uint8)).save(path)
        paths.append(str(path))
    (folder / "00007.png").write_bytes(b"not a png at all")
    gone = str(folder / "gone.png")
    return paths, gone


def make_config(tmp_path, name: str, executor: dict | None = None, batch_size: int = 16,
                **extra):
    return load_config({
        "name": name,
        "active_learning": {"strategy": {"type": "least_confidence"},
                            "model": {"name": "flatten", "batch_size": batch_size}},
        "data": {"kind": "image", "image_mode": "L"},
        "classes": CLASSES,
        "budget": {"total": 300, "per_round": 20, "initial": 20},
        "cache_dir": str(tmp_path / f"cache-{name}"),
        **({"executor": executor} if executor else {}),
        **extra,
    })


def push_files(tmp_path, name, paths, gone, executor=None, **kw):
    """A fresh session (own cache) that pushes the files; the gone file comes with a listing."""
    session = PoolSession(make_config(tmp_path, name, executor, **kw), tmp_path / name)
    ingest = Ingestor(session, thread_plan(2))
    out = ingest.push_uris([*paths, gone], infos={gone: {"size": 100, "mtime": 1.0}})
    return session, ingest, out


def dask_executor(cluster):
    return {"kind": "dask", "address": cluster.scheduler_address}


def test_same_embeddings_quarantine_and_one_model_per_dask_worker(tmp_path, cluster, dask_client,
                                                                   pngs, digits):
    paths, gone = pngs
    local, local_ingest, expected = push_files(tmp_path, "local", paths, gone)
    remote, ingest, out = push_files(tmp_path, "dask", paths, gone, dask_executor(cluster))
    try:
        assert out["embedded"] == expected["embedded"] == N_FILES - 1
        assert np.array_equal(remote.emb.filled, local.emb.filled)
        assert np.array_equal(remote.emb.matrix, local.emb.matrix)  # bit for bit
        # the same items quarantined, at the same stage, with the same words
        reasons = remote.journal.quarantined()
        assert reasons == local.journal.quarantined() and len(reasons) == 2
        assert any(r.startswith("decode: ") and "00007.png" in r for r in reasons.values())
        assert any(r.startswith("fetch: not found") and "gone.png" in r for r in reasons.values())
        report = out["pipeline"]
        assert [s["name"] for s in report["stages"]] == ["fetch", "decode", "embed", "store"]
        assert report["executor"]["kind"] == "dask" and report["executor"]["workers"] == 2
        assert report["stages"][2]["items_in"] == N_FILES - 1  # embed saw only good items
        # ~25 batches over 2 processes: each built the model exactly once
        builds = dask_client.run(worker_state)
        assert sorted(b["builds"].get('["flatten", []]') for b in builds.values()) == [1, 1]

        # arrays go through the cluster too: same rows as in process
        X, _ = digits
        got = ingest.push_arrays(X[500:700])
        want = local_ingest.push_arrays(X[500:700])
        assert got["embedded"] == want["embedded"] == 200
        assert np.array_equal(remote.emb.matrix, local.emb.matrix)
        assert sorted(b["builds"].get('["flatten", []]') for b in
                      dask_client.run(worker_state).values()) == [1, 1]
        # and the cache it wrote is the in-process one's: a second session hits it all
        again = PoolSession(remote.config, tmp_path / "again")
        hit = Ingestor(again, thread_plan(2), executor=ingest.executor).push_arrays(X[500:700])
        assert hit["cache_hits"] == 200 and hit["embedded"] == 0
        again.close()
    finally:
        ingest.close()
        local.close()
        remote.close()


def test_in_flight_batches_are_bounded_and_results_come_as_they_complete(cluster):
    drawn = []

    def jobs():
        for i in range(40):
            drawn.append(i)
            yield i, (i, 3)

    ex = DaskExecutor(cluster.scheduler_address)
    try:
        results, outstanding = {}, []
        for tag, value in ex.map_unordered(operator.mul, jobs(), max_in_flight=3):
            outstanding.append(len(drawn) - len(results))  # submitted, not yet consumed
            results[tag] = value
        assert results == {i: 3 * i for i in range(40)}
        assert max(outstanding) <= 3 and outstanding.count(3) > 10  # full window, never more
        assert ex.slots() == 4  # default: twice the cluster's 2 threads
    finally:
        ex.close()


def test_fingerprint_mismatch_refuses_to_mix_models(tmp_path, cluster, digits):
    """The worker's own backbone differs from the config's: Dask workers must not embed."""
    from alaas_lab.models import backbone

    config = make_config(tmp_path, "fp", dask_executor(cluster))
    session = PoolSession(config, tmp_path / "fp", backbone=backbone("flatten", scale=1 / 16))
    ingest = Ingestor(session, thread_plan(2))
    try:
        with pytest.raises(PipelineError, match=r"fingerprint .*different weights"):
            ingest.push_arrays(digits[0][:40])
        assert not session.emb.filled.any() and len(session.cache) == 0
    finally:
        ingest.close()
        session.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_or_empty_cluster_is_a_prompt_clear_error(tmp_path, digits):
    X, _ = digits
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    session = PoolSession(make_config(tmp_path, "down", {"kind": "dask", "address": address}),
                          tmp_path / "down")
    ingest = Ingestor(session, thread_plan(2))
    t0 = time.monotonic()
    with pytest.raises(ExecutorError) as info:
        ingest.push_arrays(X[:50])
    assert time.monotonic() - t0 < 15  # a connect timeout of a few seconds, not a hang
    message = str(info.value)
    assert f"cannot reach the Dask scheduler at {address} within 5 s" in message
    assert "dask scheduler" in message and "executor.kind: local" in message
    assert not session.emb.filled.any()

    # items already in the cache need no cluster at all
    local = PoolSession(make_config(tmp_path, "down"), tmp_path / "warm")  # same cache_dir
    Ingestor(local, thread_plan(2)).push_arrays(X[:50])
    local.close()
    again = ingest.push_arrays(X[:50])
    assert again["cache_hits"] == 50 and session.emb.filled.all()
    ingest.close()
    session.close()

    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=":0") as empty:
        ex = DaskExecutor(empty.scheduler_address, no_workers_timeout=1)
        with pytest.raises(ExecutorError, match=r"has no workers .*dask worker tcp://127"):
            ex.connect()


def test_tls_cluster_needs_credentials_from_dask_config(tmp_path, digits):
    import dask
    from distributed.security import Security

    X, _ = digits
    sec = Security.temporary()  # a throwaway CA and certificates
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, security=sec,
                                  host="127.0.0.1", dashboard_address=":0") as tls:
        assert tls.scheduler_address.startswith("tls://")
        config = make_config(tmp_path, "tls", {"kind": "dask", "address": tls.scheduler_address})
        session = PoolSession(config, tmp_path / "tls")
        ingest = Ingestor(session, thread_plan(2))
        with pytest.raises(ExecutorError, match=r"speaks TLS, but no client certificate.*"
                                                r"DASK_DISTRIBUTED__COMM__TLS__CA_FILE"):
            ingest.push_arrays(X[:40])
        with dask.config.set({"distributed.comm.tls.ca-file": sec.tls_ca_file,
                              "distributed.comm.tls.client.cert": sec.tls_client_cert,
                              "distributed.comm.tls.client.key": sec.tls_client_key}):
            out = ingest.push_arrays(X[:40])
        assert out["embedded"] == 40
        assert np.array_equal(session.emb.matrix, X[:40].reshape(40, -1))  # flatten: raw pixels
        ingest.close()
        session.close()


def running_on(dask_scheduler, address):
    """Our batches that a Dask worker is running now (each one still wanted by its push)."""
    ws = dask_scheduler.workers.get(address)
    return [] if ws is None else [ts.key for ts in ws.processing
                                  if str(ts.key).startswith(KEY_PREFIX)]


def rescued(dask_scheduler):
    """Our batches that a dead worker took down and that then ran to the end again."""
    lost, redone = set(), set()
    for t in dask_scheduler.transition_log:
        if not str(t.key).startswith(KEY_PREFIX):
            continue
        if t.stimulus_id.startswith("handle-worker-cleanup") and t.start in (
                "processing", "memory") and t.finish == "released":
            lost.add(t.key)
        elif t.key in lost and t.start == "processing" and t.finish == "memory":
            redone.add(t.key)
    return sorted(redone)


def test_dask_worker_killed_mid_push_tasks_are_retried_and_round_completes(
        tmp_path, cluster, dask_client, pngs, digits):
    paths, gone = pngs
    _, y = digits
    local, _, _ = push_files(tmp_path, "local", paths, gone, batch_size=4)
    session = PoolSession(make_config(tmp_path, "kill", dask_executor(cluster), batch_size=4),
                          tmp_path / "kill")
    ingest = Ingestor(session, thread_plan(2))
    ingest.progress_interval = 0  # a report after every batch
    pids = dask_client.run(os.getpid)
    victim = sorted(pids)[0]
    killed = []

    def on_progress(event):
        if killed or event["done"] < event["total"] // 4:
            return
        assert event["done"] < event["total"]  # the push is mid-way
        if not dask_client.run_on_scheduler(running_on, address=victim):
            return  # idle between two batches: try again after the next one
        # Freeze the victim, let the scheduler take in what it had sent, and read which
        # batches it is running: frozen, it can finish none of them before it dies.
        os.kill(pids[victim], signal.SIGSTOP)
        time.sleep(0.1)
        running = dask_client.run_on_scheduler(running_on, address=victim)
        if running:
            os.kill(pids[victim], signal.SIGKILL)
            killed.extend(running)
        else:
            os.kill(pids[victim], signal.SIGCONT)

    try:
        out = ingest.push_uris([*paths, gone], infos={gone: {"size": 100, "mtime": 1.0}},
                               on_progress=on_progress)
        assert killed, "the Dask worker was never killed"
        assert out["embedded"] == N_FILES - 1 and len(out["quarantined"]) == 2
        assert np.array_equal(session.emb.matrix, local.emb.matrix)
        assert session.journal.quarantined() == local.journal.quarantined()

        redone = dask_client.run_on_scheduler(rescued)
        assert set(killed) <= set(redone)  # what the dead worker held ran again elsewhere
        assert victim not in dask_client.scheduler_info()["workers"]

        # the round completes on the rescued embeddings
        first = session.query(20)
        session.label_many(first["item_ids"], [y[i] for i in first["item_ids"]])
        result = session.finish_round()
        assert result["round"] == 1 and result["n_labeled"] > 0
    finally:
        ingest.close()
        session.close()
        local.close()
        dask_client.wait_for_workers(2, timeout=30)  # the nanny restarts the victim


def test_worker_process_with_dask_executor_selects_like_in_process(tmp_path, cluster, pngs,
                                                                   digits):
    """The real worker subprocess, configured for Dask, makes the in-process selections."""
    paths, gone = pngs
    _, y = digits
    truth = {p: y[i] for i, p in enumerate(paths)}
    budget = {"total": 300, "per_round": 20, "initial": 10}  # round 2 uses the model
    local = PoolSession(make_config(tmp_path, "ref", budget=budget), tmp_path / "ref")
    Ingestor(local, thread_plan(2)).push_uris(paths)
    expected = []
    for _ in range(2):
        sel = local.query(20)
        expected.append((sel["strategy"], sel["uris"]))
        local.label_many(sel["item_ids"], [truth[u] for u in sel["uris"]])
        local.finish_round()
    local.close()

    config = make_config(tmp_path, "srv", dask_executor(cluster), budget=budget).to_dict()
    srv = Server(config=config, session_dir=tmp_path / "srv").start()
    try:
        client = srv.client()
        reply = client.push_data(paths)
        assert reply["embedded"] == N_FILES - 1 and len(reply["quarantined"]) == 1
        assert reply["pipeline"]["executor"]["address"] == cluster.scheduler_address
        for strategy, uris in expected:
            sel = client.query(20)
            assert (sel.strategy, list(sel.uris)) == (strategy, uris)
            client.label_many(sel.item_ids, [truth[u] for u in sel.uris])
            deadline = time.monotonic() + 30
            while not any(r["round"] == sel.round for r in client.status()["rounds"]):
                assert time.monotonic() < deadline, "the round was not fitted"
                time.sleep(0.05)
        assert [s for s, _ in expected] == ["random", "least_confidence"]
    finally:
        srv.kill()
