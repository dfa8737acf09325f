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

A *plain* PNG (no palette, ``tRNS``, ``eXIf``, ICC profile, compressed text, animation or any
chunk that could carry EXIF/XMP or change how Pillow reads the file; see
:func:`_plain_png_layout`) skips ``Image.open``: its ``IDAT`` stream goes straight to Pillow's
own PNG decoder and then through the same conversion, so the pixels are the same by
construction (and tested) for about half the Python work. Anything else, and any failure on
that path, takes the general path above, whose errors are the ones reported.
"""

from __future__ import annotations

import codecs
import io
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

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
    layout = _plain_png_layout(data)
    if layout is not None and layout.width * layout.height <= min(limit, _pillow_limit()):
        try:
            return _decode_plain_png(data, layout, mode, hw)
        except Exception:  # the general path decodes it again and reports the fault its way
            pass
    return _decode_any(data, uri, mode, hw, limit)


def _decode_any(
    data: bytes, uri: str, mode: str, hw: tuple[int, int] | None, limit: int
) -> np.ndarray:
    """The general path of :func:`decode_image` (``Image.open``); trusts its checked arguments."""
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
        return _to_array(out, hw)


def _to_array(img: Image.Image, hw: tuple[int, int] | None) -> np.ndarray:
    if hw is not None and img.size != (hw[1], hw[0]):
        img = img.resize((hw[1], hw[0]), Image.Resampling.BILINEAR)
    return np.array(img, dtype=np.uint8)  # a writable copy (np.asarray's is read-only)


def _pillow_limit() -> float:
    # Above it Image.open warns (DecompressionBombWarning); leave that to the general path.
    return Image.MAX_IMAGE_PIXELS or float("inf")


# -- plain PNGs: Pillow's PNG decoder without Image.open ------------------------------------------

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR = struct.Struct(">I4sIIBBBBB")  # length, b"IHDR", width, height, depth, colour, ...
_CHUNK_HEAD = struct.Struct(">I4s")
_CRC = struct.Struct(">I")
# (bit depth, colour type) -> (mode, raw mode), Pillow's own table; palettes (type 3) and
# anything Pillow does not know take the general path.
_PNG_MODES: dict[tuple[int, int], tuple[str, str]] = {
    key: modes for key, modes in getattr(PngImagePlugin, "_MODES", {}).items() if key[1] != 3
}
# Chunks Pillow parses into ``info`` without affecting pixels, with the least length its
# parser accepts (a shorter one makes Image.open raise).
_PARSED_MIN_LENGTH = {b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"pHYs": 9}
# Chunks this Pillow skips unread (one it learns to parse drops out and takes the general path).
_SKIPPED = frozenset(
    cid
    for cid in (b"sBIT", b"tIME", b"bKGD", b"hIST", b"sPLT", b"oFFs", b"pCAL", b"sCAL", b"sTER")
    if not hasattr(PngImagePlugin.PngStream, f"chunk_{cid.decode()}")
)
_LOWER = b"abcdefghijklmnopqrstuvwxyz_"


class _PngLayout(NamedTuple):
    width: int
    height: int
    mode: str  # Pillow's mode and raw mode for these pixels
    rawmode: str
    interlace: int
    idat: list[tuple[int, int]]  # (start, end) of each IDAT chunk's data in the file


def _harmless_keyword(keyword: bytes) -> bool:
    """A ``tEXt`` keyword Pillow only records in ``info``.

    Not a lower-case identifier, the form of Pillow's own ``info`` keys (``interlace``,
    ``transparency``, ``exif``, ``xmp``...), and nothing that carries EXIF or XMP.
    """
    low = keyword.lower()
    return (
        bool(keyword.translate(None, _LOWER))
        and b"exif" not in low
        and b"xmp" not in low
        and not low.startswith(b"raw profile")
    )


def _plain_png_layout(data: bytes) -> _PngLayout | None:
    """Where a plain PNG's pixels are, or None when the general path must decode ``data``.

    Plain: a well-formed chunk list from ``IHDR`` to ``IEND`` with consecutive ``IDAT``
    chunks, a grey, RGB, grey+alpha or RGBA image, and besides those only chunks Pillow reads
    without effect on the pixels (``gAMA``, ``cHRM``, ``sRGB``, ``pHYs``, ``sBIT``, ``tIME``,
    ``bKGD``... and ``tEXt`` whose keyword passes :func:`_harmless_keyword`), each with a good
    CRC. So no palette, ``tRNS``, ``eXIf``, ``iCCP``, ``zTXt``/``iTXt`` or animation. Costs a
    few microseconds: one pass over the chunk headers, CRCs of the small chunks only.
    """
    n = len(data)
    if n < 57 or not data.startswith(_PNG_SIGNATURE):  # 57: signature, IHDR, IDAT, IEND
        return None
    length, cid, width, height, depth, colour, _, filtering, interlace = _IHDR.unpack_from(data, 8)
    modes = _PNG_MODES.get((depth, colour))
    if (
        cid != b"IHDR"
        or length != 13
        or modes is None
        or filtering
        or interlace > 1
        or not width
        or not height
        or zlib.crc32(data[12:29]) != _CRC.unpack_from(data, 29)[0]
    ):
        return None
    view = memoryview(data)
    idat: list[tuple[int, int]] = []
    pos, idat_ended, text = 33, False, 0
    while True:
        if pos + 12 > n:
            return None
        length, cid = _CHUNK_HEAD.unpack_from(data, pos)
        start = pos + 8
        end = start + length
        if end + 4 > n:
            return None
        if cid == b"IDAT":
            if idat_ended:  # Pillow stops at the first other chunk
                return None
            idat.append((start, end))
        elif cid == b"IEND":
            break
        else:
            idat_ended = bool(idat)
            if cid == b"tEXt":
                nul = data.find(b"\0", start, end)
                ok = _harmless_keyword(data[start : end if nul < 0 else nul])
                text += length
            elif cid in _PARSED_MIN_LENGTH:
                ok = length >= _PARSED_MIN_LENGTH[cid]
            else:
                ok = cid in _SKIPPED
            if not ok or zlib.crc32(view[pos + 4 : end]) != _CRC.unpack_from(data, end)[0]:
                return None
        pos = end + 4
    if not idat or text > PngImagePlugin.MAX_TEXT_MEMORY:
        return None
    return _PngLayout(width, height, *modes, interlace, idat)


def _decode_plain_png(
    data: bytes, layout: _PngLayout, mode: str, hw: tuple[int, int] | None
) -> np.ndarray:
    """Decode a plain PNG as the general path would, feeding its ``IDAT`` stream to Pillow's
    ``zip`` decoder directly; raises on any fault (the caller falls back)."""
    view = memoryview(data)
    stream = b"".join(view[start:end] for start, end in layout.idat)
    img = Image.frombytes(
        layout.mode, (layout.width, layout.height), stream, "zip", layout.rawmode, layout.interlace
    )
    return _to_array(_to_mode(img, mode), hw)


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
