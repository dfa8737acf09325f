"""The PSHEA controller (pure state machine) and its simulated driver run_pshea."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alaas_lab.agent import Decision, Pshea, run_pshea
from alaas_lab.agent.forecast import forecast
from alaas_lab.errors import InputError

# scripted accuracies per round (round 0 = the shared seed set)
CURVES = {
    "good": [0.50, 0.70, 0.80, 0.85, 0.88, 0.90, 0.91, 0.92, 0.925],
    "fast": [0.50, 0.74, 0.78, 0.80, 0.81, 0.815, 0.82, 0.822, 0.823],
    "slow": [0.50, 0.60, 0.68, 0.74, 0.79, 0.83, 0.86, 0.88, 0.90],
    "bad": [0.50, 0.55, 0.58, 0.60, 0.61, 0.62, 0.63, 0.635, 0.64],
}


def drive(ctrl: Pshea, curves=CURVES, *, overlap: float = 0.0, until: int | None = None):
    """Feed scripted accuracies; ``overlap`` of each round's picks is already labeled."""
    while not (plan := ctrl.plan()).stop:
        if until is not None and plan.round >= until:
            return ctrl
        if plan.seed:
            ctrl.observe(plan.round, curves[ctrl.survivors[0]][0], labels_spent=plan.seed)
            continue
        total = sum(plan.budgets.values())
        ctrl.observe(plan.round, {s: curves[s][plan.round] for s in plan.budgets},
                     labels_spent=total - int(overlap * total), labels_sum=total)
    return ctrl


def test_algorithm_1_drops_the_worst_forecast_each_round():
    ctrl = Pshea(list(CURVES), budget_per_round=10, initial=20, max_rounds=8, min_delta=0)
    assert ctrl.plan().seed == 20 and ctrl.plan().budgets == {}
    seed = ctrl.observe(0, 0.5, labels_spent=20)
    assert [d.kind for d in seed] == ["observe"] * 4 + ["forecast"] * 4  # no elimination
    assert ctrl.survivors == list(CURVES)
    assert ctrl.plan().budgets == dict.fromkeys(CURVES, 10)
    made = ctrl.observe(1, {s: c[1] for s, c in CURVES.items()}, labels_spent=40)
    elim = [d for d in made if d.kind == "eliminate"]
    assert len(elim) == 1 and elim[0].strategy == "bad"
    assert elim[0].reason.startswith("lowest forecast for round 2")
    assert ctrl.eliminated == {"bad": 1} and "bad" not in ctrl.plan().budgets
    # each forecast equals the forecaster's own answer on that history (labels as x)
    f = ctrl.prediction("good", 2)
    assert f == forecast([20, 30], [0.5, 0.7], 40)
    drive(ctrl)
    assert ctrl.stopped and ctrl.stop_reason.startswith("max_rounds reached: 8")
    # one dropped per round until one is left (rounds 1, 2, 3), then it runs alone
    assert sorted(ctrl.eliminated.values()) == [1, 2, 3]
    assert ctrl.survivors == [ctrl.winner] == ["good"]
    assert ctrl.spent_unique == ctrl.spent_sum == 20 + 10 * (4 + 3 + 2 + 1 + 1 + 1 + 1 + 1)
    stop = ctrl.decisions[-1]
    assert (stop.kind, stop.strategy, stop.actual) == ("stop", "good", 0.925)
    assert ctrl.plan().stop and ctrl.plan().reason == ctrl.stop_reason


def test_every_observation_carries_the_forecast_made_a_round_earlier():
    ctrl = drive(Pshea(list(CURVES), budget_per_round=10, initial=20, max_rounds=8))
    for d in ctrl.decisions:
        if d.kind == "observe" and d.round >= 1:
            assert d.predicted == ctrl.forecasts[d.strategy][d.round].mean
            assert d.actual == CURVES[d.strategy][d.round]
    first = [d for d in ctrl.decisions if d.kind == "observe" and d.round == 0]
    assert all(d.predicted is None for d in first)


def test_successive_halving_drops_the_worse_half():
    ctrl = drive(Pshea(list(CURVES), budget_per_round=10, initial=20, max_rounds=8,
                       eliminate="half", min_delta=0))
    assert [len([s for s, r in ctrl.eliminated.items() if r == k]) for k in (1, 2)] == [2, 1]
    assert ctrl.spent_sum == 20 + 10 * (4 + 2 + 1 * 6)


def test_no_elimination_runs_every_candidate_every_round():
    ctrl = drive(Pshea(list(CURVES), budget_per_round=10, initial=20, max_rounds=8,
                       eliminate="none", min_delta=0))
    assert ctrl.eliminated == {} and ctrl.winner == "good"
    assert ctrl.spent_sum == 20 + 4 * 8 * 10


def test_stops_when_the_target_is_reached_without_eliminating():
    ctrl = drive(Pshea(list(CURVES), budget_per_round=10, initial=20, target=0.80))
    assert ctrl.stop_reason.startswith("target reached: best accuracy 0.8000 >= target 0.8000")
    assert ctrl.round == 3  # rounds 0, 1, 2 ran
    last = [d for d in ctrl.decisions if d.round == 2]
    assert "eliminate" not in {d.kind for d in last}  # no labels left to save
    assert ctrl.winner == "good"


def test_the_budget_is_never_overrun_and_rounds_shrink_to_fit():
    ctrl = Pshea(list(CURVES), budget_per_round=10, initial=20, b_max=100, min_delta=0)
    drive(ctrl, until=2)  # seed 20 + 4 x 10 -> 60 spent, 3 survivors, 40 left
    assert ctrl.spent == 60 and ctrl.plan().budgets == dict.fromkeys(ctrl.survivors, 10)
    drive(ctrl)
    assert ctrl.spent <= 100 and ctrl.stop_reason.startswith("budget spent")
    # a budget too small for one label per survivor stops at once
    tiny = drive(Pshea(list(CURVES), budget_per_round=10, initial=20, b_max=22))
    assert tiny.round == 1 and "not one per surviving strategy (4)" in tiny.stop_reason


def test_label_reuse_counts_both_ways_and_the_budget_follows_the_chosen_count():
    kw = dict(budget_per_round=10, initial=20, b_max=120, min_delta=0, max_rounds=8)
    unique = drive(Pshea(list(CURVES), **kw), overlap=0.5)
    summed = drive(Pshea(list(CURVES), accounting="sum", **kw), overlap=0.5)
    assert unique.spent_unique < unique.spent_sum
    assert summed.spent_sum <= 120 < unique.spent_sum  # reuse lets "unique" run longer
    assert unique.spent_unique <= 120 and unique.strategy_rounds == 8
    assert summed.strategy_rounds == 4 and summed.stop_reason.startswith("budget spent")
    with pytest.raises(InputError, match=r"labels_spent \(50\) cannot exceed labels_sum \(40\)"):
        c = Pshea(list(CURVES), budget_per_round=10, initial=20)
        c.observe(0, 0.5, labels_spent=20)
        c.observe(1, {s: 0.6 for s in CURVES}, labels_spent=50)


def test_convergence_stops_a_plateau():
    flat = {s: [0.5, 0.7, 0.75, 0.751, 0.7515, 0.752, 0.752, 0.752, 0.752] for s in "ab"}
    ctrl = drive(Pshea(["a", "b"], budget_per_round=10, initial=20, min_delta=0.005,
                       patience=2, eliminate="none"), curves=flat)
    assert ctrl.stop_reason.startswith("converged: best accuracy rose +0.0015 over the last 2")
    assert ctrl.strategy_rounds == 4


def test_state_round_trips_through_json_and_the_run_continues_identically():
    straight = drive(Pshea(list(CURVES), budget_per_round=10, initial=20, max_rounds=8))
    half = drive(Pshea(list(CURVES), budget_per_round=10, initial=20, max_rounds=8), until=3)
    saved = json.loads(json.dumps(half.to_dict()))
    resumed = Pshea.from_dict(saved)
    assert resumed.to_dict() == half.to_dict()
    drive(resumed)
    assert resumed.decisions == straight.decisions
    assert resumed.to_dict() == straight.to_dict()
    with pytest.raises(InputError, match="state version"):
        Pshea.from_dict({**saved, "version": 99})


def test_observe_checks_its_inputs():
    ctrl = Pshea(["a", "b"], budget_per_round=5, initial=10)
    with pytest.raises(InputError, match="round must be 0"):
        ctrl.observe(1, 0.5, labels_spent=10)
    ctrl.observe(0, 0.5, labels_spent=10)
    with pytest.raises(InputError, match=r"exactly the surviving strategies \['a', 'b'\]"):
        ctrl.observe(1, {"a": 0.6}, labels_spent=5)
    with pytest.raises(InputError, match="accuracy of 'b' must be a fraction"):
        ctrl.observe(1, {"a": 0.6, "b": 61.0}, labels_spent=5)
    with pytest.raises(InputError, match="must be distinct"):
        Pshea(["a", "a"], budget_per_round=5)
    with pytest.raises(InputError, match="initial .* larger than b_max"):
        Pshea(["a"], budget_per_round=5, initial=50, b_max=10)
    with pytest.raises(InputError, match="eliminate must be one of"):
        Pshea(["a"], budget_per_round=5, eliminate="all")
    with pytest.raises(InputError, match="forecast_params: .*'smooth'"):
        Pshea(["a"], budget_per_round=5, forecast_params={"smooth": 1})
    with pytest.raises(InputError, match="select must be one of"):
        Pshea(["a"], budget_per_round=5, forecast_params={"select": "best"})
    ctrl.stop("user asked")
    assert ctrl.decisions[-1] == Decision(0, "stop", "a", "user asked", None, 0.5)
    with pytest.raises(InputError, match="the run has stopped"):
        ctrl.observe(1, {"a": 0.6, "b": 0.6}, labels_spent=5)


# ---------------------------------------------------------------- the simulated driver


@pytest.fixture(scope="module")
def digits():
    from alaas_lab.datasets import digits

    d = digits()
    return d.X, d.y


CANDS = ["random", "margin", "entropy", "least_confidence"]
# one BLAS thread: on a busy 2-core machine OpenBLAS's spinning threads make each
# L-BFGS step of the head 20x slower
HEAD = {"threads": 1}


def test_run_pshea_follows_each_strategys_own_simulation(digits):
    from alaas_lab.learner import simulate

    X, y = digits
    res = run_pshea(X, y, candidates=CANDS, budget_per_round=20, rounds=3, seed=1,
                    head_params=HEAD)
    assert res.controller.stopped and res.winner in res.controller.survivors
    assert len(res.eliminated) == 2 and len(res.controller.survivors) == 2
    for s in CANDS:
        rounds_run = len(res.records[s]) - 1
        assert rounds_run == res.eliminated.get(s, 3)
        sim = simulate(X, y, strategy=s, rounds=rounds_run, budget_per_round=20, seed=1,
                       head_params=HEAD)
        assert np.array_equal(sim.accuracies, res.curve(s))  # PSHEA changes who runs, not picks
    # label store: unique = distinct items ever labeled; sum = every selection, seed once
    picked = [r.selected for s in CANDS for r in res.records[s] if r.round > 0]
    seed_set = res.records["random"][0].selected
    assert res.labels_unique == len(np.unique(np.concatenate([seed_set, *picked])))
    assert res.labels_sum == len(seed_set) + sum(len(p) for p in picked)
    assert res.labels_unique < res.labels_sum  # margin and entropy overlap
    errors = res.forecast_errors()
    assert {e["round"] for e in errors} == {1, 2, 3}
    assert all(0 <= e["predicted"] <= 1 for e in errors)
    assert "winner" in res.to_table() and res.to_dict()["winner"] == res.winner


def test_run_pshea_is_deterministic_and_brute_force_keeps_everyone(digits):
    X, y = digits
    kw = dict(candidates=CANDS[:3], budget_per_round=15, rounds=2, seed=4, head_params=HEAD)
    a = run_pshea(X, y, **kw)
    b = run_pshea(X, y, **kw)
    assert a.controller.to_dict() == b.controller.to_dict()
    brute = run_pshea(X, y, eliminate="none", **kw)
    assert brute.eliminated == {}
    assert all(len(brute.records[s]) == 3 for s in CANDS[:3])
    assert brute.labels_sum == 20 + 3 * 2 * 15


def test_run_pshea_reports_an_exhausted_pool_and_bad_arguments(digits):
    X, y = digits
    res = run_pshea(X[:120], y[:120], X_test=X[1000:1100], y_test=y[1000:1100],
                    candidates=["random", "margin"], budget_per_round=40, rounds=None,
                    initial_labeled=20, eliminate="none", min_delta=0, head_params=HEAD)
    assert res.controller.stop_reason.startswith("pool exhausted: random has 20 unlabeled")
    with pytest.raises(InputError, match=r"unknown strategies \['nope'\]"):
        run_pshea(X, y, candidates=["nope"], budget_per_round=5)
    with pytest.raises(InputError, match="strategy_params names"):
        run_pshea(X, y, candidates=["dbal"], budget_per_round=5,
                  strategy_params={"margin": {}})
