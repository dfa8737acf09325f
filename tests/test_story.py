"""A PSHEA run told in words (:meth:`Pshea.story`), from a scripted run."""

from __future__ import annotations

from alaas_lab.agent import Pshea

# scripted accuracies per round (round 0 = the shared seed set)
CURVES = {
    "good": [0.50, 0.70, 0.80, 0.85, 0.88],
    "fast": [0.50, 0.74, 0.78, 0.80, 0.81],
    "bad": [0.50, 0.55, 0.58, 0.60, 0.61],
}


def scripted(max_rounds: int = 4) -> Pshea:
    ctrl = Pshea(list(CURVES), budget_per_round=10, initial=20, max_rounds=max_rounds,
                 min_delta=0)
    while not (plan := ctrl.plan()).stop:
        if plan.seed:
            ctrl.observe(plan.round, 0.5, labels_spent=plan.seed)
        else:
            total = sum(plan.budgets.values())
            ctrl.observe(plan.round, {s: CURVES[s][plan.round] for s in plan.budgets},
                         labels_spent=total - 5, labels_sum=total)
    return ctrl


def test_the_story_tells_each_round_the_eliminations_and_the_end():
    ctrl = scripted()
    lines = ctrl.story().splitlines()
    assert lines[0] == "3 strategies raced: good, fast, bad."
    assert lines[1] == ("Round 0: a random seed set shared by every candidate; the first model "
                        "scores 50.0%. Nothing to rank yet.")
    # round 1: no forecast error yet (the forecasts for it came from the seed round alone)
    assert lines[2] == "Round 1: 3 strategies selected; fast leads at 74.0%, bad trails at 55.0%."
    gone = sorted(ctrl.eliminated, key=ctrl.eliminated.get)
    said = [line.strip() for line in lines if "is eliminated" in line]
    assert [s.split()[1] for s in said] == gone and len(gone) == 2
    assert all(f"({d.reason})." in "\n".join(said)
               for d in ctrl.decisions if d.kind == "eliminate")
    # round 2 on: the mean absolute error of the forecasts made a round earlier
    r2 = next(line for line in lines if line.startswith("Round 2:"))
    errors = [abs(d.actual - d.predicted) for d in ctrl.decisions
              if d.kind == "observe" and d.round == 2]
    assert r2.endswith(f"Forecast error (made a round earlier): "
                       f"{100 * sum(errors) / len(errors):.1f} points.")
    assert f"Round 4: only {ctrl.winner} is left, at" in "\n".join(lines)
    assert lines[-2] == (f"The run stops: {ctrl.stop_reason}. The winner is {ctrl.winner} at "
                         f"{100 * ctrl.accuracy(ctrl.winner):.1f}%.")
    assert lines[-1] == (f"Labels: {ctrl.spent_unique} asked of the labeler; {ctrl.spent_sum} if "
                         "every strategy's picks were counted separately (the paper's sum).")
    assert ctrl.spent_unique < ctrl.spent_sum


def test_a_controller_rebuilt_from_its_saved_state_tells_the_same_story():
    ctrl = scripted()
    assert Pshea.from_dict(ctrl.to_dict()).story() == ctrl.story()


def test_a_run_with_no_round_yet_says_so():
    story = Pshea(["margin", "entropy"], budget_per_round=5, initial=5).story()
    assert story.splitlines()[:2] == ["2 strategies raced: margin, entropy.",
                                      "No round has been observed yet."]
