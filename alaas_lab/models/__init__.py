"""Models: backbones that embed items, and the last-layer head trained on embeddings.

Public API
----------
LastLayerHead(classes=None, *, weight_decay=1e-2, solver="lbfgs", ...)
    linear softmax classifier: fit / predict_proba / predict_proba_mc / predict / evaluate
Backbone
    the interface: preprocess(item), embed(batch) -> [B, d], dim, name, fingerprint, describe()
backbone(name, **kwargs) / backbone_names() / register_backbone(name, target, ...)
    the lazy registry: "flatten", "resnet18", "minilm", "efficientnet_lite0", and
    "torchvision/<model>" for any torchvision classification model
config_kwargs(model_config, device=...)
    backbone() keyword arguments from a config's active_learning.model
resnet18_trained_on(images, labels, *, epochs=5, seed=0, size=32, ...)
    a resnet18 backbone trained on a labeled seed set

Importing this package does not import torch; the backbones and the head do on first use.
"""

from __future__ import annotations

from typing import Any

from ._registry import backbone, backbone_names, config_kwargs, register_backbone, registry
from .head import LastLayerHead

__all__ = [
    "Backbone",
    "EfficientNetLite0Backbone",
    "FlattenBackbone",
    "LastLayerHead",
    "MiniLMBackbone",
    "ResNet18Backbone",
    "TorchvisionBackbone",
    "backbone",
    "backbone_names",
    "config_kwargs",
    "register_backbone",
    "registry",
    "resnet18_trained_on",
]

_FROM_BACKBONES = {
    "Backbone",
    "FlattenBackbone",
    "MiniLMBackbone",
    "ResNet18Backbone",
    "resnet18_trained_on",
}


_FROM_VISION = {"EfficientNetLite0Backbone", "TorchvisionBackbone"}


def __getattr__(name: str) -> Any:
    if name in _FROM_VISION:
        from . import vision

        return getattr(vision, name)
    if name in _FROM_BACKBONES:
        from . import backbones

        return getattr(backbones, name)
    raise AttributeError(f"module 'alaas_lab.models' has no attribute {name!r}")
