"""The learning-curve forecaster: known curves, noisy curves, fallbacks, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alaas_lab.agent.forecast import MODELS, Forecast, forecast
from alaas_lab.errors import InputError

T = np.arange(1, 9) * 20.0  # labels after each round: 20, 40, ..., 160
T_NEXT = 180.0


def exp_curve(t, c=0.93, a=0.55, b=0.025):
    return c - a * np.exp(-b * t)


def pow3_curve(t, c=0.95, a=2.0, alpha=0.6):
    return c - a * t ** (-alpha)


@pytest.mark.parametrize("select", ["holdout", "aic"])
def test_an_exponential_curve_is_recovered(select):
    y = exp_curve(T)
    f = forecast(T, y, T_NEXT, select=select)
    assert f.model == "exp"
    assert f.mean == pytest.approx(exp_curve(T_NEXT), abs=2e-4)
    # parameters on the scaled axis u = (t - 20) / 140: c and a * exp(-b * 20), b * 140
    assert f.params["c"] == pytest.approx(0.93, abs=1e-3)
    assert f.params["b"] == pytest.approx(0.025 * 140, rel=1e-2)
    assert f.params["a"] == pytest.approx(0.55 * math.exp(-0.025 * 20), rel=1e-2)
    assert f.std < 0.01


def test_a_power_law_is_recovered_and_holdout_picks_it():
    y = pow3_curve(T)
    only = forecast(T, y, T_NEXT, models=("pow3",))
    assert only.model == "pow3"
    assert only.mean == pytest.approx(pow3_curve(T_NEXT), abs=2e-4)
    assert only.params["alpha"] == pytest.approx(0.6, rel=1e-2)
    picked = forecast(T, y, T_NEXT, select="holdout")
    assert picked.model in ("pow3", "pow2", "mmf")  # pow2 is pow3 with c = 1: a near miss
    assert picked.mean == pytest.approx(pow3_curve(T_NEXT), abs=3e-3)


def test_the_default_ensemble_is_close_on_both_shapes_and_reports_every_model():
    for curve in (exp_curve, pow3_curve):
        f = forecast(T, curve(T), T_NEXT)
        assert f.model == "mean" and set(f.candidates) == set(MODELS)
        assert f.mean == pytest.approx(float(np.mean(list(f.candidates.values()))))
        assert abs(f.mean - curve(T_NEXT)) < 0.015


@pytest.mark.parametrize("select", ["mean", "holdout", "aic"])
@pytest.mark.parametrize("seed", range(6))
def test_noisy_and_non_monotone_curves_give_bounded_finite_forecasts(select, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 10))
    t = np.cumsum(rng.integers(5, 50, n)).astype(float)
    y = np.clip(exp_curve(t, c=rng.uniform(0.5, 1.0)) + rng.normal(0, 0.05, n), 0, 1)
    if seed % 2:
        y = y[::-1].copy()  # a falling curve
    f = forecast(t, y, t[-1] + 20, select=select)
    assert 0.0 <= f.mean <= 1.0 and math.isfinite(f.mean)
    assert math.isfinite(f.std) and f.std >= 0.005
    if seed % 2 and f.model not in ("last", "pow2"):  # fitted models never forecast a fall
        assert f.mean >= y.min() - 1e-9


def test_extreme_curves_stay_within_the_bounds():
    t = [10.0, 20.0, 30.0, 40.0, 50.0]
    assert forecast(t, [0.99, 1.0, 1.0, 1.0, 1.0], 60).mean <= 1.0
    assert forecast(t, [0.0, 0.0, 0.0, 0.0, 0.0], 60).mean >= 0.0
    flat = forecast(t, [0.7] * 5, 60)
    assert flat.mean == pytest.approx(0.7, abs=1e-3)
    jump = forecast(t, [0.1, 0.1, 0.1, 0.1, 0.95], 60)
    assert 0.0 <= jump.mean <= 1.0
    pct = forecast(t, [40.0, 60.0, 70.0, 75.0, 78.0], 60, bounds=(0, 100))
    assert 78.0 <= pct.mean <= 100.0


def test_one_point_falls_back_to_the_last_value():
    f = forecast([20], [0.61], 40)
    assert (f.model, f.mean, f.std, f.n_points) == ("last", 0.61, 0.05, 1)
    assert forecast([20], [0.61], 40, prior_std=0.1).std == 0.1


def test_two_points_fit_a_power_law_in_the_error_by_hand():
    # error 0.5 at t=10 and 0.25 at t=20: alpha = 1, so the error at t=40 is 0.125
    f = forecast([10, 20], [0.5, 0.75], 40)
    assert f.model == "pow2"
    assert f.mean == pytest.approx(0.875)
    assert f.params["alpha"] == pytest.approx(1.0)
    assert f.std == pytest.approx(0.125)  # the size of the predicted step
    # rounds counted from 0 are shifted by one: t = 1, 2 -> 4
    assert forecast([0, 1], [0.5, 0.75], 3).mean == pytest.approx(0.875)


def test_two_points_that_do_not_rise_keep_the_last_value():
    f = forecast([10, 20], [0.8, 0.7], 30)
    assert (f.model, f.mean) == ("last", 0.7)
    assert f.std == pytest.approx(0.1)


def test_models_join_as_points_accumulate():
    y = exp_curve(T)
    assert forecast(T[:3], y[:3], 80).candidates.keys() == {"pow2"}
    assert forecast(T[:4], y[:4], 100).candidates.keys() == {"pow2", "exp", "pow3"}
    assert forecast(T[:5], y[:5], 120).candidates.keys() == set(MODELS)
    assert forecast(T[:3], y[:3], 80, min_extra=0).candidates.keys() == {"pow2", "exp", "pow3"}


def test_forecasts_are_deterministic_and_round_trip():
    rng = np.random.default_rng(3)
    y = np.clip(exp_curve(T) + rng.normal(0, 0.01, T.size), 0, 1)
    a = forecast(T, y, T_NEXT, select="holdout")
    b = forecast(T, y, T_NEXT, select="holdout")
    assert a == b
    assert Forecast.from_dict(a.to_dict()) == a


def test_more_noise_means_more_uncertainty():
    rng = np.random.default_rng(0)
    clean = forecast(T, exp_curve(T), T_NEXT)
    noisy = forecast(T, np.clip(exp_curve(T) + rng.normal(0, 0.03, T.size), 0, 1), T_NEXT)
    assert noisy.std > clean.std


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"t": [1, 1], "acc": [0.5, 0.6]}, "strictly increasing"),
        ({"t": [1, 2], "acc": [50, 60]}, "not percent"),
        ({"t": [1, 2], "acc": [0.5]}, "one value per point"),
        ({"t": [], "acc": []}, "at least one observed point"),
        ({"t": [-1, 2], "acc": [0.5, 0.6]}, "t must be >= 0"),
        ({"t": [1, 2], "acc": [0.5, float("nan")]}, "finite"),
        ({"t_next": 2}, "t_next must be greater than the last t"),
        ({"models": ("exp", "weibull")}, "models must be a non-empty subset"),
        ({"select": "best"}, "select must be one of"),
        ({"bounds": (1, 0)}, "lo < hi"),
    ],
)
def test_bad_inputs_say_what_is_wrong(kwargs, match):
    args = {"t": [1, 2], "acc": [0.5, 0.6], "t_next": 3} | kwargs
    with pytest.raises(InputError, match=match):
        forecast(args.pop("t"), args.pop("acc"), args.pop("t_next"), **args)
