"""The bad-input corpus: every case gets a clear error naming the item, and the session goes on."""

from __future__ import annotations

import io
import json
import socket
import struct
import zlib

import numpy as np
import pytest
import zmq
from PIL import Image

from alaas_lab.config import load_config
from alaas_lab.errors import AlaasError, ConfigError, DataError
from alaas_lab.pipeline import thread_plan
from alaas_lab.protocol import DELIM, Session
from alaas_lab.server import Server, WorkerStartError
from alaas_lab.worker import PoolSession
from alaas_lab.worker.ingest import Ingestor

CLASSES = ["cat", "dog"]


def png(mode: str, size=(12, 12), bits: int = 8) -> bytes:
    buf = io.BytesIO()
    if bits == 16:
        Image.fromarray((np.arange(144).reshape(12, 12) * 400).astype(np.uint16)).save(
            buf, format="PNG")
    elif mode == "CMYK":
        Image.new("CMYK", size, (10, 20, 30, 40)).save(buf, format="JPEG")
    else:
        Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(side: int = 100_000) -> bytes:
    """A valid PNG header that declares side×side pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


@pytest.fixture
def pool(tmp_path):
    """An image pool whose files cover the bad (and the awkward but good) cases."""
    folder = tmp_path / "pool"
    folder.mkdir()
    files = {
        "good_gray.png": png("L"),
        "good_rgb.png": png("RGB"),
        "palette.png": png("P"),
        "alpha.png": png("RGBA"),
        "cmyk.jpg": png("CMYK"),
        "sixteen_bit.png": png("I;16", bits=16),
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + b"garbage" * 20,
        "truncated.png": png("RGB", size=(64, 64))[:60],
        "zero.png": b"",
        "huge.png": bomb_png(),
        "text_in_image_pool.png": b"just some words",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def session_for(tmp_path, **extra) -> tuple[PoolSession, Ingestor]:
    raw = {"name": "bad", "classes": CLASSES, "cache_dir": str(tmp_path / "cache"),
           "active_learning": {"model": {"name": "flatten"}},
           "data": {"kind": "image", "image_mode": "L"},
           "budget": {"total": 50, "per_round": 5, "initial": 0}, **extra}
    session = PoolSession(load_config(raw), tmp_path / "s")
    return session, Ingestor(session, thread_plan(2))


def test_image_corpus_quarantines_only_the_bad_files(tmp_path, pool):
    session, ingest = session_for(tmp_path, data={"kind": "image", "image_mode": "L",
                                                  "storage_options": {}})
    # the flatten backbone needs one size: decode every image to 12×12
    ingest.decoder.size = (12, 12)
    missing = str(pool / "missing.png")
    out = ingest.push_uris([*sorted(map(str, pool.iterdir())), missing])
    reasons = {session.uris[i].rsplit("/", 1)[-1]: r
               for i, r in session.journal.quarantined().items()}
    assert set(reasons) == {"corrupt.png", "truncated.png", "zero.png", "huge.png",
                            "text_in_image_pool.png", "missing.png"}
    for name, reason in reasons.items():
        assert name in reason, f"{name}: the reason does not name the item: {reason}"
    assert "not found" in reasons["missing.png"]
    assert "decode" in reasons["zero.png"]
    assert out["embedded"] == 6  # gray, rgb, palette, alpha, cmyk, 16-bit all decode
    session.close()


def test_non_utf8_text_is_quarantined_with_a_hint(tmp_path):
    (tmp_path / "ok.txt").write_text("fine words")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    session, ingest = session_for(tmp_path, data={"kind": "text"})
    from alaas_lab.models.backbones import Backbone

    class Length(Backbone):  # a tiny text backbone: enough to reach the decode stage
        name = "length"
        dim = 1
        fingerprint = "length-v1"

        def preprocess(self, item):
            return len(item)

        def embed(self, batch):
            return np.asarray(batch, dtype=np.float32)[:, None]

        def describe(self):
            return {"summary": "length of the text"}

    session._backbone = Length()
    ingest.push_uris([str(tmp_path / "ok.txt"), str(tmp_path / "latin1.txt")])
    (reason,) = session.journal.quarantined().values()
    assert "latin1.txt" in reason and "utf-8" in reason.lower() and "encoding" in reason
    session.close()


def test_duplicate_uris_empty_pool_and_nan_rows(tmp_path, pool):
    session, ingest = session_for(tmp_path)
    ingest.decoder.size = (12, 12)
    good = str(pool / "good_gray.png")
    out = ingest.push_uris([good, good])
    assert out["item_ids"][0] == out["item_ids"][1] and session.n_items == 1
    from alaas_lab.data import expand

    with pytest.raises(DataError, match=r"nothing.*\*\.tiff|\*\.tiff.*"):
        expand(str(pool / "*.tiff"))
    rows = np.ones((3, 12, 12), dtype=np.float32)
    rows[1, 4, 5] = np.nan
    with pytest.raises(AlaasError, match=r"pushed array row 1 has NaN or infinite values"):
        ingest.push_arrays(rows)
    session.close()


def test_budgets_and_labels(tmp_path):
    session, ingest = session_for(tmp_path)
    ingest.push_arrays(np.random.default_rng(0).normal(size=(20, 4, 4)).astype(np.float32))
    with pytest.raises(AlaasError, match=r"budget must be an integer >= 1; got 0"):
        session.query(0)
    with pytest.raises(AlaasError, match=r"budget=30 .*only 20 pool items|budget has left"):
        session.query(30)
    picked = session.query(2)["item_ids"]
    never_queued = next(i for i in range(20) if i not in picked)
    with pytest.raises(AlaasError, match=rf"item {never_queued} \(array:\w+\) was never queued"):
        session.label(never_queued, "cat")
    with pytest.raises(AlaasError, match=rf"item {picked[0]}: unknown label 'bird'.*cat, dog"):
        session.label(picked[0], "bird")
    session.label(picked[0], "cat")
    session.label(picked[0], "dog")  # a second label corrects the first; both are kept
    history = [h.label for h in session.journal.label_history(picked[0])]
    assert history == ["cat", "dog"] and session.journal.labels()[picked[0]] == "dog"
    with pytest.raises(AlaasError, match=r"item 99 is not in the pool"):
        session.label(99, "cat")
    session.close()


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yml is not valid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"unknown config key 'al_worker\.prot'"):
        load_config({"al_worker": {"prot": "tcp"}})


def test_port_in_use_is_a_clear_start_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = Server(config={"name": "p", "al_worker": {"port": port},
                                "cache_dir": str(tmp_path / "c")}, session_dir=tmp_path / "s")
        with pytest.raises(WorkerStartError, match=rf"cannot listen on tcp://127\.0\.0\.1:{port}"
                                                   r".*port is probably in use"):
            server.start(timeout=60)


def test_wire_garbage_and_other_protocol_versions(tmp_path):
    server = Server(config={"name": "w", "cache_dir": str(tmp_path / "c")},
                    session_dir=tmp_path / "s").start()
    try:
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.connect(server.url)
        for frames in ([b"\x00\xff" * 50], [DELIM, b"", b"not json", b"{}"],
                       [DELIM, b"", b"[]", b"{}"]):
            sock.send_multipart(frames)
            assert sock.poll(5000), f"no answer to {frames!r}"
            reply = sock.recv_multipart()
            assert b'"msg_type":"error"' in reply[reply.index(DELIM) + 2]
        wire = Session(server.key)
        _, header, content = wire.serialize("status", {})
        header = json.dumps({**json.loads(bytes(header)), "version": "2.0"}).encode()
        sock.send_multipart([DELIM, wire.sign([header, content]), header, content])
        assert sock.poll(5000)
        reply = sock.recv_multipart()
        body = reply[reply.index(DELIM) + 3]
        assert b"2.0" in body and b"major versions differ" in body
        sock.close(0)
        assert server.client().status()["state"] == "idle"  # the session goes on
    finally:
        server.kill()


def test_a_remote_worker_needs_curve_and_refuses_unauthorized_clients(tmp_path):
    from alaas_lab.client import Client, WorkerUnavailable
    from alaas_lab.security import generate_keys

    keys = generate_keys(tmp_path / "keys")
    strangers = generate_keys(tmp_path / "strangers")  # valid CURVE keys, not authorized
    config = {"name": "remote", "cache_dir": str(tmp_path / "c"),
              "al_worker": {"host": "0.0.0.0", "port": 0, "curve_dir": str(keys)}}
    server = Server(config=config, session_dir=tmp_path / "s").start()
    try:
        info = server.connection()
        port = info["endpoint"].rsplit(":", 1)[1]
        url = f"tcp://127.0.0.1:{port}"  # tests talk to loopback only
        good = Client(url, key=info["key"], curve_server_key=info["curve_server_key"],
                      curve_secret_file=keys / "client.key_secret", timeout=10)
        assert good.status()["state"] == "idle"
        for kwargs in ({}, {"curve_server_key": info["curve_server_key"],
                            "curve_secret_file": strangers / "client.key_secret"}):
            with pytest.raises(WorkerUnavailable):
                Client(url, key=info["key"], timeout=2, **kwargs).status()
    finally:
        server.kill()
    no_keys = {**config, "al_worker": {"host": "0.0.0.0", "port": 0}}
    with pytest.raises(WorkerStartError, match="needs authentication.*curve_dir"):
        Server(config=no_keys, session_dir=tmp_path / "s2").start(timeout=60)


def test_file_uris_cannot_escape_the_data_root(tmp_path):
    from alaas_lab.data import confine

    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    (tmp_path / "secret.png").write_bytes(png("L"))
    (root / "in" / "ok.png").write_bytes(png("L"))
    (root / "in" / "link.png").symlink_to(tmp_path / "secret.png")
    assert confine([str(root / "in" / "ok.png"), "s3://b/x.png"], root)
    for sneaky in (str(root / "in" / ".." / ".." / "secret.png"), str(root / "in" / "link.png"),
                   f"file://{tmp_path}/secret.png"):
        with pytest.raises(DataError, match=r"outside the data root"):
            confine([sneaky], root)
    server = Server(config={"name": "r", "cache_dir": str(tmp_path / "c"), "classes": CLASSES,
                            "active_learning": {"model": {"name": "flatten"}},
                            "data": {"kind": "image", "image_mode": "L", "root": str(root)}},
                    session_dir=tmp_path / "s").start()
    try:
        from alaas_lab.client import RemoteError

        client = server.client()
        with pytest.raises(RemoteError, match=r"secret\.png: outside the data root"):
            client.push_data([str(tmp_path / "secret.png")])
        assert client.push_data([str(root / "in" / "ok.png")])["embedded"] == 1
    finally:
        server.kill()
