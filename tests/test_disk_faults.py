"""A session directory that is read-only or full: a clear error, and nothing already saved lost."""

from __future__ import annotations

import subprocess
import uuid

import numpy as np
import pytest

from alaas_lab.client import RemoteError
from alaas_lab.journal import Journal
from alaas_lab.server import Server, WorkerStartError

pytestmark = pytest.mark.slow


@pytest.fixture
def small_fs(tmp_path):
    """A real, tiny filesystem (tmpfs) we can fill up or remount read-only."""
    mount = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")

    def remount(mode: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True)

    yield mount, remount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def config(tmp_path):
    return {"name": "disk", "classes": ["a", "b"], "cache_dir": str(tmp_path / "cache"),
            "active_learning": {"strategy": {"type": "random"}, "model": {"name": "flatten"}},
            "budget": {"total": 0, "per_round": 5, "initial": 0}}


def labeled_session(tmp_path, session_dir) -> tuple[Server, list[int]]:
    server = Server(config=config(tmp_path), session_dir=session_dir).start()
    client = server.client()
    client.push_data(np.random.default_rng(0).normal(size=(50, 4, 4)).astype(np.float32))
    picked = client.query(5).item_ids
    client.label_many(picked, ["a"] * 5)
    return server, picked


def test_read_only_session_dir_is_a_clear_error(tmp_path, small_fs):
    mount, remount = small_fs
    server, picked = labeled_session(tmp_path, mount / "session")
    server.stop()
    remount("ro")
    read_only = r"cannot write to the session directory .*Read-only file system"
    with pytest.raises(WorkerStartError, match=read_only):
        Server(config=config(tmp_path), session_dir=mount / "session").start(timeout=60)
    remount("rw")
    with Journal(mount / "session" / "session.sqlite") as journal:
        assert sorted(journal.labels()) == sorted(picked)  # nothing lost, nothing corrupted


def test_full_session_dir_fails_the_push_not_the_labels(tmp_path, small_fs):
    mount, _ = small_fs
    server, picked = labeled_session(tmp_path, mount / "session")
    try:
        client = server.client()
        big = np.random.default_rng(1).normal(size=(20_000, 8, 8)).astype(np.float32)  # 5 MB
        full = r"(?i)session\.sqlite: database or disk is full|no space left"
        with pytest.raises(RemoteError, match=full):
            client.push_data(big)
        assert client.status()["n_labeled"] == 5  # the worker goes on
    finally:
        server.kill()
    with Journal(mount / "session" / "session.sqlite") as journal:
        assert sorted(journal.labels()) == sorted(picked)
