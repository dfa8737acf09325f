"""Does selecting ahead cost accuracy? Top-1 at equal labels, sync vs async rounds.

``alaas_lab.simulate(..., rounds_mode="async")`` selects each round with a head one
round behind (as the worker does when it selects while the person labels). This
prints, per data set and strategy, the mean top-1 over seeds at the same number of
labels for both modes and their difference (goal, issue 13: within 1 point).

    .venv/bin/python benchmarks/async_accuracy.py [--seeds 3] [--rounds 10] [--budget 20]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

import alaas_lab
from alaas_lab import datasets

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=20)
    ap.add_argument("--strategies", default="least_confidence,margin,entropy,kcenter_greedy")
    args = ap.parse_args()
    digits = datasets.digits()
    sets = {"digits": (digits.X, digits.y, None, None)}
    if MNIST.is_dir():
        train = datasets.mnist(MNIST, limit=5000)
        test = datasets.mnist(MNIST, split="test", limit=2000)
        sets["mnist-5k"] = (train.X / 255.0, train.y, test.X / 255.0, test.y)
    print(f"load before: {os.getloadavg()[0]:.2f}; {args.seeds} seeds, {args.rounds} rounds "
          f"of {args.budget}")
    print(f"{'data':<9} {'strategy':<17} {'labels':>6} {'sync top-1':>10} {'async top-1':>11} "
          f"{'async - sync':>12}")
    for name, (X, y, X_te, y_te) in sets.items():
        for strategy in args.strategies.split(","):
            final = {"sync": [], "async": []}
            for seed in range(args.seeds):
                for mode in final:
                    res = alaas_lab.simulate(X, y, strategy=strategy, rounds=args.rounds,
                                             budget_per_round=args.budget, seed=seed,
                                             X_test=X_te, y_test=y_te, rounds_mode=mode)
                    final[mode].append((res.records[-1].n_labeled, res.records[-1].top1))
            labels = final["sync"][0][0]
            assert all(n == labels for m in final.values() for n, _ in m)
            s = 100 * np.mean([t for _, t in final["sync"]])
            a = 100 * np.mean([t for _, t in final["async"]])
            print(f"{name:<9} {strategy:<17} {labels:6d} {s:10.2f} {a:11.2f} {a - s:+12.2f}",
                  flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
