"""One embedding cache shared by sessions and processes: a cache never fails a push."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from alaas_lab.cache import EmbeddingCache
from alaas_lab.config import load_config
from alaas_lab.pipeline import thread_plan
from alaas_lab.worker import PoolSession
from alaas_lab.worker.ingest import Ingestor

REPO = Path(__file__).resolve().parents[1]


def make_config(cache_dir, **extra):
    raw = {"name": "share", "classes": ["a", "b"], "cache_dir": str(cache_dir),
           "active_learning": {"strategy": {"type": "random"}, "model": {"name": "flatten"}},
           "budget": {"total": 0, "per_round": 5, "initial": 0}}
    return load_config({**raw, **extra})


def images(n, side, seed=0):
    return np.random.default_rng(seed).normal(size=(n, side, side)).astype(np.float32)


def push(session, rows):
    ingest = Ingestor(session, thread_plan(2))
    try:
        return ingest.push_arrays(rows)
    finally:
        ingest.close()


def test_sessions_of_two_input_shapes_share_one_cache(tmp_path):
    config = make_config(tmp_path / "cache")
    x8, x4 = images(30, 8), images(30, 4, seed=1)
    first = PoolSession(config, tmp_path / "s1")
    second = PoolSession(config, tmp_path / "s2")  # both open on one cache at once
    try:
        out = push(first, x8)
        assert (out["embedded"], out["cache_hits"]) == (30, 0)
        out = push(second, x4)  # was: "embeddings ... are 64 wide; got 16"
        assert (out["embedded"], out["cache_hits"], out["quarantined"]) == (30, 0, [])
        assert first.emb.matrix.shape == (30, 64) and second.emb.matrix.shape == (30, 16)
        np.testing.assert_array_equal(second.emb.matrix, x4.reshape(30, 16))
        out = push(first, images(10, 8, seed=2))  # later pushes of the first kind still work
        assert out["embedded"] == 10
    finally:
        first.close()
        second.close()

    for rows, width in ((x8, 64), (x4, 16)):  # each shape is a hit in a new session
        again = PoolSession(config, tmp_path / f"again{width}")
        try:
            out = push(again, rows)
            assert (out["cache_hits"], out["embedded"]) == (30, 0)
            np.testing.assert_array_equal(again.emb.matrix, rows.reshape(30, width))
        finally:
            again.close()
    resumed = PoolSession(config, tmp_path / "s1")  # a restart rebuilds from the cache
    try:
        assert resumed.emb.filled.all() and resumed.emb.matrix.shape == (40, 64)
    finally:
        resumed.close()


def test_decoding_is_part_of_the_key(tmp_path):
    folder = tmp_path / "png"
    folder.mkdir()
    rng = np.random.default_rng(0)
    uris = []
    for i in range(6):
        path = folder / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8)).save(path)
        uris.append(str(path))
    widths = {}
    for mode in ("L", "RGB"):  # same files, same backbone, other decoded input
        session = PoolSession(make_config(tmp_path / "cache", data={"image_mode": mode}),
                              tmp_path / mode)
        ingest = Ingestor(session, thread_plan(2))
        try:
            out = ingest.push_uris(uris)
            assert (out["embedded"], out["cache_hits"]) == (6, 0)
            widths[mode] = session.emb.matrix.shape[1]
        finally:
            ingest.close()
            session.close()
    assert widths == {"L": 64, "RGB": 192}


def test_an_unusable_cache_never_fails_a_push(tmp_path, caplog):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    session = PoolSession(make_config(blocker / "cache"), tmp_path / "s")
    try:
        with caplog.at_level(logging.WARNING, logger="alaas_lab.worker.state"):
            out = push(session, images(10, 4))
        assert out["embedded"] == 10 and session.emb.filled.all() and session.cache is None
        assert "running without it" in caplog.text and "cannot create the embedding cache" \
            in caplog.text
    finally:
        session.close()


def test_a_cache_that_fails_mid_session_is_turned_off(tmp_path, caplog):
    cache_dir = tmp_path / "cache"
    session = PoolSession(make_config(cache_dir), tmp_path / "s")
    try:
        assert push(session, images(10, 4))["embedded"] == 10
        (cache_dir / "shards").rename(tmp_path / "gone")  # its shard is gone from the root
        (cache_dir / "shards").write_text("in the way")  # no shard can be created now
        with caplog.at_level(logging.WARNING, logger="alaas_lab.worker.state"):
            out = push(session, images(10, 4, seed=3))
        assert out["embedded"] == 10 and session.emb.filled.sum() == 20
        assert session.cache is None and "cannot write cache shard" in caplog.text
    finally:
        session.close()


WORKER = """
    import sys
    import numpy as np
    from alaas_lab.cache import EmbeddingCache

    root, me, other = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rows = lambda who: np.random.default_rng(who).normal(size=(300, 16)).astype(np.float32)
    keys = lambda who: [f"item-{who}-{i}" for i in range(300)]
    cache = EmbeddingCache(root, model_fingerprint="shared")
    print("open", flush=True)
    sys.stdin.readline()
    mine, theirs = rows(me), rows(other)
    for i in range(0, 300, 10):  # writes interleaved with reads of the other's progress
        cache.put_many(keys(me)[i:i + 10], mine[i:i + 10])
        found, got = cache.get_many(keys(other), dim=16)
        assert np.array_equal(got, theirs[found]), "read a wrong row"
    print("wrote", flush=True)
    sys.stdin.readline()
    found, got = cache.get_many(keys(other))
    assert found.all() and np.array_equal(got, theirs)
    print("ok", cache.stats()["corrupt"], flush=True)
    sys.stdin.readline()
    cache.close()
"""


def test_processes_write_and_read_one_cache_at_once(tmp_path):
    def start(me, other):
        return subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WORKER), str(tmp_path), str(me), str(other)],
            env=dict(os.environ, PYTHONPATH=str(REPO)), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)

    def tell_all(line):
        for p in procs:
            p.stdin.write(line + "\n")
            p.stdin.flush()
        return [p.stdout.readline().strip() for p in procs]

    procs = [start(1, 2), start(2, 1)]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["open", "open"]
        assert tell_all("go") == ["wrote", "wrote"]
        assert tell_all("read") == ["ok 0", "ok 0"]
        # a third process (this one) sees both while they still hold the cache open
        with EmbeddingCache(tmp_path, model_fingerprint="shared") as cache:
            for who in (1, 2):
                found, got = cache.get_many([f"item-{who}-{i}" for i in range(300)])
                assert found.all()
                np.testing.assert_array_equal(
                    got, np.random.default_rng(who).normal(size=(300, 16)).astype(np.float32))
            assert cache.put("mine", np.ones(16))
            stats = cache.stats()
            assert stats["entries"] == 601 and stats["corrupt"] == 0
            assert stats["shards"] == 3  # one per writing process, none shared
    finally:
        for p in procs:
            p.stdin.close()
        for p in procs:
            p.wait(timeout=60)
            p.stdout.close()
    assert [p.returncode for p in procs] == [0, 0]


def test_many_processes_racing_to_create_one_cache(tmp_path):
    n_procs = 4
    code = """
        import sys
        import numpy as np
        from alaas_lab.cache import EmbeddingCache
        me = int(sys.argv[2])
        with EmbeddingCache(sys.argv[1], model_fingerprint="race") as c:
            for i in range(20):
                c.put_many([f"{me}-{i}-{j}" for j in range(5)], np.full((5, 4), me, np.float32))
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(tmp_path / "c"),
                               str(me)], env=dict(os.environ, PYTHONPATH=str(REPO)))
             for me in range(n_procs)]
    assert [p.wait(timeout=120) for p in procs] == [0] * n_procs
    with EmbeddingCache(tmp_path / "c", model_fingerprint="race") as c:
        assert len(c) == n_procs * 100
        for me in range(n_procs):
            found, rows = c.get_many([f"{me}-{i}-{j}" for i in range(20) for j in range(5)])
            assert found.all() and (rows == me).all()
