"""Tests for alaas_lab.datasets: digits, the IDX reader and MNIST."""

from __future__ import annotations

import gzip
import hashlib
import os
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
    with pytest.raises(DataError, match=datasets.MNIST_ENV):
        datasets.mnist()
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
