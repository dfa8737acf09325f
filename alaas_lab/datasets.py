"""Small labeled image data sets for demos, tests and benchmarks, read offline.

``digits()``
    scikit-learn's bundled 8x8 digits (1,797 images, 10 classes);
``mnist(path, split=...)``
    MNIST from its original IDX files (plain or ``.gz``), parsed here with numpy.

Both return a :class:`Dataset`: images, flattened features ``X``, labels ``y``
and class names. Nothing is downloaded: a missing file raises
:class:`~alaas_lab.errors.DataError` saying which files to put where.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import check_count, check_random_state
from .errors import DataError, InputError

#: Where the MNIST files can be downloaded from.
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
#: Environment variable naming the MNIST folder, used when ``mnist(path=None)``.
MNIST_ENV = "ALAAS_LAB_MNIST_DIR"
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labeled image data set held in memory.

    Attributes
    ----------
    name : str
    images : ndarray of shape (n, H, W)
        uint8 pixels (MNIST) or float32 values in [0, 1] (digits).
    y : ndarray of shape (n,), int64
        Class indices into ``classes``.
    classes : tuple of str
        Class names.
    X : ndarray of shape (n, H*W), float32
        Images flattened and scaled to [0, 1] (computed on first access).
    """

    name: str
    images: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.shape[0] != self.y.shape[0]:
            raise InputError(
                f"images ({self.images.shape[0]}) and y ({self.y.shape[0]}) differ in length."
            )

    @functools.cached_property
    def X(self) -> np.ndarray:  # noqa: N802 - the usual name for a design matrix
        flat = self.images.reshape(len(self), -1)
        if flat.dtype == np.uint8:
            return flat.astype(np.float32) / np.float32(255.0)
        return flat.astype(np.float32, copy=False)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, n={len(self)}, image_shape={self.images.shape[1:]}, "
            f"classes={len(self.classes)})"
        )

    def subset(self, indices: Any, *, name: str | None = None) -> Dataset:
        """The items at ``indices`` (1-D int array), as a new Dataset."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise InputError(f"indices must be a 1-D integer array; got {idx.dtype} {idx.shape}.")
        return Dataset(
            name or self.name, self.images[idx], self.y[idx], self.classes, dict(self.info)
        )

    def split(self, n_test: int, rng: Any = None) -> tuple[Dataset, Dataset]:
        """Random (pool, test) split with ``n_test`` items in the test part.

        Parameters
        ----------
        n_test : int
            Items held out, ``1 <= n_test < len(self)``.
        rng : None, int or numpy.random.Generator

        Returns
        -------
        pool, test : Dataset
        """
        n_test = check_count(n_test, name="n_test", minimum=1)
        if n_test >= len(self):
            raise InputError(
                f"n_test={n_test} leaves no pool items; the data set has {len(self)} items."
            )
        order = check_random_state(rng).permutation(len(self))
        return (
            self.subset(np.sort(order[n_test:]), name=f"{self.name}-pool"),
            self.subset(np.sort(order[:n_test]), name=f"{self.name}-test"),
        )


def digits() -> Dataset:
    """scikit-learn's 8x8 handwritten digits.

    Returns
    -------
    Dataset
        ``images`` float32 ``(1797, 8, 8)`` scaled from 0..16 to [0, 1]; ``X``
        ``(1797, 64)``; ``y`` int64 in 0..9; classes ``"0"`` .. ``"9"``.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)
    return Dataset(
        "digits",
        images,
        bunch.target.astype(np.int64),
        tuple(str(c) for c in bunch.target_names),
        {"source": "sklearn.datasets.load_digits"},
    )


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (plain or gzip-compressed) into a numpy array.

    The header is a big-endian magic number ``0x0000TTDD`` (T: data type, D: number
    of dimensions), then one uint32 per dimension, then the data.

    Raises
    ------
    DataError
        The file is missing, truncated or not IDX.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read IDX file {str(p)!r}: {exc}") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(
                f"{str(p)!r} is a damaged gzip file ({exc}); download it again."
            ) from exc
    return parse_idx(raw, name=str(p))


def parse_idx(raw: bytes, *, name: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an uncompressed IDX file (see :func:`read_idx`)."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{name} is not an IDX file: bad magic number {raw[:4].hex() or '(empty)'} "
            "(expected 0000TTDD with a known type TT)."
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{name}: IDX header is truncated or declares {ndim} dimensions.")
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[raw[2]]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(
            f"{name}: header says shape {shape} ({expected} bytes of data) but the file "
            f"holds {len(raw) - header}; the file is truncated or damaged."
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def idx_bytes(array: np.ndarray) -> bytes:
    """The bytes of an uncompressed IDX file holding ``array`` (inverse of :func:`parse_idx`)."""
    arr = np.asarray(array)
    codes = {v.newbyteorder("="): k for k, v in _IDX_DTYPES.items()}
    code = codes.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise InputError(
            f"IDX cannot hold dtype {arr.dtype}; use uint8, int8, int16, int32, float32/64."
        )
    target = _IDX_DTYPES[code]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + np.ascontiguousarray(arr, dtype=target).tobytes()


def _find_idx(folder: Path, stem: str) -> Path | None:
    """The file for ``stem`` in ``folder``, under the usual spellings, plain or gzipped."""
    names = {stem, stem.replace("-idx", ".idx")}
    for n in sorted(names):
        for candidate in (folder / n, folder / f"{n}.gz"):
            if candidate.is_file():
                return candidate
    return None


def mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    split: str = "train",
    limit: int | None = None,
) -> Dataset:
    """MNIST digits from the original IDX files.

    Parameters
    ----------
    path : str or PathLike, optional
        Folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each plain or
        ``.gz``; ``train-images.idx3-ubyte.gz`` spellings work too). Default: the
        folder in ``$ALAAS_LAB_MNIST_DIR``.
    split : {"train", "test"}, default "train"
        60,000 training or 10,000 test images.
    limit : int, optional
        Keep only the first ``limit`` items.

    Returns
    -------
    Dataset
        ``images`` uint8 ``(n, 28, 28)``; ``X`` float32 ``(n, 784)`` in [0, 1];
        ``y`` int64 in 0..9.

    Raises
    ------
    DataError
        The folder or a file is missing (the message says which files go where and
        where to download them), or a file is not valid IDX.
    """
    if split not in MNIST_FILES:
        raise InputError(f"split must be 'train' or 'test'; got {split!r}.")
    if limit is not None:
        limit = check_count(limit, name="limit", minimum=1)
    if path is None:
        env = os.environ.get(MNIST_ENV)
        if not env:
            raise DataError(
                "mnist() needs the folder holding the MNIST IDX files: pass path= or set "
                f"{MNIST_ENV}. {_mnist_help(None)}"
            )
        path = env
    folder = Path(path)
    stems = MNIST_FILES[split]
    found = [_find_idx(folder, s) for s in stems]
    missing = [s for s, f in zip(stems, found, strict=True) if f is None]
    if missing:
        raise DataError(
            f"MNIST {split} files missing from {str(folder.resolve())!r}: "
            f"{', '.join(m + '.gz' for m in missing)}. {_mnist_help(folder)}"
        )
    images = read_idx(found[0])
    labels = read_idx(found[1])
    if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{str(found[0])!r} should hold uint8 images of shape (n, 28, 28); "
            f"got {images.dtype} {images.shape}."
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{str(found[1])!r} should hold {images.shape[0]} labels; got shape {labels.shape}."
        )
    if labels.size and labels.max() > 9:
        raise DataError(
            f"{str(found[1])!r} holds label {int(labels.max())}; MNIST labels are 0..9."
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Dataset(
        f"mnist-{split}",
        np.ascontiguousarray(images),
        labels.astype(np.int64),
        tuple(str(i) for i in range(10)),
        {"source": str(folder), "files": [str(f) for f in found]},
    )


def _mnist_help(folder: Path | None) -> str:
    where = f"into {str(folder.resolve())!r}" if folder is not None else "into one folder"
    return (
        "Put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz {where} (uncompressed "
        "files and the train-images.idx3-ubyte.gz spelling work too); they can be "
        f"downloaded from {MNIST_URL} (in this repository's checkout they live in "
        "../shared/data/mnist)."
    )
