"""The strategy registry: names, their inputs, and one ``select`` entry point.

Built-in strategies are registered by dotted path and imported on first use.
Users add their own with :func:`register`, by a ``"package.module:function"``
name (:func:`resolve`), or through plugins and the ``alaas_lab.strategies``
entry points (:mod:`alaas_lab.plugins`); :func:`select` validates the inputs
before and the picks after every call, so a misbehaving strategy is caught
with its name.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any

import numpy as np

from .._validation import check_random_state
from ..errors import InputError, StrategyError
from ._common import check_pool, mean_probs
from ._state import check_state

__all__ = [
    "INPUTS",
    "Strategy",
    "StrategyError",
    "names",
    "options",
    "register",
    "registry",
    "requirements",
    "resolve",
    "select",
]

#: What a strategy may need: ``"probs"`` ([N, C]), ``"mc_probs"`` ([T, N, C]), ``"embeddings"``.
INPUTS = frozenset({"probs", "mc_probs", "embeddings"})
_STANDARD = ("probs", "embeddings", "labeled", "rng")
#: Inputs a strategy may take but need not: ``state`` (a :class:`PoolState`).
_OPTIONAL = ("state",)


@dataclasses.dataclass(frozen=True)
class Strategy:
    """One registry entry.

    Attributes
    ----------
    name : str
    needs : frozenset of str
        Subset of :data:`INPUTS`.
    target : callable or str
        ``fn(k, *, probs, embeddings, labeled, rng, **params) -> indices``, or a
        ``"module:attribute"`` path imported on first use.
    builtin : bool
        Shipped with alaas_lab.
    """

    name: str
    needs: frozenset
    target: Callable[..., Any] | str
    builtin: bool = False

    def load(self) -> Callable[..., Any]:
        """The strategy function (importing it if registered by path)."""
        if callable(self.target):
            return self.target
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def options(self) -> frozenset[str] | None:
        """Keyword options the function accepts beyond the standard inputs (None: any)."""
        params = list(inspect.signature(self.load()).parameters.values())
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            return None
        named = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        # params[0] is k; the standard inputs are not options
        return frozenset(p.name for p in params[1:] if p.kind in named) - set(
            _STANDARD + _OPTIONAL)

    def accepts_state(self) -> bool:
        """Whether the function takes ``state=`` (a :class:`PoolState`) by name."""
        params = inspect.signature(self.load()).parameters
        return "state" in params and params["state"].kind in (
            inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


_REGISTRY: dict[str, Strategy] = {}
#: Read-only view of every registered strategy, by name.
registry = MappingProxyType(_REGISTRY)

_PKG = "alaas_lab.strategies"
_BUILTINS = {
    "random": ("_uncertainty:_entry_random", frozenset()),
    "least_confidence": ("_uncertainty:_entry_least_confidence", frozenset({"probs"})),
    "margin": ("_uncertainty:_entry_margin", frozenset({"probs"})),
    "ratio": ("_uncertainty:_entry_ratio", frozenset({"probs"})),
    "entropy": ("_uncertainty:_entry_entropy", frozenset({"probs"})),
    "bald": ("_bayesian:_entry_bald", frozenset({"mc_probs"})),
    "kcenter_greedy": ("_kcenter:_entry_kcenter_greedy", frozenset({"embeddings"})),
    "coreset": ("_coreset:_entry_coreset", frozenset({"embeddings"})),
    "dbal": ("_clustering:_entry_dbal", frozenset({"probs", "embeddings"})),
    "typiclust": ("_clustering:_entry_typiclust", frozenset({"embeddings"})),
    "badge": ("_badge:_entry_badge", frozenset({"probs", "embeddings"})),
}
for _name, (_path, _needs) in _BUILTINS.items():
    _REGISTRY[_name] = Strategy(_name, _needs, f"{_PKG}.{_path}", builtin=True)


def names() -> list[str]:
    """Names of every registered strategy, sorted."""
    return sorted(_REGISTRY)


def resolve(name: str) -> Strategy:
    """The entry for ``name``; a ``"package.module:function"`` name is imported and registered.

    The function's ``needs`` attribute (default ``{"probs"}``) says which inputs
    it takes; :func:`register` checks its signature as for any strategy.

    Raises
    ------
    InputError
        Unknown name, or a path whose module or function cannot be imported.
    """
    if isinstance(name, str) and name not in _REGISTRY and ":" in name:
        module, _, attr = name.partition(":")
        if not module or not attr:
            raise InputError(f"strategy {name!r} must look like 'package.module:function'.")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise InputError(f"strategy {name!r}: module {module!r} cannot be imported "
                             f"({type(exc).__name__}: {exc}); install it or add its folder "
                             "to the config's 'plugins'.") from exc
        except AttributeError:
            raise InputError(f"strategy {name!r}: module {module!r} has no function "
                             f"{attr!r}.") from None
        register(name, fn, needs=getattr(fn, "needs", frozenset({"probs"})))
    return _lookup(name)


def _lookup(name: Any) -> Strategy:
    if isinstance(name, str) and name not in _REGISTRY and ":" in name:
        return resolve(name)
    if not isinstance(name, str) or name not in _REGISTRY:
        raise InputError(
            f"unknown strategy {name!r}; choose one of {names()}, or add yours with "
            "alaas_lab.strategies.register(name, fn)."
        )
    return _REGISTRY[name]


def options(name: str) -> frozenset[str] | None:
    """Keyword options strategy ``name`` takes beyond its inputs (None: any)."""
    accepted = _lookup(name).options()
    return None if accepted is None else frozenset(accepted)


def requirements(name: str) -> frozenset[str]:
    """Inputs strategy ``name`` needs: a subset of ``{"probs", "mc_probs", "embeddings"}``.

    ``"mc_probs"`` means ``probs`` must be Monte-Carlo samples of shape
    ``(T, N, C)``; ``"probs"`` accepts ``(N, C)`` (or ``(T, N, C)``, averaged).
    """
    return _lookup(name).needs


def _check_needs(needs: Any) -> frozenset[str]:
    if isinstance(needs, str):
        needs = {needs}
    try:
        out = frozenset(needs)
    except TypeError:
        raise InputError(
            f"needs must be a set of names from {sorted(INPUTS)}; got {needs!r}."
        ) from None
    bad = out - INPUTS
    if bad:
        raise InputError(
            f"needs may only hold {sorted(INPUTS)}; got unknown {sorted(map(str, bad))}."
        )
    return out


def register(
    name: str,
    fn: Callable[..., Any],
    *,
    needs: Iterable[str] | str = frozenset({"probs"}),
    clobber: bool = False,
) -> None:
    """Add a strategy of your own under ``name``.

    Parameters
    ----------
    name : str
        The name to pass to :func:`select`.
    fn : callable
        ``fn(k, *, probs, embeddings, labeled, rng, **options) -> indices``. It
        receives validated inputs: ``probs`` as ``(N, C)`` (``(T, N, C)`` if
        ``needs`` holds ``"mc_probs"``) or None, ``embeddings`` as ``(N, d)`` or
        None, ``labeled`` always a boolean mask ``(N,)``, ``rng`` always a
        ``numpy.random.Generator``. It must return ``k`` distinct unlabeled
        pool indices; :func:`select` checks that. If it also takes ``state``
        by name it receives the caller's :class:`PoolState` (or None).
    needs : set of str, default {"probs"}
        Inputs it requires, from ``{"probs", "mc_probs", "embeddings"}``.
    clobber : bool, default False
        Replace an existing strategy of that name. Without it, re-registering
        a name with a different function raises.

    Examples
    --------
    >>> import numpy as np
    >>> def lowest_max(k, *, probs, embeddings, labeled, rng):
    ...     score = np.where(labeled, np.inf, probs.max(axis=1))
    ...     return np.argsort(score, kind="stable")[:k]
    >>> register("lowest_max", lowest_max, needs={"probs"})
    >>> select("lowest_max", 1, probs=[[0.9, 0.1], [0.6, 0.4]]).tolist()
    [1]
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"name must be a non-empty string; got {name!r}.")
    if not callable(fn):
        raise InputError(f"fn must be callable; got {type(fn).__name__} for strategy {name!r}.")
    needs = _check_needs(needs)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without signature
        params = {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    missing = [s for s in _STANDARD if s not in params]
    positional = [
        p
        for p in params.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    if params and (not positional or (missing and not var_kw)):
        raise InputError(
            f"strategy {name!r}: fn must have the signature "
            "fn(k, *, probs, embeddings, labeled, rng, **options); "
            f"{'it takes no positional k' if not positional else f'it lacks {missing}'}."
        )
    new = Strategy(name, needs, fn)
    old = _REGISTRY.get(name)
    if old is not None and not clobber and (old.target is not fn or old.needs != needs):
        raise InputError(
            f"a strategy named {name!r} is already registered; pass clobber=True to "
            "replace it, or choose another name."
        )
    _REGISTRY[name] = new


def _check_picks(name: str, picks: Any, k: int, labeled: np.ndarray) -> np.ndarray:
    """Make sure a strategy returned ``k`` distinct, in-range, unlabeled indices."""
    what = f"strategy {name!r} must return {k} distinct unlabeled pool indices"
    arr = np.asarray(picks)
    if arr.ndim != 1 or arr.shape[0] != k:
        raise StrategyError(f"{what} (a 1-D array of length {k}); it returned shape {arr.shape}.")
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind not in "iu":
        raise StrategyError(f"{what}; it returned dtype {arr.dtype} (integers expected).")
    n = labeled.size
    out_of_range = (arr < 0) | (arr >= n)
    if out_of_range.any():
        raise StrategyError(
            f"{what}; it returned {arr[out_of_range][:5].tolist()}, outside [0, {n})."
        )
    uniq, counts = np.unique(arr, return_counts=True)
    if uniq.size != k:
        raise StrategyError(f"{what}; it repeated {uniq[counts > 1][:5].tolist()}.")
    if labeled[arr].any():
        raise StrategyError(
            f"{what}; it returned already-labeled items {arr[labeled[arr]][:5].tolist()}."
        )
    return arr.astype(np.int64, copy=False)


def select(
    name: str,
    k: int,
    *,
    probs: Any = None,
    embeddings: Any = None,
    labeled: Any = None,
    rng: Any = None,
    state: Any = None,
    **params: Any,
) -> np.ndarray:
    """Pick ``k`` pool items to label next with strategy ``name``.

    Parameters
    ----------
    name : str
        One of :func:`names`.
    k : int
        How many items, ``0 <= k <=`` number of unlabeled items.
    probs : array-like of shape (N, C) or (T, N, C), optional
        Class probabilities (rows sum to 1); ``(T, N, C)`` are MC samples.
    embeddings : array-like of shape (N, d), optional
        Pool embeddings.
    labeled : array-like of shape (N,), bool, optional
        Items already labeled; never picked. Default: nothing labeled.
    rng : None, int or numpy.random.Generator, optional
        Randomness for the strategies that use it; same seed, same picks.
    state : PoolState, optional
        Per-pool state kept across rounds (:class:`PoolState`): the embeddings
        validated once (``embeddings`` may then be omitted) and the caches of
        ``kcenter_greedy``, ``coreset``, ``typiclust``, ``badge`` and ``dbal``.
        It must have been built for this pool (else ``InputError``). Strategies
        that do not take it ignore it.
    **params
        Options of the strategy (e.g. ``beta=5`` for ``"dbal"``).

    Returns
    -------
    indices : ndarray of shape (k,), int64
        Distinct, unlabeled pool indices, in the strategy's order.

    Raises
    ------
    InputError
        Unknown name or option, missing or malformed input, ``k`` too large.
    StrategyError
        The strategy returned something other than ``k`` distinct unlabeled indices.

    Examples
    --------
    >>> select("margin", 1, probs=[[0.9, 0.1], [0.55, 0.45]]).tolist()
    [1]
    """
    spec = _lookup(name)
    fn = spec.load()
    accepted = spec.options()
    if accepted is not None:
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise InputError(
                f"unknown option(s) {unknown} for strategy {name!r}; it accepts "
                f"{sorted(accepted) if accepted else 'no options'}."
            )
    needs = spec.needs
    state = check_state(state)
    takes_state = state is not None and spec.accepts_state()
    if state is not None and not (takes_state or "embeddings" in needs):
        state = None  # nothing to use it for; the pool is checked through the other inputs
    k, p, e, lab = check_pool(
        k=k,
        probs=probs,
        embeddings=embeddings,
        labeled=labeled,
        need_probs="probs" in needs,
        need_mc="mc_probs" in needs,
        need_embeddings="embeddings" in needs,
        who=f"strategy {name!r}",
        state=state,
    )
    gen = check_random_state(rng)
    if p is not None and "mc_probs" not in needs:
        p = mean_probs(p)
    if k == 0 and not spec.builtin:
        return np.empty(0, dtype=np.int64)
    if takes_state:
        params["state"] = state
    picks = fn(k, probs=p, embeddings=e, labeled=lab.copy(), rng=gen, **params)
    return _check_picks(name, picks, k, lab)
