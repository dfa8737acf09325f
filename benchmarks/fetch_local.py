"""What reading small local files through ``Fetcher`` costs, against a plain ``open().read()``.

The worker's fetch stage calls ``Fetcher.fetch_many`` on batches of 8 URIs from several
threads, while decode and embedding need the CPU and the GIL; every microsecond the Fetcher
spends per item beyond the read itself is taken from them. This script writes ``--n`` small
PNGs (MNIST-sized, ~300 bytes; page-cached after the first pass) to a temporary folder and
times, per item (best of ``--repeat`` passes):

- ``plain read``: ``open(p, "rb")``, ``os.fstat``, ``read()`` (the floor);
- ``fetch_many, batches of 8``: the pipeline's call pattern;
- ``fetch_many, one call``: all paths in one call;
- ``fetch_many, 4 threads x batches of 8``: wall time per item with 4 threads at once;
- ``plain stat`` and ``info_many, one call``: the identity lookup a push makes first.

    .venv/bin/python benchmarks/fetch_local.py [--n 4000] [--repeat 5]

The ratio column is the Fetcher's time over the plain call's.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from alaas_lab.data import Fetcher


def write_pngs(folder: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` 28x28 greyscale PNGs with a bright blob on black (about 300 bytes each)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = np.zeros((28, 28), np.uint8)
        r, c = rng.integers(4, 20, 2)
        img[r : r + 8, c : c + 6] = rng.integers(128, 256, (8, 6), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "PNG")
        path = folder / f"img{i:05d}.png"
        path.write_bytes(buf.getvalue())
        paths.append(str(path))
    return paths


def best_us_per_item(fn: Callable[[], int], repeat: int) -> float:
    """Best wall time of ``fn()`` over ``repeat`` runs, divided by the items it returned."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=4000, help="files (default 4000)")
    p.add_argument("--repeat", type=int, default=5, help="passes, the best counts (default 5)")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="alaas-fetch-") as tmp:
        paths = write_pngs(Path(tmp), args.n)
        size = sum(os.path.getsize(x) for x in paths) / len(paths)
        batches = [paths[i : i + 8] for i in range(0, len(paths), 8)]
        fetcher = Fetcher(max_in_flight=32)

        def plain_read() -> int:
            for path in paths:
                with open(path, "rb") as f:
                    os.fstat(f.fileno())
                    f.read()
            return len(paths)

        def plain_stat() -> int:
            for path in paths:
                os.stat(path)
            return len(paths)

        def batched() -> int:
            n = 0
            for batch in batches:
                for r in fetcher.fetch_many(batch):
                    assert r.ok, r.error
                    n += 1
            return n

        def one_call() -> int:
            return sum(r.ok for r in fetcher.fetch_many(paths))

        def threads4() -> int:
            parts = [batches[k::4] for k in range(4)]
            done = [0] * 4

            def run(k: int) -> None:
                for batch in parts[k]:
                    done[k] += sum(r.ok for r in fetcher.fetch_many(batch))

            ts = [threading.Thread(target=run, args=(k,)) for k in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            return sum(done)

        def info_one_call() -> int:
            return sum(r.ok for r in fetcher.info_many(paths))

        plain_read()  # warm the page cache
        read = best_us_per_item(plain_read, args.repeat)
        stat = best_us_per_item(plain_stat, args.repeat)
        rows = [
            ("plain read (open, fstat, read)", read, read),
            ("fetch_many, batches of 8", best_us_per_item(batched, args.repeat), read),
            ("fetch_many, one call", best_us_per_item(one_call, args.repeat), read),
            ("fetch_many, 4 threads x batches of 8", best_us_per_item(threads4, args.repeat),
             read),
            ("plain stat", stat, stat),
            ("info_many, one call", best_us_per_item(info_one_call, args.repeat), stat),
        ]
        fetcher.close()

    print(f"{args.n} local PNGs of {size:.0f} bytes on average, best of {args.repeat} passes")
    print(f"{'':40s} {'us/item':>8s} {'x plain':>8s}")
    for name, us, base in rows:
        print(f"{name:40s} {us:8.1f} {us / base:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
