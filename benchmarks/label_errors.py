"""Suspect labels on a noisy oracle, and the pool map's projection time.

A simulated oracle answers MNIST and Fashion-MNIST labels wrongly for a known share of items (5 %
and 10 %, another class at random, seeded). The worker's suspect finder
(out-of-fold predictions of the linear head, confident learning:
``alaas_lab/worker/suspects.py``) ranks the labels; a reviewer (the true label)
looks at the first ``review budget`` of them. Printed per noise rate: ``precision
P recall R`` of the suspects at that budget (and the lift over reviewing random
labels, whose precision is the noise rate), and top-1 on the test set before and
after the review, and with clean labels. Then the projection's time for
``n x 512`` embeddings (PCA-50 then openTSNE), with PCA alone as the baseline.

    .venv/bin/python benchmarks/label_errors.py --quick      # 3,000 labels; map of 10,000
    .venv/bin/python benchmarks/label_errors.py              # 10,000 labels; map of 50,000
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from alaas_lab import datasets
from alaas_lab.models import LastLayerHead
from alaas_lab.worker.projection import project
from alaas_lab.worker.suspects import find_suspects, out_of_fold_proba

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MNIST = SHARED / "mnist"
LOADERS = {"mnist": (datasets.mnist, "mnist", "MNIST"),
           "fashion_mnist": (datasets.fashion_mnist, "fashion-mnist", "Fashion-MNIST")}


def load(data: str, n_train: int, n_test: int):
    loader, folder, _ = LOADERS[data]
    path = SHARED / folder if (SHARED / folder).is_dir() else None  # else: the user's cache
    train = loader(path, limit=n_train)
    test = loader(path, split="test", limit=n_test)
    flat = lambda d: (d.X.reshape(len(d.X), -1) / 255.0).astype(np.float32)  # noqa: E731
    return flat(train), np.asarray(train.y, np.int64), flat(test), np.asarray(test.y, np.int64)


def top1(X, y, X_test, y_test) -> float:
    head = LastLayerHead(10, seed=0, warm_start=False).fit(X, y, classes=np.arange(10))
    return float((head.predict(X_test) == y_test).mean())


def noisy_oracle(y: np.ndarray, rate: float, rng: np.random.Generator):
    wrong = rng.choice(y.size, int(round(rate * y.size)), replace=False)
    answers = y.copy()
    answers[wrong] = (y[wrong] + rng.integers(1, 10, wrong.size)) % 10
    return answers, wrong


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3,000 labels, a map of 10,000")
    ap.add_argument("--labels", type=int, default=None)
    ap.add_argument("--review-share", type=float, default=0.15,
                    help="review budget: at most this share of the labels (default 0.15)")
    ap.add_argument("--map-n", type=int, default=None, help="items in the timed projection")
    ap.add_argument("--data", default="mnist,fashion_mnist",
                    help="comma-separated: mnist, fashion_mnist")
    args = ap.parse_args()
    n = args.labels or (3000 if args.quick else 10_000)
    map_n = args.map_n or (10_000 if args.quick else 50_000)
    print(f"load before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    for data in args.data.split(","):
        review(data, n, args.review_share)
    project_timed(map_n)


def review(data: str, n: int, review_share: float) -> None:
    X, y, X_test, y_test = load(data, n, 2000)
    clean = top1(X, y, X_test, y_test)
    print(f"{LOADERS[data][2]}, {n} labels (raw pixels, linear head); top-1 with clean labels "
          f"{clean:.3f}")
    print(f"{'noise':>5} {'flagged':>7} {'budget':>6} {'precision':>9} {'recall':>6} "
          f"{'lift':>5} {'top-1 before':>12} {'after':>6} {'score s':>7}")
    for rate in (0.05, 0.10):
        rng = np.random.default_rng(int(rate * 100))
        answers, wrong = noisy_oracle(y, rate, rng)
        t0 = time.perf_counter()
        proba = out_of_fold_proba(X, answers, 10, seed=0, standardize_on=X)  # as the worker
        order = find_suspects(proba, answers)["order"]
        seconds = time.perf_counter() - t0
        budget = min(order.size, int(review_share * n))
        reviewed = order[:budget]
        hits = np.isin(reviewed, wrong)
        precision = float(hits.mean()) if budget else 0.0
        recall = float(hits.sum() / wrong.size)
        fixed = answers.copy()
        fixed[reviewed] = y[reviewed]  # the reviewer gives the true label
        before, after = top1(X, answers, X_test, y_test), top1(X, fixed, X_test, y_test)
        print(f"{rate:>5.0%} {order.size:>7} {budget:>6} {precision:>9.3f} {recall:>6.3f} "
              f"{precision / rate:>4.1f}x {before:>12.3f} {after:>6.3f} {seconds:>7.1f}")
        print(f"  noise {rate:.0%}: precision {precision:.3f} recall {recall:.3f} at a review "
              f"budget of {budget} ({budget / n:.1%} of the labels)")



def project_timed(map_n: int) -> None:
    """The projection: MNIST rows lifted to 512 dims (a fixed random map), like embeddings."""
    rows = datasets.mnist(MNIST if MNIST.is_dir() else None, limit=map_n)
    flat = (rows.X.reshape(len(rows.X), -1) / 255.0).astype(np.float32)
    lift = np.random.default_rng(0).normal(size=(flat.shape[1], 512)).astype(np.float32)
    E = np.maximum(flat @ lift / 10.0, 0)  # a ReLU layer's 512-d output
    threads = os.cpu_count() or 1
    t0 = time.perf_counter()
    project(E, method="pca")
    pca_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    xy, method = project(E, n_jobs=threads)
    tsne_s = time.perf_counter() - t0
    print(f"projection of {E.shape[0]:,} x {E.shape[1]} ({threads} threads): {method} "
          f"{tsne_s:.1f} s, PCA alone {pca_s:.1f} s (ratio {tsne_s / pca_s:.0f}x)")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
