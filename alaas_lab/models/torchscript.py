"""A backbone from a notebook's own ``torch.nn.Module``, exported as TorchScript.

:func:`export_module` traces (or scripts) the module, with an optional
``preprocess`` module run first on each batch, into one TorchScript file; the
worker loads it with :class:`TorchScriptBackbone` (config ``model: {name:
torchscript, weights: FILE}``) without any of the user's code. Its fingerprint
is the sha256 of the file's bytes, so another model never hits the cache of
this one.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import file_sha256
from ..errors import InputError, ModelError
from .backbones import Backbone

__all__ = ["META_FILE", "TorchScriptBackbone", "export_module", "read_meta", "reuse_export"]

#: Extra file inside the archive: ``{"input_shape": [...], "dim": d}``.
META_FILE = "alaas_meta.json"


def export_module(module: Any, path: str | os.PathLike[str], *,
                  input_shape: Sequence[int], preprocess: Any = None) -> Path:
    """Export ``module`` (after ``preprocess``) to a TorchScript file at ``path``.

    Parameters
    ----------
    module : torch.nn.Module or torch.jit.ScriptModule
        Maps a float32 batch ``(B, *input_shape)`` to embeddings ``(B, d)`` (or
        ``(B, ...)``, flattened to ``(B, d)``).
    path : path
        Where the file is written (atomically).
    input_shape : sequence of int
        The shape of one item, e.g. ``(8, 8)``; the trace runs on zeros of
        ``(2, *input_shape)``.
    preprocess : torch.nn.Module or callable on tensors, optional
        Run on the batch first, inside the exported graph (so it must be
        traceable: torch operations only).

    Returns
    -------
    path : Path
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise InputError(f"backbone must be a torch.nn.Module; got {type(module).__name__}.")
    try:
        shape = tuple(int(s) for s in input_shape)
    except (TypeError, ValueError):
        raise InputError(f"input_shape must be a sequence of ints, e.g. (8, 8); got "
                         f"{input_shape!r}.") from None
    if not shape or any(s < 1 for s in shape):
        raise InputError(f"input_shape must hold positive ints; got {input_shape!r}.")
    if preprocess is not None and not callable(preprocess):
        raise InputError(f"preprocess must be callable (a module or a function of tensors); "
                         f"got {type(preprocess).__name__}.")

    class _Composed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = module
            if isinstance(preprocess, torch.nn.Module):
                self.pre = preprocess

        def forward(self, x: Any) -> Any:
            if preprocess is not None:
                x = preprocess(x)
            return torch.flatten(self.model(x), 1)

    example = torch.zeros((2, *shape), dtype=torch.float32)
    training = module.training
    module.eval()
    try:
        # TorchScript is what loads without the user's code on every torch we support;
        # torch >= 2.9 marks it deprecated in favour of torch.export
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(_Composed(), example, check_trace=False)
            out = traced(example)
    except Exception as exc:
        raise ModelError(f"the backbone could not be exported with torch.jit.trace on a "
                         f"(2, {', '.join(map(str, shape))}) float32 batch: "
                         f"{type(exc).__name__}: {exc}. Check input_shape, or export it "
                         "yourself (torch.jit.script) and pass the ScriptModule.") from exc
    finally:
        module.train(training)
    if out.ndim != 2 or out.shape[0] != 2:
        raise ModelError(f"the backbone must return one row per item; it returned "
                         f"{tuple(out.shape)} for a batch of 2.")
    meta = {"input_shape": list(shape), "dim": int(out.shape[1]),
            "identity": _identity(traced, shape)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(traced, str(tmp), _extra_files={META_FILE: json.dumps(meta)})
    os.replace(tmp, path)
    return path


def _identity(traced: Any, shape: tuple[int, ...]) -> str:
    """A digest of what the module computes: its weights and its output on a fixed probe.

    ``torch.jit.save`` writes a random id and process-dependent names into the
    file, so the same module gives other bytes in another kernel; this digest
    lets :func:`reuse_export` find the file already exported for it.
    """
    import torch

    h = hashlib.sha256(json.dumps(list(shape)).encode())
    for name, tensor in traced.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    probe = torch.from_numpy(
        np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32))
    with torch.no_grad():
        h.update(np.ascontiguousarray(traced(probe).cpu().numpy()).round(5).tobytes())
    return h.hexdigest()


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``alaas_meta.json`` an exported file carries (``{}`` when it has none)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith(f"/extra/{META_FILE}")]
            return json.loads(z.read(names[0])) if names else {}
    except (OSError, zipfile.BadZipFile, json.JSONDecodeError):
        return {}


def reuse_export(exported: Path, folder: Path, pattern: str = "backbone-*.pt") -> Path | None:
    """A file in ``folder`` exported from the same module as ``exported``, if any."""
    identity = read_meta(exported).get("identity")
    if not identity:
        return None
    for other in sorted(folder.glob(pattern)):
        if read_meta(other).get("identity") == identity:
            return other
    return None


class TorchScriptBackbone(Backbone):
    """Embeds with a TorchScript file (see :func:`export_module`); no user code needed.

    Parameters
    ----------
    weights : path
        The ``.pt`` file written by :func:`export_module` (or ``torch.jit.save``).
    batch_size : int, default 32
    device : str, default "cpu"
    sha256 : str, optional
        The file's sha256 (a prefix of at least 8 hex digits): refused if it differs.
    """

    name = "torchscript"

    def __init__(self, *, weights: str | os.PathLike[str] | None = None, batch_size: int = 32,
                 device: str = "cpu", sha256: str | None = None,
                 input_size: int | None = None) -> None:
        import torch

        if not weights:
            raise ModelError("the torchscript backbone needs 'active_learning.model.weights': "
                             "the .pt file (Lab(config, backbone=module) writes one).")
        self.path = Path(weights).expanduser()
        if not self.path.is_file():
            raise ModelError(f"torchscript weights {self.path} do not exist.")
        self.digest = file_sha256(self.path)
        if sha256 is not None and not self.digest.startswith(sha256.lower()):
            raise ModelError(f"torchscript weights {self.path} have sha256 {self.digest}, not "
                             f"{sha256}; the file changed.")
        self.device = device if device not in (None, "auto") else "cpu"
        self.batch_size = int(batch_size)
        extra = {META_FILE: ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self.module = torch.jit.load(str(self.path), map_location=self.device,
                                             _extra_files=extra)
        except Exception as exc:
            raise ModelError(f"torchscript weights {self.path} cannot be loaded "
                             f"({type(exc).__name__}: {exc}).") from exc
        self.module.eval()
        meta = json.loads(extra[META_FILE]) if extra[META_FILE] else {}
        self.input_shape = tuple(meta["input_shape"]) if meta.get("input_shape") else None
        self._dim = meta.get("dim")

    @property
    def dim(self) -> int:
        if self._dim is None:
            raise ModelError("this TorchScript file carries no output width; embed an item "
                             "first.")
        return int(self._dim)

    @property
    def fingerprint(self) -> str:
        return f"torchscript-sha256:{self.digest}"

    def preprocess(self, item: Any) -> np.ndarray:
        arr = np.asarray(item)
        if arr.dtype.kind not in "biuf":
            raise InputError(f"the torchscript backbone needs numeric items; got dtype "
                             f"{arr.dtype} (shape {arr.shape}).")
        arr = arr.astype(np.float32)
        if self.input_shape is not None and arr.shape != self.input_shape:
            if arr.size != int(np.prod(self.input_shape)):
                raise InputError(f"item has shape {arr.shape} but the exported backbone takes "
                                 f"{self.input_shape}; resize items to that shape.")
            arr = arr.reshape(self.input_shape)
        return arr

    def embed(self, batch: Any) -> np.ndarray:
        import torch

        rows = np.stack([np.asarray(r, dtype=np.float32) for r in batch])
        if rows.shape[0] == 0:
            raise InputError("batch is empty; pass at least one preprocessed item.")
        with torch.inference_mode():
            out = self.module(torch.from_numpy(rows).to(self.device))
        emb = out.reshape(out.shape[0], -1).float().cpu().numpy()
        self._dim = emb.shape[1]
        return emb.astype(np.float32, copy=False)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "weights": str(self.path), "sha256": self.digest,
                "input_shape": self.input_shape, "dim": self._dim,
                "summary": f"torchscript {self.path.name} (sha256 {self.digest[:12]}), "
                           f"input {self.input_shape}, {self._dim}-d"}
