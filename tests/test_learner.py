"""Tests for alaas_lab.learner: the step-by-step ActiveLearner and the simulate() loop."""

from __future__ import annotations

import numpy as np
import pytest

import alaas_lab
from alaas_lab import datasets, strategies
from alaas_lab.errors import InputError, ModelError
from alaas_lab.learner import ActiveLearner, RoundRecord, SimulationResult, simulate


@pytest.fixture(scope="module")
def digits():
    return datasets.digits()


@pytest.fixture(scope="module")
def small(digits):
    """400 digits: a quick pool for loop invariants."""
    return digits.X[:400], digits.y[:400]


def test_simulate_records_rounds_and_never_picks_an_item_twice(small):
    X, y = small
    seen = []
    res = simulate(
        X,
        y,
        strategy="least_confidence",
        rounds=4,
        budget_per_round=15,
        initial_labeled=10,
        seed=0,
        on_round=seen.append,
    )
    assert isinstance(res, SimulationResult)
    assert [r.round for r in res.records] == [0, 1, 2, 3, 4]
    assert seen == res.records and all(isinstance(r, RoundRecord) for r in seen)
    assert res.n_labeled.tolist() == [10, 25, 40, 55, 70]
    assert [len(r.selected) for r in res.records] == [10, 15, 15, 15, 15]
    assert [r.strategy for r in res.records] == ["random"] + ["least_confidence"] * 4
    picked = res.selected
    assert len(np.unique(picked)) == len(picked) == 70
    assert picked.min() >= 0 and picked.max() < res.n_pool
    assert res.n_pool + res.n_test == len(y)  # the default hold-out split
    assert res.accuracies.shape == (5,) and np.all((0 <= res.accuracies) & (res.accuracies <= 1))
    assert np.all(res.top5 >= res.accuracies)
    assert all(r.seconds >= r.query_seconds >= 0 for r in res.records)


def test_simulate_is_deterministic_given_the_seed(small):
    X, y = small
    kw = dict(strategy="least_confidence", rounds=3, budget_per_round=10, initial_labeled=10)
    a = simulate(X, y, seed=3, **kw)
    b = simulate(X, y, seed=3, **kw)
    c = simulate(X, y, seed=4, **kw)
    np.testing.assert_array_equal(a.selected, b.selected)
    np.testing.assert_array_equal(a.accuracies, b.accuracies)
    assert not np.array_equal(a.selected, c.selected)


def test_strategies_at_one_seed_share_the_seed_set(small):
    X, y = small
    kw = dict(rounds=1, budget_per_round=10, initial_labeled=12, seed=5)
    a = simulate(X, y, strategy="random", **kw)
    b = simulate(X, y, strategy="least_confidence", **kw)
    np.testing.assert_array_equal(a.records[0].selected, b.records[0].selected)
    assert a.records[0].top1 == b.records[0].top1
    assert not np.array_equal(a.records[1].selected, b.records[1].selected)


def test_accuracy_rises_over_the_rounds(digits):
    res = simulate(
        digits.X,
        digits.y,
        strategy="least_confidence",
        rounds=6,
        budget_per_round=20,
        initial_labeled=20,
        seed=0,
    )
    assert res.accuracies[-1] > res.accuracies[0] + 0.15
    assert res.accuracies[-1] > 0.85


@pytest.mark.slow
def test_least_confidence_beats_random_at_equal_labels(digits):
    """Averaged over seeds, on digits, after 8 rounds of 20 (180 labels)."""
    kw = dict(rounds=8, budget_per_round=20, initial_labeled=20)
    final = {}
    for name in ("random", "least_confidence"):
        runs = [simulate(digits.X, digits.y, strategy=name, seed=s, **kw) for s in range(3)]
        assert all(r.n_labeled[-1] == 180 for r in runs)
        final[name] = np.mean([r.accuracies[-1] for r in runs])
    assert final["least_confidence"] > final["random"] + 0.01, final


def test_explicit_test_set_and_table(digits):
    pool, test = digits.split(300, rng=0)
    res = simulate(
        pool.X,
        pool.y,
        X_test=test.X,
        y_test=test.y,
        strategy="random",
        rounds=2,
        budget_per_round=5,
        initial_labeled=10,
        seed=1,
    )
    assert res.n_pool == len(pool) and res.n_test == 300
    table = res.to_table()
    lines = table.splitlines()
    assert "strategy: random" in lines[0] and "top-1 %" in lines[1]
    assert len(lines) == 3 + 3
    assert lines[-1].split()[:2] == ["2", "20"]
    assert f"{100 * res.accuracies[-1]:.2f}" in lines[-1]
    d = res.to_dict()
    assert d["records"][0]["selected"] == res.records[0].selected.tolist()


def test_every_strategy_in_the_zoo_runs_in_the_loop(small):
    """Each strategy gets what strategies.requirements() asks for (probs, MC probs, X)."""
    X, y = small
    for name in strategies.names():
        res = simulate(
            X,
            y,
            strategy=name,
            rounds=2,
            budget_per_round=8,
            initial_labeled=10,
            seed=0,
            mc_samples=4,
        )
        picked = res.selected
        assert len(np.unique(picked)) == len(picked) == 26, name
        assert res.n_labeled.tolist() == [10, 18, 26], name


def test_simulate_errors(small):
    X, y = small
    with pytest.raises(InputError, match=r"10 \+ 5 \* 70 = 360 items, but the pool holds only 300"):
        simulate(X, y, strategy="random", rounds=5, budget_per_round=70, initial_labeled=10)
    with pytest.raises(InputError, match="unknown strategy 'best'"):
        simulate(X, y, strategy="best", rounds=1, budget_per_round=5)
    with pytest.raises(InputError, match="budget_per_round"):
        simulate(X, y, strategy="random", rounds=1, budget_per_round=0)
    with pytest.raises(InputError, match="one label per row"):
        simulate(X, y[:-1], strategy="random", rounds=1, budget_per_round=5)
    with pytest.raises(InputError, match="both X_test and y_test"):
        simulate(X, y, X_test=X, strategy="random", rounds=1, budget_per_round=5)


def test_simulate_is_reachable_as_alaas_lab_simulate(small):
    X, y = small
    res = alaas_lab.simulate(X, y, strategy="random", rounds=1, budget_per_round=5, seed=0)
    assert isinstance(res, SimulationResult) and res.n_labeled.tolist() == [20, 25]


# ------------------------------------------------------------- ActiveLearner
def test_learner_step_by_step(small):
    X, y = small
    learner = ActiveLearner(X, classes=10, strategy="least_confidence", seed=0)
    with pytest.raises(ModelError, match="no item is labeled yet"):
        learner.query(5)
    seed_set = learner.query(10, strategy="random")
    assert learner.pending.tolist() == sorted(seed_set.tolist())
    # pending items are not handed out again
    more = learner.query(5, strategy="random")
    assert not set(more) & set(seed_set)
    learner.teach(seed_set, y[seed_set])
    assert learner.n_labeled == 10 and learner.labeled[seed_set].all()
    assert learner.pending.tolist() == sorted(more.tolist())
    np.testing.assert_array_equal(learner.labels, y[np.sort(seed_set)])
    head = learner.fit()
    assert head.predict_proba(X).shape == (400, 10)  # all classes, seen or not
    picks = learner.query(5)
    assert not learner.labeled[picks].any() and not set(picks) & set(more)
    acc = learner.evaluate(X, y)["top1"]
    assert 0 < acc <= 1
    learner.forget(seed_set[:3])
    assert learner.n_labeled == 7 and learner.n_unlabeled == 393


def test_learner_query_refits_a_stale_head(small):
    X, y = small
    learner = ActiveLearner(X, classes=10, strategy="least_confidence", seed=0)
    idx = learner.query(30, strategy="random")
    learner.teach(idx, y[idx])
    picks_auto = learner.query(5)  # fits first, since labels changed

    again = ActiveLearner(X, classes=10, strategy="least_confidence", seed=0)
    idx2 = again.query(30, strategy="random")
    again.teach(idx2, y[idx2])
    again.fit()
    np.testing.assert_array_equal(picks_auto, again.query(5))


def test_learner_errors(small):
    X, y = small
    learner = ActiveLearner(X[:30], classes=10, seed=0)
    with pytest.raises(InputError, match="only 30 of the 30"):
        learner.query(31)
    with pytest.raises(InputError, match="outside the pool"):
        learner.teach([30], [1])
    with pytest.raises(InputError, match="repeats"):
        learner.teach([1, 1], [1, 1])
    with pytest.raises(InputError, match="label 11"):
        learner.teach([1], [11])
    with pytest.raises(InputError, match="one label per index"):
        learner.teach([1, 2], [1])
    with pytest.raises(ModelError, match="teach"):
        learner.fit()
    learner.teach(np.arange(25), y[:25])
    with pytest.raises(InputError, match="only 5 of the 30"):
        learner.query(6)
    with pytest.raises(InputError, match="unknown strategy"):
        ActiveLearner(X, classes=10, strategy="nope")


def test_simulate_async_selects_with_a_head_one_round_behind():
    d = datasets.digits()
    sync = simulate(d.X, d.y, strategy="margin", rounds=4, budget_per_round=20, seed=0)
    lag = simulate(d.X, d.y, strategy="margin", rounds=4, budget_per_round=20, seed=0,
                   rounds_mode="async")
    assert [r.n_labeled for r in lag.records] == [r.n_labeled for r in sync.records]
    # round 1 is picked before the seed set's labels are back: at random, not by margin
    assert lag.records[0].strategy == "random" and sync.records[1].strategy == "margin"
    assert not set(lag.records[0].selected) & set(sync.records[1].selected)
    with pytest.raises(InputError, match="rounds_mode"):
        simulate(d.X, d.y, strategy="margin", rounds=1, budget_per_round=5, rounds_mode="later")
