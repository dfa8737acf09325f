"""A large pool: push N tiny items to a worker and query it; report time and peak worker RSS.

    .venv/bin/python benchmarks/scale.py                 # 1,000,000 items of 4×4 float32
    .venv/bin/python benchmarks/scale.py --items 100000  # a quicker look

Goal (issue: reliability and scale): 1,000,000 items pushed and queried with the
worker's peak RSS ≤ 2 GB. Peak RSS is the kernel's high-water mark (VmHWM) of the
worker process. Threads: the worker's own plan (thread_plan) on this machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from alaas_lab.server import Server


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--side", type=int, default=4, help="items are side×side float32")
    parser.add_argument("--chunk", type=int, default=250_000, help="items per push call")
    parser.add_argument("--budget", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        config = {"name": "scale", "classes": ["a", "b"], "cache_dir": f"{tmp}/cache",
                  "active_learning": {"strategy": {"type": "least_confidence"},
                                      "model": {"name": "flatten", "batch_size": 4096}},
                  "budget": {"total": 0, "per_round": args.budget, "initial": args.budget}}
        server = Server(config=config, session_dir=f"{tmp}/s").start()
        client = server.client(timeout=3600)
        pid = server.pid()
        rows = []
        t0 = time.perf_counter()
        for start in range(0, args.items, args.chunk):
            n = min(args.chunk, args.items - start)
            t = time.perf_counter()
            client.push_data(rng.normal(size=(n, args.side, args.side)).astype(np.float32))
            rows.append((start + n, time.perf_counter() - t, peak_rss_mb(pid)))
        push_s = time.perf_counter() - t0
        t = time.perf_counter()
        seed = client.query(args.budget)  # random seed set (no model yet)
        client.label_many(seed.item_ids, ["a" if i % 2 else "b" for i in seed.item_ids])
        wait = time.perf_counter()
        while not client.status()["rounds"]:
            time.sleep(0.2)
        fit_s = time.perf_counter() - wait
        t2 = time.perf_counter()
        picked = client.query(args.budget)  # least confidence over the whole pool
        query_s = time.perf_counter() - t2
        total_s = time.perf_counter() - t
        peak = peak_rss_mb(pid)
        server.stop()
    print(f"pool: {args.items:,} items of {args.side}x{args.side} float32, pushed in chunks "
          f"of {args.chunk:,}; worker threads per thread_plan")
    print(f"{'pushed':>12} {'chunk s':>9} {'peak RSS MB':>12}")
    for n, s, r in rows:
        print(f"{n:>12,} {s:>9.1f} {r:>12.0f}")
    print(f"push total {push_s:.1f} s ({args.items / push_s:,.0f} items/s); seed round fit "
          f"{fit_s:.1f} s; least-confidence query of {len(picked)} over the pool {query_s:.2f} s;"
          f" label+fit+query {total_s:.1f} s")
    print(f"worker peak RSS {peak:.0f} MB (goal <= 2048 MB): "
          f"{'MET' if peak <= 2048 else 'MISSED'}")


if __name__ == "__main__":
    main()
