"""Tests for alaas_lab.datasets: digits, the IDX reader, MNIST, Fashion-MNIST, CIFAR-10
(downloads from an HTTP server on 127.0.0.1) and image_folder."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from alaas_lab import datasets
from alaas_lab.errors import DataError, InputError

MNIST_DIR = Path(
    os.environ.get(datasets.MNIST_ENV)
    or Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"
)
needs_mnist = pytest.mark.skipif(
    not (MNIST_DIR / "train-images.idx3-ubyte.gz").is_file()
    and not (MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"MNIST files not found in {MNIST_DIR} (see shared/data/README.md)",
)
# md5 of the uncompressed IDX files, from shared/data/README.md
MNIST_MD5 = {
    ("train", "images"): "6bbc9ace898e44ae57da46a324031adb",
    ("train", "labels"): "a25bea736e30d166cdddb491f175f624",
    ("test", "images"): "2646ac647ad5339dbf082846283269ea",
    ("test", "labels"): "27ae3e4e09519cfbb04c329615203637",
}


def test_digits():
    d = datasets.digits()
    assert len(d) == 1797
    assert d.images.shape == (1797, 8, 8) and d.images.dtype == np.float32
    assert d.X.shape == (1797, 64) and d.X.dtype == np.float32
    np.testing.assert_array_equal(d.X, d.images.reshape(1797, 64))
    assert 0.0 == d.X.min() and d.X.max() == 1.0
    assert d.y.dtype == np.int64 and set(np.unique(d.y)) == set(range(10))
    assert d.classes == tuple("0123456789")
    from sklearn.datasets import load_digits

    np.testing.assert_allclose(d.images * 16, load_digits().images)


def test_split_and_subset():
    d = datasets.digits()
    pool, test = d.split(300, rng=0)
    assert len(pool) == 1497 and len(test) == 300
    pool2, test2 = d.split(300, rng=0)
    np.testing.assert_array_equal(test.y, test2.y)
    np.testing.assert_array_equal(test.X, test2.X)
    # disjoint and complete: every image lands in exactly one part
    together = np.concatenate([pool.X, test.X])
    assert len(np.unique(together, axis=0)) == len(np.unique(d.X, axis=0))
    with pytest.raises(InputError, match="n_test"):
        d.split(1797)
    sub = d.subset(np.array([3, 1]))
    np.testing.assert_array_equal(sub.y, d.y[[3, 1]])


def test_idx_round_trip_plain_and_gz(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = datasets.idx_bytes(arr)
    assert raw[:4] == bytes([0, 0, 8, 3])
    assert int.from_bytes(raw[4:8], "big") == 2 and int.from_bytes(raw[12:16], "big") == 4
    (tmp_path / "a.idx").write_bytes(raw)
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "a.idx"), arr)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "a.idx.gz"), arr)
    big = np.array([[1, -2], [70000, 3]], dtype=np.int32)
    np.testing.assert_array_equal(datasets.parse_idx(datasets.idx_bytes(big)), big)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "magic"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "magic"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02", "truncated or damaged"),
        (b"", "magic"),
    ],
)
def test_parse_idx_rejects_bad_files(raw, match):
    with pytest.raises(DataError, match=match):
        datasets.parse_idx(raw)


def write_fake_mnist(folder: Path, n=5, *, gz=True, spelling="-idx", label_max=9):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % (label_max + 1)).astype(np.uint8)
    labels[-1] = label_max
    for stem, arr in (("train-images-idx3-ubyte", images), ("train-labels-idx1-ubyte", labels)):
        name = stem.replace("-idx", spelling)
        raw = datasets.idx_bytes(arr)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return images, labels


@pytest.mark.parametrize(("gz", "spelling"), [(True, "-idx"), (False, "-idx"), (True, ".idx")])
def test_mnist_reads_plain_and_gz_files_under_both_spellings(tmp_path, gz, spelling):
    images, labels = write_fake_mnist(tmp_path, gz=gz, spelling=spelling)
    d = datasets.mnist(tmp_path)
    np.testing.assert_array_equal(d.images, images)
    np.testing.assert_array_equal(d.y, labels)
    assert d.y.dtype == np.int64 and d.X.shape == (5, 784)
    np.testing.assert_allclose(d.X, images.reshape(5, -1) / 255.0, rtol=1e-6)
    assert len(datasets.mnist(tmp_path, limit=2)) == 2


def test_mnist_missing_files_say_what_to_put_where(tmp_path, monkeypatch):
    with pytest.raises(DataError) as err:
        datasets.mnist(tmp_path / "nowhere")
    msg = str(err.value)
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert str((tmp_path / "nowhere").resolve()) in msg
    assert datasets.MNIST_URL in msg
    write_fake_mnist(tmp_path)  # train only
    with pytest.raises(DataError, match="test files missing.*t10k-images"):
        datasets.mnist(tmp_path, split="test")
    monkeypatch.delenv(datasets.MNIST_ENV, raising=False)
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "cache"))
    with pytest.raises(DataError, match="download=False"):
        datasets.mnist(download=False)
    monkeypatch.setenv(datasets.MNIST_ENV, str(tmp_path))
    assert len(datasets.mnist()) == 5
    with pytest.raises(InputError, match="split"):
        datasets.mnist(tmp_path, split="valid")


def test_mnist_rejects_bad_labels(tmp_path):
    write_fake_mnist(tmp_path, label_max=12)
    with pytest.raises(DataError, match="label 12"):
        datasets.mnist(tmp_path)


@needs_mnist
@pytest.mark.parametrize("split", ["train", "test"])
def test_real_mnist_matches_the_published_md5s(split):
    d = datasets.mnist(MNIST_DIR, split=split)
    n = 60_000 if split == "train" else 10_000
    assert d.images.shape == (n, 28, 28) and d.images.dtype == np.uint8
    assert d.y.shape == (n,) and d.y.dtype == np.int64
    assert d.y.min() == 0 and d.y.max() == 9
    assert len(np.unique(d.y)) == 10
    # re-encoding the decoded arrays reproduces the original uncompressed files
    md5_images = hashlib.md5(datasets.idx_bytes(d.images)).hexdigest()
    md5_labels = hashlib.md5(datasets.idx_bytes(d.y.astype(np.uint8))).hexdigest()
    assert md5_images == MNIST_MD5[(split, "images")]
    assert md5_labels == MNIST_MD5[(split, "labels")]


@needs_mnist
def test_real_mnist_limit():
    d = datasets.mnist(MNIST_DIR, split="test", limit=100)
    assert d.images.shape == (100, 28, 28) and d.y[:3].tolist() == [7, 2, 1]


# ---------------------------------------------------------------- downloads
@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder in ALAAS_DATA, and no MNIST folder from the environment."""
    monkeypatch.delenv(datasets.MNIST_ENV, raising=False)
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def test_mnist_downloads_from_the_mirror_checks_and_caches(cache, data_mirror, monkeypatch):
    monkeypatch.setenv(datasets.MIRROR_ENV, data_mirror)
    d = datasets.mnist(split="test")  # the mirror holds the train-images.idx3 spelling
    assert len(d) == 10_000 and d.y[:3].tolist() == [7, 2, 1]
    assert hashlib.md5(datasets.idx_bytes(d.images)).hexdigest() == MNIST_MD5[("test", "images")]
    assert sorted(p.name for p in (cache / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]  # only the split asked for
    assert leftovers(cache) == []
    monkeypatch.setenv(datasets.MIRROR_ENV, "http://127.0.0.1:9/")  # the cache is enough now
    again = datasets.mnist(split="test", limit=10)
    np.testing.assert_array_equal(again.images, d.images[:10])
    assert again.info["source"] == str(cache / "mnist")


def test_fashion_mnist_downloads_from_the_mirror(cache, data_mirror, monkeypatch):
    monkeypatch.setenv(datasets.MIRROR_ENV, data_mirror.rstrip("/"))  # either form of base URL
    d = datasets.fashion_mnist(split="test", limit=50)
    assert d.name == "fashion-mnist-test" and d.images.shape == (50, 28, 28)
    assert d.classes == datasets.FASHION_MNIST_CLASSES and d.classes[9] == "Ankle boot"
    full = datasets.read_idx(cache / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz")
    assert hashlib.md5(datasets.idx_bytes(full)).hexdigest() == (
        datasets.REMOTES["fashion-mnist"].md5["t10k-labels-idx1-ubyte.gz"])


def serve(tmp_path, files: dict[str, bytes]):
    from tests.conftest import serve_folder

    root = tmp_path / "mirror"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return serve_folder(root)


def test_a_wrong_file_is_refused_and_nothing_is_left(cache, tmp_path, monkeypatch):
    fake = gzip.compress(datasets.idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    root = tmp_path / "mirror" / "mnist"
    root.mkdir(parents=True)
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(fake)  # right name, wrong content
    (root / "t10k-labels.idx1-ubyte.gz").write_bytes(b"not gzip")
    monkeypatch.setenv(datasets.MIRROR_ENV, (tmp_path / "mirror").as_uri())  # file:// works
    with pytest.raises(DataError) as err:
        datasets.mnist(split="test")
    msg = str(err.value)
    assert "md5" in msg and "expected 2646ac647ad5339dbf082846283269ea" in msg
    assert f"{(tmp_path / 'mirror').as_uri()}/mnist/t10k-images.idx3-ubyte.gz" in msg  # both tried
    assert datasets.MIRROR_ENV in msg and datasets.DATA_ENV in msg
    assert not (cache / "mnist" / "t10k-images-idx3-ubyte.gz").exists()
    assert leftovers(cache) == []


def test_a_failed_download_lists_the_urls_and_variables(cache, monkeypatch):
    monkeypatch.delenv(datasets.MIRROR_ENV, raising=False)
    remote = dataclasses.replace(datasets.REMOTES["mnist"],
                                 urls=("http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/"))
    monkeypatch.setitem(datasets._REMOTES, "mnist", remote)
    with pytest.raises(DataError) as err:
        datasets.mnist(split="test")
    msg = str(err.value)
    assert "http://127.0.0.1:9/a/t10k-images-idx3-ubyte.gz" in msg
    assert "http://127.0.0.1:9/b/t10k-images-idx3-ubyte.gz" in msg
    assert f"{datasets.MIRROR_ENV} is unset" in msg and "path=" in msg
    assert leftovers(cache) == []


def test_public_locations_are_the_usual_ones():
    r = datasets.REMOTES
    assert r["mnist"].urls[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert any("zalando" in u for u in r["fashion-mnist"].urls)
    assert r["cifar10"].urls == ("https://www.cs.toronto.edu/~kriz/",)
    assert set(r["cifar10"].md5) == {"cifar-10-binary.tar.gz"}
    with pytest.raises(TypeError):
        r["mine"] = r["mnist"]  # read-only
    with pytest.raises(InputError, match="name must be one of"):
        datasets.fetch("imagenet")


# ---------------------------------------------------------------- CIFAR-10
def fake_cifar(n=3):
    """A tiny cifar-10-binary.tar.gz (n records per batch) and the arrays it holds."""
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    arrays = {}
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in (*datasets.CIFAR10_FILES["train"], "test_batch.bin", "batches.meta.txt"):
            if name.endswith(".bin"):
                images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
                labels = rng.integers(0, 10, n).astype(np.uint8)
                planes = images.transpose(0, 3, 1, 2).reshape(n, -1)  # R plane, G, B
                raw = np.concatenate([labels[:, None], planes], axis=1).tobytes()
                arrays[name] = (images, labels)
            else:
                raw = "\n".join(datasets.CIFAR10_CLASSES).encode()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return buf.getvalue(), arrays


def test_cifar10_downloads_unpacks_and_reads(cache, tmp_path, monkeypatch):
    blob, arrays = fake_cifar()
    md5 = hashlib.md5(blob).hexdigest()  # a test registry entry for the tiny archive
    remote = dataclasses.replace(datasets.REMOTES["cifar10"],
                                 md5={"cifar-10-binary.tar.gz": md5})
    monkeypatch.setitem(datasets._REMOTES, "cifar10", remote)
    url, proc = serve(tmp_path, {"cifar10/cifar-10-binary.tar.gz": blob})
    try:
        monkeypatch.setenv(datasets.MIRROR_ENV, url)
        d = datasets.cifar10(split="train")
    finally:
        from tests.conftest import stop

        stop(proc)
    assert d.images.shape == (15, 32, 32, 3) and d.X.shape == (15, 3072)
    np.testing.assert_array_equal(d.images[:3], arrays["data_batch_1.bin"][0])
    np.testing.assert_array_equal(d.y[12:], arrays["data_batch_5.bin"][1])
    assert d.classes[0] == "airplane" and d.y.dtype == np.int64
    names = sorted(p.name for p in (cache / "cifar10").iterdir())
    assert names == sorted([*datasets.CIFAR10_FILES["train"], "test_batch.bin"])  # archive gone
    test = datasets.cifar10(split="test", limit=2)  # from the cache, server stopped
    np.testing.assert_array_equal(test.images, arrays["test_batch.bin"][0][:2])
    assert len(datasets.cifar10(limit=4)) == 4


def test_cifar10_reads_a_folder_or_the_archive(tmp_path):
    blob, arrays = fake_cifar(2)
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(blob)
    for src in (tmp_path, tmp_path / "cifar-10-binary.tar.gz"):
        d = datasets.cifar10(src, split="test")
        np.testing.assert_array_equal(d.y, arrays["test_batch.bin"][1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar-10-binary.tar.gz"]  # unwritten
    with tarfile.open(tmp_path / "cifar-10-binary.tar.gz") as tar:
        tar.extractall(tmp_path / "x", filter="data")
    d = datasets.cifar10(tmp_path / "x", split="train")  # finds cifar-10-batches-bin/
    assert len(d) == 10
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="test files missing.*test_batch.bin"):
        datasets.cifar10(tmp_path / "empty", split="test")
    with pytest.raises(InputError, match="split"):
        datasets.cifar10(tmp_path, split="valid")
    with pytest.raises(DataError, match="whole number of 3073-byte"):
        datasets.parse_cifar(b"\x00" * 3074)


def test_cifar10_without_download(cache):
    with pytest.raises(DataError, match="download=False"):
        datasets.cifar10(download=False)


# ---------------------------------------------------------------- image_folder
def make_image_folder(root: Path, digits_per_class=3):
    from PIL import Image

    d = datasets.digits()
    truth = {}
    for cls in ("3", "7"):
        idx = np.flatnonzero(d.y == int(cls))[:digits_per_class]
        for k, i in enumerate(idx):
            sub = root / cls / ("nested" if k == 2 else "")
            sub.mkdir(parents=True, exist_ok=True)
            path = sub / f"{i}.png"
            Image.fromarray((d.images[i] * 255).astype(np.uint8)).save(path)
            truth[str(path)] = cls
    (root / "3" / "notes.txt").write_text("not an image")
    (root / "3" / ".hidden.png").write_bytes(b"")
    (root / "README.md").write_text("loose files at the top are ignored")
    return truth


def test_image_folder_lists_images_with_their_class(tmp_path):
    truth = make_image_folder(tmp_path / "data")
    uris, labels = datasets.image_folder(tmp_path / "data")
    assert dict(zip(uris, labels, strict=True)) == truth
    assert labels == ["3"] * 3 + ["7"] * 3 and all(os.path.isabs(u) for u in uris)
    (tmp_path / "data" / "empty").mkdir()
    with pytest.raises(DataError, match=r"\['empty'\] .* hold no image"):
        datasets.image_folder(tmp_path / "data")
    with pytest.raises(DataError, match="no class sub-folders"):
        datasets.image_folder(tmp_path / "data" / "7" / "nested")
    with pytest.raises(DataError, match="is not a folder"):
        datasets.image_folder(tmp_path / "nope")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from alaas_lab import Lab

    tmp = tmp_path_factory.mktemp("imagefolder")
    cfg = {
        "name": "imagefolder",
        "active_learning": {"strategy": {"type": "least_confidence"},
                            "model": {"name": "flatten", "batch_size": 64}},
        "data": {"kind": "image", "image_mode": "L"},
        "classes": [str(i) for i in range(10)],
        "budget": {"total": 100, "per_round": 2, "initial": 2},
        "cache_dir": str(tmp / "cache"),
    }
    lab = Lab(cfg, tmp / "session", labeler="tester").start()
    yield lab
    lab.stop()


def test_an_image_folder_is_pushed_as_an_eval_set_or_a_pool(lab, tmp_path):
    from alaas_lab.errors import AlaasError

    truth = make_image_folder(tmp_path / "eval")
    out = lab.push(tmp_path / "eval", role="eval", labels="from_folders")
    assert out["quarantined"] == [] and len(out["item_ids"]) == 6
    status = lab.status()
    assert status["n_eval"] == 6 and status["n_labeled"] == 0
    rows = lab.labels(include_eval=True)
    assert dict(zip(rows["uri"], rows["label"], strict=True)) == truth
    uris, labels = datasets.image_folder(tmp_path / "eval")  # the same, by hand: no new items
    assert lab.push(uris, role="eval", labels=labels)["n_new"] == 0
    make_image_folder(tmp_path / "pool", digits_per_class=2)
    before = lab.status()["n_items"]
    lab.push(datasets.image_folder(tmp_path / "pool")[0])  # as a pool: files only
    assert lab.status()["n_items"] == before + 4
    with pytest.raises(AlaasError, match="for role='eval'"):
        lab.push(tmp_path / "pool", labels="from_folders")
    with pytest.raises(AlaasError, match="'from_folder'"):
        lab.push(tmp_path / "pool", role="eval", labels="from_folder")
