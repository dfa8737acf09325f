"""alaas_lab: active learning as a service, native to Jupyter.

Importing the package is cheap: heavy parts (torch, the strategy zoo) load on
first use of the names below.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._version import __version__
from .config import Config, load_config
from .errors import AlaasError, ConfigError, DataError, InputError, ModelError

# public name -> (module, attribute; None for the module itself), imported on first access
_LAZY = {
    "simulate": ("alaas_lab.learner", "simulate"),
    "SimulationResult": ("alaas_lab.learner", "SimulationResult"),
    "ActiveLearner": ("alaas_lab.learner", "ActiveLearner"),
    "Server": ("alaas_lab.server", "Server"),
    "Client": ("alaas_lab.client", "Client"),
    "run_pshea": ("alaas_lab.agent", "run_pshea"),
    "Lab": ("alaas_lab.lab", "Lab"),
    "strategies": ("alaas_lab.strategies", None),
    "datasets": ("alaas_lab.datasets", None),
    "models": ("alaas_lab.models", None),
}

__all__ = [
    "AlaasError",
    "Config",
    "ConfigError",
    "DataError",
    "InputError",
    "ModelError",
    "__version__",
    "load_config",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'alaas_lab' has no attribute {name!r}")
    module, attr = _LAZY[name]
    mod = importlib.import_module(module)
    value = mod if attr is None else getattr(mod, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext alaas_lab``: registers the ``%alaas`` magic (see ``%alaas?``)."""
    from .magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext alaas_lab``: closes the widgets' threads (the worker keeps running)."""
    from .magics import unload_ipython_extension as unload

    unload(ipython)
