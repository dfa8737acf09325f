"""Bytes to arrays or text, with errors that name the item and say what to do.

Images are decoded with Pillow and always come out as ``uint8`` arrays in one of two modes:

- ``"L"``: shape ``(height, width)``; ``"RGB"``: shape ``(height, width, 3)``.
- Transparency (RGBA, LA, palette or grey/RGB with a ``tRNS`` key) is composited onto a white
  background, so a transparent pixel becomes white, never black.
- CMYK is converted by Pillow; palette images are expanded; 16-bit greyscale (``I;16``, ``I``)
  is scaled to 8 bits by ``round(v / 257)`` (65535 -> 255) rather than clipped; ``F`` is clipped
  to ``[0, 255]``.
- The EXIF orientation tag is applied, so the array is upright as a viewer shows it.
- Multi-frame files (GIF, TIFF) give their first frame.
- ``size`` resizes to exactly ``(height, width)`` (bilinear, antialiased), not keeping aspect;
  JPEGs are first decoded at a reduced scale when that is large enough (``Image.draft``).
- An image declaring more than ``max_pixels`` pixels (default Pillow's ``MAX_IMAGE_PIXELS``,
  about 89.5 million) is refused from its header, before any pixel is decoded.
"""

from __future__ import annotations

import codecs
import io
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import DataError, InputError
from .fetch import FetchResult
from .quarantine import Quarantine, quarantine

__all__ = ["DecodedItem", "Decoder", "decode_array", "decode_image", "decode_text", "KINDS"]

KINDS: tuple[str, ...] = ("image", "text", "npy", "array")  # "array" is "npy" (config's word)
_MODES = ("L", "RGB")
_ERRORS = ("strict", "replace", "ignore", "backslashreplace")
_ALPHA_MODES = {"RGBA", "LA", "PA", "La", "RGBa"}
_FIX = "check the file or remove it from the pool"


@dataclass(frozen=True, slots=True)
class DecodedItem:
    """A decoded item.

    Attributes
    ----------
    uri : str
    value : numpy.ndarray or str
        ``uint8`` image ``(height, width)`` / ``(height, width, 3)``, any ``.npy`` array, or text.
    info : dict
        The identity info of the fetch (``size``, ``etag``, ``mtime`` when known).
    """

    uri: str
    value: Any
    info: dict[str, Any] = field(default_factory=dict)


def _check_mode(mode: Any) -> str:
    if mode not in _MODES:
        raise InputError(f"mode must be 'L' (greyscale) or 'RGB'; got {mode!r}.")
    return mode


def _check_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, (int, np.integer)) else size
    try:
        h, w = pair
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok or h < 1 or w < 1:
        raise InputError(
            f"size must be None, an int >= 1 or a (height, width) pair of ints >= 1; got {size!r}."
        )
    return int(h), int(w)


def _check_max_pixels(max_pixels: Any) -> int:
    if max_pixels is None:
        return int(Image.MAX_IMAGE_PIXELS or 2**62)
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise InputError(f"max_pixels must be None or an int >= 1; got {max_pixels!r}.")
    if max_pixels < 1:
        raise InputError(f"max_pixels must be None or an int >= 1; got {max_pixels!r}.")
    return int(max_pixels)


def _check_bytes(data: Any, uri: str) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise InputError(f"{uri}: data must be bytes; got {type(data).__name__}.")


def _to_mode(img: Image.Image, mode: str) -> Image.Image:
    src = img.mode
    if src == "I" or src.startswith("I;16"):
        # 16-bit (or 32-bit integer) greyscale: scale, do not clip, to 8 bits.
        arr = np.asarray(img).astype(np.float64)
        img = Image.fromarray(np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8))
    elif src == "F":
        img = Image.fromarray(np.clip(np.rint(np.asarray(img)), 0, 255).astype(np.uint8))
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode != mode:
        img = img.convert(mode)
    return img


def decode_image(
    data: bytes,
    *,
    uri: str,
    mode: Literal["L", "RGB"] = "RGB",
    size: int | tuple[int, int] | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Decode an encoded image (PNG, JPEG, GIF, BMP, TIFF, WebP, ...) to a ``uint8`` array.

    Parameters
    ----------
    data : bytes
        The encoded file.
    uri : str
        Names the item in error messages.
    mode : {"RGB", "L"}, default="RGB"
        Output colour mode; see the module docstring for how other modes are converted.
    size : int or (int, int), optional
        Resize to ``(size, size)`` or ``(height, width)``; None keeps the image's size.
    max_pixels : int, optional
        Refuse images declaring more pixels; default Pillow's ``Image.MAX_IMAGE_PIXELS``.
        (Pillow itself refuses more than twice its limit whatever this says.)

    Returns
    -------
    image : numpy.ndarray of uint8
        ``(height, width)`` for ``"L"``, ``(height, width, 3)`` for ``"RGB"``; C-contiguous
        and writable.

    Raises
    ------
    DataError
        Empty, unrecognised, corrupt, truncated or too large, with the uri and the reason.
    InputError
        A bad ``mode``, ``size`` or ``max_pixels``.
    """
    mode = _check_mode(mode)
    hw = _check_size(size)
    limit = _check_max_pixels(max_pixels)
    data = _check_bytes(data, uri)
    if not data:
        raise DataError(f"{uri}: empty file (0 bytes) — {_FIX}.")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise DataError(
            f"{uri}: image too large to decode safely ({exc}) — {_FIX}, or raise "
            "PIL.Image.MAX_IMAGE_PIXELS if it is genuine."
        ) from exc
    except UnidentifiedImageError as exc:
        raise DataError(
            f"{uri}: not a decodable image (unrecognised format; starts with {data[:8]!r}) — "
            f"{_FIX}."
        ) from exc
    except Exception as exc:  # a damaged header: Pillow raises many types here
        raise DataError(
            f"{uri}: not a decodable image ({type(exc).__name__}: {exc}) — {_FIX}."
        ) from exc
    with img:
        fmt = img.format or "image"
        w, h = img.size
        if w * h > limit:
            raise DataError(
                f"{uri}: {fmt} declares {w}x{h} = {w * h / 1e6:.1f} Mpx, above the limit of "
                f"{limit / 1e6:.1f} Mpx (a decompression bomb or a huge scan) — {_FIX}, or pass "
                "a larger max_pixels if it is genuine."
            )
        try:
            orientation = img.getexif().get(0x0112, 1)
            if hw is not None and fmt == "JPEG":
                want = (hw[0], hw[1]) if orientation in (5, 6, 7, 8) else (hw[1], hw[0])
                img.draft(None, want)  # decode at 1/2, 1/4 or 1/8 scale if still >= size
            img.load()
        except Exception as exc:
            raise DataError(
                f"{uri}: not a decodable image (corrupt or truncated {fmt}: {exc}) — {_FIX}."
            ) from exc
        try:
            out = ImageOps.exif_transpose(img) or img
            out = _to_mode(out, mode)
        except Exception as exc:
            raise DataError(
                f"{uri}: cannot convert this {fmt} (pixel mode {img.mode}) to {mode}: {exc} — "
                f"convert the file to PNG or JPEG, or {_FIX}."
            ) from exc
        if hw is not None and out.size != (hw[1], hw[0]):
            out = out.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
        return np.array(out, dtype=np.uint8)  # a writable copy (np.asarray's is read-only)


def decode_text(data: bytes, *, uri: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Decode text; a UTF-8 byte-order mark is dropped.

    Parameters
    ----------
    data : bytes
    uri : str
        Names the item in error messages.
    encoding : str, default="utf-8"
    errors : {"strict", "replace", "ignore", "backslashreplace"}, default="strict"
        ``"strict"`` refuses undecodable bytes; ``"replace"`` puts U+FFFD in their place.

    Raises
    ------
    DataError
        The bytes are not valid in ``encoding`` (with ``errors="strict"``).
    """
    try:
        codec = codecs.lookup(encoding)
    except (LookupError, TypeError) as exc:
        raise InputError(
            f"encoding must be a codec name such as 'utf-8' or 'latin-1'; got {encoding!r}."
        ) from exc
    if errors not in _ERRORS:
        raise InputError(f"errors must be one of {_ERRORS}; got {errors!r}.")
    data = _check_bytes(data, uri)
    name = "utf-8-sig" if codec.name == "utf-8" else codec.name
    try:
        return data.decode(name, errors)
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise DataError(
            f"{uri}: not valid {encoding} text (byte 0x{bad} at offset {exc.start}: {exc.reason}) "
            f"— save the file as {encoding}, pass the encoding it really uses (e.g. "
            "encoding='latin-1' or 'cp1252'), or errors='replace' to substitute bad bytes."
        ) from exc


def decode_array(data: bytes, *, uri: str) -> np.ndarray:
    """Load one ``.npy`` array (never unpickles).

    Raises
    ------
    DataError
        Empty, not ``.npy`` (an ``.npz`` archive included), truncated, or holding Python objects.
    """
    data = _check_bytes(data, uri)
    if not data:
        raise DataError(f"{uri}: empty file (0 bytes) — {_FIX}.")
    if data[:4] == b"PK\x03\x04":
        raise DataError(
            f"{uri}: an .npz (zip) archive, not one .npy array — save each item with np.save."
        )
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                f"{uri}: the .npy holds Python objects, which are never unpickled — save a "
                "numeric array (e.g. arr.astype(np.float32))."
            ) from exc
        raise DataError(f"{uri}: not a valid .npy array ({exc}) — {_FIX}.") from exc
    except Exception as exc:
        raise DataError(
            f"{uri}: not a valid .npy array ({type(exc).__name__}: {exc}) — {_FIX}."
        ) from exc
    if not isinstance(arr, np.ndarray):  # pragma: no cover - np.load of .npy gives an array
        raise DataError(f"{uri}: not a .npy array — {_FIX}.")
    return arr


class Decoder:
    """Decodes fetched items of one kind, turning every failure into a :class:`Quarantine`.

    Parameters
    ----------
    kind : {"image", "text", "npy", "array"}, default="image"
        ``"array"`` is another name for ``"npy"`` (one ``.npy`` array per item).
    mode : {"RGB", "L"}, default="RGB"
        Images only.
    size : int or (int, int), optional
        Images only: resize to ``(height, width)``.
    max_pixels : int, optional
        Images only; see :func:`decode_image`.
    encoding : str, default="utf-8"
        Text only.
    errors : str, default="strict"
        Text only; ``"replace"`` accepts undecodable bytes.
    """

    def __init__(
        self,
        kind: Literal["image", "text", "npy", "array"] = "image",
        *,
        mode: Literal["L", "RGB"] = "RGB",
        size: int | tuple[int, int] | None = None,
        max_pixels: int | None = None,
        encoding: str = "utf-8",
        errors: str = "strict",
    ) -> None:
        if kind not in KINDS:
            raise InputError(f"kind must be one of {KINDS}; got {kind!r}.")
        self.kind = kind
        self.mode = _check_mode(mode)
        self.size = _check_size(size)
        self.max_pixels = None if max_pixels is None else _check_max_pixels(max_pixels)
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError) as exc:
            raise InputError(f"encoding must be a codec name; got {encoding!r}.") from exc
        if errors not in _ERRORS:
            raise InputError(f"errors must be one of {_ERRORS}; got {errors!r}.")
        self.encoding = encoding
        self.errors = errors

    def __repr__(self) -> str:
        return f"Decoder(kind={self.kind!r}, mode={self.mode!r}, size={self.size!r})"

    def decode_bytes(self, data: bytes, *, uri: str) -> Any:
        """Decode ``data``; raises :class:`DataError` on a bad item."""
        if self.kind == "image":
            return decode_image(
                data, uri=uri, mode=self.mode, size=self.size, max_pixels=self.max_pixels
            )
        if self.kind == "text":
            return decode_text(data, uri=uri, encoding=self.encoding, errors=self.errors)
        return decode_array(data, uri=uri)

    def decode(self, result: FetchResult) -> DecodedItem | Quarantine:
        """Decode one :class:`FetchResult`; never raises for a bad item.

        Returns
        -------
        DecodedItem or Quarantine
            ``Quarantine(stage="fetch")`` when the fetch had failed, ``stage="decode"`` when
            the bytes could not be decoded.
        """
        if result.error is not None:
            return quarantine(result.uri, "fetch", result.error)
        if result.data is None:
            return quarantine(result.uri, "fetch", f"{result.uri}: no data was fetched")
        try:
            value = self.decode_bytes(result.data, uri=result.uri)
        except Exception as exc:
            return quarantine(result.uri, "decode", exc)
        return DecodedItem(result.uri, value, dict(result.info))
