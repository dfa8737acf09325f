"""The Fetcher's local-file fast path: the same results and errors as fsspec's LocalFileSystem,
read in the calling thread while reads are quick."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

from alaas_lab.cache import item_identity
from alaas_lab.data import Fetcher, RetryPolicy, classify_error
from alaas_lab.data.fetch import _sync_get, _sync_info

FAST = RetryPolicy(max_attempts=4, base=0.001, cap=0.005)


def through_fsspec(uri: str, *, reads: bool) -> tuple[bytes | None, dict, str | None]:
    """What the Fetcher gave for ``uri`` before the fast path: fsspec's info() + cat_file."""
    fs = LocalFileSystem()
    path = LocalFileSystem._strip_protocol(uri)
    try:
        if reads:
            data, info = _sync_get(fs, path)
            return data, info, None
        return None, _sync_info(fs, path), None
    except OSError as exc:
        return None, {}, classify_error(exc).message(uri, 1)


@pytest.fixture
def files(tmp_path, monkeypatch):
    """URIs of one file each: plain, empty, larger, nested, a symlink, relative, file://, ~."""
    root = tmp_path / "fast"
    (root / "deep" / "er").mkdir(parents=True)
    (root / "a.png").write_bytes(b"\x89PNG" + bytes(range(200)))
    (root / "empty.bin").write_bytes(b"")
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "deep" / "er" / "c.txt").write_text("nested")
    (root / "link.png").symlink_to(root / "a.png")
    os.utime(root / "a.png", ns=(1_700_000_000_123_456_789, 1_700_000_000_987_654_321))
    monkeypatch.chdir(root)
    monkeypatch.setenv("HOME", str(root))
    return [
        str(root / "a.png"),
        str(root / "empty.bin"),
        str(root / "big.bin"),
        str(root / "deep" / "er" / "c.txt"),
        str(root / "link.png"),
        "deep/er/c.txt",
        f"file://{root}/a.png",
        "~/a.png",
        f"{root}/deep/er/",
    ]


@pytest.mark.parametrize("reads", [True, False], ids=["fetch_many", "info_many"])
def test_fast_path_gives_what_fsspec_gives(files, reads):
    with Fetcher() as fetcher:
        many = fetcher.fetch_many if reads else fetcher.info_many
        results = list(many(files))
        assert fetcher._pool is None  # read in this thread: no pool was started
    for uri, r in zip(files, results, strict=True):
        data, info, error = through_fsspec(uri, reads=reads)
        assert (r.data, r.info, r.error) == (data, info, error), uri
        # the same dict, key for key and type for type: cache keys stay valid
        assert list(r.info) == list(info) and all(
            type(r.info[k]) is type(info[k]) for k in info
        ), uri
        if r.ok:
            assert item_identity(r.uri, r.info) == item_identity(uri, info)
    assert results[0].info == {"size": 204, "mtime": 1_700_000_000.9876542}
    assert results[4].info == results[0].info  # a link counts as its target


@pytest.mark.parametrize("reads", [True, False], ids=["fetch_many", "info_many"])
def test_missing_files_and_directories_fail_as_through_fsspec(tmp_path, reads):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "gone.png")
    uris = [
        str(tmp_path / "missing.png"),
        str(tmp_path / "sub"),
        f"file://{tmp_path}/sub/",
        str(tmp_path / "dangling.png"),
        str(tmp_path / "a.png" / "below-a-file.png"),
    ]
    with Fetcher(retries=FAST) as fetcher:
        many = fetcher.fetch_many if reads else fetcher.info_many
        results = list(many(uris))
    for uri, r in zip(uris, results, strict=True):
        assert r.error == through_fsspec(uri, reads=reads)[2], uri
        assert r.data is None and r.info == {} and r.attempts == 1
    missing, folder, _, dangling, below = (r.error for r in results)
    assert missing == (
        f"not found: {uris[0]} (FileNotFoundError: [Errno 2] No such file or directory: "
        f"'{uris[0]}')"
    )
    assert folder == f"is a directory: {uris[1]} (IsADirectoryError: '{uris[1]}' is a directory)"
    assert dangling.startswith("not found: ") and below.startswith("error: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_fails_as_through_fsspec(tmp_path):
    locked = tmp_path / "locked.png"
    locked.write_bytes(b"secret")
    locked.chmod(0)
    try:
        with Fetcher(retries=FAST) as fetcher:
            [r] = fetcher.fetch_many([str(locked)])
            [i] = fetcher.info_many([str(locked)])
        expected = through_fsspec(str(locked), reads=True)[2]
    finally:
        locked.chmod(0o600)
    assert r.error == expected and r.error.startswith("access denied: ") and r.attempts == 1
    assert i.ok  # stat needs no read permission, as with fsspec


def test_a_slow_local_read_hands_the_rest_of_the_call_to_threads(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(48 << 20))  # reading 48 MB takes well over INLINE_LIMIT_S
    small = [tmp_path / f"s{i}.bin" for i in range(6)]
    for i, p in enumerate(small):
        p.write_bytes(bytes([i]) * 10)
    uris = [str(big), *map(str, small)]
    with Fetcher(max_in_flight=4) as fetcher:
        list(fetcher.fetch_many(uris[1:]))
        assert fetcher._pool is None  # all quick: read inline
        got = list(fetcher.fetch_many(uris))
        assert fetcher._pool is not None  # after the slow one, the rest went to the pool
    assert [r.data for r in got] == [Path(u).read_bytes() for u in uris]
    with Fetcher(max_in_flight=1) as fetcher:  # one at a time: threads would add nothing
        assert all(r.ok for r in fetcher.fetch_many(uris))
        assert fetcher._pool is None
    with Fetcher(max_in_flight=4, inline_local=True) as fetcher:  # the caller has threads
        assert [r.data for r in fetcher.fetch_many(uris)] == [Path(u).read_bytes() for u in uris]
        assert fetcher._pool is None


def test_inline_results_keep_order_laziness_and_the_window(tmp_path):
    paths = []
    for i in range(50):
        (p := tmp_path / f"{i:02d}.bin").write_bytes(str(i).encode())
        paths.append(str(p))
    pulled = []

    def uris():
        for p in paths:
            pulled.append(p)
            yield p

    with Fetcher(max_in_flight=5) as fetcher:
        it = fetcher.fetch_many(uris())
        assert next(it).data == b"0" and len(pulled) <= 5 + 1  # the window, topped up
        assert [r.data for r in it] == [str(i).encode() for i in range(1, 50)]
        unordered = {r.uri: r.data for r in fetcher.fetch_many(paths, ordered=False)}
    assert unordered == {p: Path(p).read_bytes() for p in paths}
