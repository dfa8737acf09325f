"""Figures of the tutorials: learning curves, and PSHEA's forecasts against what happened.

Each function draws with matplotlib and returns what it drew on; the caller shows or
saves it (``plt.show()`` in a notebook, ``fig.savefig(path)`` in a script).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .agent.pshea import Pshea

__all__ = ["learning_curves", "pshea_forecasts"]


def learning_curves(curves: Mapping[str, tuple[Any, Any]], *, title: str = "",
                    xlabel: str = "labels", ax: Axes | None = None) -> Axes:
    """Top-1 accuracy (in %) against labels, one line per run.

    Parameters
    ----------
    curves : mapping
        ``{name: (n_labeled, accuracy)}``, two sequences of the same length ``(rounds,)``;
        accuracies are fractions in [0, 1].
    title, xlabel : str
    ax : matplotlib Axes, optional
        Where to draw; default: a new 5 x 3 inch figure.

    Returns
    -------
    ax : matplotlib Axes
    """
    import matplotlib.pyplot as plt

    if not curves:
        raise InputError("curves is empty; give {name: (n_labeled, accuracy)} for each run.")
    checked = {}
    for name, pair in curves.items():
        if not (isinstance(pair, Sequence) and len(pair) == 2):
            raise InputError(f"curves[{name!r}] must be a pair (n_labeled, accuracy); "
                             f"got {type(pair).__name__}.")
        x, y = (np.asarray(v, dtype=float).ravel() for v in pair)
        if len(x) != len(y):
            raise InputError(f"curves[{name!r}]: n_labeled has {len(x)} values and accuracy "
                             f"{len(y)}; give one accuracy per labeled-set size.")
        checked[name] = (x, y)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3))
    for name, (x, y) in checked.items():
        ax.plot(x, 100 * y, "o-", ms=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("top-1 accuracy, %")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def pshea_forecasts(ctrl: Pshea, *, title: str = "",
                    reference: Mapping[str, Any] | None = None) -> Figure:
    """The paper's Fig. 5 for one run: accuracy per round with the forecasts, and their error.

    Left: each strategy's accuracy per round (bold), the forecast made a round earlier
    (x), where it was eliminated (o) and, from ``reference``, the same strategy run to
    the end (thin). Right: every forecast made from at least two rounds against what
    happened, with the mean absolute error in the title. A forecast from the seed round
    alone is only "the last value" and never eliminates, so it is left out.

    Parameters
    ----------
    ctrl : Pshea
        A controller after (or during) a run.
    title : str
        Title of the left panel.
    reference : mapping, optional
        ``{strategy: accuracies}``, shape ``(rounds,)`` from round 0: each strategy run
        alone for every round (brute force).

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    colors = dict(zip(ctrl.candidates, plt.cm.tab10.colors * 3, strict=False))
    pairs = []  # (forecast, actual, strategy)
    for s in ctrl.candidates:
        if reference is not None and s in reference:
            ref = np.asarray(reference[s], dtype=float)
            ax.plot(ctrl.start_round + np.arange(len(ref)), 100 * ref, color=colors[s],
                    lw=0.8, alpha=0.4)
        if not ctrl.history[s]:
            continue
        hist = np.array(ctrl.history[s])  # rows: round, abscissa, accuracy
        ax.plot(hist[:, 0], 100 * hist[:, 2], "-", color=colors[s], lw=2, label=s)
        seen = {int(r): a for r, _, a in ctrl.history[s]}
        for rnd, f in sorted(ctrl.forecasts[s].items()):
            if f.n_points < 2:
                continue
            if rnd in seen:
                pairs.append((f.mean, seen[rnd], s))
            if rnd in seen or ctrl.eliminated.get(s) == rnd - 1:  # incl. the one that dropped it
                ax.plot(rnd, 100 * f.mean, "x", color=colors[s], ms=7)
        if s in ctrl.eliminated:
            ax.plot(hist[-1, 0], 100 * hist[-1, 2], "o", mfc="none", mec=colors[s], ms=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("top-1 accuracy, %")
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    if pairs:
        p = 100 * np.array([[f, a] for f, a, _ in pairs])
        for (f, a), (_, _, s) in zip(p, pairs, strict=True):
            bx.plot(a, f, "o", color=colors[s], ms=5)
        lo, hi = p.min() - 1, p.max() + 1
        bx.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        bx.set_title(f"forecast vs actual (from >= 2 points): MAE "
                     f"{np.abs(p[:, 0] - p[:, 1]).mean():.2f} points")
    else:
        bx.set_title("no forecast from >= 2 points yet")
    bx.set_xlabel("actual top-1, %")
    bx.set_ylabel("forecast a round earlier, %")
    bx.grid(alpha=0.3)
    fig.tight_layout()
    return fig
