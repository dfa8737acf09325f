"""Which torch device a config names, checked against what this machine has."""

from __future__ import annotations

from ..errors import ConfigError

__all__ = ["check_device", "resolve_device"]

DEVICES = ("auto", "cpu", "cuda", "cuda:<index>", "mps")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` if torch sees a CUDA device, else ``mps`` if available, else ``cpu``.

    Any other value is returned lower-cased and unchecked (see :func:`check_device`).
    """
    device = str(device).lower()
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def check_device(device: str, *, key: str = "active_learning.device") -> str:
    """Return the device ``device`` names if torch can use it here; raise :class:`ConfigError`.

    ``auto`` resolves to ``cuda``, then ``mps``, then ``cpu`` (whichever this machine
    has first); ``cpu`` is always usable; ``cuda`` and ``cuda:<index>`` need a CUDA
    device that torch sees (the index below ``torch.cuda.device_count()``); ``mps``
    needs Apple's Metal backend. Imports torch only for a device other than ``cpu``.
    """
    device = resolve_device(device)
    if device == "cpu":
        return device
    import torch

    if device.startswith("cuda"):
        index_text = device.partition(":")[2]
        if index_text and not index_text.isdigit():
            raise ConfigError(f"config key '{key}' has a bad value {device!r}; allowed: "
                              f"{', '.join(DEVICES)}.")
        index = int(index_text or 0)
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if index >= count:
            seen = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise ConfigError(
                f"config key '{key}' is {device!r}, but torch {torch.__version__} sees {seen} "
                "on this machine; set it to 'auto' or 'cpu', or run the worker where that "
                "GPU is.")
        return device
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ConfigError(
                f"config key '{key}' is 'mps', but Apple's Metal backend is not available "
                "on this machine; set it to 'auto' or 'cpu'.")
        return device
    raise ConfigError(f"config key '{key}' has a bad value {device!r}; allowed: "
                      f"{', '.join(DEVICES)}.")
