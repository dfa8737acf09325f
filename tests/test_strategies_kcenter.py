"""k-center greedy and core-set: same picks as slow textbook references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alaas_lab import strategies as S
from alaas_lab.errors import InputError
from alaas_lab.strategies._coreset import _coreset
from alaas_lab.strategies._kcenter import _kcenter_greedy


def textbook_kcenter(X, labeled, k, first=None):
    """Farthest-first traversal, one full pass per pick, float64, lowest index on ties."""
    X = np.asarray(X, dtype=np.float64)
    taken = labeled.copy()
    mind = np.full(len(X), np.inf)
    for j in np.flatnonzero(labeled):
        mind = np.minimum(mind, ((X - X[j]) ** 2).sum(axis=1))
    picks = []
    while len(picks) < k:
        if not taken.any():
            p = first
        else:
            p = int(np.argmax(np.where(taken, -np.inf, mind)))
        picks.append(p)
        taken[p] = True
        mind = np.minimum(mind, ((X - X[p]) ** 2).sum(axis=1))
    return np.array(picks, dtype=np.int64)


def textbook_coreset(X, labeled, k, first, outliers, factor):
    """Alg. 2 of Sener & Savarese with the greedy-coverage oracle, written plainly."""
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    m = min(int((~labeled).sum()), max(k, math.ceil(factor * k) + outliers))
    net = textbook_kcenter(X, labeled, m, first).tolist()
    if m == k:
        return np.array(net)
    D = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    centers = np.flatnonzero(labeled).tolist() + net[:k]
    delta2 = max(min(D[i, c] for c in centers) for i in range(n))
    fixed = net[:1] if first is not None else []
    base = np.flatnonzero(labeled).tolist() + fixed
    cands = net[len(fixed) :]
    radii = sorted({D[i, c] for i in range(n) for c in cands if delta2 / 4 <= D[i, c] <= delta2})

    def cover(r2):
        covered = [any(D[i, b] <= r2 for b in base) for i in range(n)]
        chosen = []
        for _ in range(k - len(fixed)):
            counts = [
                -1 if j in chosen else sum(1 for i in range(n) if not covered[i] and D[i, c] <= r2)
                for j, c in enumerate(cands)
            ]
            best = int(np.argmax(counts))
            if counts[best] <= 0:
                break
            chosen.append(best)
            for i in range(n):
                covered[i] = covered[i] or D[i, cands[best]] <= r2
        return chosen, covered.count(False)

    lo, hi, best = 0, len(radii) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        chosen, uncovered = cover(radii[mid])
        if uncovered <= outliers:
            best, hi = chosen, mid - 1
        else:
            lo = mid + 1
    if best is None:
        return np.array(net[:k])
    fill = [j for j in range(len(cands)) if j not in best][: k - len(fixed) - len(best)]
    return np.array(fixed + [cands[j] for j in best] + [cands[j] for j in fill])


def blobs(n, d, n_blobs, seed, scale=10.0):
    rng = np.random.default_rng(seed)
    centers = scale * rng.standard_normal((n_blobs, d))
    return centers[rng.integers(0, n_blobs, n)] + rng.standard_normal((n, d)), rng


# ----------------------------------------------------------------------------- k-center
def test_kcenter_hand_worked():
    X = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    lab = np.array([True, False, False, False, False])
    # 11 is farthest from 0; then 2 (distance 2); then 1 and 10 tie at 1 -> lower index
    assert S.kcenter_greedy(X, 3, labeled=lab).tolist() == [4, 2, 1]
    assert S.select("kcenter_greedy", 4, embeddings=X, labeled=lab).tolist() == [4, 2, 1, 3]


@pytest.mark.parametrize(
    "knobs",
    [
        {},  # defaults
        {"block": 1, "n_candidates": 1, "n_groups": 1},  # no deferral, no pruning
        {"block": 7, "n_candidates": 5, "n_groups": 12},  # many flushes, pruning
        {"block": 64, "n_candidates": 3, "n_groups": 40},  # candidates run dry often
    ],
)
@pytest.mark.parametrize("kind", ["gaussian", "blobs", "integer"])
def test_kcenter_matches_textbook(knobs, kind):
    for seed in range(3):
        rng = np.random.default_rng(seed)
        n, d = 400, 6
        if kind == "gaussian":
            X = rng.standard_normal((n, d))
        elif kind == "blobs":
            X, rng = blobs(n, d, 8, seed)
        else:  # small integers: many exact ties, broken by the lowest index
            X = rng.integers(-3, 4, (n, d)).astype(float)
        lab = np.zeros(n, dtype=bool)
        lab[rng.choice(n, 5, replace=False)] = True
        k = 150
        np.testing.assert_array_equal(
            _kcenter_greedy(X, lab, k, **knobs), textbook_kcenter(X, lab, k)
        )


def test_kcenter_float32_input_and_large_labeled_set():
    X, rng = blobs(3000, 16, 12, seed=4)
    X = X.astype(np.float32)
    lab = np.zeros(3000, dtype=bool)
    lab[rng.choice(3000, 700, replace=False)] = True  # several blocked initial updates
    stats = {}
    got = _kcenter_greedy(X, lab, 300, block=64, stats=stats)
    np.testing.assert_array_equal(got, textbook_kcenter(X.astype(np.float64), lab, 300))
    assert stats["pairs"] < stats["pairs_full"]  # pruning skipped work on clustered data
    assert stats["picks_from_candidates"] > 250  # most picks made while updates were deferred


def test_kcenter_values_are_the_covering_radii():
    X, rng = blobs(300, 3, 5, seed=2)
    lab = np.zeros(300, dtype=bool)
    lab[:3] = True
    picks, vals = _kcenter_greedy(X, lab, 50, return_values=True)
    assert np.all(np.diff(vals) <= 1e-9)  # farthest-first radii never grow
    for i in (0, 10, 49):
        centers = np.r_[np.flatnonzero(lab), picks[:i]]
        d2 = ((X[:, None, :] - X[centers][None]) ** 2).sum(-1).min(1)
        assert vals[i] == pytest.approx(d2.max(), rel=1e-9)


def test_kcenter_nothing_labeled_starts_from_rng():
    X, _ = blobs(200, 4, 4, seed=5)
    first = int(np.random.default_rng(11).integers(200))
    got = S.select("kcenter_greedy", 20, embeddings=X, rng=11)
    assert got[0] == first
    np.testing.assert_array_equal(got, textbook_kcenter(X, np.zeros(200, bool), 20, first))


def test_kcenter_duplicates_never_pick_a_labeled_point():
    X = np.zeros((6, 2))
    X[3:] = 1.0
    lab = np.array([True, False, False, True, False, False])
    # all unlabeled points sit on a center: every distance is 0, lowest index wins
    assert S.kcenter_greedy(X, 4, labeled=lab).tolist() == [1, 2, 4, 5]


# ----------------------------------------------------------------------------- core-set
def test_coreset_hand_worked_outlier():
    # labeled 0; a cluster 10..14; one far outlier at 1000
    X = np.array([[0.0], [10.0], [11.0], [12.0], [13.0], [14.0], [1000.0]])
    lab = np.zeros(7, dtype=bool)
    lab[0] = True
    assert S.kcenter_greedy(X, 1, labeled=lab).tolist() == [6]  # the outlier is farthest
    # with one outlier allowed, one center at 14 covers the cluster within radius 10
    assert S.coreset(X, 1, labeled=lab, outliers=1).tolist() == [5]
    # without, only the outlier itself makes every item covered
    assert S.coreset(X, 1, labeled=lab, outliers=0).tolist() == [6]


@pytest.mark.parametrize("seed", range(12))
def test_coreset_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(15, 60))
    X = rng.integers(-6, 7, (n, 2)).astype(float)  # integers: exact distances on both sides
    if seed % 3 == 0:
        X[:3] += 40.0  # far outliers
    lab = np.zeros(n, dtype=bool)
    lab[rng.choice(n, int(rng.integers(0, 4)), replace=False)] = True
    k = int(min((~lab).sum(), rng.integers(1, 10)))
    first = None if lab.any() else int(rng.integers(n))
    outliers = int(rng.integers(0, 4))
    factor = float(rng.choice([1.0, 1.5, 2.0, 3.0]))
    knobs = {"block": 3, "n_candidates": 4, "n_groups": 2}
    got = _coreset(X, lab, k, first=first, outliers=outliers, candidate_factor=factor, knobs=knobs)
    np.testing.assert_array_equal(got, textbook_coreset(X, lab, k, first, outliers, factor))


def test_coreset_differs_from_greedy_and_covers_better():
    X, rng = blobs(500, 2, 6, seed=3, scale=6.0)
    lab = np.zeros(500, dtype=bool)
    lab[:4] = True
    info = {}
    got = _coreset(X, lab, 25, first=None, outliers=5, candidate_factor=2.0, info=info)
    greedy = S.kcenter_greedy(X, 25, labeled=lab)
    assert set(got.tolist()) != set(greedy.tolist())
    assert info["radius"] < info["greedy_radius"]

    # the returned centers leave at most `outliers` items beyond the radius found
    centers = np.r_[np.flatnonzero(lab), got]
    d = np.sqrt(((X[:, None, :] - X[centers][None]) ** 2).sum(-1).min(1))
    assert (d > info["radius"] * (1 + 1e-12)).sum() <= 5


def test_coreset_outliers_as_fraction_and_pair_cap():
    X, _ = blobs(400, 3, 4, seed=6)
    lab = np.zeros(400, dtype=bool)
    lab[:2] = True
    a = S.select("coreset", 10, embeddings=X, labeled=lab, outliers=0.01)  # 4 outliers
    b = S.select("coreset", 10, embeddings=X, labeled=lab, outliers=4)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(InputError, match="more than max_pairs=10 .* lower candidate_factor"):
        S.select("coreset", 10, embeddings=X, labeled=lab, max_pairs=10)
