"""Starting a worker: its configured ``data.source``, its session directory, ``alaas-lab serve``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from alaas_lab.client import Client
from alaas_lab.config import load_config
from alaas_lab.server import Server, session_path, write_session_config

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).with_name("alaas-lab")


def config(tmp_path: Path, **extra) -> dict:
    base = {
        "name": "t",
        "active_learning": {"strategy": {"type": "random"}, "model": {"name": "flatten"}},
        "data": {"kind": "image", "image_mode": "L"},
        "classes": ["a", "b"],
        "budget": {"total": 20, "per_round": 5},
        "cache_dir": str(tmp_path / "cache"),
    }
    return base | extra


def write_pngs(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = [folder / f"{i:02d}.png" for i in range(n)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(path)
    return paths


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def embedded(client: Client, n: int) -> dict:
    return wait_for(lambda: (s := client.status())["n_embedded"] == n and s["state"] == "idle"
                    and s)


def test_a_worker_pushes_its_configured_source_once(tmp_path):
    write_pngs(tmp_path / "pool", 6)
    cfg = config(tmp_path, data={"kind": "image", "image_mode": "L",
                                 "source": [str(tmp_path / "pool" / "*.png")]})
    srv = Server(config=cfg, session_dir=tmp_path / "s").start()
    try:
        status = embedded(srv.client(), 6)
        assert status["n_items"] == 6 and status["n_quarantined"] == 0
        srv.stop()
        write_pngs(tmp_path / "pool", 8)  # two new files since: a restart adds just those
        srv.start()
        status = embedded(srv.client(), 8)
        assert status["n_items"] == 8  # nothing from the first start is added twice
        assert "data.source" in srv.log_tail(200)
    finally:
        srv.kill()


def test_a_source_that_matches_nothing_is_logged_and_the_worker_serves(tmp_path):
    (tmp_path / "empty").mkdir()
    glob = str(tmp_path / "empty" / "*.png")
    srv = Server(config=config(tmp_path, data={"kind": "image", "source": [glob]}),
                 session_dir=tmp_path / "s").start()
    try:
        client = srv.client()
        wait_for(lambda: "could not push data.source" in srv.log_tail(200))
        assert "no files found" in srv.log_tail(200) and glob in srv.log_tail(200)
        status = client.status()
        assert status["n_items"] == 0 and status["state"] == "idle"
    finally:
        srv.kill()


def test_session_path_and_config_file_are_shared(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(config(tmp_path))
    assert session_path(cfg) == tmp_path / "alaas_sessions" / "t"
    assert session_path(cfg, "rel") == tmp_path / "rel"
    path = write_session_config(cfg, tmp_path / "new" / "dir")
    assert load_config(path) == cfg
    assert Server(config=cfg).session_dir == session_path(cfg)


def test_serve_with_the_default_session_dir_is_reachable_from_elsewhere(tmp_path):
    write_pngs(tmp_path / "pool", 4)
    cfg = config(tmp_path, al_worker={"protocol": "ipc"},
                 data={"kind": "image", "image_mode": "L", "source": ["pool/*.png"]})
    (tmp_path / "c.yml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([str(CLI), "serve", "c.yml"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    session = tmp_path / "alaas_sessions" / "t"
    try:
        info = json.loads(wait_for(lambda: (session / "worker.json").is_file()
                                   and (session / "worker.json").read_text()))
        for endpoint in (info["endpoint"], info["events"]):
            assert endpoint.startswith("ipc:///"), endpoint  # absolute: any cwd connects
        assert load_config(session / "config.yml") == load_config(cfg)
        from alaas_lab.lab import Lab

        lab = Lab(session_dir=session).start()  # reads config.yml, attaches from this cwd
        assert lab.how == "attached"
        assert embedded(lab.client, 4)["n_items"] == 4  # the relative glob, from serve's cwd
        lab.client.stop()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        proc.wait()
    assert "Traceback" not in out, out


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yml")), ids=lambda p: p.name)
def test_example_sources_exist_or_are_absent(path):
    # the worker pushes data.source on start: an example must not point at nothing
    sources = load_config(path).data.source
    assert all(list(ROOT.glob(s)) for s in sources), (
        f"{path.name}: data.source {list(sources)} matches no file of the repository; remove "
        "the key or point it at files that ship with it.")
