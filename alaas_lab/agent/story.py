"""A PSHEA run told in words, from the controller's decisions (:meth:`Pshea.story`).

The text is built from :attr:`Pshea.decisions` alone, so a controller rebuilt from
the worker's journal (:meth:`Pshea.from_dict`) tells the same story as the one that
ran in-process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .pshea import Decision, Pshea

__all__ = ["pshea_story"]


def pshea_story(ctrl: Pshea) -> str:
    """One line per round: what was measured, who was eliminated and why, how it ended.

    Parameters
    ----------
    ctrl : Pshea
        A controller, running or stopped.

    Returns
    -------
    story : str
        Lines joined by newlines: the candidates, then per round the seed set's accuracy
        or the leader and the last, the mean forecast error of forecasts made from at
        least two rounds, each elimination (``-> name is eliminated (reason)``), the stop
        (``The run stops: reason. The winner is ...``), and the labels spent.
    """
    lines = [f"{len(ctrl.candidates)} strategies raced: {', '.join(ctrl.candidates)}."]
    rounds = sorted({d.round for d in ctrl.decisions})
    if not rounds:
        lines.append("No round has been observed yet.")
    for r in rounds:
        here = [d for d in ctrl.decisions if d.round == r]
        observed = [d for d in here if d.kind == "observe"]
        if observed:
            lines.append(_round_line(r, observed, first=rounds[0]))
        for d in here:
            if d.kind == "eliminate":
                lines.append(f"   -> {d.strategy} is eliminated ({d.reason}).")
            elif d.kind == "stop":
                at = f" at {100 * d.actual:.1f}%." if d.actual is not None else "."
                lines.append(f"The run stops: {d.reason}. The winner is {d.strategy}{at}")
    lines.append(f"Labels: {ctrl.spent_unique} asked of the labeler; {ctrl.spent_sum} if every "
                 "strategy's picks were counted separately (the paper's sum).")
    return "\n".join(lines)


def _round_line(r: int, observed: list[Decision], *, first: int) -> str:
    if observed[0].reason == "seed set":
        return (f"Round {r}: a random seed set shared by every candidate; the first model "
                f"scores {100 * observed[0].actual:.1f}%. Nothing to rank yet.")
    if len(observed) == 1:
        only = observed[0]
        text = f"Round {r}: only {only.strategy} is left, at {100 * only.actual:.1f}%."
    else:
        best = max(observed, key=lambda d: d.actual)
        worst = min(observed, key=lambda d: d.actual)
        text = (f"Round {r}: {len(observed)} strategies selected; {best.strategy} leads at "
                f"{100 * best.actual:.1f}%, {worst.strategy} trails at {100 * worst.actual:.1f}%.")
    errors = [abs(d.actual - d.predicted) for d in observed if d.predicted is not None]
    if errors and r > first + 1:  # the first strategy round's forecast is the seed round alone
        text += (f" Forecast error (made a round earlier): "
                 f"{100 * sum(errors) / len(errors):.1f} points.")
    return text
