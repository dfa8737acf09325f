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
}

#: Read-only view of the registered backbones.
registry = MappingProxyType(_BACKBONES)


def backbone_names() -> list[str]:
    """Names :func:`backbone` accepts, sorted."""
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
    if entry is None:
        raise InputError(f"unknown backbone {name!r}; choose one of {backbone_names()}.")
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
    return _resolve(name)(**kwargs)
