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

# public name -> module that defines it, imported on first access
_LAZY = {
    "simulate": "alaas_lab.simulate",
    "SimulationResult": "alaas_lab.simulate",
    "ActiveLearner": "alaas_lab.simulate",
    "strategies": "alaas_lab.strategies",
    "datasets": "alaas_lab.datasets",
    "models": "alaas_lab.models",
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
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'alaas_lab' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
