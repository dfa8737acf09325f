"""Which torch device a config names, checked against what this machine has."""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["check_device"]


def check_device(device: str, *, key: str = "active_learning.device") -> str:
    """Return ``device`` if torch can use it here; raise :class:`ConfigError` otherwise.

    ``cpu`` is always usable; ``cuda`` and ``cuda:<index>`` need a CUDA device that
    torch sees (the index below ``torch.cuda.device_count()``); ``mps`` needs Apple's
    Metal backend. Imports torch only for a device other than ``cpu``.
    """
    device = device.lower()
    if device == "cpu":
        return device
    import torch

    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            seen = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise ConfigError(
                f"config key '{key}' is {device!r}, but torch {torch.__version__} sees {seen} "
                "on this machine; set it to 'cpu', or run the worker where that GPU is.")
        return device
    if device == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(
                f"config key '{key}' is 'mps', but Apple's Metal backend is not available "
                "on this machine; set it to 'cpu'.")
        return device
    raise ConfigError(f"config key '{key}' has a bad value {device!r}; allowed: cpu, cuda, "
                      "cuda:<index>, mps.")
