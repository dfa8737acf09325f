"""The pool map's projection: PCA → t-SNE, small pools, the projector's cache."""

from __future__ import annotations

import numpy as np
import pytest

from alaas_lab.errors import InputError
from alaas_lab.worker.projection import MIN_TSNE, Projector, model_version, project


def blobs(n_per=60, d=32, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 6
    y = np.repeat(np.arange(k), n_per)
    return (centers[y] + rng.normal(size=(y.size, d))).astype(np.float32), y


@pytest.mark.parametrize("n", [0, 1, 2, 3, MIN_TSNE - 1])
def test_tiny_pools_get_a_map_without_t_sne(n):
    X = np.random.default_rng(n).normal(size=(n, 8)).astype(np.float32)
    xy, method = project(X)
    assert xy.shape == (n, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    assert method == ("none" if n < 2 else "pca")


def test_clusters_stay_apart_and_the_same_seed_gives_the_same_map():
    X, y = blobs()
    xy, method = project(X, seed=1)
    assert method == "tsne" and xy.shape == (180, 2)
    d2 = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    assert (y[d2.argmin(1)] == y).mean() == 1.0  # every nearest neighbour in its blob
    again, _ = project(X, seed=1)
    np.testing.assert_allclose(xy, again, atol=1e-4)


def test_degenerate_and_bad_input():
    same = np.ones((40, 5), dtype=np.float32)  # every item identical
    xy, method = project(same)
    assert method == "pca" and np.isfinite(xy).all()
    xy, method = project(np.ones((20, 1), dtype=np.float32) * np.arange(20)[:, None])
    assert xy.shape == (20, 2) and np.isfinite(xy).all()  # one feature: PCA's one axis or t-SNE
    with pytest.raises(InputError, match="2-D array"):
        project(np.zeros(5))
    with pytest.raises(InputError, match="NaN"):
        project(np.full((20, 3), np.nan))
    with pytest.raises(InputError, match="method"):
        project(np.zeros((3, 3)), method="umap")


def test_projector_caches_per_model_version_and_on_disk(tmp_path):
    X, _ = blobs(n_per=10)
    filled = np.ones(len(X), dtype=bool)
    calls = []

    def snapshot():
        calls.append(1)
        return model_version("fp-a", filled), np.arange(len(X)), X

    ready = []
    p = Projector(snapshot, folder=tmp_path, on_ready=ready.append)
    key = model_version("fp-a", filled)
    assert p.refresh(key) is True
    first = p.wait(60)
    assert first.version == 1 and first.xy.shape == (30, 2) and ready == [first]
    assert p.refresh(key) is False and len(calls) == 1  # same version: not computed again
    assert model_version("fp-b", filled) != key  # another backbone: another map
    filled[3] = False
    assert model_version("fp-a", filled) != key  # another embedding set: another map
    p.close()
    reopened = Projector(snapshot, folder=tmp_path)  # a restarted worker: from disk
    assert reopened.current.key == key
    np.testing.assert_array_equal(reopened.current.xy, first.xy)
    assert reopened.refresh(key) is False
    reopened.close()
