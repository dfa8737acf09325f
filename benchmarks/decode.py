"""PNG decode time: ``decode_image`` (plain-PNG path) against its general ``Image.open`` path.

    .venv/bin/python benchmarks/decode.py                 # MNIST 28x28 grey, 224x224 RGB
    .venv/bin/python benchmarks/decode.py --quick         # fewer items and repeats

Prints microseconds per item (best of ``--repeats`` passes over the items, one thread) of
the general path (``_decode_any``: ``Image.open``, EXIF, conversion) and of ``decode_image``,
which takes the plain-PNG path for these files, and their ratio; the outputs are checked
equal first. For reference, ``torchvision.io.decode_png`` on the same (valid) files when
torchvision is installed: it is not used by ``decode_image``, because with torchvision
0.29 a PNG whose image data is damaged crashes the process (libpng's error inside
``png_read_row`` ends in a segfault) where Pillow raises.

"GIL left" is how fast a pure-Python counting loop on another thread runs while one thread
decodes, relative to it running alone: 1.0 means the decoder never holds the GIL, about 0.5
that it holds it all the time (two threads taking turns). The machine's load average is
printed before and after; the figures are only comparable on an idle machine.

Items: the first ``--mnist`` MNIST training digits (``/work/shared/data/mnist`` or
``--mnist-dir``) saved by Pillow as PNG (about 270 bytes each), and ``--rgb`` seeded
224x224 RGB images (smooth gradients plus noise, about 150 kB each).
"""

from __future__ import annotations

import argparse
import io
import os
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from alaas_lab.data.decode import _check_max_pixels, _decode_any, decode_image
from alaas_lab.datasets import mnist


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def rgb_images(n: int, side: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    out = []
    for i in range(n):
        noise = rng.integers(0, 12, (side, side, 3))
        arr = np.stack([xx + 3 * i, yy * 2 + i, xx + yy], axis=-1) + noise
        out.append(png((arr % 256).astype(np.uint8)))
    return out


def per_item_us(fn: Callable[[bytes], object], items: Sequence[bytes], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for data in items:
            fn(data)
        best = min(best, time.perf_counter() - t)
    return best / len(items) * 1e6


def count_for(seconds: float) -> int:
    n, stop = 0, time.perf_counter() + seconds
    while time.perf_counter() < stop:
        for _ in range(1000):
            n += 1
    return n


def gil_left(fn: Callable[[bytes], object], items: Sequence[bytes], seconds: float) -> float:
    """Counting rate beside a decoding thread / counting rate alone."""
    alone = count_for(seconds)
    done = threading.Event()

    def decode_loop() -> None:
        while not done.is_set():
            for data in items:
                fn(data)
                if done.is_set():
                    return

    worker = threading.Thread(target=decode_loop, daemon=True)
    worker.start()
    try:
        beside = count_for(seconds)
    finally:
        done.set()
        worker.join()
    return beside / alone


def torchvision_decoder(mode: str) -> Callable[[bytes], object] | None:
    try:
        import torch
        from torchvision.io import ImageReadMode, decode_png
    except ImportError:
        return None
    read_mode = ImageReadMode.RGB if mode == "RGB" else ImageReadMode.GRAY

    def decode(data: bytes) -> object:
        return decode_png(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=read_mode)

    return decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=int, default=4000, help="MNIST digits")
    parser.add_argument("--mnist-dir", default="/work/shared/data/mnist")
    parser.add_argument("--rgb", type=int, default=200, help="224x224 RGB images")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--gil-seconds", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="500 digits, 40 RGB, 3 repeats")
    args = parser.parse_args()
    if args.quick:
        args.mnist, args.rgb, args.repeats, args.gil_seconds = 500, 40, 3, 0.5
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    digits = [png(a) for a in mnist(args.mnist_dir, limit=args.mnist).images]
    sets = [
        (f"MNIST 28x28 grey PNG -> RGB ({len(digits)})", digits, "RGB"),
        (f"MNIST 28x28 grey PNG -> L ({len(digits)})", digits, "L"),
        (f"224x224 RGB PNG -> RGB ({args.rgb})", rgb_images(args.rgb, 224, args.seed), "RGB"),
    ]
    limit = _check_max_pixels(None)
    header = (f"{'items':40s} {'general us':>11s} {'decode_image us':>16s} {'ratio':>6s} "
              f"{'torchvision us':>15s} {'GIL left: general':>18s} {'decode_image':>13s}")
    print(header)
    for name, items, mode in sets:

        def general(data: bytes, mode: str = mode) -> np.ndarray:
            return _decode_any(data, "bench", mode, None, limit)

        def fast(data: bytes, mode: str = mode) -> np.ndarray:
            return decode_image(data, uri="bench", mode=mode)

        for data in items[:50]:
            np.testing.assert_array_equal(fast(data), general(data))
        slow_us = per_item_us(general, items, args.repeats)
        fast_us = per_item_us(fast, items, args.repeats)
        tv = torchvision_decoder(mode)
        tv_us = f"{per_item_us(tv, items, args.repeats):15.1f}" if tv else f"{'n/a':>15s}"
        gil_slow = gil_left(general, items, args.gil_seconds)
        gil_fast = gil_left(fast, items, args.gil_seconds)
        print(f"{name:40s} {slow_us:11.1f} {fast_us:16.1f} {slow_us / fast_us:6.2f} {tv_us} "
              f"{gil_slow:18.2f} {gil_fast:13.2f}")
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
