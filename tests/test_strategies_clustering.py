"""DBAL, TypiClust and BADGE against slow references given the same seeded choices."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.cluster import KMeans, MiniBatchKMeans

from alaas_lab import strategies as S
from alaas_lab.strategies._clustering import _typiclust_pick


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
    km = KMeans(n_clusters=k, random_state=seed, n_init=1)
    km.fit(X[pre], sample_weight=[scores[i] for i in pre])
    picks = []
    for c in range(k):
        members = [j for j in range(m) if km.labels_[j] == c]
        best = min(
            members, key=lambda j: (float(((X[pre[j]] - km.cluster_centers_[c]) ** 2).sum()), j)
        )
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


@pytest.mark.parametrize("k, minibatch", [(5, False), (60, True)])
def test_typiclust_end_to_end_matches_reference(k, minibatch):
    X, _, lab = pool(n=200)
    got = S.select("typiclust", k, embeddings=X, labeled=lab, rng=9)
    n_clusters = lab.sum() + k
    seed = int(np.random.default_rng(9).integers(2**31 - 1))
    if minibatch:  # above 50 clusters, as the authors do
        km = MiniBatchKMeans(n_clusters=n_clusters, random_state=seed, batch_size=5000, n_init=1)
    else:
        km = KMeans(n_clusters=n_clusters, random_state=seed, n_init=1)
    clusters = km.fit(X).labels_
    assert got.tolist() == ref_typiclust_pick(X, clusters, lab, k, 20, 5)


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
