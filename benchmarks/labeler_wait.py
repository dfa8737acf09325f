"""Does the labeler wait for the model? Answer → next item, through the widget's Python API.

A real worker on an MNIST pool (20,000 items, flatten backbone, an evaluation set of
2,000), a real ``LabelingWidget``; a scripted person answers each item with its true
class (``widget.answer``, exactly what a key press sends), pauses ``--pause`` s
(reading time), and the time from the answer until the next item is shown and
loaded is recorded for **every** press, round ends included. Each strategy runs in
``rounds.mode: sync`` (the paper's loop: the next round is selected after the last
answer) and ``async`` (selected while the person labels).

    .venv/bin/python benchmarks/labeler_wait.py [--presses 200] [--per-round 20]
        [--strategies least_confidence,auto] [--pool 20000] [--quick]

Goal (issue 13): p95 ≤ 50 ms and no wait over 100 ms in a 200-label session.
The browser's own key → paint figure is ``benchmarks/labeler_latency.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO.parent / "shared" / "data" / "mnist"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, 100 * q)) if values else float("nan")


def session(strategy: str, mode: str, args: argparse.Namespace, data, tmp: Path) -> dict:
    from alaas_lab import Lab
    from alaas_lab.widgets import LabelingWidget

    X, y, X_eval, y_eval = data
    strat = ({"type": "auto", "candidates": args.candidates.split(",")}
             if strategy == "auto" else {"type": strategy})
    cfg = {"name": f"wait-{strategy}-{mode}", "classes": [str(i) for i in range(10)],
           "active_learning": {"strategy": strat, "model": {"name": "flatten",
                                                            "batch_size": 512}},
           "budget": {"total": 10 * args.presses, "per_round": args.per_round,
                      "initial": args.per_round},
           "rounds": {"mode": mode}, "cache_dir": str(tmp / "cache"), "seed": 0}
    lab = Lab(cfg, tmp / f"{strategy}-{mode}", labeler="bench").start()
    try:
        lab.push(X)
        lab.push(X_eval, role="eval", labels=list(y_eval))
        w = LabelingWidget(connection_file=lab.connection_file, labeler="bench")
        assert w.wait_ready(300), w.error
        gaps, at_round_end = [], []
        for _ in range(args.presses):
            item = w.current
            while item is None or not item.get("loaded"):
                time.sleep(0.001)
                item = w.current
            w.answer(str(y[item["item_id"]]))
            t0 = time.perf_counter()
            while True:
                nxt = w.current
                if nxt is not None and nxt.get("loaded") and nxt["item_id"] != item["item_id"]:
                    break
                if time.perf_counter() - t0 > 300:
                    raise RuntimeError(f"no next item in 300 s: {w.queue.message}")
                time.sleep(0.001)
            gap = 1000 * (time.perf_counter() - t0)
            gaps.append(gap)
            if nxt.get("round") != item.get("round"):
                at_round_end.append(gap)
            time.sleep(args.pause)
        w.close()
        status = lab.status()
        rounds = status["rounds"]
        return {"gaps": gaps, "round_end": at_round_end, "n_rounds": len({r["round"]
                                                                        for r in rounds}),
                "top1": max((r["top1"] or 0 for r in rounds), default=None)}
    finally:
        lab.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--pause", type=float, default=0.3, help="the person's seconds per item")
    ap.add_argument("--pool", type=int, default=20_000)
    ap.add_argument("--strategies", default="least_confidence,auto")
    ap.add_argument("--candidates", default="least_confidence,margin,entropy,kcenter_greedy,"
                                            "bald,badge,random")
    ap.add_argument("--modes", default="sync,async")
    ap.add_argument("--quick", action="store_true", help="60 presses on a 5,000-item pool")
    args = ap.parse_args()
    if args.quick:
        args.presses, args.pool = 60, 5000
    from alaas_lab.datasets import mnist

    train = mnist(MNIST, limit=args.pool)
    test = mnist(MNIST, split="test", limit=2000)
    data = (train.images.astype(np.float32), train.y.astype(str),
            test.images.astype(np.float32), test.y.astype(str))
    print(f"load before: {os.getloadavg()[0]:.2f}; pool {args.pool}, {args.presses} answers, "
          f"{args.per_round} per round, {args.pause:.2f} s per item")
    print(f"{'strategy':<17} {'mode':<6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>8} "
          f"{'>100 ms':>7} {'round ends (median / max ms)':>30} {'rounds':>6}")
    with tempfile.TemporaryDirectory(prefix="alaas-wait-") as tmp:
        for strategy in args.strategies.split(","):
            for mode in args.modes.split(","):
                r = session(strategy, mode, args, data, Path(tmp))
                g, ends = r["gaps"], r["round_end"]
                ends_s = (f"{statistics.median(ends):.0f} / {max(ends):.0f}" if ends else "-")
                print(f"{strategy:<17} {mode:<6} {pct(g, .5):7.1f} {pct(g, .95):7.1f} "
                      f"{max(g):8.1f} {sum(x > 100 for x in g):7d} {ends_s:>30} "
                      f"{r['n_rounds']:6d}", flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
