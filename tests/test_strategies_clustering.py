"""DBAL, TypiClust and BADGE against slow references given the same seeded choices.

The k-means both clustering strategies run is tested in parts: its D^2 seeding
(with ``block=1`` the textbook loop, blocked the same distribution), its Lloyd
iterations against a textbook loop from the same centers, and its quality
against scikit-learn's ``KMeans``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.cluster import KMeans

from alaas_lab import strategies as S
from alaas_lab.strategies._clustering import (
    _d2_seeding,
    _lloyd,
    _typiclust_pick,
    _weighted_kmeans,
)


def ref_top_k(scores, k, labeled):
    order = sorted((i for i in range(len(scores)) if not labeled[i]), key=lambda i: (-scores[i], i))
    return order[:k]


def pool(n=120, c=3, d=4, seed=0, n_labeled=8):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) + 5 * rng.standard_normal((5, d))[rng.integers(0, 5, n)]
    logits = X @ rng.standard_normal((d, c))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    lab = np.zeros(n, dtype=bool)
    lab[rng.choice(n, n_labeled, replace=False)] = True
    return X, probs, lab


# ----------------------------------------------------------------------------- k-means
def ref_d2_seeding(X, n_new, rng, weights=None):
    """Textbook k-means++ seeding: one pass over the pool per center."""
    n = len(X)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=float)
    if weights is None:
        chosen = [int(rng.integers(n))]
    else:
        cw = np.cumsum(w)
        chosen = [min(int(np.searchsorted(cw, rng.random() * cw[-1], side="right")), n - 1)]
    d2 = ((X - X[chosen[0]]) ** 2).sum(1)
    while len(chosen) < n_new:
        d2[chosen] = 0.0
        cs = np.cumsum(d2 * w)
        i = min(int(np.searchsorted(cs, rng.random() * cs[-1], side="right")), n - 1)
        if d2[i] <= 0.0:
            continue
        chosen.append(i)
        d2 = np.minimum(d2, ((X - X[i]) ** 2).sum(1))
    return chosen


def ref_lloyd(X, C, max_iter, weights=None):
    """Textbook (weighted) Lloyd; an empty cluster takes the farthest item, as sklearn does."""
    n, k = len(X), len(C)
    w = np.ones(n) if weights is None else weights

    def assign(C):
        D = ((X[:, None, :] - C[None, :, :]) ** 2).sum(2)
        return D.argmin(1), D.min(1)

    labels, d2 = assign(C)
    for _ in range(max_iter):
        moved = labels.copy()
        empty = [c for c in range(k) if not (labels == c).any()]
        far = [i for i in sorted(range(n), key=lambda i: (-d2[i] * w[i], i)) if d2[i] * w[i] > 0]
        for c, i in zip(empty, far, strict=False):  # more far items than empty clusters
            moved[i] = c
        C = np.array([
            (w[moved == c, None] * X[moved == c]).sum(0) / w[moved == c].sum()
            if w[moved == c].sum() > 0 else C[c]
            for c in range(k)
        ])
        new, d2 = assign(C)
        changed = int((new != labels).sum())
        labels = new
        if changed <= 1e-3 * n:
            break
    return labels, C


@pytest.mark.parametrize("weighted", [False, True])
def test_d2_seeding_unblocked_is_the_textbook_loop(weighted):
    X, probs, _ = pool(n=150, d=5, seed=3)
    w = 1.0 - probs.max(1) if weighted else None
    sq = np.einsum("ij,ij->i", X, X)
    for seed in range(4):
        got = _d2_seeding(X, sq, 12, np.random.default_rng(seed), None, block=1, weights=w)
        assert got.tolist() == ref_d2_seeding(X, 12, np.random.default_rng(seed), w)


def test_d2_seeding_blocked_draws_from_the_d2_distribution():
    # six points, three centers: the third center's exact law is a sum over the
    # 30 ordered (first, second) pairs; the blocked sampler (the second center
    # still queued when the third is drawn) must follow it
    X = np.array([[0.0, 0], [1, 0], [0, 2], [5, 5], [6, 5], [-4, 3]])
    n = len(X)
    D = ((X[:, None] - X[None]) ** 2).sum(2)
    law = np.zeros(n)
    for a in range(n):
        for b in range(n):
            if b == a:
                continue
            pb = D[a, b] / D[a].sum()
            d2 = np.minimum(D[a], D[b])
            law += pb * d2 / d2.sum() / n
    sq = np.einsum("ij,ij->i", X, X)
    runs = 6000
    third = np.bincount([
        _d2_seeding(X, sq, 3, np.random.default_rng(s), None, block=64)[2] for s in range(runs)
    ], minlength=n) / runs
    assert np.abs(third - law).max() < 0.025  # standard errors are below 0.0065


def test_lloyd_matches_the_textbook_loop_and_refills_an_empty_cluster():
    X, probs, _ = pool(n=160, d=4, seed=5)
    w = 1.0 - probs.max(1)
    C0 = X[[3, 50, 77, 120]].copy()
    C0 = np.vstack([C0, [[1e3] * 4]])  # far from everything: empty at first
    sq = np.einsum("ij,ij->i", X, X)
    for weights in (None, w):
        for iters in (1, 3, 8):
            labels, C, d2 = _lloyd(X, sq, C0, iters, weights=weights)
            ref_labels, ref_C = ref_lloyd(X, C0, iters, weights)
            np.testing.assert_array_equal(labels, ref_labels)
            np.testing.assert_allclose(C, ref_C, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(d2, ((X - C[labels]) ** 2).sum(1), rtol=1e-9, atol=1e-9)
            assert np.unique(labels).size == 5


def test_weighted_kmeans_is_about_as_good_as_scikit_learn():
    # DBAL's regime: many more clusters than classes. (With few clusters sklearn's
    # greedy k-means++, several candidates per center, wins a few percent more.)
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((3000, 32)) + 3 * rng.standard_normal((10, 32))[
        rng.integers(0, 10, 3000)]).astype(np.float32)
    w = rng.random(3000)
    sq = np.einsum("ij,ij->i", X, X, dtype=np.float64)

    def inertia(labels, C):
        return float((w * ((X - C[labels]) ** 2).sum(1)).sum())

    ours = [inertia(*_weighted_kmeans(X, sq, w, 100, seed)) for seed in range(3)]
    theirs = [
        KMeans(100, n_init=1, random_state=seed).fit(X, sample_weight=w).inertia_
        for seed in range(3)
    ]
    assert np.median(ours) < 1.02 * np.median(theirs)


def test_weighted_kmeans_warm_start_reseeds_centers_nobody_is_near():
    X, probs, _ = pool(n=300, d=4, seed=2)
    w = 1.0 - probs.max(1)
    sq = np.einsum("ij,ij->i", X, X)
    _, C = _weighted_kmeans(X, sq, w, 10, 0)
    init = C.copy()
    init[[2, 7]] = 1e3  # their regions were labeled: nobody is nearest to them now
    labels, C2 = _weighted_kmeans(X, sq, w, 10, 1, init=init)
    assert np.unique(labels).size == 10  # every cluster has members: k picks, one each
    assert np.abs(C2).max() < 100  # the dead centers were replaced inside the data


# ----------------------------------------------------------------------------- DBAL
def ref_dbal(probs, X, labeled, k, rng, beta, measure):
    if measure == "margin":
        scores = [1 - (sorted(r)[-1] - sorted(r)[-2]) for r in probs]
    else:
        scores = [-sum(p * math.log(p) for p in r if p > 0) for r in probs]
    m = min(int((~labeled).sum()), max(k, math.ceil(beta * k)))
    pre = ref_top_k(scores, m, labeled)
    if m == k:
        return pre
    seed = int(rng.integers(2**31 - 1))
    w = np.array([scores[i] for i in pre])
    Xp = X[pre]
    # the seeding is tested above on its own; Lloyd and the pick rule are the textbook ones
    init = _d2_seeding(Xp, np.einsum("ij,ij->i", Xp, Xp), k, np.random.default_rng(seed), None,
                       weights=w)
    labels, C = ref_lloyd(Xp, Xp[init], 8, w)
    picks = []
    for c in range(k):
        members = [j for j in range(m) if labels[j] == c]
        best = min(members, key=lambda j: (float(((Xp[j] - C[c]) ** 2).sum()), j))
        picks.append(pre[best])
    return picks


@pytest.mark.parametrize(
    "measure, beta, k", [("margin", 10, 6), ("entropy", 3, 9), ("margin", 2.5, 4)]
)
def test_dbal_matches_reference(measure, beta, k):
    X, probs, lab = pool()
    got = S.select(
        "dbal", k, probs=probs, embeddings=X, labeled=lab, rng=5, beta=beta, measure=measure
    )
    expected = ref_dbal(probs, X, lab, k, np.random.default_rng(5), beta, measure)
    assert got.tolist() == expected


def test_dbal_beta_one_is_the_most_informative():
    X, probs, lab = pool()
    got = S.dbal(probs, X, 7, labeled=lab, rng=0, beta=1)
    np.testing.assert_array_equal(got, S.margin(probs, 7, labeled=lab))


def test_dbal_hand_worked_one_per_cluster():
    # two tight groups of uncertain items, confident items in between (weight 0)
    X = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2], [5.0], [5.1]])
    probs = np.array([[0.5, 0.5]] * 6 + [[1.0, 0.0]] * 2)
    for seed in range(3):
        got = S.dbal(probs, X, 2, rng=seed)
        assert sorted(got.tolist()) == [1, 4]  # the middle of each group


def test_dbal_all_confident_falls_back_to_plain_kmeans():
    X = np.array([[0.0], [0.1], [9.0], [9.1], [9.2]])
    probs = np.array([[1.0, 0.0]] * 5)
    got = S.dbal(probs, X, 2, rng=0)
    assert sorted(got.tolist()) in ([0, 3], [1, 3])


# ----------------------------------------------------------------------------- TypiClust
def ref_typiclust_pick(X, clusters, labeled, k, knn, min_size):
    n = len(X)
    ids = sorted(set(clusters.tolist()))
    size = {c: int((clusters == c).sum()) for c in ids}
    covered = {c: int((labeled & (clusters == c)).sum()) for c in ids}
    order = sorted(ids, key=lambda c: (covered[c], -size[c], c))
    avail = set(np.flatnonzero(~labeled).tolist())
    picks = []
    for visit in (
        [c for c in order if size[c] > min_size],
        [c for c in order if size[c] <= min_size],
    ):
        while len(picks) < k:
            progressed = False
            for c in visit:
                if len(picks) == k:
                    break
                members = [i for i in range(n) if clusters[i] == c and i in avail]
                if not members:
                    continue
                nn = min(knn, len(members) // 2)
                if nn == 0:
                    best = members[0]
                else:
                    typ = []
                    for i in members:
                        ds = sorted(math.dist(X[i], X[j]) for j in members if j != i)[:nn]
                        typ.append(1 / (sum(ds) / nn + 1e-5))
                    best = members[int(np.argmax(typ))]
                picks.append(best)
                avail.remove(best)
                progressed = True
            if not progressed:
                break
    return picks


@pytest.mark.parametrize("seed", range(4))
def test_typiclust_selection_matches_reference(seed):
    rng = np.random.default_rng(seed)
    n = 90
    X = rng.standard_normal((n, 3))
    clusters = rng.integers(0, 7, n)
    clusters[clusters == 6] = 5  # no cluster 6: ids need not be contiguous in use
    lab = rng.random(n) < 0.15
    knn = int(rng.integers(1, 6))
    min_size = int(rng.integers(0, 14))
    k = int(rng.integers(1, 40))
    got = _typiclust_pick(X, clusters, lab, k, knn=knn, min_cluster_size=min_size)
    assert got.tolist() == ref_typiclust_pick(X, clusters, lab, k, knn, min_size)


def test_typiclust_selection_uneven_clusters():
    # small clusters run dry early, so the big one serves far more picks than the
    # neighbour lists were sized for: they must be rebuilt, not read past their end
    rng = np.random.default_rng(7)
    X = rng.standard_normal((66, 2))
    clusters = np.r_[np.zeros(60, int), np.ones(3, int), np.full(3, 2)]
    lab = np.zeros(66, dtype=bool)
    lab[[0, 61]] = True
    for knn in (1, 3, 20):
        got = _typiclust_pick(X, clusters, lab, 60, knn=knn, min_cluster_size=0)
        assert got.tolist() == ref_typiclust_pick(X, clusters, lab, 60, knn, 0)


@pytest.mark.parametrize("k", [5, 60])
def test_typiclust_end_to_end_matches_reference(k):
    X, _, lab = pool(n=200)
    got = S.select("typiclust", k, embeddings=X, labeled=lab, rng=9)
    n_clusters = int(lab.sum()) + k
    seed = int(np.random.default_rng(9).integers(2**31 - 1))
    init = _d2_seeding(X, np.einsum("ij,ij->i", X, X), n_clusters, np.random.default_rng(seed),
                       None)
    clusters, _ = ref_lloyd(X, X[init], 4)
    assert got.tolist() == ref_typiclust_pick(X, clusters, lab, k, 20, 5)


@pytest.mark.parametrize("name", ["dbal", "typiclust"])
def test_a_state_does_not_change_the_first_round(name):
    X, probs, lab = pool(n=300, d=6, seed=4)
    kw = {"probs": probs} if name == "dbal" else {}
    plain = S.select(name, 12, embeddings=X, labeled=lab, rng=2, **kw)
    cold = S.select(name, 12, labeled=lab, rng=2, state=S.PoolState(X), **kw)
    np.testing.assert_array_equal(plain, cold)


def test_typiclust_hand_worked():
    ang5 = np.linspace(0, 2 * np.pi, 5, endpoint=False)
    ang4 = np.linspace(0, 2 * np.pi, 4, endpoint=False)
    ang7 = np.linspace(0, 2 * np.pi, 7, endpoint=False)
    a = np.c_[np.cos(ang7), np.sin(ang7)] * 2  # 7 points, one labeled: covered
    b = np.r_[[[0.0, 0.0]], np.c_[np.cos(ang4), np.sin(ang4)]] + [0, 30]  # 5 points
    c = np.r_[[[0.0, 0.0]], np.c_[np.cos(ang5), np.sin(ang5)]] + [30, 0]  # 6 points
    X = np.r_[a, b, c]
    lab = np.zeros(len(X), dtype=bool)
    lab[0] = True
    got = S.typiclust(X, 2, labeled=lab, rng=0, min_cluster_size=0)
    # uncovered clusters, largest first (c, then b); from each its dense centre
    assert got.tolist() == [12, 7]
    # clusters of <= 5 items wait until the others run dry
    assert S.typiclust(X, 2, labeled=lab, rng=0).tolist()[0] == 12


# ----------------------------------------------------------------------------- BADGE
def ref_badge(probs, H, labeled, k, rng):
    """BADGE with materialised gradient embeddings, D^2 sampling by inverse CDF."""
    cand = np.flatnonzero(~labeled)
    g = []
    for i in cand:
        a = -probs[i].copy()
        a[int(np.argmax(probs[i]))] += 1
        g.append(np.outer(a, H[i]).ravel())
    g = np.array(g)
    norms = (g**2).sum(1)
    chosen = [int(np.argmax(norms))]
    d2 = ((g - g[chosen[0]]) ** 2).sum(1)
    while len(chosen) < k:
        d2[chosen] = 0
        cs = np.cumsum(d2)
        if cs[-1] > 0:
            i = int(np.searchsorted(cs, rng.random() * cs[-1], side="right"))
        else:
            i = int(rng.choice([j for j in range(len(cand)) if j not in chosen]))
        chosen.append(i)
        d2 = np.minimum(d2, ((g - g[i]) ** 2).sum(1))
    return cand[chosen].tolist()


@pytest.mark.parametrize("seed", range(4))
def test_badge_matches_materialised_reference(seed):
    X, probs, lab = pool(seed=seed)
    # block=1: every center applied at once, one rng.random() per pick, as the reference
    got = S.select("badge", 15, probs=probs, embeddings=X, labeled=lab, rng=seed, block=1)
    assert got.tolist() == ref_badge(probs, X, lab, 15, np.random.default_rng(seed))


def test_badge_blocked_sampling_has_the_exact_joint_distribution():
    # with queued centers the picks are drawn by rejection from stale distances; the
    # joint law of the 2nd and 3rd picks must still be exact D^2 sampling
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    H = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0], [0.5, 0.5]])
    a = probs.copy()
    a[np.arange(5), probs.argmax(1)] -= 1
    g = np.einsum("ic,id->icd", a, H).reshape(5, -1)
    d2 = ((g[:, None] - g[None]) ** 2).sum(-1)
    first = int(np.argmax((g**2).sum(1)))
    want = np.zeros((5, 5))
    for j in range(5):
        pj = d2[first, j] / d2[first].sum()
        w = np.minimum(d2[first], d2[j])
        w[[first, j]] = 0
        want[j] = pj * w / w.sum()
    n = 4000
    freq = np.zeros((5, 5))
    for s in range(n):
        got = S.badge(probs, H, 3, rng=s, block=64)
        assert got[0] == first
        freq[got[1], got[2]] += 1 / n
    np.testing.assert_allclose(freq, want, atol=0.025)


def test_badge_first_pick_is_the_largest_gradient():
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.5, 0.5]])
    H = np.ones((4, 3))
    # |onehot - p|^2 |h|^2: .02*3, .5*3, .32*3, .5*3: items 1 and 3 tie, the lower wins
    for seed in range(3):
        assert S.badge(probs, H, 1, rng=seed).tolist() == [1]
    lab = np.array([False, True, False, False])
    assert S.badge(probs, H, 1, labeled=lab).tolist() == [3]


def test_badge_sampling_follows_d2():
    # the second pick is drawn with probability proportional to squared distance
    probs = np.array([[0.5, 0.5], [0.9, 0.1], [0.9, 0.1], [0.7, 0.3]])
    H = np.array([[1.0], [1.0], [3.0], [2.0]])
    a = np.array([[0.5, -0.5], [0.1, -0.1], [0.1, -0.1], [0.3, -0.3]])
    g = a * H  # g_i = a_i (outer) h_i with d = 1
    first = int(np.argmax((g**2).sum(1)))  # item 3: |g|^2 = .18 * 4
    d2 = ((g - g[first]) ** 2).sum(1)
    want = d2 / d2.sum()  # [.02, .5, .18, 0] / .7
    runs = [S.badge(probs, H, 2, rng=s) for s in range(3000)]
    assert all(r[0] == first for r in runs)
    freq = np.bincount([r[1] for r in runs], minlength=4) / 3000
    np.testing.assert_allclose(freq, want, atol=0.03)


def test_badge_with_duplicates_draws_uniformly():
    probs = np.full((6, 2), 0.5)
    H = np.ones((6, 2))
    got = S.badge(probs, H, 6, rng=1)
    assert sorted(got.tolist()) == list(range(6))
