"""Bring-your-own backbone weights: ``torchvision/<model>`` by name, weights from a file,
a URL (served here from 127.0.0.1, fetched once into torch's hub cache, hash-checked) or
a torchvision weights enum; the ``device`` setting. No test needs the internet.
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision

from alaas_lab import models
from alaas_lab.config import load_config
from alaas_lab.errors import ConfigError, ModelError
from alaas_lab.models import _weights

ARCH = "mobilenet_v3_small"


@pytest.fixture
def hub_dir(tmp_path):
    """A fresh torch hub cache for each test, restored afterwards."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A randomly initialised mobilenet_v3_small state_dict, its sha256 and the model."""
    torch.manual_seed(0)
    model = torchvision.models.get_model(ARCH, weights=None).eval()
    path = tmp_path_factory.mktemp("weights") / "mnv3s.pth"
    torch.save(model.state_dict(), path)
    return path, hashlib.sha256(path.read_bytes()).hexdigest(), model


@pytest.fixture(scope="module")
def server(weights_file):
    """An HTTP server on 127.0.0.1 serving the weights folder; counts GET requests."""
    folder = weights_file[0].parent
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", hits
    httpd.shutdown()
    httpd.server_close()


def images(n=6, side=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3), dtype=np.uint8)


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:  # bind, learn the port, close: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/missing-model.pth"


# ------------------------------------------------------------------- the model
def test_features_are_the_layer_before_the_classifier(weights_file, hub_dir):
    path, digest, model = weights_file
    bb = models.backbone(f"torchvision/{ARCH}", weights=str(path), size=64)
    assert bb.dim == 1024 and bb.name == f"torchvision/{ARCH}"
    x = bb.embed_items(images())
    assert x.shape == (6, 1024) and x.dtype == np.float32
    # reference: torchvision's own network up to the last Linear, the weights' transforms
    ref = torchvision.models.get_model(ARCH, weights=None).eval()
    ref.load_state_dict(model.state_dict())
    ref.classifier[3] = torch.nn.Identity()
    tf = torchvision.models.get_model_weights(ARCH).DEFAULT.transforms()
    assert bb.describe()["preprocessing"]["interpolation"] == tf.interpolation.value
    t = torch.from_numpy(images()).permute(0, 3, 1, 2).float() / 255
    t = torch.nn.functional.interpolate(t, size=(round(64 * 256 / 224),) * 2, mode="bilinear",
                                        antialias=True, align_corners=False)
    t = torchvision.transforms.functional.center_crop(t, [64, 64])
    t = torchvision.transforms.functional.normalize(t, tf.mean, tf.std)
    with torch.inference_mode():
        expected = ref(t).numpy()
    np.testing.assert_allclose(x, expected, rtol=1e-3, atol=1e-3)
    assert bb.describe()["weights"]["sha256"] == digest


def test_default_preprocessing_is_the_weights_own(weights_file, hub_dir):
    bb = models.backbone(f"torchvision/{ARCH}", weights=str(weights_file[0]))
    tf = torchvision.models.get_model_weights(ARCH).DEFAULT.transforms()
    assert bb.size == tf.crop_size[0] == 224
    pre = bb.describe()["preprocessing"]
    assert pre["resize"] == tf.resize_size[0] and pre["mean"] == tuple(tf.mean)
    assert bb.preprocess(images(1)[0]).shape == (3, 224, 224)


def test_unknown_model_and_a_model_without_linear_classifier():
    with pytest.raises(ModelError, match="no model 'efficientnet_b99'.*Did you mean"):
        models.backbone("torchvision/efficientnet_b99", weights="x.pth")
    with pytest.raises(ModelError, match="no Linear classifier"):
        models.backbone("torchvision/squeezenet1_0",
                        weights=torchvision.models.squeezenet1_0(weights=None).state_dict())


# ------------------------------------------------------------------ URL route
def test_url_is_fetched_once_into_the_hub_cache_and_checked(weights_file, server, hub_dir):
    path, digest, _ = weights_file
    base, hits = server
    hits.clear()
    url = base + path.name
    bb = models.backbone(f"torchvision/{ARCH}", weights=url, sha256=digest, size=64)
    cached = Path(bb.describe()["weights"]["path"])
    assert cached.parent == hub_dir and cached.read_bytes() == path.read_bytes()
    again = models.backbone(f"torchvision/{ARCH}", weights=url, sha256=digest[:12], size=64)
    assert hits == ["/" + path.name]  # fetched once
    from_file = models.backbone(f"torchvision/{ARCH}", weights=str(path), size=64)
    assert bb.fingerprint == again.fingerprint == from_file.fingerprint
    np.testing.assert_array_equal(bb.embed_items(images()), from_file.embed_items(images()))
    assert not list(hub_dir.glob("*.partial"))


def test_wrong_hash_is_refused_and_not_cached(weights_file, server, hub_dir):
    path, digest, _ = weights_file
    url = server[0] + path.name
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    with pytest.raises(ModelError, match=f"sha256 {digest}.*expected '{wrong}'"):
        models.backbone(f"torchvision/{ARCH}", weights=url, sha256=wrong)
    assert not hub_dir.exists() or not any(hub_dir.iterdir())
    with pytest.raises(ModelError, match="does not start with"):  # a file is checked too
        models.backbone(f"torchvision/{ARCH}", weights=str(path), sha256=wrong)


def test_file_url_route(weights_file, hub_dir):
    path, digest, _ = weights_file
    bb = models.backbone(f"torchvision/{ARCH}", weights=path.as_uri(), sha256=digest)
    assert bb.describe()["weights"]["source"] == "url"
    assert Path(bb.describe()["weights"]["path"]).parent == hub_dir


def test_unreachable_url_without_cache_lists_the_routes(hub_dir):
    url = closed_port_url()
    with pytest.raises(ModelError) as info:
        models.backbone(f"torchvision/{ARCH}", weights=url)
    text = str(info.value)
    for part in ("could not fetch", url, "state_dict file", "URL (http, https, s3, file)",
                 "IMAGENET1K_V1", str(hub_dir)):
        assert part in text, part


def test_missing_file_lists_the_routes(tmp_path, hub_dir):
    with pytest.raises(ModelError, match=r"neither a file, a URL nor a weights enum name"
                                         r"(.|\n)*state_dict file(.|\n)*IMAGENET1K_V1"):
        models.backbone(f"torchvision/{ARCH}", weights=str(tmp_path / "nope.pth"))


# ------------------------------------------------------------------ enum route
def test_enum_goes_through_its_url_and_torchvisions_cache_name(weights_file, hub_dir,
                                                               monkeypatch):
    path, digest, _ = weights_file
    enum = torchvision.models.get_weight("MobileNet_V3_Small_Weights.IMAGENET1K_V1")
    asked: list[str] = []

    def fake_download(url, dest, storage_options):  # stands in for download.pytorch.org
        asked.append(url)
        dest.write_bytes(path.read_bytes())

    monkeypatch.setattr(_weights, "_download", fake_download)
    bb = models.backbone(f"torchvision/{ARCH}", weights="IMAGENET1K_V1", sha256=digest)
    assert asked == [enum.url]
    w = bb.describe()["weights"]
    assert w["enum"] == "MobileNet_V3_Small_Weights.IMAGENET1K_V1"
    assert Path(w["path"]) == hub_dir / enum.url.rsplit("/", 1)[-1]  # torchvision's own name
    models.backbone(f"torchvision/{ARCH}", weights="MobileNet_V3_Small_Weights.IMAGENET1K_V1",
                    sha256=digest)
    assert len(asked) == 1  # the second one came from the cache
    # without sha256 the torchvision file name's hash prefix is checked: ours does not match
    with pytest.raises(ModelError, match="does not start with"):
        models.backbone(f"torchvision/{ARCH}", weights="DEFAULT")


def test_enum_offline_without_cache_lists_the_routes(hub_dir, monkeypatch):
    def offline(url, dest, storage_options):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(_weights, "_download", offline)
    with pytest.raises(ModelError) as info:
        models.backbone(f"torchvision/{ARCH}", weights="IMAGENET1K_V1")
    text = str(info.value)
    assert "download.pytorch.org" in text and "Temporary failure" in text
    assert str(hub_dir) in text and "state_dict file" in text


# -------------------------------------------------------------- fingerprints
def test_fingerprint_names_weights_and_preprocessing(weights_file, hub_dir):
    path, _, model = weights_file
    a = models.backbone(f"torchvision/{ARCH}", weights=str(path), size=64)
    b = models.backbone(f"torchvision/{ARCH}", weights=str(path), size=96)
    other = {k: v + 1 if v.is_floating_point() else v for k, v in model.state_dict().items()}
    c = models.backbone(f"torchvision/{ARCH}", weights=other, size=64)
    assert len({a.fingerprint, b.fingerprint, c.fingerprint}) == 3
    assert a.fingerprint == models.backbone(f"torchvision/{ARCH}", weights=str(path),
                                            size=64).fingerprint


# --------------------------------------------------------------------- config
def test_config_names_torchvision_models_and_checks_sha256():
    cfg = load_config({"active_learning": {"device": "auto", "model": {
        "name": "torchvision/efficientnet_b0", "weights": "IMAGENET1K_V1",
        "input_size": 112, "sha256": "7F5810BC"}}})
    model = cfg.active_learning.model
    assert (model.name, model.input_size, model.sha256) == ("torchvision/efficientnet_b0", 112,
                                                            "7f5810bc")
    assert cfg.active_learning.device == "auto"
    kwargs = models.config_kwargs(model, device="auto")
    assert kwargs == {"weights": "IMAGENET1K_V1", "sha256": "7f5810bc", "size": 112,
                      "batch_size": 32, **({"device": "cuda"} if torch.cuda.is_available()
                                           else {})}
    with pytest.raises(ConfigError, match=r"'active_learning\.model\.sha256'"):
        load_config({"active_learning": {"model": {"name": "resnet18", "sha256": "xyz"}}})
    with pytest.raises(ConfigError, match=r"model\.name'.*efficientnet_lite0.*torchvision/<model>"
                                          r".*Did you mean 'efficientnet_lite0'"):
        load_config({"active_learning": {"model": {"name": "efficientnet_lit0"}}})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_device_missing_is_a_clear_error_and_auto_is_cpu_here(weights_file):
    from alaas_lab.models._device import check_device, resolve_device

    if not (torch.backends.mps.is_available()):
        assert resolve_device("auto") == "cpu"
        bb = models.backbone("efficientnet_lite0", size=32, device="auto")
        assert str(bb.device) == "cpu"
    with pytest.raises(ConfigError, match="'cuda'.*no CUDA device.*'auto' or 'cpu'"):
        check_device("cuda")
    with pytest.raises(ConfigError, match="'device' is 'cuda:1'"):
        models.backbone(f"torchvision/{ARCH}", weights=str(weights_file[0]), device="cuda:1")
    with pytest.raises(ConfigError, match="'active_learning.device'.*no CUDA"):
        models.config_kwargs(load_config({}).active_learning.model, device="cuda")
