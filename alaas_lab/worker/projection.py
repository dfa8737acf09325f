"""A 2-D map of the pool's embeddings: PCA to 50 dimensions, then t-SNE (openTSNE).

Why this method
---------------
t-SNE keeps each item's neighbours near it, which is what a map for finding
mislabeled or confusing items must show; openTSNE's FFT-accelerated gradient
(Linderman et al., 2019) scales it to 10⁵ points, it has no JIT (UMAP's numba
and llvmlite add ~64 MB and tens of seconds of compilation on the first call in
every worker), and its only dependencies are numpy, scipy and scikit-learn,
which alaas_lab has already. PCA to 50 dimensions first is the usual
preprocessing (it denoises and makes the neighbour search fast) and the PCA
initialisation keeps the global layout stable from one run to the next.

Pools too small for t-SNE's neighbourhoods (fewer than :data:`MIN_TSNE` items)
are laid out by PCA alone; without openTSNE installed, every pool is.

:func:`project` is the pure function; :class:`Projector` runs it on its own
thread for a worker and keeps the newest map, one per model version (the
backbone's fingerprint and the set of embedded items), in memory and in
``SESSION_DIR/projection/`` so a restarted worker does not compute it again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .background_job import BackgroundJob

__all__ = ["MIN_TSNE", "PoolProjection", "Projector", "project"]

logger = logging.getLogger(__name__)

#: Fewer items than this are laid out by PCA: t-SNE needs neighbourhoods to match.
MIN_TSNE = 15
#: Dimensions kept by the PCA before t-SNE.
PCA_DIMS = 50


def _pca(X: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``X`` centred and projected on its ``k`` leading components, ``(n, k)`` float32."""
    Xc = X - X.mean(axis=0, dtype=np.float64).astype(np.float32)
    k = max(0, min(k, X.shape[0] - 1, X.shape[1]))
    if k == 0:
        return np.zeros((X.shape[0], 0), dtype=np.float32)
    if min(X.shape) > 500 and k < 0.8 * min(X.shape):
        from sklearn.utils.extmath import randomized_svd

        _, s, vt = randomized_svd(Xc, k, random_state=seed)
    else:
        _, s, vt = np.linalg.svd(Xc, full_matrices=False)
        vt = vt[:k]
    # sign convention: the largest loading of each component is positive (stable output)
    signs = np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1
    return (Xc @ (vt * signs[:, None]).T).astype(np.float32)


def project(X: Any, *, seed: int = 0, method: str = "auto", n_jobs: int = 1
            ) -> tuple[np.ndarray, str]:
    """Lay out rows of ``X`` in two dimensions.

    Parameters
    ----------
    X : array-like of shape (n_items, n_features)
        Embeddings (cast to float32). Any ``n_items``, 0 included.
    seed : int, default 0
        Seeds the PCA and t-SNE: the same rows give the same map.
    method : {"auto", "tsne", "pca"}, default "auto"
        ``auto``: t-SNE when there are at least :data:`MIN_TSNE` items and openTSNE
        is installed, else PCA. ``tsne`` falls back the same way.
    n_jobs : int, default 1
        Threads for t-SNE's neighbour search and gradients.

    Returns
    -------
    xy : ndarray of shape (n_items, 2), float32
        Centred coordinates (t-SNE's units, or PCA's scaled to unit spread).
    method : str
        What laid them out: ``"tsne"``, ``"pca"`` or ``"none"`` (fewer than 2 items).
    """
    if method not in ("auto", "tsne", "pca"):
        raise InputError(f"projection method must be 'auto', 'tsne' or 'pca'; got {method!r}.")
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise InputError(f"project takes a 2-D array (n_items, n_features); got shape "
                         f"{X.shape}: reshape it, e.g. X.reshape(len(X), -1).")
    n = X.shape[0]
    if n < 2 or not np.isfinite(X).all():
        if n >= 2:
            raise InputError("the embeddings hold NaN or infinite values; they cannot be "
                             "mapped: check the backbone's output.")
        return np.zeros((n, 2), dtype=np.float32), "none"
    reduced = _pca(X, PCA_DIMS, seed)
    if method != "pca" and n >= MIN_TSNE and reduced.shape[1] >= 2:
        xy = _tsne(reduced, seed=seed, n_jobs=n_jobs)
        if xy is not None:
            return xy, "tsne"
    return _pca_layout(reduced), "pca"


def _pca_layout(reduced: np.ndarray) -> np.ndarray:
    xy = np.zeros((reduced.shape[0], 2), dtype=np.float32)
    k = min(2, reduced.shape[1])
    xy[:, :k] = reduced[:, :k]
    spread = float(np.abs(xy).max()) if xy.size else 0.0
    return xy / spread if spread > 0 else xy


def _tsne(reduced: np.ndarray, *, seed: int, n_jobs: int) -> np.ndarray | None:
    """openTSNE on PCA-reduced rows; None when it is not installed or fails."""
    try:
        from openTSNE import TSNE
    except ImportError:
        logger.warning("openTSNE is not installed: the pool map is a PCA projection "
                       "(pip install openTSNE for t-SNE)")
        return None
    n = reduced.shape[0]
    # each point needs ~3 x perplexity neighbours; small pools get a smaller perplexity
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3.0)))
    if float(reduced.std()) == 0.0:  # every item the same: nothing for t-SNE to separate
        return None
    try:
        xy = TSNE(n_components=2, perplexity=perplexity, n_jobs=n_jobs, random_state=seed,
                  initialization="pca", negative_gradient_method="auto", neighbors="auto",
                  verbose=False).fit(reduced)
    except Exception as exc:  # a degenerate pool (duplicates...): PCA still shows it
        logger.warning("t-SNE failed (%s); the pool map is a PCA projection", exc)
        return None
    xy = np.asarray(xy, dtype=np.float32)
    if not np.isfinite(xy).all():
        return None
    return xy - xy.mean(axis=0)


# --------------------------------------------------------------------------- worker side

@dataclass(frozen=True)
class PoolProjection:
    """One map: ``xy[k]`` is item ``item_ids[k]``; ``version`` counts maps in this worker."""

    key: str
    version: int
    item_ids: np.ndarray  # (n,) int64
    xy: np.ndarray  # (n, 2) float32
    method: str
    seconds: float


def model_version(fingerprint: str, filled: np.ndarray) -> str:
    """A key for the embedding set: the backbone's fingerprint and which items are embedded."""
    h = hashlib.sha256(fingerprint.encode())
    h.update(np.packbits(np.asarray(filled, dtype=bool)).tobytes())
    h.update(str(len(filled)).encode())
    return h.hexdigest()[:24]


class Projector:
    """Keeps a worker's newest pool map and computes new ones on its own thread.

    Parameters
    ----------
    snapshot : callable() -> (key, item_ids, rows)
        The current model version's key, the embedded items' ids ``(n,)`` and their
        embeddings ``(n, d)`` (a copy, taken under the pool's lock).
    folder : path, optional
        Where the newest map is kept on disk (``SESSION_DIR/projection``).
    on_ready : callable(PoolProjection), optional
        Called on the projector's thread when a map is ready (publishes the event).
    seed, n_jobs : int
        For :func:`project`.
    """

    def __init__(self, snapshot: Callable[[], tuple[str, np.ndarray, np.ndarray]], *,
                 folder: str | Path | None = None,
                 on_ready: Callable[[PoolProjection], None] | None = None,
                 seed: int = 0, n_jobs: int = 1) -> None:
        self._snapshot = snapshot
        self._folder = None if folder is None else Path(folder)
        self._on_ready = on_ready or (lambda proj: None)
        self.seed, self.n_jobs = seed, n_jobs
        self._lock = threading.Lock()
        self._job = BackgroundJob(self._run, name="worker-projection")
        self.current: PoolProjection | None = None
        self.watched = False  # a client asked for the map: keep it current after pushes
        self._version = 0
        self.error: str | None = None
        self._load()

    @property
    def computing(self) -> bool:
        return self._job.running

    def refresh(self, key: str) -> bool:
        """Start a new map unless ``key`` is the current one's; True when one is running.

        Embeddings that change while a map runs make it run once more after.
        """
        with self._lock:
            self.watched = True
            current = self.current
        if current is not None and current.key == key:
            return self._job.running
        self._job.request()
        return True

    def wait(self, timeout: float | None = None) -> PoolProjection | None:
        """Block until the running map is done (tests, benchmarks); the newest map."""
        self._job.wait(timeout)
        return self.current

    def _run(self) -> None:
        from threadpoolctl import threadpool_limits

        try:
            key, ids, rows = self._snapshot()
            if self.current is None or self.current.key != key:
                t0 = time.perf_counter()
                with threadpool_limits(self.n_jobs):
                    xy, method = project(rows, seed=self.seed, n_jobs=self.n_jobs)
                seconds = time.perf_counter() - t0
                with self._lock:
                    self._version += 1
                    proj = PoolProjection(key, self._version, np.asarray(ids, np.int64), xy,
                                          method, round(seconds, 3))
                    self.current, self.error = proj, None
                logger.info("pool map of %d items (%s) in %.1f s", len(ids), method, seconds)
                self._save(proj)
                self._on_ready(proj)
        except Exception as exc:
            logger.exception("the pool map failed")
            self.error = f"{type(exc).__name__}: {exc}"

    def _save(self, proj: PoolProjection) -> None:
        if self._folder is None:
            return
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
            tmp = self._folder / ".map.npz.tmp"
            with open(tmp, "wb") as f:
                np.savez(f, key=np.array(proj.key), item_ids=proj.item_ids, xy=proj.xy,
                         method=np.array(proj.method), seconds=np.array(proj.seconds))
            tmp.replace(self._folder / "map.npz")
        except OSError as exc:  # a map is a view: it can be computed again
            logger.warning("could not keep the pool map in %s: %s", self._folder, exc)

    def _load(self) -> None:
        path = None if self._folder is None else self._folder / "map.npz"
        if path is None or not path.is_file():
            return
        try:
            with np.load(path, allow_pickle=False) as f:
                self._version = 1
                self.current = PoolProjection(str(f["key"]), 1, f["item_ids"].astype(np.int64),
                                              f["xy"].astype(np.float32), str(f["method"]),
                                              float(f["seconds"]))
        except Exception as exc:
            logger.warning("ignoring the saved pool map %s: %s", path, exc)

    def close(self) -> None:
        self._job.close()
