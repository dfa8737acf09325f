"""Where backbone weights come from: a file, a URL fetched once into torch's hub cache,
or a torchvision weights enum (its URL, same cache). Every file is hash-checked when a
hash is known, and its sha256 is returned so fingerprints can name the weights.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..cache import file_sha256
from ..errors import ModelError

__all__ = ["cache_dir", "fetch_url", "file_sha256", "is_url", "read_state_dict"]

URL_SCHEMES = ("http://", "https://", "s3://", "file://")
#: torch.hub's convention: ``name-<sha256 prefix>.ext`` (torchvision's URLs follow it).
_HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")


def is_url(text: Any) -> bool:
    return isinstance(text, str) and text.lower().startswith(URL_SCHEMES)


def cache_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``, where torchvision keeps its downloads too."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_name(url: str) -> str:
    """The file name a URL is cached under.

    torchvision-style names that carry a hash prefix keep their name (so torchvision's
    own cache is shared); others get a short hash of the URL in front, so two URLs
    ending in the same name never share a file.
    """
    base = url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "weights.pth"
    if _HASH_IN_NAME.search(base):
        return base
    return f"url{hashlib.sha256(url.encode()).hexdigest()[:10]}-{base}"


def expected_hash(url_or_name: str, sha256: str | None) -> str | None:
    """The sha256 (or prefix) a file must start with: given, or from its torch.hub name."""
    if sha256:
        return sha256.lower()
    m = _HASH_IN_NAME.search(url_or_name.rsplit("/", 1)[-1])
    return m.group(1) if m else None


def check_hash(path: Path, expected: str | None, *, what: str) -> str:
    """sha256 of ``path``; raise :class:`ModelError` if it does not start with ``expected``."""
    digest = file_sha256(path)
    if expected and not digest.startswith(expected):
        raise ModelError(
            f"{what} has sha256 {digest}, which does not start with the expected {expected!r}: "
            "the file is corrupt, was changed, or the hash is wrong. Delete it or fix "
            "'sha256' (config key 'active_learning.model.sha256').")
    return digest


def fetch_url(url: str, *, sha256: str | None = None, routes: str = "",
              storage_options: Mapping[str, Any] | None = None) -> tuple[Path, str]:
    """Fetch ``url`` once into :func:`cache_dir` and hash-check it.

    Returns the cached path and its sha256. An already-cached file is checked, not
    fetched again. ``routes`` is appended to the error when nothing can be fetched.
    """
    dest_dir = cache_dir()
    dest = dest_dir / cache_name(url)
    expected = expected_hash(url, sha256)
    if dest.is_file():
        return dest, check_hash(dest, expected, what=f"cached weights {str(dest)!r}")
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".partial", dir=dest_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            _download(url, tmp, storage_options or {})
        except ModelError:
            raise
        except Exception as exc:  # URLError, OSError, fsspec/botocore errors
            raise ModelError(
                f"could not fetch weights from {url!r} ({type(exc).__name__}: {exc}), and "
                f"nothing is cached at {str(dest)!r}.{routes}") from exc
        digest = check_hash(tmp, expected, what=f"the file fetched from {url!r}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest, digest


def _download(url: str, dest: Path, storage_options: Mapping[str, Any]) -> None:
    if url.lower().startswith(("http://", "https://")):
        import torch

        torch.hub.download_url_to_file(url, str(dest), hash_prefix=None, progress=False)
        return
    import fsspec

    with fsspec.open(url, "rb", **dict(storage_options)) as src, open(dest, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def read_state_dict(path: str | os.PathLike[str], *, what: str = "weights") -> Mapping[str, Any]:
    """``torch.load`` a state_dict (``weights_only``), unwrapping ``state_dict``/``model``."""
    import torch

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{what} file {str(p)!r} does not exist; check the path.")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise ModelError(
            f"could not read {what} from {str(p)!r}: {exc}. Save them with "
            "torch.save(model.state_dict(), path).") from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping):
        raise ModelError(f"{str(p)!r} holds a {type(obj).__name__}, not a state_dict; save it "
                         "with torch.save(model.state_dict(), path).")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
