"""RoundEngine (one PSHEA round without repeated work) and the forecaster's analytic Jacobians."""

from __future__ import annotations

import numpy as np
import pytest

from alaas_lab import strategies as S
from alaas_lab.agent import RoundEngine
from alaas_lab.agent.forecast import MODELS
from alaas_lab.errors import InputError


def pool(n=900, d=16, c=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = 3.0 * rng.standard_normal((c, d))
    y = rng.integers(0, c, n)
    X = (centers[y] + rng.standard_normal((n, d))).astype(np.float32)
    return X, y, rng


def test_fits_are_shared_skipped_and_warm_started():
    X, y, rng = pool()
    seed = rng.choice(len(X), 40, replace=False)
    eng = RoundEngine(X, classes=4)
    heads = {c: eng.fit(c, seed, y[seed]) for c in ("margin", "entropy", "kcenter_greedy")}
    assert eng.counters["fits"] == 1 and eng.counters["fits_shared"] == 2
    assert heads["margin"] is not heads["entropy"]  # copies: each warm-starts on its own
    np.testing.assert_array_equal(heads["margin"].coef_, heads["entropy"].coef_)
    eng.fit("margin", seed, y[seed])
    assert eng.counters["fits_skipped"] == 1
    more = np.concatenate([seed, rng.choice(np.setdiff1d(np.arange(len(X)), seed), 20)])
    warm = eng.fit("margin", more, y[more])
    cold = eng._head_cls(4, solver="newton-cg").fit(X[more], y[more], stats=eng.stats)
    np.testing.assert_allclose(warm.coef_, cold.coef_, atol=1e-4)
    assert eng.counters["fits"] == 2


def test_probabilities_are_each_heads_and_computed_once_for_all():
    X, y, rng = pool()
    eng = RoundEngine(X, classes=4)
    sets = [rng.choice(len(X), 30 + 5 * i, replace=False) for i in range(3)]
    for i, rows in enumerate(sets):
        eng.fit(f"c{i}", rows, y[rows])
    p0 = eng.probs("c0")
    assert eng.counters["probs_heads"] == 3  # one product for the three heads
    for i in range(3):
        np.testing.assert_allclose(eng.probs(f"c{i}"), eng.heads[f"c{i}"].predict_proba(X),
                                   atol=1e-6)
    assert eng.probs("c0") is p0 and eng.counters["probs_heads"] == 3
    eng.fit("c0", sets[1], y[sets[1]])  # now the twin of c1: no new probabilities to compute
    eng.probs("c0")
    assert eng.counters["probs_heads"] == 3
    with pytest.raises(InputError, match="no fitted head"):
        eng.probs("nobody")


@pytest.mark.parametrize("name", ["margin", "entropy", "bald", "badge", "kcenter_greedy",
                                  "coreset", "random"])
def test_select_gives_the_picks_of_select_with_model(name):
    """Every strategy but the k-means ones (DBAL, TypiClust: the state's own k-means)."""
    X, y, rng = pool()
    rows = rng.choice(len(X), 40, replace=False)
    lab = np.zeros(len(X), dtype=bool)
    lab[rows] = True
    eng = RoundEngine(X, classes=4)
    head = eng.fit(name, rows, y[rows])
    for r in range(2):
        got = eng.select(name, 12, labeled=lab, rng=np.random.default_rng([1, r]))
        want = S.select_with_model(name, 12, embeddings=X, labeled=lab, model=head,
                                   rng=np.random.default_rng([1, r]))
        np.testing.assert_array_equal(got, want)
        lab[got] = True
        rows = np.flatnonzero(lab)
        head = eng.fit(name, rows, y[rows])


def test_typiclust_and_dbal_through_the_engine_and_prepare():
    X, y, rng = pool()
    lab = np.zeros(len(X), dtype=bool)
    lab[rng.choice(len(X), 30, replace=False)] = True
    eng = RoundEngine(X, classes=4, strategy_params={"typiclust": {"max_clusters": 50}},
                      threads=1).prepare(lab, 10, seed=2)
    assert eng.state.counters["typiclust:cold"] == 1
    picks = eng.select("typiclust", 10, labeled=lab, rng=0)
    assert eng.state.counters["typiclust:reused"] == 1
    assert np.unique(picks).size == 10 and not lab[picks].any()
    rows = np.flatnonzero(lab)
    eng.fit("dbal", rows, y[rows])
    for r in range(2):
        picks = eng.select("dbal", 10, labeled=lab, rng=r)
        assert np.unique(picks).size == 10 and not lab[picks].any()
        lab[picks] = True
        rows = np.flatnonzero(lab)
        eng.fit("dbal", rows, y[rows])
    assert eng.state.counters["dbal:warm"] == 1


def test_engine_checks_its_inputs():
    X, y, _ = pool(n=100)
    eng = RoundEngine(X, classes=4)
    with pytest.raises(InputError, match="pool indices"):
        eng.fit("a", np.array([0, 100]), np.array([0, 1]))
    with pytest.raises(InputError, match="one label per row"):
        eng.fit("a", np.array([0, 1]), np.array([0]))
    with pytest.raises(InputError, match="no fitted head"):
        eng.select("bald", 2, labeled=np.zeros(100, bool), rng=0)
    with pytest.raises(InputError, match="solver"):
        RoundEngine(X, classes=4, head_params={"solver": "sgd"})
    eng.fit("a", np.array([0, 1, 2]), y[:3])
    eng.drop("a")
    assert "a" not in eng.heads


# ----------------------------------------------------------------------------- forecaster
@pytest.mark.parametrize("name", sorted(MODELS))
def test_forecast_models_analytic_jacobians_match_finite_differences(name):
    model = MODELS[name]
    lo, hi = model.bounds(0.0, 1.0)
    rng = np.random.default_rng(0)
    u = np.linspace(0.2, 1.3, 7)
    for _ in range(5):
        theta = lo + (hi - lo) * rng.uniform(0.1, 0.9, size=lo.size)
        theta = np.minimum(theta, np.where(np.isfinite(hi), hi, 10.0))
        J = model.jac(u, *theta)
        num = np.empty_like(J)
        for i in range(theta.size):
            h = 1e-6 * max(1.0, abs(theta[i]))
            up, dn = theta.copy(), theta.copy()
            up[i] += h
            dn[i] -= h
            num[:, i] = (model.fn(u, *up) - model.fn(u, *dn)) / (2 * h)
        np.testing.assert_allclose(J, num, rtol=1e-5, atol=1e-8)
