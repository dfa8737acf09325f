"""Small labeled image data sets for demos, tests and benchmarks.

``digits()``
    scikit-learn's bundled 8x8 digits (1,797 images, 10 classes);
``mnist(path=None, split=...)``, ``fashion_mnist(...)``
    MNIST and Fashion-MNIST from their original IDX files (plain or ``.gz``), parsed
    here with numpy;
``cifar10(path=None, split=...)``
    CIFAR-10 (the paper's data set) from its *binary* release (plain bytes, no pickle);
``image_folder(path)``
    the files of a folder of class sub-folders (torchvision's ImageFolder layout) and
    their labels, ready for ``lab.push(uris, role="eval", labels=labels)``.

The loaders return a :class:`Dataset`: images, flattened features ``X``, labels ``y``
and class names. Given a ``path`` they read that folder and never download. With no
path they look in the cache folder (``$ALAAS_DATA/<name>``, default
``~/.cache/alaas_lab/data/<name>``), and otherwise download the files from
``$ALAAS_DATA_MIRROR`` (a base URL laid out as ``<name>/<file>``) or, when it is unset,
from the data set's usual public location; each download is checked against its md5
and written to a temporary file that is renamed into place only when complete.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ._validation import check_count, check_random_state
from .errors import DataError, InputError

#: Environment variable: the cache root; data set ``name`` lives in ``$ALAAS_DATA/<name>``.
DATA_ENV = "ALAAS_DATA"
#: Environment variable: base URL(s) of a mirror laid out as ``<name>/<file>`` (whitespace
#: separated; ``http(s)://`` or ``file://``). When set, only the mirror is tried.
MIRROR_ENV = "ALAAS_DATA_MIRROR"
#: Where the MNIST files are downloaded from (the mirror torchvision uses).
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
#: Environment variable naming a folder of MNIST files, read when ``mnist(path=None)``.
MNIST_ENV = "ALAAS_LAB_MNIST_DIR"
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
#: File suffixes :func:`image_folder` takes as images (torchvision's list, lower case).
IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp",
)


@dataclass(frozen=True)
class Remote:
    """Where a data set's files come from, and their md5s.

    Attributes
    ----------
    name : str
        Sub-folder of the cache root and of a mirror.
    md5 : dict of str to str
        File name (as stored in the cache and fetched) -> md5 hex digest. For ``.gz``
        files with ``gunzip_md5`` the digest is of the uncompressed bytes.
    urls : tuple of str
        Public base URLs, tried in order when ``$ALAAS_DATA_MIRROR`` is unset.
    gunzip_md5 : bool
        Whether the md5s are of the uncompressed ``.gz`` contents.
    system_dirs : tuple of str
        Read-only folders where a system package installs the files.
    """

    name: str
    md5: dict[str, str]
    urls: tuple[str, ...]
    gunzip_md5: bool = True
    system_dirs: tuple[str, ...] = ()


_REMOTES: dict[str, Remote] = {
    "mnist": Remote(
        "mnist",
        {
            "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
        },
        (MNIST_URL, "http://yann.lecun.com/exdb/mnist/"),
    ),
    "fashion-mnist": Remote(
        "fashion-mnist",
        {
            "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        (
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
        ),
        system_dirs=("/usr/share/datasets/fashion-mnist",),
    ),
    "cifar10": Remote(
        "cifar10",
        {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
        ("https://www.cs.toronto.edu/~kriz/",),
        gunzip_md5=False,
    ),
}
#: The data sets that download, by name (read-only).
REMOTES = MappingProxyType(_REMOTES)
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
    images : ndarray of shape (n, H, W) or (n, H, W, 3)
        uint8 pixels (MNIST, Fashion-MNIST; CIFAR-10 in RGB) or float32 values in
        [0, 1] (digits).
    y : ndarray of shape (n,), int64
        Class indices into ``classes``.
    classes : tuple of str
        Class names.
    X : ndarray of shape (n, H*W) or (n, H*W*3), float32
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


def cache_dir(name: str | None = None) -> Path:
    """The folder where downloaded data sets are kept (nothing is created here).

    ``$ALAAS_DATA`` when set, else ``$XDG_CACHE_HOME/alaas_lab/data`` (default
    ``~/.cache/alaas_lab/data``); with ``name``, that data set's sub-folder.
    """
    root = os.environ.get(DATA_ENV)
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "alaas_lab" / "data"
    return base / name if name else base


def fetch(name: str, files: Any = None, *, folder: str | os.PathLike[str] | None = None) -> Path:
    """Fetch the files of a data set into its cache folder, skipping those already there.

    Parameters
    ----------
    name : str
        A key of :data:`REMOTES`: ``"mnist"``, ``"fashion-mnist"`` or ``"cifar10"``.
    files : sequence of str, optional
        File names among ``REMOTES[name].md5``; default all of them.
    folder : str or PathLike, optional
        Where to put them; default :func:`cache_dir(name) <cache_dir>`.

    Returns
    -------
    Path
        The folder holding the files.

    Raises
    ------
    DataError
        Every URL failed (the message lists each URL with its error, and the
        environment variables to set), or the folder cannot be written.
    """
    if name not in _REMOTES:
        raise InputError(f"fetch: name must be one of {sorted(_REMOTES)}; got {name!r}.")
    remote = _REMOTES[name]
    wanted = list(remote.md5) if files is None else list(files)
    unknown = [f for f in wanted if f not in remote.md5]
    if unknown:
        raise InputError(
            f"fetch: {name} has no file(s) {unknown}; its files are {sorted(remote.md5)}."
        )
    target_dir = Path(folder) if folder is not None else cache_dir(name)
    for fname in wanted:
        if not (target_dir / fname).is_file():
            _fetch(remote, fname, target_dir / fname)
    return target_dir


class _FetchError(Exception):
    """One URL failed; the message says why (for the list of URLs tried)."""


def _fetch(remote: Remote, fname: str, target: Path) -> None:
    mirrors = os.environ.get(MIRROR_ENV, "").split()
    if mirrors:  # a mirror replaces the public URLs; it may use either IDX spelling
        bases = [m.rstrip("/") + f"/{remote.name}/" for m in mirrors]
        names = [fname] + ([fname.replace("-idx", ".idx")] if "-idx" in fname else [])
    else:
        bases, names = list(remote.urls), [fname]
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"cannot create the data folder {str(target.parent)!r} ({exc}); set {DATA_ENV} "
            "to a writable folder, or pass path= to a folder that holds the files."
        ) from exc
    tried = []
    for base in bases:
        for n in names:
            url = base + n
            try:
                _download_to(url, target, remote.md5[fname], gunzip=remote.gunzip_md5)
                return
            except _FetchError as exc:
                tried.append(f"{url}: {exc}")
    where = (
        f"{MIRROR_ENV}={' '.join(mirrors)!r}" if mirrors else f"{MIRROR_ENV} is unset"
    )
    raise DataError(
        f"could not download {remote.name} file {fname} ({where}); tried\n  "
        + "\n  ".join(tried)
        + f"\nFix: set {MIRROR_ENV} to a base URL (http(s):// or file://) that serves "
        f"{remote.name}/{fname}, or put the file into {str(target.parent)!r} (the cache "
        f"folder; set {DATA_ENV} to move it), or pass path= to a folder that holds it."
    )


def _opener(url: str) -> urllib.request.OpenerDirector:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in ("127.0.0.1", "localhost", "::1"):  # never through an http_proxy
        return urllib.request.build_opener(urllib.request.ProxyHandler({}))
    return urllib.request.build_opener()


def _download_to(url: str, target: Path, md5: str, *, gunzip: bool) -> None:
    """Download ``url`` to ``target`` via a temporary file renamed once its md5 checks."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        try:
            with os.fdopen(fd, "wb") as out, _opener(url).open(url, timeout=60) as resp:
                print(f"alaas_lab: downloading {url} to {target.parent}", file=sys.stderr)
                while chunk := resp.read(1 << 20):
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            raise _FetchError(f"HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            raise _FetchError(str(exc.reason)) from None
        except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
            raise _FetchError(f"{type(exc).__name__}: {exc}") from None
        try:
            digest = _md5(tmp, gunzip=gunzip)
        except (OSError, EOFError) as exc:
            raise _FetchError(f"not a valid gzip file ({exc})") from None
        if digest != md5:
            raise _FetchError(f"md5 {digest}, expected {md5}: damaged or not the right file")
        tmp.chmod(0o644)  # mkstemp makes it private; a cache is readable like any download
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _md5(path: Path, *, gunzip: bool) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with (gzip.open(path, "rb") if gunzip else path.open("rb")) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _check_split(split: str, allowed: Any) -> None:
    if split not in allowed:
        raise InputError(f"split must be 'train' or 'test'; got {split!r}.")


def _idx_dataset(
    name: str,
    path: str | os.PathLike[str] | None,
    split: str,
    limit: int | None,
    download_ok: bool,
    classes: tuple[str, ...],
) -> Dataset:
    """The shared body of :func:`mnist` and :func:`fashion_mnist`."""
    _check_split(split, MNIST_FILES)
    if limit is not None:
        limit = check_count(limit, name="limit", minimum=1)
    stems = MNIST_FILES[split]
    if path is not None:
        folder = Path(path)
        found = [_find_idx(folder, s) for s in stems]
        missing = [s for s, f in zip(stems, found, strict=True) if f is None]
        if missing:
            raise DataError(
                f"{name} {split} files missing from {str(folder.resolve())!r}: "
                f"{', '.join(m + '.gz' for m in missing)}. {_idx_help(name, folder)}"
            )
    else:
        remote = _REMOTES[name]
        found = []
        for folder in (cache_dir(name), *map(Path, remote.system_dirs)):
            found = [_find_idx(folder, s) for s in stems]
            if all(found):
                break
        if not all(found):
            if not download_ok:
                raise DataError(
                    f"{name} {split} files are not in {str(cache_dir(name))!r} and "
                    f"download=False. {_idx_help(name, cache_dir(name))}"
                )
            folder = fetch(name, [s + ".gz" for s in stems])
            found = [folder / f"{s}.gz" for s in stems]
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
            f"{str(found[1])!r} holds label {int(labels.max())}; {name} labels are 0..9."
        )
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return Dataset(
        f"{name}-{split}",
        np.ascontiguousarray(images),
        labels.astype(np.int64),
        classes,
        {"source": str(Path(found[0]).parent), "files": [str(f) for f in found]},
    )


def mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    split: str = "train",
    limit: int | None = None,
    download: bool = True,
) -> Dataset:
    """MNIST digits from the original IDX files, downloaded and cached when needed.

    Parameters
    ----------
    path : str or PathLike, optional
        Folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each plain or
        ``.gz``; ``train-images.idx3-ubyte.gz`` spellings work too); read as is, never
        downloaded into. Default: ``$ALAAS_LAB_MNIST_DIR`` when set, else the cache
        folder (:func:`cache_dir`), filled from ``$ALAAS_DATA_MIRROR`` or
        https://ossci-datasets.s3.amazonaws.com/mnist/ (md5-checked) when empty.
    split : {"train", "test"}, default "train"
        60,000 training or 10,000 test images.
    limit : int, optional
        Keep only the first ``limit`` items.
    download : bool, default True
        With no path, download missing files; ``False`` raises instead.

    Returns
    -------
    Dataset
        ``images`` uint8 ``(n, 28, 28)``; ``X`` float32 ``(n, 784)`` in [0, 1];
        ``y`` int64 in 0..9; classes ``"0"`` .. ``"9"``.

    Raises
    ------
    DataError
        A file is missing from ``path`` (the message says which files go where), a
        download failed (it lists the URLs tried and the variables to set), or a file
        is not valid IDX.
    """
    if path is None and os.environ.get(MNIST_ENV):
        path = os.environ[MNIST_ENV]
    return _idx_dataset("mnist", path, split, limit, download, tuple(str(i) for i in range(10)))


def fashion_mnist(
    path: str | os.PathLike[str] | None = None,
    *,
    split: str = "train",
    limit: int | None = None,
    download: bool = True,
) -> Dataset:
    """Fashion-MNIST (Zalando Research): 28x28 grey images of clothing, 10 classes.

    Same files, layout and parameters as :func:`mnist`. With no ``path`` the files come
    from the cache folder, Debian's ``/usr/share/datasets/fashion-mnist`` (package
    ``dataset-fashion-mnist``), ``$ALAAS_DATA_MIRROR`` or Zalando's public S3 and GitHub
    locations, in that order.

    Returns
    -------
    Dataset
        ``images`` uint8 ``(n, 28, 28)``; ``y`` int64 in 0..9; ``classes`` from
        ``"T-shirt/top"`` to ``"Ankle boot"`` (:data:`FASHION_MNIST_CLASSES`).
    """
    return _idx_dataset("fashion-mnist", path, split, limit, download, FASHION_MNIST_CLASSES)


def _idx_help(name: str, folder: Path) -> str:
    remote = _REMOTES[name]
    return (
        "Put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        f"t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz into "
        f"{str(folder.resolve())!r} (uncompressed files and the train-images.idx3-ubyte.gz "
        f"spelling work too); they can be downloaded from {remote.urls[0]}, or call "
        f"{name.replace('-', '_')}() with no path to download and cache them."
    )


def cifar10(
    path: str | os.PathLike[str] | None = None,
    *,
    split: str = "train",
    limit: int | None = None,
    download: bool = True,
) -> Dataset:
    """CIFAR-10 (Krizhevsky 2009): 32x32 colour images, 10 classes, the paper's data set.

    Read from the **binary** release (``cifar-10-binary.tar.gz``: records of one label
    byte then 3,072 pixel bytes), so no pickle is ever loaded.

    Parameters
    ----------
    path : str or PathLike, optional
        A folder holding ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
        ``test_batch.bin`` (directly or in ``cifar-10-batches-bin/``), or holding
        ``cifar-10-binary.tar.gz``, or that archive itself; read, never written.
        Default: the cache folder (:func:`cache_dir`), filled when empty from
        ``$ALAAS_DATA_MIRROR`` or https://www.cs.toronto.edu/~kriz/ (162 MB, md5-checked;
        the archive is unpacked and removed).
    split : {"train", "test"}, default "train"
        50,000 training or 10,000 test images.
    limit : int, optional
        Keep only the first ``limit`` items (only the batches needed are read).
    download : bool, default True
        With no path, download the archive when needed; ``False`` raises instead.

    Returns
    -------
    Dataset
        ``images`` uint8 ``(n, 32, 32, 3)`` (RGB); ``X`` float32 ``(n, 3072)`` in [0, 1];
        ``y`` int64 in 0..9; ``classes`` :data:`CIFAR10_CLASSES`.
    """
    _check_split(split, CIFAR10_FILES)
    if limit is not None:
        limit = check_count(limit, name="limit", minimum=1)
    wanted = CIFAR10_FILES[split]
    archive = "cifar-10-binary.tar.gz"
    if path is None:
        folder = cache_dir("cifar10")
        if not all((folder / f).is_file() for f in wanted):
            if not (folder / archive).is_file():
                if not download:
                    raise DataError(
                        f"CIFAR-10 is not in {str(folder)!r} and download=False; put "
                        f"{archive} (from https://www.cs.toronto.edu/~kriz/) there."
                    )
                fetch("cifar10", [archive])
            _unpack_cifar(folder / archive, folder)
        source = folder
    else:
        source = Path(path)
        if source.is_dir():
            for candidate in (source, source / "cifar-10-batches-bin"):
                if all((candidate / f).is_file() for f in wanted):
                    source = candidate
                    break
            else:
                if (source / archive).is_file():
                    source = source / archive
                else:
                    raise DataError(
                        f"CIFAR-10 {split} files missing from {str(source.resolve())!r}: "
                        f"expected {', '.join(wanted)} (in it or in cifar-10-batches-bin/), "
                        f"or {archive} from https://www.cs.toronto.edu/~kriz/."
                    )
        elif not source.is_file():
            raise DataError(f"{str(source)!r} does not exist; give the CIFAR-10 folder or "
                            f"{archive}.")
    images, labels, n = [], [], 0
    for fname in wanted:
        raw = _cifar_member(source, fname)
        img, lab = parse_cifar(raw, name=fname)
        images.append(img)
        labels.append(lab)
        n += len(lab)
        if limit is not None and n >= limit:
            break
    x = np.concatenate(images)[:limit]
    y = np.concatenate(labels)[:limit]
    return Dataset(f"cifar10-{split}", x, y, CIFAR10_CLASSES, {"source": str(source)})


def parse_cifar(raw: bytes, *, name: str = "CIFAR-10 batch") -> tuple[np.ndarray, np.ndarray]:
    """Parse one CIFAR-10 binary batch: ``(images uint8 (n, 32, 32, 3), labels int64 (n,))``."""
    record = 1 + 3 * 32 * 32
    if not raw or len(raw) % record:
        raise DataError(
            f"{name} holds {len(raw)} bytes, not a whole number of {record}-byte CIFAR-10 "
            "records; the file is truncated or not from cifar-10-binary.tar.gz."
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    labels = rows[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{name} holds label {int(labels.max())}; CIFAR-10 labels are 0..9.")
    images = rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _cifar_member(source: Path, fname: str) -> bytes:
    """The bytes of batch ``fname`` from a folder or from the archive (no extraction)."""
    if source.is_dir():
        return (source / fname).read_bytes()
    try:
        with tarfile.open(source, "r:gz") as tar:
            for member in tar:
                if member.isfile() and Path(member.name).name == fname:
                    f = tar.extractfile(member)
                    assert f is not None
                    return f.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{str(source)!r} is not a readable tar.gz ({exc}).") from exc
    raise DataError(f"{str(source)!r} holds no {fname}; is it cifar-10-binary.tar.gz?")


def _unpack_cifar(archive: Path, folder: Path) -> None:
    """Write the batches of ``archive`` into ``folder`` (temp file, then rename), then
    remove the archive. Only the known batch names are read; paths in it are ignored."""
    names = {f for files in CIFAR10_FILES.values() for f in files}
    done = set()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                base = Path(member.name).name
                if not member.isfile() or base not in names:
                    continue
                f = tar.extractfile(member)
                assert f is not None
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{base}.", suffix=".part")
                try:
                    with os.fdopen(fd, "wb") as out:
                        while chunk := f.read(1 << 20):
                            out.write(chunk)
                    os.chmod(tmp, 0o644)
                    os.replace(tmp, folder / base)
                finally:
                    Path(tmp).unlink(missing_ok=True)
                done.add(base)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(
            f"cannot unpack {str(archive)!r} ({exc}); delete it and call cifar10() again."
        ) from exc
    if done != names:
        raise DataError(f"{str(archive)!r} lacks {sorted(names - done)}; is it "
                        "cifar-10-binary.tar.gz? Delete it and call cifar10() again.")
    archive.unlink()


def image_folder(
    path: str | os.PathLike[str], *, extensions: tuple[str, ...] = IMAGE_EXTENSIONS
) -> tuple[list[str], list[str]]:
    """The images of a folder of class sub-folders, and their class names.

    The layout of torchvision's ``ImageFolder``: ``path/<class>/<any/depth/>image.png``.
    Push them as an evaluation set with ``lab.push(uris, role="eval", labels=labels)``
    (or ``lab.push(path, role="eval", labels="from_folders")``, which calls this), or
    as a pool with ``lab.push(uris)``. The class names must be among the session's
    ``classes``.

    Parameters
    ----------
    path : str or PathLike
        The root folder (local).
    extensions : tuple of str
        Lower-case file suffixes taken as images (default :data:`IMAGE_EXTENSIONS`).

    Returns
    -------
    uris : list of str
        Absolute file paths, sorted by class then path.
    labels : list of str
        The class (sub-folder name) of each file.

    Raises
    ------
    DataError
        ``path`` is not a folder, holds no class sub-folders, or a class folder holds
        no image.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(
            f"image_folder: {str(root)!r} is not a folder; give the root of "
            "<root>/<class>/<image> (torchvision's ImageFolder layout)."
        )
    exts = {e.lower() for e in extensions}
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        loose = sum(1 for p in root.iterdir() if p.suffix.lower() in exts)
        raise DataError(
            f"image_folder: {str(root)!r} has no class sub-folders ({loose} loose images); "
            "put each class's images in a sub-folder named after the class, or push an "
            "unlabeled folder as a pool with lab.push(path)."
        )
    uris: list[str] = []
    labels: list[str] = []
    empty = []
    for cls in classes:
        top = root / cls
        files = sorted(
            p for p in top.rglob("*")
            if p.suffix.lower() in exts and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(top).parts)
        )
        if not files:
            empty.append(cls)
        uris.extend(os.path.abspath(p) for p in files)
        labels.extend([cls] * len(files))
    if empty:
        raise DataError(
            f"image_folder: class folder(s) {empty} under {str(root)!r} hold no image with "
            f"a suffix among {sorted(exts)}; remove them or add images."
        )
    return uris, labels
