"""The strategy zoo's API: registry, validation, invariants, and the uncertainty family.

k-center/core-set tests live in test_strategies_kcenter.py, the clustering and
gradient ones (DBAL, TypiClust, BADGE) in test_strategies_clustering.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from alaas_lab import strategies as S
from alaas_lab.errors import AlaasError, InputError

BUILTINS = [
    "badge",
    "bald",
    "coreset",
    "dbal",
    "entropy",
    "kcenter_greedy",
    "least_confidence",
    "margin",
    "random",
    "ratio",
    "typiclust",
]


def pool(n=60, c=4, d=5, t=3, seed=0, n_labeled=6):
    """A small pool: probs, MC probs, embeddings and a labeled mask."""
    rng = np.random.default_rng(seed)
    mc = rng.dirichlet(np.ones(c) * 0.7, size=(t, n))
    emb = rng.standard_normal((n, d)) + 4 * rng.standard_normal((4, d))[rng.integers(0, 4, n)]
    labeled = np.zeros(n, dtype=bool)
    labeled[rng.choice(n, n_labeled, replace=False)] = True
    return {"probs": mc.mean(axis=0), "mc": mc, "emb": emb, "labeled": labeled}


def inputs_for(name, data):
    """The keyword inputs ``select`` needs for ``name``, from ``data``."""
    need = S.requirements(name)
    kw = {}
    if "probs" in need:
        kw["probs"] = data["probs"]
    if "mc_probs" in need:
        kw["probs"] = data["mc"]
    if "embeddings" in need:
        kw["embeddings"] = data["emb"]
    if not need:
        kw["labeled"] = np.zeros(len(data["emb"]), dtype=bool)
    return kw


# ----------------------------------------------------------------------------- registry
def test_names_sorted_and_complete():
    got = S.names()
    assert got == sorted(got)
    assert set(BUILTINS) <= set(got)


@pytest.mark.parametrize(
    "name, needs",
    [
        ("random", set()),
        ("margin", {"probs"}),
        ("entropy", {"probs"}),
        ("bald", {"mc_probs"}),
        ("kcenter_greedy", {"embeddings"}),
        ("coreset", {"embeddings"}),
        ("typiclust", {"embeddings"}),
        ("dbal", {"probs", "embeddings"}),
        ("badge", {"probs", "embeddings"}),
    ],
)
def test_requirements(name, needs):
    assert S.requirements(name) == needs
    assert S.requirements(name) <= S.INPUTS


def test_registry_view_is_read_only():
    with pytest.raises(TypeError):
        S.registry["mine"] = S.registry["margin"]
    assert set(S.registry) == set(S.names())


def test_unknown_name_lists_the_names():
    with pytest.raises(InputError, match=r"unknown strategy 'nope'.*kcenter_greedy"):
        S.select("nope", 1, probs=[[0.5, 0.5]])
    with pytest.raises(InputError, match="unknown strategy"):
        S.requirements("nope")


def test_unknown_option_is_refused():
    with pytest.raises(InputError, match=r"unknown option\(s\) \['beta'\] for strategy 'margin'"):
        S.select("margin", 1, probs=[[0.5, 0.5]], beta=3)
    with pytest.raises(InputError, match=r"\['bogus'\].*accepts \['beta', 'measure'\]"):
        S.select("dbal", 1, probs=[[0.5, 0.5]], embeddings=[[0.0]], bogus=1)


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("dbal", {"beta": 0.5}, "beta must be"),
        ("dbal", {"measure": "ratio"}, "measure must be one of"),
        ("coreset", {"outliers": -1}, "outliers must be"),
        ("coreset", {"candidate_factor": 0.5}, "candidate_factor must be"),
        ("kcenter_greedy", {"block": 0}, "block must be"),
        ("typiclust", {"knn": 0}, "knn must be"),
    ],
)
def test_bad_option_values(name, params, match):
    data = pool()
    with pytest.raises(InputError, match=match):
        S.select(name, 3, rng=0, **inputs_for(name, data), **params)
    with pytest.raises(InputError, match=match):  # also when nothing is asked for
        S.select(name, 0, rng=0, **inputs_for(name, data), **params)


# ----------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("name", BUILTINS)
def test_invariants(name):
    data = pool()
    kw = inputs_for(name, data)
    if "labeled" not in kw:
        kw["labeled"] = data["labeled"]
    lab = kw["labeled"]
    a = S.select(name, 9, rng=7, **kw)
    b = S.select(name, 9, rng=7, **kw)
    assert a.dtype == np.int64 and a.shape == (9,)
    assert len(set(a.tolist())) == 9
    assert not lab[a].any()
    assert a.min() >= 0 and a.max() < lab.size
    np.testing.assert_array_equal(a, b)  # same seed, same picks


@pytest.mark.parametrize("name", BUILTINS)
def test_k_zero_gives_empty(name):
    out = S.select(name, 0, rng=0, **inputs_for(name, pool()))
    assert out.shape == (0,) and out.dtype == np.int64


@pytest.mark.parametrize("name", BUILTINS)
def test_take_every_unlabeled_item(name):
    data = pool(n=20, n_labeled=5)
    kw = inputs_for(name, data)
    kw["labeled"] = data["labeled"]
    out = S.select(name, 15, rng=1, **kw)
    assert sorted(out.tolist()) == np.flatnonzero(~data["labeled"]).tolist()


@pytest.mark.parametrize("name", BUILTINS)
def test_nothing_labeled_yet(name):
    data = pool(n=30)
    kw = inputs_for(name, data)
    out = S.select(name, 5, rng=3, **kw)  # labeled=None: everything is a candidate
    assert len(set(out.tolist())) == 5
    np.testing.assert_array_equal(out, S.select(name, 5, rng=3, **kw))


@pytest.mark.parametrize("name", BUILTINS)
def test_k_larger_than_unlabeled_pool(name):
    data = pool(n=20, n_labeled=5)
    kw = inputs_for(name, data)
    kw["labeled"] = data["labeled"]
    with pytest.raises(InputError, match=r"k=16 .* only 15 of the 20 .* at most k=15"):
        S.select(name, 16, rng=0, **kw)


@pytest.mark.parametrize("k", [-1, 2.5, "3", True])
def test_k_must_be_a_count(k):
    with pytest.raises(InputError, match="k must be an integer"):
        S.select("margin", k, probs=[[0.5, 0.5], [0.2, 0.8]])


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "name, drop, match",
    [
        ("margin", "probs", r"needs class probabilities: pass probs="),
        ("entropy", "probs", r"pass probs="),
        ("kcenter_greedy", "embeddings", r"needs embeddings: pass embeddings="),
        ("coreset", "embeddings", r"pass embeddings="),
        ("typiclust", "embeddings", r"pass embeddings="),
        ("dbal", "embeddings", r"pass embeddings="),
        ("badge", "probs", r"pass probs="),
        ("bald", "probs", r"Monte-Carlo"),
    ],
)
def test_missing_input_names_the_argument(name, drop, match):
    kw = inputs_for(name, pool())
    kw[drop] = None
    with pytest.raises(InputError, match=match):
        S.select(name, 2, rng=0, **kw)


def test_bald_refuses_2d_probs():
    with pytest.raises(InputError, match=r"Monte-Carlo .* got probs of shape \(60, 4\)"):
        S.select("bald", 2, probs=pool()["probs"])


def test_random_needs_the_pool_size():
    with pytest.raises(InputError, match="cannot tell the pool size: pass labeled="):
        S.select("random", 2)
    assert S.select("random", 2, labeled=np.zeros(4, bool), rng=0).shape == (2,)
    assert sorted(S.random(3, n_pool=3, rng=0).tolist()) == [0, 1, 2]


@pytest.mark.parametrize(
    "probs, match",
    [
        ([[0.5, np.nan], [0.5, 0.5]], "NaN or infinite"),
        ([[0.5, 0.6], [0.5, 0.5]], r"rows must sum to 1 .* row \(0,\) sums to 1.1"),
        ([[-0.1, 1.1], [0.5, 0.5]], r"must lie in \[0, 1\]"),
        ([0.5, 0.5], r"2-D or 3-D; got shape \(2,\)"),
        (np.full((1, 1, 2, 2), 0.5), r"got shape \(1, 1, 2, 2\)"),
        ([[1.0], [1.0]], "at least 2 classes"),
        ([["a", "b"]], "numeric array"),
    ],
)
def test_bad_probs(probs, match):
    with pytest.raises(InputError, match=match):
        S.select("entropy", 1, probs=probs)


@pytest.mark.parametrize(
    "emb, match",
    [
        (np.array([[0.0, np.inf], [1.0, 1.0]]), "NaN or infinite"),
        (np.zeros(2), r"must be 2-D; got shape \(2,\).*reshape"),
        (np.zeros((2, 1, 1)), "must be 2-D"),
    ],
)
def test_bad_embeddings(emb, match):
    with pytest.raises(InputError, match=match):
        S.select("kcenter_greedy", 1, embeddings=emb, rng=0)


def test_mismatched_pool_sizes():
    with pytest.raises(InputError, match=r"probs has 3 items .* embeddings has 4"):
        S.select("badge", 1, probs=np.full((3, 2), 0.5), embeddings=np.zeros((4, 2)))


@pytest.mark.parametrize(
    "labeled, match",
    [
        (np.zeros(3, dtype=int), "boolean mask .* dtype int"),
        (np.zeros(2, dtype=bool), r"shape \(3,\) to match the pool; got \(2,\)"),
    ],
)
def test_bad_labeled_mask(labeled, match):
    with pytest.raises(InputError, match=match):
        S.select("margin", 1, probs=np.full((3, 2), 0.5), labeled=labeled)


def test_bad_rng():
    with pytest.raises(InputError, match="rng must be None, an int seed or a numpy"):
        S.select("random", 1, labeled=np.zeros(3, bool), rng="seed")


def test_errors_belong_to_the_family():
    with pytest.raises(AlaasError):
        S.select("margin", 5, probs=np.full((3, 2), 0.5))


# ----------------------------------------------------------------------------- register
def _lowest_max(k, *, probs, embeddings, labeled, rng):
    score = np.where(labeled, np.inf, probs.max(axis=1))
    return np.argsort(score, kind="stable")[:k]


@pytest.fixture
def scratch_names():
    """Strategy names registered by a test; removed afterwards."""
    made: list[str] = []
    yield made
    for name in made:
        S._registry._REGISTRY.pop(name, None)


def test_register_and_select(scratch_names):
    scratch_names.append("t_lowest_max")
    S.register("t_lowest_max", _lowest_max, needs={"probs"})
    assert "t_lowest_max" in S.names()
    assert S.requirements("t_lowest_max") == {"probs"}
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.55, 0.45], [0.7, 0.3]])
    lab = np.array([False, False, True, False])
    assert S.select("t_lowest_max", 2, probs=probs, labeled=lab).tolist() == [1, 3]
    # MC probabilities are averaged for a strategy that needs "probs"
    mc = np.stack([probs, probs])
    assert S.select("t_lowest_max", 2, probs=mc, labeled=lab).tolist() == [1, 3]
    # re-registering the same function is harmless
    S.register("t_lowest_max", _lowest_max, needs={"probs"})


def test_register_refuses_silent_overwrite(scratch_names):
    scratch_names.append("t_clobber")
    S.register("t_clobber", _lowest_max)
    other = lambda k, *, probs, embeddings, labeled, rng: np.flatnonzero(~labeled)[:k]  # noqa: E731
    with pytest.raises(InputError, match=r"'t_clobber' is already registered; pass clobber=True"):
        S.register("t_clobber", other)
    with pytest.raises(InputError, match="already registered"):
        S.register("margin", other)
    S.register("t_clobber", other, clobber=True)
    assert S.select("t_clobber", 2, probs=np.full((3, 2), 0.5)).tolist() == [0, 1]


def test_user_strategy_gets_validated_inputs(scratch_names):
    seen = {}

    def spy(k, *, probs, embeddings, labeled, rng, alpha=1):
        seen.update(probs=probs, embeddings=embeddings, labeled=labeled, rng=rng, alpha=alpha)
        return np.flatnonzero(~labeled)[:k]

    scratch_names.append("t_spy")
    S.register("t_spy", spy, needs={"mc_probs", "embeddings"})
    mc = pool()["mc"]
    S.select("t_spy", 2, probs=mc.tolist(), embeddings=np.ones((60, 2), np.float32), rng=3, alpha=2)
    assert seen["probs"].shape == (3, 60, 4)  # mc_probs: kept as [T, N, C]
    assert seen["embeddings"].dtype == np.float32
    assert seen["labeled"].dtype == bool and not seen["labeled"].any()
    assert isinstance(seen["rng"], np.random.Generator)
    assert seen["alpha"] == 2
    with pytest.raises(InputError, match=r"unknown option\(s\) \['beta'\].*accepts \['alpha'\]"):
        S.select("t_spy", 2, probs=mc, embeddings=np.ones((60, 2)), beta=1)
    with pytest.raises(InputError, match="Monte-Carlo"):
        S.select("t_spy", 2, probs=mc[0], embeddings=np.ones((60, 2)))


@pytest.mark.parametrize(
    "returned, match",
    [
        (
            lambda lab, k: np.zeros(k, dtype=int),
            r"'t_bad' must return 3 distinct .* repeated \[0\]",
        ),
        (lambda lab, k: np.flatnonzero(lab)[:k], "already-labeled items"),
        (lambda lab, k: np.array([0, 1, 99]), r"\[99\], outside \[0, 10\)"),
        (lambda lab, k: np.array([4, 5]), r"length 3\); it returned shape \(2,\)"),
        (lambda lab, k: np.array([4.0, 5.0, 6.0]), "dtype float64"),
        (lambda lab, k: None, r"shape \(\)"),
    ],
)
def test_misbehaving_strategy_is_caught(scratch_names, returned, match):
    def bad(k, *, probs, embeddings, labeled, rng):
        return returned(labeled, k)

    scratch_names.append("t_bad")
    S.register("t_bad", bad, clobber=True)
    lab = np.zeros(10, dtype=bool)
    lab[:4] = True
    with pytest.raises(S.StrategyError, match=match):
        S.select("t_bad", 3, probs=np.full((10, 2), 0.5), labeled=lab)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "", "fn": _lowest_max}, "non-empty string"),
        ({"name": "x", "fn": 3}, "must be callable"),
        ({"name": "x", "fn": _lowest_max, "needs": {"labels"}}, r"unknown \['labels'\]"),
        ({"name": "x", "fn": lambda k: k}, r"lacks \['probs', 'embeddings', 'labeled', 'rng'\]"),
    ],
)
def test_register_checks_its_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        S.register(**kwargs)
    assert "x" not in S.names()


def test_register_accepts_a_catch_all_signature(scratch_names):
    scratch_names.append("t_any")
    S.register("t_any", lambda k, **kw: np.flatnonzero(~kw["labeled"])[:k], needs="embeddings")
    out = S.select("t_any", 2, embeddings=np.zeros((5, 2)), anything=1)
    assert out.tolist() == [0, 1]


# ----------------------------------------------------------------------------- uncertainty
def ref_scores(row, measure):
    """Slow, obvious uncertainty score of one probability row."""
    srt = sorted(row, reverse=True)
    if measure == "least_confidence":
        return 1 - srt[0]
    if measure == "margin":
        return -(srt[0] - srt[1])
    if measure == "ratio":
        return srt[1] / srt[0]
    return -sum(p * math.log(p) for p in row if p > 0)


def ref_top_k(scores, k, labeled):
    order = sorted((i for i in range(len(scores)) if not labeled[i]), key=lambda i: (-scores[i], i))
    return order[:k]


UNCERTAINTY = ["least_confidence", "margin", "ratio", "entropy"]


@pytest.mark.parametrize("measure", UNCERTAINTY)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uncertainty_matches_reference(measure, seed):
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(5) * 0.5, size=80)
    probs[10:20] = probs[0]  # exact ties
    probs[30] = [1, 0, 0, 0, 0]  # zero probabilities
    probs = np.round(probs, 2)  # many ties; fix the row sums on the largest entry
    probs[np.arange(80), probs.argmax(1)] += 1 - probs.sum(1)
    labeled = rng.random(80) < 0.2
    scores = [ref_scores(r, measure) for r in probs]
    for k in (0, 1, 7, 25, int((~labeled).sum())):
        expected = ref_top_k(scores, k, labeled)
        assert S.select(measure, k, probs=probs, labeled=labeled).tolist() == expected
        assert getattr(S, measure)(probs, k, labeled=labeled).tolist() == expected


def test_uncertainty_hand_worked():
    probs = np.array([[0.6, 0.3, 0.1], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0], [0.98, 0.01, 0.01]])
    # least confidence: 1 - max = .4, .6, .5, .02
    assert S.least_confidence(probs, 4).tolist() == [1, 2, 0, 3]
    # margin: gaps .3, .05, 0, .97
    assert S.margin(probs, 4).tolist() == [2, 1, 0, 3]
    # ratio: .5, .875, 1, ~.0102
    assert S.ratio(probs, 4).tolist() == [2, 1, 0, 3]
    # entropy: row 1 is the flattest, row 3 the most peaked
    assert S.entropy(probs, 4).tolist() == [1, 0, 2, 3]


def test_ties_go_to_the_lowest_index():
    probs = np.full((6, 2), 0.5)
    lab = np.array([True, False, False, False, False, False])
    for name in UNCERTAINTY:
        assert S.select(name, 3, probs=probs, labeled=lab).tolist() == [1, 2, 3]


def test_mc_probs_are_averaged_first():
    mc = pool()["mc"]
    for name in UNCERTAINTY:
        np.testing.assert_array_equal(
            S.select(name, 10, probs=mc), S.select(name, 10, probs=mc.mean(axis=0))
        )


def test_random_is_uniform_over_unlabeled_and_seeded():
    lab = np.zeros(10, dtype=bool)
    lab[:5] = True
    counts = np.zeros(10)
    for seed in range(400):
        counts[S.select("random", 2, labeled=lab, rng=seed)] += 1
    assert counts[:5].sum() == 0
    assert np.all(np.abs(counts[5:] - 160) < 50)  # 800 draws over 5 items
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(
        S.select("random", 4, labeled=lab, rng=g1), S.random(4, labeled=lab, rng=g2)
    )


# ----------------------------------------------------------------------------- BALD
def ref_bald(mc):
    t, n, c = mc.shape
    out = []
    for i in range(n):
        mean = [sum(mc[s, i, j] for s in range(t)) / t for j in range(c)]
        h = -sum(p * math.log(p) for p in mean if p > 0)
        eh = sum(-sum(p * math.log(p) for p in mc[s, i] if p > 0) for s in range(t)) / t
        out.append(h - eh)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_bald_matches_reference(seed):
    rng = np.random.default_rng(seed)
    mc = rng.dirichlet(np.ones(3), size=(5, 50))
    mc[:, 7] = mc[:, 3]  # a tie
    labeled = rng.random(50) < 0.3
    expected = ref_top_k(ref_bald(mc), 12, labeled)
    assert S.select("bald", 12, probs=mc, labeled=labeled).tolist() == expected
    assert S.bald(mc, 12, labeled=labeled).tolist() == expected


def test_bald_hand_worked():
    # item 0: passes agree (MI 0); item 1: they flip (MI = log 2 - H(.9,.1)); item 2: agree
    mc = np.array([[[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]], [[0.5, 0.5], [0.1, 0.9], [0.2, 0.8]]])
    assert S.bald(mc, 3).tolist() == [1, 0, 2]
    from alaas_lab.strategies._bayesian import bald_scores

    h = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1))
    np.testing.assert_allclose(bald_scores(mc), [0.0, math.log(2) - h, 0.0], atol=1e-12)
