"""The data room without S3: listing, fetching, retries, decoding and quarantine."""

from __future__ import annotations

import io
import os
import struct
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import fsspec
import numpy as np
import pytest
from fsspec.implementations.memory import MemoryFileSystem
from PIL import Image

from alaas_lab.data import (
    DecodedItem,
    Decoder,
    Fetcher,
    FetchResult,
    Quarantine,
    RetryPolicy,
    classify_error,
    decode_array,
    decode_image,
    decode_text,
    expand,
    normalize_info,
    quarantine,
)
from alaas_lab.data import uris as uris_module
from alaas_lab.data.retry import TruncatedBodyError, call_with_retry
from alaas_lab.errors import DataError, InputError

from .conftest import free_port, start_server, stop, wait_for_http

FAST = RetryPolicy(max_attempts=4, base=0.001, cap=0.005)


def png_bytes(arr: np.ndarray, **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **save)
    return buf.getvalue()


def encode(img: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


@pytest.fixture
def tree(tmp_path):
    """tmp/a.png, tmp/b.png, tmp/sub/c.png, tmp/sub/d.txt, tmp/.hidden.png, tmp/.git/x.png"""
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    (root / ".git").mkdir()
    for name in ("b.png", "a.png", "sub/c.png", ".hidden.png", ".git/x.png"):
        (root / name).write_bytes(png_bytes(np.full((4, 4), len(name), np.uint8)))
    (root / "sub" / "d.txt").write_text("hello")
    return root


@pytest.fixture
def mem():
    fs = MemoryFileSystem()
    root = f"/t{time.monotonic_ns()}"
    for name in ("z.png", "a.png", "deep/m.png"):
        fs.pipe(f"{root}/{name}", name.encode())
    yield root
    fs.rm(root, recursive=True)


# -- expand -------------------------------------------------------------------------------------


def test_expand_directory_is_sorted_recursive_and_skips_hidden(tree):
    got = expand(str(tree))
    assert got == [str(tree / n) for n in ("a.png", "b.png", "sub/c.png", "sub/d.txt")]


def test_expand_glob_and_double_star(tree):
    assert expand(str(tree / "*.png")) == [str(tree / "a.png"), str(tree / "b.png")]
    assert expand(str(tree / "**" / "*.png"))[-1] == str(tree / "sub" / "c.png")
    assert str(tree / "a.png") in expand(str(tree / "**" / "*.png"))


@pytest.mark.parametrize("pattern", ["*.png", "*", "?.png", "[ab].png", "[!a]*", ".*", "*.txt",
                                     "sub/*", "nowhere/*.png", "*/*.png"])
def test_a_local_glob_lists_and_describes_files_as_fsspec_does(tree, pattern, monkeypatch):
    (tree / "link.png").symlink_to(tree / "a.png")  # a link counts as its target
    (tree / "dir.png").mkdir()  # a folder whose name matches is not an item
    (tree / "sub" / "broken.png").symlink_to(tree / "gone.png")
    source = str(tree / pattern)
    got_infos: dict = {}
    try:
        got = expand(source, infos=got_infos)
    except DataError as exc:
        got, got_infos = exc.args[0], {}
    scans = []
    real_scan = uris_module._scan_local
    monkeypatch.setattr(uris_module, "_scan_local", lambda p: scans.append(p) or None)
    want_infos: dict = {}
    try:
        want = expand(source, infos=want_infos)  # fsspec's LocalFileSystem.glob
    except DataError as exc:
        want, want_infos = exc.args[0], {}
    assert got == want and got_infos == want_infos
    # the fast path is taken where the wildcards are all in the last name and the folder reads
    taken = real_scan(str(tree / pattern)) is not None
    assert taken == (pattern not in ("*/*.png", "nowhere/*.png")), pattern
    assert scans  # and expand asked for it


def test_expand_file_uri_and_relative_path_give_absolute_paths(tree, monkeypatch):
    assert expand(f"file://{tree}/a.png") == [str(tree / "a.png")]
    monkeypatch.chdir(tree)
    assert expand("sub/c.png") == [str(tree / "sub" / "c.png")]
    assert expand(tree / "b.png") == [str(tree / "b.png")]  # os.PathLike


def test_expand_memory_glob_and_directory(mem):
    assert expand(f"memory://{mem}/*.png") == [f"memory://{mem}/a.png", f"memory://{mem}/z.png"]
    assert expand(f"memory://{mem}") == [
        f"memory://{mem}/a.png",
        f"memory://{mem}/deep/m.png",
        f"memory://{mem}/z.png",
    ]


def test_expand_text_manifest_resolves_relative_entries_and_globs(tree):
    manifest = tree / "pool.txt"
    manifest.write_text(f"# my pool\nb.png\n\n  sub/*.png  \n{tree / 'a.png'}\n")
    assert expand(str(manifest)) == [
        str(tree / "b.png"),
        str(tree / "sub" / "c.png"),
        str(tree / "a.png"),
    ]
    # A single .txt can still be pushed as an item.
    assert expand(str(manifest), manifests=False) == [str(manifest)]


def test_expand_csv_manifest_needs_a_uri_column(tree):
    good = tree / "pool.csv"
    good.write_text("label,uri\ncat,a.png\ndog,sub/c.png\n")
    assert expand(str(good)) == [str(tree / "a.png"), str(tree / "sub" / "c.png")]
    bad = tree / "bad.csv"
    bad.write_text("label,file\ncat,a.png\n")
    with pytest.raises(DataError, match=r"no 'uri' column \(columns: label, file\)"):
        expand(str(bad))


def test_expand_list_keeps_order_and_drops_duplicates_with_a_warning(tree):
    a, b = str(tree / "a.png"), str(tree / "b.png")
    with pytest.warns(UserWarning, match=r"dropped 3 duplicate URI\(s\).*a\.png, .*b\.png"):
        got = expand([b, a, f"file://{a}", str(tree / "*.png")])
    assert got == [b, a]


def test_expand_list_entries_are_not_manifests_and_not_checked(tree):
    missing = str(tree / "nope.png")
    text = str(tree / "sub" / "d.txt")
    assert expand([text, missing]) == [text, missing]


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda t: str(t / "*.jpg"), r"no files found in '.*\*\.jpg' — check that the path"),
        (lambda t: str(t / "sub" / "empty"), r"no files found in .*empty"),
        (lambda t: [str(t / "*.gif"), str(t / "x*.bmp")], r"no files found in .*gif.*bmp"),
        (lambda t: str(t / "missing.png"), r"missing\.png' does not exist — check the path"),
    ],
)
def test_expand_nothing_found_is_a_data_error_naming_the_source(tree, make, match):
    (tree / "sub" / "empty").mkdir()
    with pytest.raises(DataError, match=match):
        expand(make(tree))


def test_expand_empty_manifest_and_partial_match_warning(tree):
    (tree / "empty.txt").write_text("# nothing yet\n")
    with pytest.raises(DataError, match="empty.txt"):
        expand(str(tree / "empty.txt"))
    with pytest.warns(UserWarning, match=r"1 source\(s\) matched no files: .*\*\.gif"):
        assert expand([str(tree / "a.png"), str(tree / "*.gif")]) == [str(tree / "a.png")]


@pytest.mark.parametrize("bad", [3, [b"/x.png"], [None], ["  "], "s3://a::b"])
def test_expand_rejects_bad_sources(bad):
    with pytest.raises((InputError, DataError)):
        expand(bad)


def test_expand_empty_list():
    with pytest.raises(DataError, match="empty list of sources"):
        expand([])


# -- fetch: local and memory ----------------------------------------------------------------------


def test_fetch_many_ordered_local_and_memory(tree, mem):
    uris = [str(tree / "b.png"), f"memory://{mem}/z.png", f"file://{tree}/a.png"]
    with Fetcher(max_in_flight=2) as fetcher:
        results = list(fetcher.fetch_many(uris))
    assert [r.uri for r in results] == uris
    assert all(r.ok and r.attempts == 1 for r in results)
    assert results[0].data == (tree / "b.png").read_bytes()
    assert results[1].data == b"z.png"
    st = os.stat(tree / "b.png")
    assert results[0].info["size"] == st.st_size
    assert results[0].info["mtime"] == pytest.approx(st.st_mtime)
    assert isinstance(results[1].info["mtime"], float)  # memory fs: its "created" stamp


def test_fetch_many_unordered_yields_every_result(tree):
    uris = [str(p) for p in sorted(tree.rglob("*.png"))]
    with Fetcher(max_in_flight=3) as fetcher:
        got = {r.uri: r.data for r in fetcher.fetch_many(uris, ordered=False)}
    assert got == {u: Path(u).read_bytes() for u in uris}


def test_fetch_failures_become_errors_not_exceptions(tree):
    uris = [str(tree / "missing.png"), str(tree / "sub"), 42, str(tree / "a.png")]
    with Fetcher(retries=FAST) as fetcher:
        missing, folder, bad, good = fetcher.fetch_many(uris)
    assert missing.error.startswith("not found: ") and missing.attempts == 1
    assert missing.data is None and "missing.png" in missing.error
    assert folder.error.startswith("is a directory") and folder.attempts == 1
    assert bad.error.startswith("bad uri") and bad.attempts == 0
    assert good.ok


def test_fetch_many_reads_its_input_lazily_with_a_bounded_window(tree):
    pulled = []

    def uris():
        for i in range(1000):
            pulled.append(i)
            yield str(tree / "a.png")

    with Fetcher(max_in_flight=4) as fetcher:
        it = fetcher.fetch_many(uris())
        first = next(it)
        assert first.ok
        assert len(pulled) <= 4 + 1
        it.close()


def test_info_many_reads_no_bytes(tree):
    with Fetcher() as fetcher:
        [r] = fetcher.info_many([str(tree / "a.png")])
    assert r.ok and r.data is None
    assert r.info["size"] == (tree / "a.png").stat().st_size


def test_fetcher_validates_its_parameters():
    with pytest.raises(InputError, match="max_in_flight"):
        Fetcher(max_in_flight=0)
    with pytest.raises(InputError, match="RetryPolicy"):
        Fetcher(retries={"max_attempts": 3})
    with pytest.raises(InputError, match="wrap it in a list"):
        Fetcher().fetch_many("/a/b.png")


# -- retries, through a real fsspec filesystem that misbehaves -------------------------------------


class FlakyFileSystem(fsspec.AbstractFileSystem):
    """An fsspec filesystem over ``memory://`` that plays queued faults on ``cat_file``."""

    protocol = "flakytest"
    root_marker = "/"
    faults: dict[str, list[str]] = {}
    calls: Counter = Counter()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.store = MemoryFileSystem()

    def info(self, path, **kwargs):
        return self.store.info(path)

    def cat_file(self, path, start=None, end=None, **kwargs):
        FlakyFileSystem.calls[path] += 1
        data = self.store.cat_file(path)
        queue = FlakyFileSystem.faults.get(path) or []
        fault = queue.pop(0) if queue else None
        if fault == "truncate":
            return data[: len(data) // 2]
        if fault == "timeout":
            raise TimeoutError("read timed out")
        if fault == "reset":
            raise ConnectionResetError(104, "Connection reset by peer")
        if fault == "denied":
            raise PermissionError(13, "Access denied")
        if fault == "slow":
            time.sleep(0.3)
        return data


@pytest.fixture
def flaky():
    fsspec.register_implementation("flakytest", FlakyFileSystem, clobber=True)
    FlakyFileSystem.faults.clear()
    FlakyFileSystem.calls.clear()
    path = f"/flaky{time.monotonic_ns()}/x.bin"
    MemoryFileSystem().pipe(path, b"0123456789" * 10)
    yield path
    MemoryFileSystem().rm(path)


@pytest.mark.parametrize(
    "faults, ok, attempts, reason",
    [
        (["truncate", "reset"], True, 3, None),
        (["timeout"] * 3, True, 4, None),
        (["timeout"] * 4, False, 4, "timeout"),
        (["truncate"] * 9, False, 4, "truncated body"),
        (["denied", "denied"], False, 1, "access denied"),
    ],
)
def test_transient_faults_are_retried_permanent_ones_are_not(flaky, faults, ok, attempts, reason):
    FlakyFileSystem.faults[flaky] = list(faults)
    [r] = Fetcher(retries=FAST).fetch_many([f"flakytest://{flaky}"])
    assert r.ok is ok
    assert r.attempts == attempts == FlakyFileSystem.calls[flaky]
    if ok:
        assert r.data == b"0123456789" * 10 and r.info["size"] == 100
    else:
        assert r.error.startswith(f"{reason}: flakytest://{flaky}")
        assert ("gave up after 4 attempts" in r.error) is (reason != "access denied")


def test_unordered_yields_as_completed_ordered_waits_for_the_first(flaky, tree):
    fast = [str(tree / "a.png"), str(tree / "b.png")]
    with Fetcher(max_in_flight=3) as fetcher:
        FlakyFileSystem.faults[flaky] = ["slow"]
        unordered = [
            r.uri for r in fetcher.fetch_many([f"flakytest://{flaky}", *fast], ordered=False)
        ]
        FlakyFileSystem.faults[flaky] = ["slow"]
        ordered = [r.uri for r in fetcher.fetch_many([f"flakytest://{flaky}", *fast])]
    assert unordered[-1] == f"flakytest://{flaky}" and sorted(unordered[:2]) == fast
    assert ordered == [f"flakytest://{flaky}", *fast]


def test_retry_policy_backoff_is_bounded_exponential_with_jitter():
    policy = RetryPolicy(max_attempts=6, base=0.05, cap=0.3)
    assert [policy.ceiling(k) for k in range(1, 6)] == [0.05, 0.1, 0.2, 0.3, 0.3]
    delays = [policy.delay(3) for _ in range(2000)]
    assert 0 <= min(delays) < 0.02 and 0.18 < max(delays) <= 0.2  # full jitter in [0, 0.2]
    with pytest.raises(InputError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(InputError, match="base"):
        RetryPolicy(base=-1)


def test_call_with_retry_sleeps_between_transient_failures_only():
    slept, calls = [], []

    def fn():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset")
        return "ok"

    assert call_with_retry(fn, RetryPolicy(base=1.0, cap=8.0), sleep=slept.append) == ("ok", 3)
    assert len(slept) == 2 and slept[0] <= 1.0 and slept[1] <= 2.0
    with pytest.raises(FileNotFoundError) as info:
        call_with_retry(lambda: open("/nonexistent/x"), RetryPolicy(), sleep=slept.append)
    assert info.value.alaas_attempts == 1 and len(slept) == 2


def test_classify_error_reads_s3_codes_through_wrappers():
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    def client_error(code, status):
        err = {
            "Error": {"Code": code, "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        }
        return ClientError(err, "GetObject")

    def wrapped(exc):  # what s3fs does: re-raise as OSError with the ClientError as cause
        outer = OSError(5, "wrapped")
        outer.__cause__ = exc
        return outer

    cases = {
        ("SlowDown", 503): (True, "server error"),
        ("InternalError", 500): (True, "server error"),
        ("NoSuchKey", 404): (False, "not found"),
        ("AccessDenied", 403): (False, "access denied"),
        ("InvalidRange", 416): (False, "client error"),
    }
    for (code, status), expected in cases.items():
        got = classify_error(wrapped(client_error(code, status)))
        assert (got.transient, got.reason) == expected, code
    assert classify_error(EndpointConnectionError(endpoint_url="http://x")).transient
    assert classify_error(ReadTimeoutError(endpoint_url="http://x")).reason == "timeout"
    assert classify_error(TruncatedBodyError(3, 10)).reason == "truncated body"
    assert classify_error(ValueError("odd")).transient is False


# -- http(s), against python -m http.server --------------------------------------------------------


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    for i in range(5):
        (root / f"img{i}.png").write_bytes(png_bytes(np.full((8, 8), i * 40, np.uint8)))
    port = free_port()
    proc = start_server(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(root)]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/", proc)
        yield url, root
    finally:
        stop(proc)


def test_http_fetch_info_and_missing(http_root):
    url, root = http_root
    uris = [f"{url}/img{i}.png" for i in range(5)] + [f"{url}/nope.png"]
    with Fetcher(retries=FAST) as fetcher:
        results = list(fetcher.fetch_many(uris))
        infos = list(fetcher.info_many(uris[:2]))
    for i, r in enumerate(results[:5]):
        assert r.ok and r.data == (root / f"img{i}.png").read_bytes()
    missing = results[5]
    assert missing.error.startswith("not found: ") and missing.attempts == 1
    assert infos[0].info["size"] == (root / "img0.png").stat().st_size
    assert infos[0].info["mtime"] == pytest.approx((root / "img0.png").stat().st_mtime, abs=1)


def test_http_expand_directory_listing_and_glob(http_root):
    url, _ = http_root
    want = [f"{url}/img{i}.png" for i in range(5)]
    assert expand(f"{url}/") == want
    assert expand(f"{url}/img*.png") == want
    assert expand(f"{url}/img3.png") == [f"{url}/img3.png"]


# -- decode ---------------------------------------------------------------------------------------


def test_decode_grey_and_rgb_roundtrip():
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = decode_image(png_bytes(grey), uri="g", mode="L")
    np.testing.assert_array_equal(out, grey)
    assert out.flags.writeable and out.flags.c_contiguous
    out = decode_image(png_bytes(grey), uri="g", mode="RGB")
    assert out.shape == (5, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 1], grey)
    np.testing.assert_array_equal(decode_image(png_bytes(rgb), uri="c"), rgb)
    # ITU-R 601 luma, as Pillow computes it: L = (299 R + 587 G + 114 B) / 1000
    luma = decode_image(png_bytes(rgb), uri="c", mode="L").astype(int)
    ref = (rgb @ np.array([299, 587, 114])) / 1000
    assert np.abs(luma - ref).max() <= 1


def test_decode_alpha_is_composited_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 0)  # fully transparent red -> white
    rgba[0, 1] = (255, 0, 0, 255)  # opaque red
    rgba[1, 0] = (0, 0, 0, 128)  # half-transparent black -> mid grey
    out = decode_image(png_bytes(rgba), uri="a")
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[0, 1]) == (255, 0, 0)
    assert all(abs(int(v) - 127) <= 1 for v in out[1, 0])
    la = decode_image(encode(Image.fromarray(rgba).convert("LA"), "PNG"), uri="la", mode="L")
    assert la[0, 0] == 255


def test_decode_palette_with_and_without_transparency():
    p = Image.new("P", (3, 1))
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    p.putdata([0, 1, 1])
    out = decode_image(encode(p, "PNG"), uri="p")
    assert tuple(out[0, 1]) == (10, 200, 30) and tuple(out[0, 0]) == (0, 0, 0)
    out = decode_image(encode(p, "PNG", transparency=0), uri="pt")
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 2]) == (10, 200, 30)
    gif = decode_image(encode(p, "GIF", transparency=0), uri="gif", mode="L")
    assert gif.shape == (1, 3) and gif[0, 0] == 255


def test_decode_cmyk_jpeg():
    cyan = Image.new("CMYK", (16, 16), (255, 0, 0, 0))
    out = decode_image(encode(cyan, "JPEG", quality=95), uri="cmyk.jpg")
    r, g, b = (int(v) for v in out[8, 8])
    assert r < 20 and g > 235 and b > 235


def test_decode_16_bit_png_is_scaled_not_clipped():
    arr = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    data = png_bytes(arr)
    assert Image.open(io.BytesIO(data)).mode.startswith("I")
    out = decode_image(data, uri="deep.png", mode="L")
    np.testing.assert_array_equal(out, [[0, 1, 128, 255]])


def test_decode_applies_exif_orientation_and_resizes():
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 10, 20))  # left quarter red
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise
    data = encode(img, "JPEG", exif=exif, quality=95)
    out = decode_image(data, uri="rot.jpg")
    assert out.shape == (40, 20, 3)
    assert out[2, 10, 0] > 200 and out[-3, 10, 2] > 200  # red band now on top
    small = decode_image(data, uri="rot.jpg", size=(8, 4), mode="L")
    assert small.shape == (8, 4)
    assert decode_image(png_bytes(np.zeros((9, 9), np.uint8)), uri="s", size=3).shape == (3, 3, 3)


def test_jpeg_draft_resize_matches_a_full_decode_then_resize():
    yy, xx = np.mgrid[0:600, 0:800]
    smooth = np.stack([xx * 255 // 800, yy * 255 // 600, (xx + yy) * 255 // 1400], axis=-1)
    data = encode(Image.fromarray(smooth.astype(np.uint8)), "JPEG", quality=90)
    fast = decode_image(data, uri="big.jpg", size=(60, 80))
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((80, 60)), dtype=float)
    assert fast.shape == (60, 80, 3)
    assert np.abs(fast - ref).mean() < 3.0


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


NOISE_PNG = png_bytes(np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8))


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", r"^s3://b/x\.png: empty file \(0 bytes\) — check the file or remove it"),
        (b"\x00garbage" * 20, r"not a decodable image \(unrecognised format; starts with"),
        (NOISE_PNG[: len(NOISE_PNG) // 2], r"not a decodable image \(corrupt or truncated PNG"),
        (_png_declaring(100_000, 100_000), r"too large to decode safely"),
    ],
    ids=["empty", "garbage", "truncated", "bomb"],
)
def test_decode_bad_images_raise_data_error_naming_the_uri(data, match):
    with pytest.raises(DataError, match=match) as info:
        decode_image(data, uri="s3://b/x.png")
    assert str(info.value).startswith("s3://b/x.png: ")


def test_decode_pixel_limit_is_checked_from_the_header():
    data = png_bytes(np.zeros((64, 64), np.uint8))
    with pytest.raises(DataError, match=r"64x64 = 0\.0 Mpx, above the limit .*max_pixels"):
        decode_image(data, uri="u", max_pixels=1000)
    assert decode_image(data, uri="u", max_pixels=4096).shape == (64, 64, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"mode": "RGBA"}, "mode"), ({"size": (0, 3)}, "size"), ({"max_pixels": -1}, "max_pixels")],
)
def test_decode_image_validates_arguments(kwargs, match):
    with pytest.raises(InputError, match=match):
        decode_image(b"x", uri="u", **kwargs)


def test_decode_text():
    assert decode_text("héllo".encode(), uri="t") == "héllo"
    assert decode_text(b"\xef\xbb\xbfbom", uri="t") == "bom"
    latin = "café".encode("latin-1")
    with pytest.raises(
        DataError,
        match=r"^s3://b/t\.txt: not valid utf-8 .*0xe9 at offset 3.*"
        r"errors='replace'",
    ):
        decode_text(latin, uri="s3://b/t.txt")
    assert decode_text(latin, uri="t", errors="replace") == "caf\ufffd"
    assert decode_text(latin, uri="t", encoding="latin-1") == "café"
    with pytest.raises(InputError, match="encoding"):
        decode_text(b"x", uri="t", encoding="no-such-codec")


def test_decode_array():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    buf = io.BytesIO()
    np.save(buf, arr)
    np.testing.assert_array_equal(decode_array(buf.getvalue(), uri="a.npy"), arr)
    with pytest.raises(DataError, match="not a valid .npy"):
        decode_array(buf.getvalue()[:-4], uri="a.npy")
    obj = io.BytesIO()
    np.save(obj, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="Python objects, which are never unpickled"):
        decode_array(obj.getvalue(), uri="o.npy")
    npz = io.BytesIO()
    np.savez(npz, a=arr)
    with pytest.raises(DataError, match="npz"):
        decode_array(npz.getvalue(), uri="z.npz")


# -- Decoder and quarantine ------------------------------------------------------------------------


def test_decoder_turns_every_failure_into_a_quarantine():
    good = png_bytes(np.full((4, 4), 9, np.uint8))
    dec = Decoder("image", mode="L", size=2)
    item = dec.decode(FetchResult("u1", good, {"size": len(good), "etag": "e"}))
    assert isinstance(item, DecodedItem) and item.value.shape == (2, 2)
    assert item.info == {"size": len(good), "etag": "e"}
    fetched_bad = dec.decode(FetchResult("u2", None, {}, "not found: u2 (NoSuchKey)"))
    assert fetched_bad == Quarantine("u2", "fetch", "not found: u2 (NoSuchKey)")
    bad = dec.decode(FetchResult("u3", b"\x89PNG\r\n\x1a\nxx", {}))
    assert bad.stage == "decode" and bad.reason.startswith("u3: not a decodable image")
    assert bad.as_event() == {"uri": "u3", "stage": "decode", "reason": bad.reason}
    text = Decoder("text").decode(FetchResult("t", b"\xff\xfe", {}))
    assert isinstance(text, Quarantine) and "errors='replace'" in text.reason
    assert Decoder("array").decode(FetchResult("n", b"nope", {})).stage == "decode"


def test_quarantine_helper_and_validation():
    q = quarantine("u", "decode", ValueError("odd"))
    assert q.reason == "u: unexpected ValueError: odd"
    assert quarantine("u", "fetch", DataError("u: gone")).reason == "u: gone"
    with pytest.raises(InputError, match="stage"):
        Quarantine("u", "embed", "x")
    with pytest.raises(InputError, match="kind"):
        Decoder("video")


def test_normalize_info_maps_backend_fields():
    s3 = normalize_info(
        {
            "ContentLength": 5,
            "ETag": '"abc"',
            "VersionId": "null",
            "LastModified": "2024-01-02T03:04:05Z",
        }
    )
    assert s3 == {"size": 5, "etag": "abc", "mtime": 1704164645.0}
    http = normalize_info(
        {"size": 7, "ETag": 'W/"x"', "Last-Modified": "Tue, 02 Jan 2024 03:04:05 GMT"}
    )
    assert http == {"size": 7, "etag": "W/x", "mtime": 1704164645.0}


def test_fetch_and_decode_many_threads_share_one_filesystem(tree):
    uris = [str(tree / "a.png")] * 50
    out = []

    def run():
        with Fetcher(max_in_flight=4) as f:
            out.extend(Decoder(mode="L").decode(r) for r in f.fetch_many(uris))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 200 and all(isinstance(d, DecodedItem) for d in out)
