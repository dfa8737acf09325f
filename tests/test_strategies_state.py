"""PoolState: the strategies' per-pool caches give the stateless picks, or keep the invariants."""

from __future__ import annotations

import numpy as np
import pytest

from alaas_lab import strategies as S
from alaas_lab.errors import InputError
from alaas_lab.strategies._clustering import _ClusteringMemo, _typiclust_pick
from tests.test_strategies_kcenter import textbook_kcenter


def blobs(n=1500, d=12, n_blobs=15, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = 8.0 * rng.standard_normal((n_blobs, d))
    X = centers[rng.integers(0, n_blobs, n)] + rng.standard_normal((n, d))
    return X.astype(dtype), rng


def probs_for(X, seed=0, c=4):
    rng = np.random.default_rng(seed)
    logits = X @ rng.standard_normal((X.shape[1], c)) * 0.3
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def rounds(name, X, lab, state, *, k, n_rounds, **kw):
    """Run ``n_rounds`` rounds with and without the state; the labeled set grows by the picks."""
    lab = lab.copy()
    for r in range(n_rounds):
        cold = S.select(name, k, embeddings=X, labeled=lab, rng=r, **kw)
        warm = S.select(name, k, labeled=lab, rng=r, state=state, **kw)
        yield r, cold, warm
        lab[cold] = True


# ----------------------------------------------------------------------------- k-center, core-set
@pytest.mark.parametrize("kind", ["blobs", "float32", "integers"])
@pytest.mark.parametrize("knobs", [{}, {"block": 3, "n_candidates": 4, "n_groups": 40}])
def test_kcenter_with_kept_distances_equals_recomputed(kind, knobs):
    if kind == "integers":  # many exact ties: the lowest index must still win
        rng = np.random.default_rng(1)
        X = rng.integers(0, 4, size=(600, 3)).astype(np.float64)
    else:
        X, rng = blobs(dtype=np.float32 if kind == "float32" else np.float64)
    lab = np.zeros(len(X), dtype=bool)
    lab[rng.choice(len(X), 20, replace=False)] = True
    state = S.PoolState(X)
    for _, cold, warm in rounds("kcenter_greedy", X, lab, state, k=25, n_rounds=4, **knobs):
        np.testing.assert_array_equal(warm, cold)
    # every later round started from the previous round's table (labeled + picks)
    assert state.counters["kcenter:reused"] == 3
    assert state.counters["kcenter:centers_applied"] == 20  # only the seed set was ever applied


def test_kcenter_state_matches_the_textbook_loop_and_handles_a_shrinking_labeled_set():
    X, rng = blobs(n=400, d=5)
    lab = np.zeros(len(X), dtype=bool)
    lab[:10] = True
    state = S.PoolState(X)
    first = S.select("kcenter_greedy", 15, labeled=lab, state=state)
    np.testing.assert_array_equal(first, textbook_kcenter(X, lab, 15))
    lab[first] = True
    lab[3] = False  # an item leaves the labeled set: no stored table is a subset any more
    lab[first[0]] = False
    again = S.select("kcenter_greedy", 15, labeled=lab, state=state)
    np.testing.assert_array_equal(again, textbook_kcenter(X, lab, 15))


def test_kcenter_state_with_nothing_labeled_uses_the_rng_like_the_plain_call():
    X, _ = blobs(n=300)
    lab = np.zeros(len(X), dtype=bool)
    state = S.PoolState(X)
    for seed in range(3):
        np.testing.assert_array_equal(
            S.select("kcenter_greedy", 10, labeled=lab, rng=seed, state=state),
            S.select("kcenter_greedy", 10, embeddings=X, labeled=lab, rng=seed))


@pytest.mark.parametrize("outliers", [0, 3, 0.01])
def test_coreset_with_state_equals_recomputed(outliers):
    X, rng = blobs(n=900, d=6)
    lab = np.zeros(len(X), dtype=bool)
    lab[rng.choice(len(X), 15, replace=False)] = True
    state = S.PoolState(X)
    for _, cold, warm in rounds("coreset", X, lab, state, k=12, n_rounds=3, outliers=outliers):
        np.testing.assert_array_equal(warm, cold)
    assert state.counters["kcenter:reused"] >= 2
    nothing = np.zeros(len(X), dtype=bool)
    np.testing.assert_array_equal(S.coreset(X, 8, labeled=nothing, rng=4, state=state),
                                  S.coreset(X, 8, labeled=nothing, rng=4))


def test_kcenter_and_coreset_share_one_index_and_keep_their_own_tables():
    X, rng = blobs(n=800, d=8)
    a = np.zeros(len(X), dtype=bool)
    a[rng.choice(len(X), 10, replace=False)] = True
    b = a.copy()
    state = S.PoolState(X)
    for r in range(3):
        pa = S.kcenter_greedy(X, 10, labeled=a, state=state)
        pb = S.coreset(X, 10, labeled=b, rng=r, state=state)
        np.testing.assert_array_equal(pa, S.kcenter_greedy(X, 10, labeled=a))
        np.testing.assert_array_equal(pb, S.coreset(X, 10, labeled=b, rng=r))
        a[pa] = True
        b[pb] = True
    assert state.counters["kcenter:built"] == 1


# ----------------------------------------------------------------------------- TypiClust
def test_typiclust_with_state_keeps_the_invariants_and_reuses_the_clustering():
    X, rng = blobs(n=1200, d=10, dtype=np.float32)
    lab = np.zeros(len(X), dtype=bool)
    lab[rng.choice(len(X), 30, replace=False)] = True
    state = S.PoolState(X)
    for r in range(4):
        picks = S.select("typiclust", 10, labeled=lab, rng=r, state=state, max_clusters=60)
        assert picks.shape == (10,) and np.unique(picks).size == 10
        assert not lab[picks].any()
        lab[picks] = True
    # 40 -> 50 -> 60 clusters (cold, then warm twice), then capped at 60: reused
    assert state.counters["typiclust:cold"] == 1
    assert state.counters["typiclust:warm"] == 2
    assert state.counters["typiclust:reused"] == 1


def test_typiclust_with_state_is_reproducible():
    X, rng = blobs(n=700, d=6)
    lab = np.zeros(len(X), dtype=bool)
    lab[rng.choice(len(X), 12, replace=False)] = True

    def run():
        state, mask, out = S.PoolState(X), lab.copy(), []
        for r in range(3):
            picks = S.typiclust(X, 8, labeled=mask, rng=r, state=state)
            mask[picks] = True
            out.append(picks)
        return np.concatenate(out)

    np.testing.assert_array_equal(run(), run())


def test_typiclust_kept_neighbour_lists_give_the_fresh_picks():
    """Lists cached in an earlier round (more members) serve later rounds exactly."""
    X, rng = blobs(n=600, d=5)
    clusters = rng.integers(0, 12, len(X))
    lab = np.zeros(len(X), dtype=bool)
    lab[rng.choice(len(X), 10, replace=False)] = True
    cache: dict = {}
    for _ in range(4):
        kept = _typiclust_pick(X, clusters, lab, 9, knn=5, min_cluster_size=3, cache=cache)
        fresh = _typiclust_pick(X, clusters, lab, 9, knn=5, min_cluster_size=3)
        np.testing.assert_array_equal(kept, fresh)
        lab[fresh] = True
    # a labeled item coming back is not in the kept lists: they are rebuilt, not misused
    lab[np.flatnonzero(lab)[:5]] = False
    np.testing.assert_array_equal(
        _typiclust_pick(X, clusters, lab, 9, knn=5, min_cluster_size=3, cache=cache),
        _typiclust_pick(X, clusters, lab, 9, knn=5, min_cluster_size=3))


def test_clustering_memo_warm_start_keeps_old_centers_and_assigns_to_the_nearest():
    X, _ = blobs(n=500, d=4)
    sq = np.einsum("ij,ij->i", X, X)
    from collections import Counter

    memo, counters = _ClusteringMemo(), Counter()
    a = memo.get(X, sq, 8, seed=0, counters=counters)
    b = memo.get(X, sq, 12, seed=1, counters=counters)
    assert a.labels.shape == b.labels.shape == (500,)
    assert set(np.unique(b.labels)) <= set(range(12))
    # items that did not move to a new center stay in their old cluster
    stayed = b.labels < 8
    np.testing.assert_array_equal(b.labels[stayed], a.labels[stayed])
    np.testing.assert_allclose(b.d2, ((X - b.centers[b.labels]) ** 2).sum(1), rtol=1e-9)
    assert memo.get(X, sq, 12, seed=5, counters=counters) is b
    assert counters == {"typiclust:cold": 1, "typiclust:warm": 1, "typiclust:reused": 1}


# ----------------------------------------------------------------------------- BADGE, DBAL
def test_badge_gives_the_same_picks_with_a_state():
    X, rng = blobs(n=800, d=8, dtype=np.float32)
    P = probs_for(X)
    lab = np.zeros(len(X), dtype=bool)
    lab[rng.choice(len(X), 20, replace=False)] = True
    state = S.PoolState(X)
    for r in range(2):
        picks = S.select("badge", 15, probs=P, labeled=lab, rng=r, state=state)
        np.testing.assert_array_equal(
            picks, S.select("badge", 15, probs=P, embeddings=X, labeled=lab, rng=r))
        lab[picks] = True


def test_dbal_with_state_warm_starts_its_kmeans_and_keeps_the_rule():
    X, rng = blobs(n=1500, d=8, dtype=np.float32)
    lab = np.zeros(len(X), dtype=bool)
    lab[rng.choice(len(X), 20, replace=False)] = True
    state = S.PoolState(X)
    for r in range(3):
        P = probs_for(X, seed=r)
        picks = S.select("dbal", 12, probs=P, labeled=lab, rng=r, state=state, beta=5)
        assert picks.shape == (12,) and np.unique(picks).size == 12 and not lab[picks].any()
        # DBAL's rule: every pick is among the beta * k most informative unlabeled items
        pre = S.select("margin", 60, probs=P, labeled=lab)
        assert np.isin(picks, pre).all()
        lab[picks] = True
    assert state.counters["dbal:cold"] == 1 and state.counters["dbal:warm"] == 2
    # reproducible: a fresh state and the same seeds give the same picks
    again, mask = S.PoolState(X), lab.copy()
    a = S.dbal(probs_for(X, seed=9), X, 12, labeled=mask, rng=1, state=again)
    b = S.dbal(probs_for(X, seed=9), X, 12, labeled=mask, rng=1, state=S.PoolState(X))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", S.names())
def test_every_strategy_accepts_a_state(name):
    X, rng = blobs(n=300, d=6, dtype=np.float32)
    P = probs_for(X)
    mc = np.stack([probs_for(X, seed=s) for s in range(3)])
    lab = np.zeros(len(X), dtype=bool)
    lab[:15] = True
    state = S.PoolState(X)
    needs = S.requirements(name)
    kw = {"probs": mc if "mc_probs" in needs else P}
    picks = S.select(name, 7, labeled=lab, rng=0, state=state, **kw)
    assert picks.shape == (7,) and np.unique(picks).size == 7 and not lab[picks].any()
    assert "state" not in (S.options(name) or ())


# ----------------------------------------------------------------------------- pool identity
def test_a_state_refuses_another_pool():
    X, _ = blobs(n=200)
    other = X.copy()
    other[150] += 1.0  # one row differs
    state = S.PoolState(X)
    lab = np.zeros(200, dtype=bool)
    lab[:3] = True
    for name in ("kcenter_greedy", "coreset", "typiclust"):
        with pytest.raises(InputError, match="another pool.*PoolState"):
            S.select(name, 2, embeddings=other, labeled=lab, state=state)
    with pytest.raises(InputError, match="another pool"):
        S.kcenter_greedy(X[:100], 2, state=state)
    with pytest.raises(InputError, match="another pool"):
        S.badge(probs_for(other), other, 2, labeled=lab, state=state)
    # an equal copy of the pool is the same pool
    assert state.matches(X.copy())
    S.select("kcenter_greedy", 2, embeddings=X.copy(), labeled=lab, state=state)
    # a probability-only strategy has no use for it and ignores it
    S.select("margin", 2, probs=probs_for(X[:50]), state=state)


def test_a_state_notices_its_pool_changed_in_place():
    X, _ = blobs(n=200)
    state = S.PoolState(X)
    lab = np.zeros(200, dtype=bool)
    lab[:3] = True
    S.select("kcenter_greedy", 2, labeled=lab, state=state)
    X[7, 0] += 3.0
    with pytest.raises(InputError, match="modified in place"):
        S.select("kcenter_greedy", 2, labeled=lab, state=state)


@pytest.mark.parametrize("bad, match", [
    ("pool", "state must be None or a strategies.PoolState"),
    (np.zeros((3, 2)), "state must be None or a strategies.PoolState"),
])
def test_bad_state_is_refused(bad, match):
    with pytest.raises(InputError, match=match):
        S.select("kcenter_greedy", 1, embeddings=np.eye(3), state=bad)
    with pytest.raises(InputError, match=match):
        S.kcenter_greedy(np.eye(3), 1, state=bad)


def test_state_validates_its_pool_once():
    with pytest.raises(InputError, match="NaN"):
        S.PoolState(np.array([[0.0, np.nan], [1.0, 2.0]]))
    state = S.PoolState(np.eye(4, dtype=np.float32))
    assert state.X.dtype == np.float32 and state.n_pool == 4
    np.testing.assert_array_equal(state.sq_norms, np.ones(4))
    with pytest.raises(InputError, match="PoolState"):
        S.PoolState(state)


def test_prepare_precomputes_and_changes_no_pick():
    X, rng = blobs(n=900, d=8, dtype=np.float32)
    lab = np.zeros(len(X), dtype=bool)
    lab[rng.choice(len(X), 25, replace=False)] = True
    state = S.PoolState(X).prepare(lab, 10, seed=3)
    assert state.counters["kcenter:built"] == 1 and state.counters["typiclust:cold"] == 1
    np.testing.assert_array_equal(S.select("kcenter_greedy", 10, labeled=lab, state=state),
                                  S.select("kcenter_greedy", 10, embeddings=X, labeled=lab))
    assert state.counters["kcenter:reused"] == 1
    assert state.counters["kcenter:centers_applied"] == 0  # prepare applied all of them
    picks = S.select("typiclust", 10, labeled=lab, rng=0, state=state)
    assert state.counters["typiclust:reused"] == 1
    assert np.unique(picks).size == 10 and not lab[picks].any()
