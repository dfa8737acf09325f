"""The plain-PNG path of decode_image gives exactly what the general (Image.open) path gives."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, PngImagePlugin

from alaas_lab.data import decode
from alaas_lab.data.decode import _decode_any, _harmless_keyword, _plain_png_layout, decode_image
from alaas_lab.errors import DataError

RNG = np.random.default_rng(7)
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))  # (x0, y0, dx, dy) of each pass


def chunk(cid: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + cid + body + struct.pack(">I", zlib.crc32(cid + body))


def _rows(pixels: np.ndarray, depth: int) -> bytes:
    """Unfiltered scanlines (filter byte 0) of ``(h, w, channels)`` samples."""
    h, w, c = pixels.shape
    out = bytearray()
    for row in pixels:
        if depth == 16:
            line = row.astype(">u2").tobytes()
        elif depth == 8:
            line = row.astype(np.uint8).tobytes()
        else:  # 1, 2 or 4 bits, grey: pack big-endian, pad the last byte with zeros
            per = 8 // depth
            vals = np.zeros(-(-w // per) * per, np.uint8)
            vals[:w] = row[:, 0]
            shifts = np.arange(8 - depth, -1, -depth, dtype=np.uint8)
            line = (vals.reshape(-1, per) << shifts).sum(axis=1).astype(np.uint8).tobytes()
        out += b"\0" + line
    return bytes(out)


def make_png(pixels, *, depth=8, colour=0, interlace=0, before=(), after=(), parts=1,
             between=b"") -> bytes:
    """A PNG written by hand, for what Pillow cannot write (Adam7, 2/4-bit grey, chunk order)."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    h, w = pixels.shape[:2]
    if interlace:
        raw = b"".join(_rows(pixels[y0::dy, x0::dx], depth) for x0, y0, dx, dy in ADAM7
                       if pixels[y0::dy, x0::dx].size)
    else:
        raw = _rows(pixels, depth)
    stream = zlib.compress(raw)
    cut = np.linspace(0, len(stream), parts + 1).astype(int)
    idats = [chunk(b"IDAT", stream[a:b]) for a, b in zip(cut[:-1], cut[1:], strict=True)]
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + b"".join(before)
            + between.join(idats) + b"".join(after) + chunk(b"IEND", b""))


def pil_png(arr_or_img, **save) -> bytes:
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    img.save(buf, "PNG", **save)
    return buf.getvalue()


def text_info(*pairs, kind="text") -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for key, value in pairs:
        if kind == "itxt":
            info.add_itxt(key, value)
        else:
            info.add_text(key, value, zip=kind == "ztxt")
    return info


def raw_chunks(*pairs) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for cid, body in pairs:
        info.add(cid, body)
    return info


def _orientation_exif() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif.tobytes()


GREY = RNG.integers(0, 256, (13, 17), dtype=np.uint8)
RGB = RNG.integers(0, 256, (9, 11, 3), dtype=np.uint8)
RGBA = RNG.integers(0, 256, (6, 5, 4), dtype=np.uint8)
DEEP = RNG.integers(0, 65536, (7, 9), dtype=np.uint16)
DEEP_RGBA = RNG.integers(0, 65536, (5, 6, 4), dtype=np.uint16)
XMP = '<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'
RAW_EXIF = f"\nexif\n{len(_orientation_exif()):8}\n{_orientation_exif().hex()}\n"
PALETTE = Image.fromarray(RNG.integers(0, 4, (6, 7), dtype=np.uint8), "P")
PALETTE.putpalette([0, 0, 0, 250, 10, 10, 10, 250, 10, 10, 10, 250])
ANIMATED = [Image.fromarray(np.full((4, 6), v, np.uint8)) for v in (10, 200)]


def _apng() -> bytes:
    buf = io.BytesIO()
    ANIMATED[0].save(buf, "PNG", save_all=True, append_images=ANIMATED[1:])
    return buf.getvalue()


# name -> (bytes, takes the plain path)
VARIANTS = {
    "grey": (pil_png(GREY), True),
    "grey-1x1": (pil_png(np.array([[200]], np.uint8)), True),
    "grey-1x40": (pil_png(GREY[:1].repeat(3, axis=1)[:, :40]), True),
    "grey-40x1": (pil_png(np.ascontiguousarray(RGB[:, :1, 0].repeat(5, axis=0))), True),
    "grey-stored": (pil_png(GREY, compress_level=0), True),
    "grey-optimized": (pil_png(GREY, optimize=True), True),
    "rgb": (pil_png(RGB), True),
    "grey-1bit": (pil_png(Image.fromarray(GREY > 127)), True),
    "grey-2bit": (make_png(GREY % 4, depth=2), True),
    "grey-4bit": (make_png(GREY % 16, depth=4), True),
    "grey-16bit": (pil_png(DEEP), True),
    "rgb-16bit": (make_png(DEEP_RGBA[..., :3], depth=16, colour=2), True),
    "la": (pil_png(Image.fromarray(RGBA).convert("LA")), True),
    "rgba": (pil_png(RGBA), True),
    "la-16bit": (make_png(DEEP_RGBA[..., :2], depth=16, colour=4), True),
    "rgba-16bit": (make_png(DEEP_RGBA, depth=16, colour=6), True),
    "adam7-grey": (make_png(GREY, interlace=1), True),
    "adam7-rgb": (make_png(RGB, colour=2, interlace=1), True),
    "adam7-rgba": (make_png(RGBA, colour=6, interlace=1), True),
    "adam7-1bit": (make_png(GREY % 2, depth=1, interlace=1), True),
    "adam7-4bit": (make_png(GREY % 16, depth=4, interlace=1), True),
    "adam7-16bit": (make_png(DEEP, depth=16, interlace=1), True),
    "adam7-1x1": (make_png([[77]], interlace=1), True),
    "adam7-3x2": (make_png(RGB[:2, :3], colour=2, interlace=1), True),
    "gAMA": (pil_png(GREY, pnginfo=raw_chunks((b"gAMA", struct.pack(">I", 100000)))), True),
    "gAMA-sRGB-cHRM": (pil_png(RGB, pnginfo=raw_chunks(
        (b"gAMA", struct.pack(">I", 45455)), (b"sRGB", b"\0"),
        (b"cHRM", struct.pack(">8I", 31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)))),
        True),
    "pHYs": (pil_png(RGB, dpi=(300, 300)), True),
    "sBIT-tIME-bKGD": (pil_png(GREY, pnginfo=raw_chunks(
        (b"sBIT", b"\x05"), (b"tIME", b"\x07\xe8\x01\x02\x03\x04\x05"),
        (b"bKGD", b"\x00\x80"))), True),
    "tEXt": (pil_png(RGB, pnginfo=text_info(("Software", "x"), ("date:create", "2024"))), True),
    "tEXt-after-IDAT": (make_png(GREY, after=[chunk(b"tEXt", b"Comment\0hello")]), True),
    "IDAT-in-parts": (make_png(RGB, colour=2, parts=5), True),
    "IDAT-empty-part": (make_png(GREY, before=[chunk(b"IDAT", b"")], parts=2), True),
    # the general path
    "tRNS-grey": (pil_png(GREY, transparency=GREY[0, 0].item()), False),
    "tRNS-rgb": (pil_png(RGB, transparency=tuple(RGB[0, 0].tolist())), False),
    "tRNS-16bit": (pil_png(DEEP, transparency=DEEP[0, 0].item()), False),
    "palette": (pil_png(PALETTE), False),
    "palette-tRNS": (pil_png(PALETTE, transparency=1), False),
    "iCCP": (pil_png(RGB, icc_profile=b"\0" * 128), False),
    "eXIf": (pil_png(GREY, exif=_orientation_exif()), False),
    "tEXt-raw-exif": (pil_png(GREY, pnginfo=text_info(("Raw profile type exif", RAW_EXIF))),
                      False),
    "tEXt-exif": (make_png(GREY, before=[chunk(b"tEXt", b"exif\0" + _orientation_exif())]),
                  False),
    "tEXt-xmp": (pil_png(GREY, pnginfo=text_info(("XML:com.adobe.xmp", XMP))), False),
    "iTXt-xmp": (pil_png(GREY, pnginfo=text_info(("XML:com.adobe.xmp", XMP), kind="itxt")),
                 False),
    "zTXt": (pil_png(GREY, pnginfo=text_info(("Comment", "hello"), kind="ztxt")), False),
    "tEXt-interlace": (make_png(GREY, before=[chunk(b"tEXt", b"interlace\x001")]), False),
    "tEXt-transparency": (make_png(RGB, colour=2, before=[chunk(b"tEXt", b"transparency\0x")]),
                          False),
    "IDAT-split-by-tEXt": (make_png(GREY, parts=2, between=chunk(b"tEXt", b"Comment\0x")),
                           False),
    "gAMA-bad-crc": (make_png(GREY, before=[chunk(b"gAMA", struct.pack(">I", 45455))[:-1]
                                             + b"\0"]), False),
    "gAMA-truncated": (make_png(GREY, before=[chunk(b"gAMA", b"\0\1")]), False),
    "unknown-chunk": (make_png(GREY, before=[chunk(b"prVt", b"private")]), False),
    "APNG": (_apng(), False),
    "no-IEND": (pil_png(GREY)[:-12], False),
}


def outcome(fn, *args, **kwargs):
    """The array, or the DataError message."""
    try:
        return fn(*args, **kwargs)
    except DataError as exc:
        return str(exc)


def assert_same(got, want):
    if isinstance(want, str):
        assert got == want
        return
    assert isinstance(got, np.ndarray) and got.dtype == np.uint8 and got.shape == want.shape
    assert got.flags.c_contiguous and got.flags.writeable
    np.testing.assert_array_equal(got, want)


def _forbid(monkeypatch, name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} should not run here")

    monkeypatch.setattr(decode, name, fail)


@pytest.mark.parametrize("mode", ["L", "RGB"])
@pytest.mark.parametrize("name", list(VARIANTS))
def test_decode_image_equals_the_general_path_and_takes_the_plain_path_when_it_can(
    name, mode, monkeypatch
):
    data, plain = VARIANTS[name]
    want = outcome(_decode_any, data, "u.png", mode, None, 10**9)
    assert (_plain_png_layout(data) is not None) is plain
    # Prove which path ran: the other one fails if called.
    _forbid(monkeypatch, "_decode_any" if plain else "_decode_plain_png")
    assert_same(outcome(decode_image, data, uri="u.png", mode=mode), want)


def _layout_ignoring_the_rules(data: bytes) -> decode._PngLayout:
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    spans, pos = [], 8
    while pos < len(data):
        length, cid = struct.unpack_from(">I4s", data, pos)
        if cid == b"IDAT":
            spans.append((pos + 8, pos + 8 + length))
        pos += 12 + length
    return decode._PngLayout(width, height, *PngImagePlugin._MODES[(depth, colour)], interlace,
                             spans)


@pytest.mark.parametrize(
    "name", ["eXIf", "tEXt-xmp", "tEXt-raw-exif", "tEXt-interlace", "tEXt-transparency",
             "tRNS-rgb"]
)
def test_the_chunk_rules_matter(name):
    """Forced onto the plain path, these files would decode differently (or not fail)."""
    data = VARIANTS[name][0]
    want = outcome(_decode_any, data, "u.png", "RGB", None, 10**9)
    got = decode._decode_plain_png(data, _layout_ignoring_the_rules(data), "RGB", None)
    assert isinstance(want, str) or got.shape != want.shape or not np.array_equal(got, want)


@pytest.mark.parametrize("name", ["grey", "rgb", "adam7-rgba", "grey-16bit", "tEXt"])
def test_resize_on_the_plain_path_equals_the_general_path(name):
    data = VARIANTS[name][0]
    for mode in ("L", "RGB"):
        want = _decode_any(data, "u", mode, (5, 3), 10**9)
        assert_same(decode_image(data, uri="u", mode=mode, size=(5, 3)), want)


def test_corrupt_and_truncated_plain_pngs_fail_as_before(monkeypatch):
    base = make_png(GREY[:6, :5], before=[chunk(b"gAMA", struct.pack(">I", 45455))], parts=2,
                    after=[chunk(b"tEXt", b"Comment\0x")])
    assert _plain_png_layout(base) is not None
    damaged = [base[:n] for n in range(1, len(base))]
    for i in range(len(base)):
        flipped = bytearray(base)
        flipped[i] ^= 0x5A
        damaged.append(bytes(flipped))
    for truncated_ok in (False, True):
        monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", truncated_ok)
        for data in damaged:
            for mode in ("L", "RGB"):
                want = outcome(_decode_any, data, "s3://b/x.png", mode, None, 10**9)
                got = outcome(decode_image, data, uri="s3://b/x.png", mode=mode)
                assert_same(got, want)


def test_pixel_limits_are_still_checked_from_the_header(monkeypatch):
    data = VARIANTS["grey"][0]  # 17x13 = 221 px
    _forbid(monkeypatch, "_decode_plain_png")
    with pytest.raises(DataError, match=r"17x13 = 0\.0 Mpx, above the limit .*max_pixels"):
        decode_image(data, uri="u", max_pixels=220)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 221 > 2 x 100: Pillow refuses
    with pytest.raises(DataError, match=r"^u: image too large to decode safely"):
        decode_image(data, uri="u", max_pixels=10**6)


def test_plain_path_allows_up_to_max_pixels(monkeypatch):
    data = VARIANTS["grey"][0]
    _forbid(monkeypatch, "_decode_any")
    assert decode_image(data, uri="u", max_pixels=221).shape == (13, 17, 3)


@pytest.mark.parametrize(
    "keyword, harmless",
    [(b"Software", True), (b"date:create", True), (b"Comment", True), (b"interlace", False),
     (b"transparency", False), (b"dpi", False), (b"exif", False), (b"EXIF", False),
     (b"Raw profile type exif", False), (b"Raw profile type APP1", False),
     (b"XML:com.adobe.xmp", False), (b"", False)],
)
def test_harmless_keyword(keyword, harmless):
    assert _harmless_keyword(keyword) is harmless
