"""Learning-curve forecasting: predict a strategy's accuracy one round ahead.

PSHEA (the paper's Algorithm 1) fits a *negative exponential* to each strategy's
accuracy history and drops the strategy whose predicted next accuracy is lowest.
:func:`forecast` fits that model and three other classic learning-curve shapes,
combines or picks among them, and returns a :class:`Forecast` (mean, standard
deviation, model, parameters).

Models (``u`` is the scaled abscissa, see below; ``[lo, hi]`` the value range,
``[0, 1]`` for accuracies)

* ``exp``: ``c - a exp(-b u)``, the paper's; ``lo <= c <= hi``,
  ``0 <= a <= 2(hi - lo)``, ``1e-3 <= b <= 50``.
* ``pow3``: ``c - a u^-alpha``; ``lo <= c <= hi``, ``0 <= a <= 2(hi - lo)``,
  ``1e-3 <= alpha <= 5``.
* ``mmf`` (Morgan-Mercer-Flodin): ``(alpha beta + gamma u^delta) / (beta + u^delta)``;
  ``lo <= alpha <= hi``, ``gamma = alpha + s (hi - alpha)`` with ``0 <= s <= 1``,
  ``1e-4 <= beta <= 1e4``, ``0.1 <= delta <= 10``.
* ``pow2``: ``hi - a u^-alpha`` (the error falls as a power law);
  ``0 <= a <= 2(hi - lo)``, ``1e-3 <= alpha <= 5``.

All four are non-decreasing by construction (``a >= 0``, ``gamma >= alpha``): an
accuracy curve rises in expectation, and a dip in a noisy history should not be
extrapolated into a fall. Their asymptotes never exceed ``hi`` (1 for accuracies),
and every prediction is clipped to ``[lo, hi]``.

Abscissa
    ``t`` is whatever measures progress: labels used (what PSHEA passes) or the
    round number. It is scaled so that one set of bounds suits any scale:
    ``exp`` (shift-invariant) uses ``u = (t - t_first) / (t_last - t_first)``, so
    ``a`` is the gap between the asymptote and the first point; the power laws
    and ``mmf`` need ``t > 0`` and use ``u = t / t_last`` (when the first ``t`` is
    0, as with rounds counted from 0, every ``t`` is shifted by 1 first).

Fitting
    ``scipy.optimize.least_squares`` (trust-region reflective, box bounds, the
    models' analytic Jacobians) from two or three fixed starting points per
    model; the lowest cost wins. No randomness: the same history gives the same
    forecast.

Too few points
    A model with ``p`` parameters is fitted only from ``p + min_extra`` points
    on (default ``min_extra=1``: with exactly ``p`` points a model interpolates
    the noise). So with the defaults ``pow2`` joins at 3 points, ``exp`` and
    ``pow3`` at 4, ``mmf`` at 5. Below that a fallback answers:

    * 1 point: the last value (``model="last"``), ``std = prior_std``.
    * 2 points (or no eligible model): ``pow2`` through the last two points
      exactly, i.e. the error ``hi - acc`` falls as a power of ``t``
      (``model="pow2"``), with ``std`` the size of the predicted step; if the
      curve did not rise between them, the last value (``model="last"``).

Combining the models
    * ``select="mean"`` (default): the average of every eligible model's
      prediction. On the learning curves of the zoo on digits and MNIST this was
      the most accurate rule (see ``docs/pshea.md``).
    * ``select="holdout"``: each eligible model is fitted without the last point
      and scored by its error on that point; the best is refitted on every
      point. Models without ``p + min_extra`` points before the last one sit
      out; if none can be scored, the first eligible model in ``models`` is used.
    * ``select="aic"``: the corrected Akaike criterion ``n log(RSS/n) + 2p +
      2p(p+1)/(n-p-1)`` over the models with ``n > p + 1``.

Uncertainty
    ``std**2 = s2 + g' C g + d2`` where ``s2 = RSS / (n - p)`` is the residual
    variance (the next observation is noisy too), ``g' C g`` the parameter
    uncertainty pushed through the model (delta method, ``C = s2 (J'J)^+``) and
    ``d2`` the variance of the eligible models' predictions (their disagreement).
    With ``select="mean"`` the first two terms are averaged over the models. The
    result is at least ``min_std``.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["MODELS", "Forecast", "CurveModel", "fit_curve", "forecast"]

_SELECT = ("holdout", "aic", "mean")


@dataclasses.dataclass(frozen=True)
class CurveModel:
    """One learning-curve family.

    Attributes
    ----------
    name : str
    params : tuple of str
        Names of the fitted parameters (in the order of ``fn``'s arguments).
    fn : callable
        ``fn(u, *theta) -> y`` on the scaled abscissa ``u``.
    starts : callable
        ``starts(u, y, lo, hi) -> list of theta``, starting points for the fit.
    bounds : callable
        ``bounds(lo, hi) -> (lower, upper)`` arrays for ``theta``.
    report : callable
        ``report(theta) -> dict``: the parameters as documented (e.g. ``gamma``).
    positive : bool
        Needs ``u > 0``.
    jac : callable, optional
        ``jac(u, *theta) -> (n, p)``, the derivatives of ``fn`` with respect to
        ``theta``; without it the fit differentiates numerically (slower).
    """

    name: str
    params: tuple[str, ...]
    fn: Callable[..., np.ndarray]
    starts: Callable[[np.ndarray, np.ndarray, float, float], list[np.ndarray]]
    bounds: Callable[[float, float], tuple[np.ndarray, np.ndarray]]
    report: Callable[[np.ndarray], dict[str, float]]
    positive: bool = False
    jac: Callable[..., np.ndarray] | None = None

    @property
    def n_params(self) -> int:
        return len(self.params)


# ----------------------------------------------------------------------------- models
def _exp(u: np.ndarray, c: float, a: float, b: float) -> np.ndarray:
    return c - a * np.exp(-b * u)


def _exp_jac(u: np.ndarray, c: float, a: float, b: float) -> np.ndarray:
    e = np.exp(-b * u)
    return np.column_stack([np.ones_like(u), -e, a * u * e])


def _exp_starts(u: np.ndarray, y: np.ndarray, lo: float, hi: float) -> list[np.ndarray]:
    out = []
    for b in (1.0, 4.0, 12.0):
        c = min(hi, y.max() + 0.25 * max(y.max() - y.min(), 0.01))
        a = max(c - y[0], 1e-3)
        out.append(np.array([c, a, b]))
    return out


def _exp_bounds(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    span = hi - lo
    return np.array([lo, 0.0, 1e-3]), np.array([hi, 2.0 * span, 50.0])


def _pow3(u: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    return c - a * u ** (-alpha)


def _pow3_jac(u: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    p = u ** (-alpha)
    return np.column_stack([np.ones_like(u), -p, a * p * np.log(u)])


def _pow3_starts(u: np.ndarray, y: np.ndarray, lo: float, hi: float) -> list[np.ndarray]:
    out = []
    for alpha in (0.3, 1.0, 2.0):
        c = min(hi, y.max() + 0.25 * max(y.max() - y.min(), 0.01))
        a = max(c - y[0], 1e-3) * u[0] ** alpha
        out.append(np.array([c, a, alpha]))
    return out


def _pow3_bounds(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    return np.array([lo, 0.0, 1e-3]), np.array([hi, 2.0 * (hi - lo), 5.0])


def _pow2_starts(u: np.ndarray, y: np.ndarray, lo: float, hi: float) -> list[np.ndarray]:
    return [np.array([max(hi - y[0], 1e-3) * u[0] ** alpha, alpha]) for alpha in (0.5, 1.5)]


def _pow2_bounds(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    return np.array([0.0, 1e-3]), np.array([2.0 * (hi - lo), 5.0])


def _mmf_raw(u: np.ndarray, alpha: float, s: float, beta: float, delta: float,
             hi: float) -> np.ndarray:
    gamma = alpha + s * (hi - alpha)
    ud = u**delta
    return (alpha * beta + gamma * ud) / (beta + ud)


def _mmf_starts(u: np.ndarray, y: np.ndarray, lo: float, hi: float) -> list[np.ndarray]:
    alpha = float(np.clip(y[0] - 0.1 * (hi - lo), lo, hi))
    top = min(hi, y.max() + 0.25 * max(y.max() - y.min(), 0.01))
    s = float(np.clip((top - alpha) / max(hi - alpha, 1e-9), 0.0, 1.0))
    return [np.array([alpha, s, beta, delta]) for beta, delta in ((0.1, 1.0), (0.5, 2.0))]


def _mmf_bounds(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    return np.array([lo, 0.0, 1e-4, 0.1]), np.array([hi, 1.0, 1e4, 10.0])


def _make_models(hi: float) -> dict[str, CurveModel]:
    def mmf(u: np.ndarray, alpha: float, s: float, beta: float, delta: float) -> np.ndarray:
        return _mmf_raw(u, alpha, s, beta, delta, hi)

    def mmf_jac(u: np.ndarray, alpha: float, s: float, beta: float, delta: float) -> np.ndarray:
        ud = u**delta
        den = beta + ud
        gamma = alpha + s * (hi - alpha)
        f = (alpha * beta + gamma * ud) / den
        return np.column_stack([(beta + (1.0 - s) * ud) / den, (hi - alpha) * ud / den,
                                (alpha - f) / den, (gamma - f) * ud * np.log(u) / den])

    def pow2(u: np.ndarray, a: float, alpha: float) -> np.ndarray:
        return hi - a * u ** (-alpha)

    def pow2_jac(u: np.ndarray, a: float, alpha: float) -> np.ndarray:
        p = u ** (-alpha)
        return np.column_stack([-p, a * p * np.log(u)])

    return {
        "pow2": CurveModel("pow2", ("a", "alpha"), pow2, _pow2_starts, _pow2_bounds,
                           lambda p: {"c": hi, "a": p[0], "alpha": p[1]}, positive=True,
                           jac=pow2_jac),
        "exp": CurveModel("exp", ("c", "a", "b"), _exp, _exp_starts, _exp_bounds,
                          lambda p: {"c": p[0], "a": p[1], "b": p[2]}, jac=_exp_jac),
        "pow3": CurveModel("pow3", ("c", "a", "alpha"), _pow3, _pow3_starts, _pow3_bounds,
                           lambda p: {"c": p[0], "a": p[1], "alpha": p[2]}, positive=True,
                           jac=_pow3_jac),
        "mmf": CurveModel("mmf", ("alpha", "s", "beta", "delta"), mmf, _mmf_starts, _mmf_bounds,
                          lambda p: {"alpha": p[0], "beta": p[2],
                                     "gamma": p[0] + p[1] * (hi - p[0]), "delta": p[3]},
                          positive=True, jac=mmf_jac),
    }


#: The model families, by name (for accuracies, i.e. ``hi = 1``).
MODELS: dict[str, CurveModel] = _make_models(1.0)


@dataclasses.dataclass(frozen=True)
class Forecast:
    """A one-step-ahead prediction of a learning curve.

    Attributes
    ----------
    mean : float
        Predicted value at ``t_next``, in ``[lo, hi]``.
    std : float
        Its standard deviation (see the module docstring), > 0.
    model : str
        ``"exp"``, ``"pow3"``, ``"mmf"``, ``"pow2"`` (also the two-point fallback),
        ``"mean"`` (average of the eligible models) or ``"last"`` (last value).
    params : dict
        Fitted parameters of ``model`` on the scaled abscissa ``u = (t - t_origin)
        / t_scale`` (both included); empty for ``"last"`` and ``"mean"`` (see
        ``candidates``).
    n_points : int
        Points the forecast was made from.
    t_next : float
    candidates : dict
        ``{model: prediction}`` of every model fitted on all points.
    """

    mean: float
    std: float
    model: str
    params: dict[str, float]
    n_points: int
    t_next: float
    candidates: dict[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (JSON-ready)."""
        return {
            "mean": self.mean,
            "std": self.std,
            "model": self.model,
            "params": dict(self.params),
            "n_points": self.n_points,
            "t_next": self.t_next,
            "candidates": dict(self.candidates),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Forecast:
        return cls(float(d["mean"]), float(d["std"]), str(d["model"]), dict(d["params"]),
                   int(d["n_points"]), float(d["t_next"]), dict(d.get("candidates", {})))


@dataclasses.dataclass(frozen=True)
class _Fit:
    model: CurveModel
    theta: np.ndarray
    rss: float
    jac: np.ndarray  # (n, p) at theta
    origin: float
    scale: float
    n: int

    def _at(self, t: float, theta: np.ndarray) -> float:
        u = np.array([(t - self.origin) / self.scale])
        return float(self.model.fn(u, *theta)[0])

    def predict(self, t: float, lo: float, hi: float) -> float:
        return float(np.clip(self._at(t, self.theta), lo, hi))

    def variance(self, t: float) -> float:
        """Predictive variance: residual noise plus parameter uncertainty (delta method)."""
        p = self.model.n_params
        s2 = self.rss / (self.n - p) if self.n > p else 0.0
        base = self._at(t, self.theta)
        grad = np.empty(p)
        for i in range(p):
            th = self.theta.copy()
            step = 1e-6 * max(1.0, abs(th[i]))
            th[i] += step
            grad[i] = (self._at(t, th) - base) / step
        cov = s2 * np.linalg.pinv(self.jac.T @ self.jac, rcond=1e-10)
        param_var = float(grad @ cov @ grad)
        if not math.isfinite(param_var):
            param_var = 0.0
        # a curve pinned against a bound has an ill-conditioned J'J: cap the term at
        # the squared range so that one degenerate fit cannot dominate
        return s2 + min(max(param_var, 0.0), 1.0)


def fit_curve(
    model: CurveModel, u: np.ndarray, y: np.ndarray, lo: float, hi: float
) -> tuple[np.ndarray, float, np.ndarray]:
    """Least-squares fit of ``model`` to ``(u, y)``; inputs are trusted.

    Returns
    -------
    theta : ndarray of shape (p,)
    rss : float
        Residual sum of squares.
    jac : ndarray of shape (n, p)
        Jacobian of the residuals at ``theta``.
    """
    from scipy.optimize import least_squares

    lower, upper = model.bounds(lo, hi)
    best = None
    for start in model.starts(u, y, lo, hi):
        x0 = np.clip(np.asarray(start, dtype=float), lower, upper)
        # keep strictly inside the box: trf needs an interior start
        width = upper - lower
        x0 = np.minimum(np.maximum(x0, lower + 1e-9 * width), upper - 1e-9 * width)

        def residuals(theta: np.ndarray) -> np.ndarray:
            return model.fn(u, *theta) - y

        # the analytic Jacobian halves the time of a fit (no finite differences)
        jac: Any = "2-point" if model.jac is None else (lambda theta: model.jac(u, *theta))
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            res = least_squares(residuals, x0, jac=jac, bounds=(lower, upper), method="trf",
                                x_scale="jac", max_nfev=400)
        if not np.isfinite(res.cost):
            continue
        if best is None or res.cost < best.cost - 1e-15:
            best = res
    if best is None:  # pragma: no cover - every start failed numerically
        theta = np.clip(np.asarray(model.starts(u, y, lo, hi)[0], float), lower, upper)
        r = model.fn(u, *theta) - y
        return theta, float(r @ r), np.zeros((u.size, theta.size))
    return best.x, float(2.0 * best.cost), best.jac


def _check_inputs(t: Any, acc: Any, t_next: Any, bounds: Any) -> tuple[np.ndarray, ...]:
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise InputError(f"bounds must be a pair (lo, hi) of numbers; got {bounds!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(f"bounds must be finite with lo < hi; got {bounds!r}.")
    tt = np.asarray(t, dtype=float).reshape(-1) if np.ndim(t) else np.asarray([t], dtype=float)
    yy = np.asarray(acc, dtype=float).reshape(-1)
    if tt.shape != yy.shape:
        raise InputError(
            f"t and acc must have one value per point; got {tt.shape[0]} t values and "
            f"{yy.shape[0]} accuracies."
        )
    if tt.size == 0:
        raise InputError("forecast needs at least one observed point; t and acc are empty.")
    if not (np.isfinite(tt).all() and np.isfinite(yy).all()):
        raise InputError("t and acc must be finite numbers (no NaN or inf).")
    if (tt < 0).any():
        raise InputError(f"t must be >= 0 (labels used or round numbers); got {tt.min():g}.")
    if tt.size > 1 and (np.diff(tt) <= 0).any():
        raise InputError(f"t must be strictly increasing; got {tt.tolist()}.")
    if (yy < lo).any() or (yy > hi).any():
        raise InputError(
            f"acc values must lie within bounds [{lo:g}, {hi:g}]; got values in "
            f"[{yy.min():g}, {yy.max():g}]. Pass accuracies as fractions, not percent."
        )
    try:
        tn = float(t_next)
    except (TypeError, ValueError):
        raise InputError(f"t_next must be a number; got {t_next!r}.") from None
    if not (math.isfinite(tn) and tn > tt[-1]):
        raise InputError(f"t_next must be greater than the last t ({tt[-1]:g}); got {t_next!r}.")
    return tt, yy, np.float64(tn), np.float64(lo), np.float64(hi)


def forecast(
    t: Sequence[float] | np.ndarray,
    acc: Sequence[float] | np.ndarray,
    t_next: float,
    *,
    models: Sequence[str] = ("exp", "pow3", "mmf", "pow2"),
    select: str = "mean",
    bounds: tuple[float, float] = (0.0, 1.0),
    min_extra: int = 1,
    prior_std: float = 0.05,
    min_std: float = 0.005,
) -> Forecast:
    """Predict the learning curve's value at ``t_next`` from its history.

    Parameters
    ----------
    t : array-like of shape (n,)
        Abscissa of the observed points, >= 0, strictly increasing (labels used,
        or round numbers).
    acc : array-like of shape (n,)
        Observed values (accuracies as fractions), within ``bounds``.
    t_next : float
        Where to predict, > ``t[-1]``.
    models : sequence of str, default ("exp", "pow3", "mmf", "pow2")
        Candidate families, from ``MODELS``; the first is the default when no
        model can be scored.
    select : {"mean", "holdout", "aic"}, default "mean"
        How to choose among the fitted models (module docstring).
    bounds : (lo, hi), default (0, 1)
        Range of the values; asymptotes stay below ``hi``, predictions in it.
    min_extra : int, default 1
        A model with ``p`` parameters is fitted from ``p + min_extra`` points on.
    prior_std : float, default 0.05
        Standard deviation of a one-point forecast.
    min_std : float, default 0.005
        Floor of every standard deviation.

    Returns
    -------
    Forecast

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(1, 8) * 10.0
    >>> acc = 0.95 - 0.5 * np.exp(-0.04 * t)
    >>> f = forecast(t, acc, 80.0)
    >>> round(f.mean, 3), f.model in ("exp", "pow3", "mmf")
    (0.930, True)
    """
    tt, yy, tn, lo, hi = _check_inputs(t, acc, t_next, bounds)
    if select not in _SELECT:
        raise InputError(f"select must be one of {_SELECT}; got {select!r}.")
    fams = _make_models(float(hi))
    if isinstance(models, str):
        models = (models,)
    unknown = [m for m in models if m not in fams]
    if unknown or not models:
        raise InputError(f"models must be a non-empty subset of {sorted(fams)}; got {models!r}.")
    if min_extra < 0 or int(min_extra) != min_extra:
        raise InputError(f"min_extra must be an integer >= 0; got {min_extra!r}.")
    if not (prior_std > 0 and min_std > 0):
        raise InputError(f"prior_std and min_std must be > 0; got {prior_std!r}, {min_std!r}.")
    return _forecast(tt, yy, float(tn), [fams[m] for m in models], select, float(lo), float(hi),
                     int(min_extra), float(prior_std), float(min_std))


def _forecast(
    t: np.ndarray, y: np.ndarray, t_next: float, fams: list[CurveModel], select: str,
    lo: float, hi: float, min_extra: int, prior_std: float, min_std: float,
) -> Forecast:
    """:func:`forecast` on trusted inputs."""
    n = t.size
    if n == 1:
        return Forecast(float(y[0]), max(prior_std, min_std), "last", {}, 1, t_next)
    eligible = [m for m in fams if n >= m.n_params + min_extra]
    if not eligible:
        return _two_point(t, y, t_next, lo, hi, min_std)

    fits = {m.name: _fit(m, t, y, lo, hi) for m in eligible}
    preds = {name: f.predict(t_next, lo, hi) for name, f in fits.items()}

    if len(fits) == 1:
        chosen = next(iter(fits))
    elif select == "mean":
        chosen = None
    elif select == "aic":
        scored = {m.name: _aicc(fits[m.name].rss, n, m.n_params) for m in eligible
                  if n > m.n_params + 1}
        chosen = min(scored, key=scored.__getitem__) if scored else eligible[0].name
    else:
        chosen = _holdout_choice(eligible, t, y, lo, hi, min_extra)

    disagreement = float(np.var(list(preds.values()))) if len(preds) > 1 else 0.0
    if chosen is None:
        mean = float(np.mean(list(preds.values())))
        var = float(np.mean([f.variance(t_next) for f in fits.values()])) + disagreement
        params: dict[str, float] = {}
        name = "mean"
    else:
        fit = fits[chosen]
        mean = preds[chosen]
        var = fit.variance(t_next) + disagreement
        params = {k: float(v) for k, v in fit.model.report(fit.theta).items()}
        params.update(t_origin=fit.origin, t_scale=fit.scale)
        name = chosen
    std = max(math.sqrt(max(var, 0.0)), min_std)
    return Forecast(mean, std, name, params, n, t_next, preds)


def _scaling(model: CurveModel, t: np.ndarray) -> tuple[float, float]:
    """``(origin, scale)`` with ``u = (t - origin) / scale`` for ``model`` fitted on ``t``."""
    if model.positive:
        shift = 1.0 if t[0] <= 0 else 0.0
        return -shift, float(t[-1] + shift)
    return float(t[0]), float(t[-1] - t[0])


def _fit(model: CurveModel, t: np.ndarray, y: np.ndarray, lo: float, hi: float) -> _Fit:
    origin, scale = _scaling(model, t)
    theta, rss, jac = fit_curve(model, (t - origin) / scale, y, lo, hi)
    return _Fit(model, theta, rss, jac, origin, scale, int(t.size))


def _aicc(rss: float, n: int, p: int) -> float:
    rss = max(rss, 1e-12)
    return n * math.log(rss / n) + 2 * p + 2 * p * (p + 1) / (n - p - 1)


def _holdout_choice(
    eligible: list[CurveModel], t: np.ndarray, y: np.ndarray, lo: float, hi: float,
    min_extra: int,
) -> str:
    """The model whose fit without the last point best predicts the last point."""
    m = t.size - 1
    errors: dict[str, float] = {}
    for model in eligible:
        if m < model.n_params + min_extra:
            continue
        pred = _fit(model, t[:m], y[:m], lo, hi).predict(float(t[m]), lo, hi)
        errors[model.name] = abs(pred - float(y[m]))
    if not errors:
        return eligible[0].name
    return min(errors, key=errors.__getitem__)  # ties: the earlier model in `models`


def _two_point(t: np.ndarray, y: np.ndarray, t_next: float, lo: float, hi: float,
               min_std: float) -> Forecast:
    """``pow2`` through the last two points exactly, or the last value if they do not rise."""
    shift = 1.0 if t[-2] <= 0 else 0.0
    x0, x1, xn = t[-2] + shift, t[-1] + shift, t_next + shift
    e0, e1 = hi - y[-2], hi - y[-1]
    if not (y[-1] > y[-2]) or e1 <= 0:
        mean = float(np.clip(y[-1], lo, hi))
        return Forecast(mean, min_std if e1 <= 0 else max(float(y[-2] - y[-1]), min_std),
                        "last", {}, int(t.size), t_next)
    alpha = min(math.log(e0 / e1) / math.log(x1 / x0), 5.0)
    a = e1 * x1**alpha
    mean = float(np.clip(hi - a * xn ** (-alpha), lo, hi))
    std = max(abs(mean - float(y[-1])), min_std)
    return Forecast(mean, std, "pow2", {"c": hi, "a": a, "alpha": alpha, "t_origin": -shift,
                                        "t_scale": 1.0}, int(t.size), t_next)
