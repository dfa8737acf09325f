"""The tutorials' figures (:mod:`alaas_lab.plots`), drawn on matplotlib's Agg canvas."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from alaas_lab.agent import Pshea  # noqa: E402
from alaas_lab.errors import InputError  # noqa: E402
from alaas_lab.plots import learning_curves, pshea_forecasts  # noqa: E402

CURVES = {"good": [0.5, 0.7, 0.8, 0.85], "fast": [0.5, 0.74, 0.78, 0.8],
          "bad": [0.5, 0.55, 0.58, 0.6]}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def run() -> Pshea:
    ctrl = Pshea(list(CURVES), budget_per_round=10, initial=20, max_rounds=3, min_delta=0)
    while not (plan := ctrl.plan()).stop:
        if plan.seed:
            ctrl.observe(plan.round, 0.5, labels_spent=plan.seed)
        else:
            ctrl.observe(plan.round, {s: CURVES[s][plan.round] for s in plan.budgets},
                         labels_spent=10 * len(plan.budgets))
    return ctrl


def test_learning_curves_draw_one_line_per_run_in_percent():
    ax = learning_curves({"a": ([10, 20, 30], [0.5, 0.6, 0.7]), "b": ([10, 20], [0.4, 0.45])},
                         title="two runs")
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["a", "b"]
    assert np.allclose(lines[0].get_xydata(), [[10, 50], [20, 60], [30, 70]])
    assert ax.get_title() == "two runs" and ax.get_ylabel() == "top-1 accuracy, %"


def test_learning_curves_draw_into_a_given_axes():
    fig, (ax, _) = plt.subplots(1, 2)
    assert learning_curves({"a": ([1, 2], [0.1, 0.2])}, ax=ax) is ax
    assert len(fig.axes[1].get_lines()) == 0


@pytest.mark.parametrize("curves, match", [
    ({}, "curves is empty"),
    ({"a": ([1, 2, 3], [0.1, 0.2])}, r"curves\['a'\]: n_labeled has 3 values and accuracy 2"),
    ({"a": [0.1, 0.2, 0.3]}, r"curves\['a'\] must be a pair"),
])
def test_learning_curves_refuse_bad_input_naming_the_curve(curves, match):
    with pytest.raises(InputError, match=match):
        learning_curves(curves)


def test_pshea_forecasts_mark_forecasts_eliminations_and_their_error():
    ctrl = run()
    fig = pshea_forecasts(ctrl, title="scripted", reference=CURVES)
    ax, bx = fig.axes
    assert ax.get_title() == "scripted"
    bold = [line for line in ax.get_lines() if line.get_label() in CURVES]
    assert sorted(line.get_label() for line in bold) == sorted(CURVES)
    for line in bold:  # each strategy's measured accuracy up to its last round, in %
        s = line.get_label()
        assert np.allclose(line.get_ydata(), [100 * a for _, _, a in ctrl.history[s]])
    circles = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert len(circles) == len(ctrl.eliminated) >= 1
    # right panel: one point per forecast from >= 2 rounds that met its round, and its MAE
    pairs = [(f.mean, a) for s in CURVES for r, _, a in ctrl.history[s]
             if (f := ctrl.forecasts[s].get(int(r))) is not None and f.n_points >= 2]
    points = [line for line in bx.get_lines() if line.get_marker() == "o"]
    assert len(points) == len(pairs) >= 1
    mae = 100 * np.mean([abs(f - a) for f, a in pairs])
    assert bx.get_title() == f"forecast vs actual (from >= 2 points): MAE {mae:.2f} points"


def test_pshea_forecasts_before_any_two_point_forecast():
    ctrl = Pshea(["a", "b"], budget_per_round=5, initial=5)
    ctrl.observe(0, 0.5, labels_spent=5)
    fig = pshea_forecasts(ctrl)
    assert fig.axes[1].get_title() == "no forecast from >= 2 points yet"
