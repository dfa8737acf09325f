"""Tests for the embedding cache: real files, real corruption, real processes."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import fsspec
import numpy as np
import pytest

from alaas_lab.cache import EmbeddingCache, content_identity, item_identity
from alaas_lab.errors import CacheError, InputError

REPO = Path(__file__).resolve().parents[1]
FP = "resnet18@test-weights;224px"


def _rows(n, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.fixture
def cache(tmp_path):
    c = EmbeddingCache(tmp_path / "cache", model_fingerprint=FP)
    yield c
    c.close()


def _shard(cache: EmbeddingCache) -> Path:
    (path,) = sorted((cache.root / "shards").glob("*.bin"))
    return path


def test_round_trip_exact_and_misses(cache):
    keys = [f"k{i}" for i in range(50)]
    x = _rows(50)
    assert cache.put_many(keys, x) == 50
    found, rows = cache.get_many(["k3", "nope", "k0", "k49", "k3"])
    np.testing.assert_array_equal(found, [True, False, True, True, True])
    assert rows.dtype == np.float32 and rows.shape == (4, 8)
    np.testing.assert_array_equal(rows, x[[3, 0, 49, 3]])  # bit-exact, in key order
    assert "k7" in cache and "k50" not in cache and 7 not in cache
    assert len(cache) == 50 and cache.dims == (8,)
    np.testing.assert_array_equal(cache.get("k1"), x[1])
    assert cache.get("nope") is None
    st = cache.stats()
    assert (st["hits"], st["misses"], st["corrupt"], st["puts"]) == (5, 2, 0, 50)
    found, rows = cache.get_many([])
    assert found.shape == (0,) and rows.shape == (0, 0)
    found, rows = cache.get_many(["nope"], dim=8)
    assert not found[0] and rows.shape == (0, 8)


def test_put_is_idempotent_and_keeps_first_value(cache):
    x = _rows(3)
    assert cache.put_many(["a", "b", "a"], x) == 2  # repeated key: first row kept
    assert cache.put_many(["a", "c"], _rows(2, seed=1)) == 1  # "a" already there
    np.testing.assert_array_equal(cache.get("a"), x[0])
    assert len(cache) == 3
    assert cache.put("d", np.ones(8)) and not cache.put("d", np.zeros(8))


def test_bad_puts_are_refused(cache):
    with pytest.raises(InputError, match=r"shape \(len\(keys\), dim\)"):
        cache.put_many(["a", "b"], _rows(3))
    with pytest.raises(InputError, match="reshape"):
        cache.put_many(["a"], np.ones(8))
    with pytest.raises(InputError, match="row 1 .*'b'.* NaN"):
        cache.put_many(["a", "b"], np.array([[1.0, 2.0], [np.nan, 0.0]]))
    with pytest.raises(InputError, match="keys must be item identity strings"):
        cache.put_many([b"a"], _rows(1))
    with pytest.raises(InputError, match="dim must be a positive int"):
        cache.get_many(["a"], dim=0)
    assert len(cache) == 0


def test_widths_live_side_by_side_and_a_mismatch_is_a_miss(cache):
    x8, x4 = _rows(3, d=8), _rows(3, d=4, seed=1)
    assert cache.put_many(["a", "b", "c"], x8) == 3
    assert cache.put_many(["p", "q", "r"], x4) == 3  # same model, another width: no error
    assert cache.dims == (4, 8) and len(cache) == 6
    found, rows = cache.get_many(["a", "p", "b", "q"], dim=8)
    np.testing.assert_array_equal(found, [True, False, True, False])
    np.testing.assert_array_equal(rows, x8[:2])
    found, rows = cache.get_many(["a", "p", "b", "q"], dim=4)
    np.testing.assert_array_equal(found, [False, True, False, True])
    np.testing.assert_array_equal(rows, x4[:2])
    found, rows = cache.get_many(["p", "a"])  # default: the first entry's width
    np.testing.assert_array_equal(found, [True, False])
    np.testing.assert_array_equal(rows, x4[:1])
    np.testing.assert_array_equal(cache.get("a"), x8[0])
    found, rows = cache.get_many(["a"], dim=5)
    assert not found[0] and rows.shape == (0, 5)
    assert cache.stats()["corrupt"] == 0 and len(cache) == 6  # a mismatch is not corruption
    # a put of another width replaces the entry; the same width keeps the first value
    assert cache.put_many(["a"], x4[2:]) == 1 and cache.put_many(["a"], x4[:1]) == 0
    np.testing.assert_array_equal(cache.get("a"), x4[2])
    assert len(cache) == 6


def test_fingerprints_and_dtypes_never_collide(tmp_path):
    root = tmp_path / "c"
    with (
        EmbeddingCache(root, model_fingerprint="model-A") as a,
        EmbeddingCache(root, model_fingerprint="model-B") as b,
        EmbeddingCache(root, model_fingerprint="model-A", dtype="float16") as a16,
    ):
        a.put_many(["x", "y"], _rows(2, d=4))
        b.put_many(["x"], _rows(1, d=16, seed=5))  # same identity, other model
        assert a.key("x") != b.key("x") != a16.key("x")
        found, _ = a16.get_many(["x"])
        assert not found[0]
        a16.put_many(["x"], _rows(1, d=4))
        np.testing.assert_array_equal(b.get("x"), _rows(1, d=16, seed=5)[0])
        np.testing.assert_array_equal(a.get("x"), _rows(2, d=4)[0])
        assert a16.get("x").dtype == np.float16
        assert (len(a), len(b), len(a16)) == (2, 1, 1)


def test_persists_across_reopen(tmp_path):
    x = _rows(100, d=32)
    keys = [content_identity(f"item {i}".encode()) for i in range(100)]
    with EmbeddingCache(tmp_path, model_fingerprint=FP) as c:
        c.put_many(keys[:60], x[:60])
        c.put_many(keys[60:], x[60:])
    with EmbeddingCache(tmp_path, model_fingerprint=FP) as c:
        assert len(c) == 100 and c.dims == (32,)
        found, rows = c.get_many(keys[::-1])
        assert found.all()
        np.testing.assert_array_equal(rows, x[::-1])


def test_bit_flip_is_detected_counted_dropped_and_recomputed(cache):
    keys = [f"k{i}" for i in range(10)]
    x = _rows(10)
    cache.put_many(keys, x)
    shard = _shard(cache)
    data = bytearray(shard.read_bytes())
    data[4 * 32 + 5] ^= 0x10  # inside row 4 (8 float32 = 32 bytes per row)
    shard.write_bytes(bytes(data))

    found, rows = cache.get_many(keys)
    np.testing.assert_array_equal(found, [i != 4 for i in range(10)])
    np.testing.assert_array_equal(rows, np.delete(x, 4, axis=0))
    assert cache.stats()["corrupt"] == 1
    assert "k4" not in cache and len(cache) == 9  # dropped from the index
    found, _ = cache.get_many(["k4"])
    assert not found[0] and cache.stats()["corrupt"] == 1  # now a plain miss

    assert cache.put_many(["k4"], x[4:5]) == 1  # the caller recomputes
    np.testing.assert_array_equal(cache.get("k4"), x[4])


def test_truncated_shard_is_detected_and_not_appended_over(tmp_path):
    x = _rows(10)
    keys = [f"k{i}" for i in range(10)]
    with EmbeddingCache(tmp_path, model_fingerprint=FP) as c:
        c.put_many(keys, x)
        shard = _shard(c)
    with open(shard, "r+b") as f:
        f.truncate(6 * 32 + 7)  # rows 0..5 intact, 6 torn, 7..9 gone
    with EmbeddingCache(tmp_path, model_fingerprint=FP) as c:
        c.put_many(["new"], _rows(1, seed=9))  # must not land under rows 6..9's offsets
        assert c.stats()["shards"] == 2  # so it went to a fresh shard
        found, rows = c.get_many(keys)
        np.testing.assert_array_equal(found, [True] * 6 + [False] * 4)
        np.testing.assert_array_equal(rows, x[:6])
        assert c.stats()["corrupt"] == 4
        np.testing.assert_array_equal(c.get("new"), _rows(1, seed=9)[0])
        assert c.put_many(keys, x) == 4
        found, rows = c.get_many(keys)
        assert found.all()
        np.testing.assert_array_equal(rows, x)


def test_missing_shard_file_is_a_miss(tmp_path):
    with EmbeddingCache(tmp_path, model_fingerprint=FP) as c:
        c.put_many(["a", "b"], _rows(2))
        _shard(c).unlink()
        found, rows = c.get_many(["a", "b"], dim=8)
        assert not found.any() and rows.shape == (0, 8)
        assert c.stats()["corrupt"] == 2 and len(c) == 0
        c.put_many(["a"], _rows(1))
        np.testing.assert_array_equal(c.get("a"), _rows(1)[0])


def test_shards_roll_over(tmp_path):
    with EmbeddingCache(tmp_path, model_fingerprint=FP, shard_bytes=1000) as c:
        x = _rows(100)  # 32 bytes a row
        for i in range(0, 100, 10):
            c.put_many([f"k{j}" for j in range(i, i + 10)], x[i : i + 10])
        assert c.stats()["shards"] == 4  # 320 bytes a batch, 3 batches a shard
        found, rows = c.get_many([f"k{j}" for j in range(100)])
        assert found.all()
        np.testing.assert_array_equal(rows, x)


def test_large_batch_round_trip(cache):
    x = _rows(20_000, d=512, seed=3)
    keys = [f"s3://bucket/img/{i:06d}.jpg@etag{i}" for i in range(20_000)]
    t0 = time.perf_counter()
    assert cache.put_many(keys, x) == 20_000
    found, rows = cache.get_many(keys)
    elapsed = time.perf_counter() - t0
    assert found.all()
    np.testing.assert_array_equal(rows, x)
    # shuffled lookups with misses mixed in
    rng = np.random.default_rng(0)
    idx = rng.permutation(20_000)[:5000]
    found, rows = cache.get_many([keys[i] for i in idx] + ["missing"] * 10)
    assert found.sum() == 5000
    np.testing.assert_array_equal(rows, x[idx])
    print(f"put+get of 20000x512 float32: {elapsed:.2f}s")


def test_threads_share_one_cache(cache):
    errors: list[BaseException] = []

    def work(t):
        try:
            x = _rows(200, seed=t)
            keys = [f"t{t}-{i}" for i in range(200)]
            for i in range(0, 200, 20):
                cache.put_many(keys[i : i + 20], x[i : i + 20])
                found, rows = cache.get_many(keys[: i + 20])
                assert found.all()
                np.testing.assert_array_equal(rows, x[: i + 20])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(cache) == 800 and cache.stats()["corrupt"] == 0


def test_second_process_writes_while_the_first_holds_the_cache(tmp_path):
    code = """
        import sys
        import numpy as np
        from alaas_lab.cache import EmbeddingCache
        c = EmbeddingCache(sys.argv[1], model_fingerprint="m")
        c.put_many(["first"], np.ones((1, 4), np.float32))
        print("open", flush=True)
        sys.stdin.readline()
        print(c.get("second").tolist(), flush=True)
        sys.stdin.read()
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "open"
        with EmbeddingCache(tmp_path, model_fingerprint="m") as c:  # no "one writer" refusal
            np.testing.assert_array_equal(c.get("first"), np.ones(4))
            assert c.put("second", np.full(4, 2.0))
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "[2.0, 2.0, 2.0, 2.0]"
            assert c.stats()["shards"] == 2  # each process appended to its own shard
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == 0


def test_an_old_single_writer_process_is_not_written_over(tmp_path):
    """Releases before shared caches took writer.lock exclusively; both never append."""
    EmbeddingCache(tmp_path, model_fingerprint="m").close()
    code = """
        import fcntl, os, sys
        fd = os.open(os.path.join(sys.argv[1], "writer.lock"), os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("locked", flush=True)
        sys.stdin.read()
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(CacheError, match="older alaas_lab process holds"):
            EmbeddingCache(tmp_path, model_fingerprint="m")
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    with EmbeddingCache(tmp_path, model_fingerprint="m") as c:  # free again
        assert len(c) == 0


def test_unusable_roots_and_arguments(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CacheError, match="cannot create the embedding cache"):
        EmbeddingCache(blocker / "c", model_fingerprint=FP)
    newer = tmp_path / "newer"
    EmbeddingCache(newer, model_fingerprint=FP).close()
    conn = sqlite3.connect(newer / "index.sqlite")
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(CacheError, match="schema version 99, newer"):
        EmbeddingCache(newer, model_fingerprint=FP)
    with pytest.raises(InputError, match="model_fingerprint"):
        EmbeddingCache(tmp_path / "x", model_fingerprint="")
    with pytest.raises(InputError, match="dtype must be one of"):
        EmbeddingCache(tmp_path / "x", model_fingerprint=FP, dtype="int8")
    c = EmbeddingCache(tmp_path / "y", model_fingerprint=FP)
    c.close()
    c.close()
    with pytest.raises(CacheError, match="closed"):
        c.get_many(["a"])


# --------------------------------------------------------------------------- #
# Identities                                                                  #
# --------------------------------------------------------------------------- #


def test_item_identity_tracks_etag_size_and_mtime():
    base = {"name": "b/x.png", "size": 100, "ETag": '"abc"', "LastModified": 1.0, "type": "file"}
    ident = item_identity("s3://b/x.png", base)
    assert ident.startswith("meta:")
    reordered = dict(reversed(list(base.items())))
    assert item_identity("s3://b/x.png", reordered) == ident
    assert item_identity("s3://b/x.png", {**base, "type": "other", "extra": 1}) == ident
    assert item_identity("s3://b/x.png", {**base, "ETag": "abc"}) == ident  # quotes stripped
    for change in ({"size": 101}, {"ETag": '"abd"'}, {"LastModified": 2.0}):
        assert item_identity("s3://b/x.png", {**base, **change}) != ident
    assert item_identity("s3://b/y.png", base) != ident
    when = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    a = item_identity("gs://b/x", {"etag": "e", "updated": when, "generation": "7"})
    assert a != item_identity("gs://b/x", {"etag": "e", "updated": when, "generation": "8"})
    with pytest.raises(InputError, match="content_identity"):
        item_identity("http://h/x", {"name": "x", "type": "file"})


@pytest.mark.parametrize("uri, info, fields", [
    ("s3://b/x.png", {"ETag": '"abc"', "size": 3},
     {"etag": "abc", "mtime": None, "size": 3, "version": None}),
    ('/tmp/\u00fc \u00f1"q\\.png', {"size": 10, "mtime": 1.5},
     {"etag": None, "mtime": "1.5", "size": 10, "version": None}),
    ("/a\tb\n\u2603.png", {"size": 0, "mtime": 0},
     {"etag": None, "mtime": "0.0", "size": 0, "version": None}),
    ("s3://b/v", {"VersionId": "v1", "size": 7, "LastModified": datetime(2024, 5, 1, 12,
                                                                        tzinfo=timezone.utc)},
     {"etag": None, "mtime": "2024-05-01T12:00:00+00:00", "size": 7, "version": "v1"}),
])
def test_item_identity_is_the_sha256_of_the_fields_as_sorted_compact_json(uri, info, fields):
    # the identity's text must never change: the caches users already hold are keyed by it
    text = json.dumps({"uri": uri, **fields}, sort_keys=True, separators=(",", ":"))
    assert item_identity(uri, info) == "meta:" + hashlib.sha256(text.encode()).hexdigest()


def test_item_identity_from_real_fsspec_info(tmp_path):
    fs = fsspec.filesystem("file")
    path = tmp_path / "img.bin"
    path.write_bytes(b"a" * 10)
    os.utime(path, (1_000_000, 1_000_000))
    first = item_identity(str(path), fs.info(str(path)))
    assert item_identity(str(path), fs.info(str(path))) == first
    path.write_bytes(b"b" * 10)  # same size, new mtime
    os.utime(path, (1_000_050, 1_000_050))
    second = item_identity(str(path), fs.info(str(path)))
    assert second != first
    path.write_bytes(b"b" * 11)  # new size, same mtime
    os.utime(path, (1_000_050, 1_000_050))
    assert item_identity(str(path), fs.info(str(path))) not in (first, second)

    mem = fsspec.filesystem("memory")
    mem.pipe("/x/a.bin", b"123")
    assert item_identity("memory://x/a.bin", mem.info("/x/a.bin")).startswith("meta:")


def test_content_identity():
    assert content_identity(b"abc") == content_identity(bytearray(b"abc"))
    assert content_identity(b"abc") != content_identity(b"abd")
    assert content_identity(memoryview(b"")).startswith("sha256:e3b0c442")
    with pytest.raises(InputError, match="bytes"):
        content_identity("abc")  # type: ignore[arg-type]
