"""One PSHEA round on a 20,000 x 512 float32 pool: fit, evaluate, forecast, select.

What the worker's ``strategy.type: auto`` does every round, for every surviving
candidate ``l`` (``alaas_lab/worker/auto.py``): fit that candidate's
:class:`~alaas_lab.models.LastLayerHead` on its own labeled set ``d^l`` (the seed
set plus its own picks; warm-started from last round's weights), evaluate it on
the evaluation set, let the controller (:class:`~alaas_lab.agent.pshea.Pshea`)
observe and forecast, then compute the head's probabilities on the pool and
select ``--k`` items with the candidate's strategy. Picks are labeled at once
(the true labels) and the next round starts.

The pool: the first ``--pool`` MNIST training images (``$ALAAS_LAB_MNIST_DIR``,
default ``/work/shared/data/mnist``), pixels in [0, 1] through a fixed Gaussian
random projection to ``--dim`` (512) float32, the "embeddings"; the evaluation
set: the first 2,000 test images, projected alike. Without the MNIST files a
seeded 10-class Gaussian mixture of the same shape is used (``--synthetic``
forces it). The seed set: ``--labeled`` (300) random pool items, shared by every
candidate. Controller: ``eliminate="none"`` so every candidate runs every round
(the worst case: the first strategy round of a run).

Two engines:

- ``--engine plain``: what the worker did before the round engine — per
  candidate ``strategies.select`` on fresh inputs, nothing kept between rounds
  except the heads (warm start) and nothing shared between candidates;
- ``--engine cached`` (default): :class:`alaas_lab.strategies.RoundEngine` — one
  :class:`~alaas_lab.strategies.PoolState` per pool (validated once, k-means
  warm-started, k-center distances updated with only the new centers, TypiClust's
  clustering kept), heads fitted once per distinct labeled set and their
  probabilities shared between candidates.

Round 1 is the cold round (nothing cached; the heads come warm from the seed
round, as in the worker); the table gives each round's seconds per candidate
and step (fit, evaluate, select; select includes the probabilities), the
forecast, the round's wall and CPU time and its ratio to round 1. The goal
(issue 13): a round in <= 3 s on the 2-core machine. ``--prepare`` calls
``RoundEngine.prepare`` during the seed round (the labeling time) and prints its
time apart. Everything runs under ``--threads`` BLAS threads (default 1; 0: the
libraries' default). Results: ``benchmarks/results/pshea_round.txt``.

    .venv/bin/python benchmarks/pshea_round.py --quick            # 4,000 x 512, 3 rounds
    .venv/bin/python benchmarks/pshea_round.py                    # 20,000 x 512, 4 rounds
    .venv/bin/python benchmarks/pshea_round.py --prepare --rounds 8
    .venv/bin/python benchmarks/pshea_round.py --engine plain     # the old path
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree

from alaas_lab import strategies  # noqa: E402
from alaas_lab.agent.pshea import Pshea  # noqa: E402
from alaas_lab.agent.round import RoundEngine  # noqa: E402
from alaas_lab.models import LastLayerHead  # noqa: E402

MNIST_DIR = os.environ.get("ALAAS_LAB_MNIST_DIR", "/work/shared/data/mnist")
_MC = 20  # dropout samples for bald, as the worker uses


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--labeled", type=int, default=300, help="seed set size")
    p.add_argument("--k", type=int, default=50, help="items each candidate selects per round")
    p.add_argument("--rounds", type=int, default=4, help="strategy rounds (the first is cold)")
    p.add_argument("--candidates", default="", help="comma-separated; default the whole zoo")
    p.add_argument("--engine", choices=("cached", "plain"), default="cached")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads for everything timed (0: the libraries' default)")
    p.add_argument("--prepare", action="store_true",
                   help="cached engine: prepare() while the seed round is labeled (timed apart)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic", action="store_true", help="Gaussian mixture, not MNIST")
    p.add_argument("--quick", action="store_true", help="4,000 x 512, 3 rounds")
    a = p.parse_args(argv)
    if a.quick:
        a.pool, a.rounds = min(a.pool, 4000), min(a.rounds, 3)
    return a


def load_pool(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                                  str]:
    """``(X, y, X_eval, y_eval, description)``, embeddings float32 ``(n, dim)``."""
    rng = np.random.default_rng(args.seed)
    if not args.synthetic and Path(MNIST_DIR).is_dir():
        from alaas_lab.datasets import mnist

        tr = mnist(MNIST_DIR, split="train", limit=args.pool)
        te = mnist(MNIST_DIR, split="test", limit=2000)
        P = rng.standard_normal((tr.X.shape[1], args.dim)).astype(np.float32)
        P /= np.sqrt(tr.X.shape[1])
        X = np.ascontiguousarray(tr.X @ P, dtype=np.float32)
        Xe = np.ascontiguousarray(te.X @ P, dtype=np.float32)
        return X, tr.y, Xe, te.y, f"MNIST train[:{args.pool}] -> random projection {args.dim}-d"
    n, d, c = args.pool + 2000, args.dim, 10
    means = rng.standard_normal((c, d)) * 1.5
    y = rng.integers(c, size=n)
    X = (means[y] + rng.standard_normal((n, d))).astype(np.float32)
    return X[:-2000], y[:-2000], X[-2000:], y[-2000:], f"Gaussian mixture {c} classes, {d}-d"


class PlainEngine:
    """The worker's round before the round engine: nothing shared, nothing kept."""

    def __init__(self, X: np.ndarray, classes: int, candidates: list[str]) -> None:
        self.X = X
        self.classes = classes
        self.heads = {c: LastLayerHead(classes, threads=1) for c in candidates}

    def fit(self, name: str, rows: np.ndarray, y: np.ndarray) -> LastLayerHead:
        head = self.heads[name]
        head.fit(self.X[rows], y[rows], classes=np.arange(self.classes), standardize_on=self.X)
        return head

    def select(self, name: str, k: int, labeled: np.ndarray, rng: np.random.Generator,
               head: LastLayerHead) -> np.ndarray:
        needs = strategies.requirements(name)
        inputs: dict[str, Any] = {}
        if needs & {"probs", "mc_probs"}:
            inputs["probs"] = (head.predict_proba_mc(self.X, _MC, rng) if "mc_probs" in needs
                               else head.predict_proba(self.X))
        if "embeddings" in needs:
            inputs["embeddings"] = self.X
        return strategies.select(name, k, labeled=labeled, rng=rng, **inputs)


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    X, y, Xe, ye, what = load_pool(args)
    t_load = time.perf_counter() - t0
    n = X.shape[0]
    cands = [c for c in args.candidates.split(",") if c] or strategies.names()
    for c in cands:  # import the strategies (and scikit-learn for DBAL) outside the timings
        strategies.registry[c].load()
    if "dbal" in cands or args.engine == "plain":
        import sklearn.cluster  # noqa: F401
    rng0 = np.random.default_rng(args.seed)
    seed = rng0.choice(n, size=args.labeled, replace=False)
    members = {c: np.zeros(n, dtype=bool) for c in cands}
    for m in members.values():
        m[seed] = True
    ctrl = Pshea(cands, budget_per_round=args.k, initial=args.labeled, eliminate="none",
                 max_rounds=args.rounds + 1, min_delta=0.0)

    engine: Any
    if args.engine == "plain":
        engine = PlainEngine(X, 10, cands)
    else:
        engine = RoundEngine(X, classes=10)
    print(f"pool {what}: {n} x {X.shape[1]} float32 (loaded in {t_load:.1f} s); eval "
          f"{Xe.shape[0]}; seed set {args.labeled}; k {args.k} per candidate; "
          f"{len(cands)} candidates; engine {args.engine}; BLAS threads "
          f"{args.threads or 'default'}; load average {_load()}")

    def fit_all(per: dict[str, dict[str, float]]) -> dict[str, float]:
        accs = {}
        for c in cands:
            t = time.perf_counter()
            rows = np.flatnonzero(members[c])
            head = engine.fit(c, rows, y) if args.engine == "plain" else engine.fit(
                c, rows, y[rows])
            t_fit = time.perf_counter() - t
            t = time.perf_counter()
            accs[c] = head.evaluate(Xe, ye)["top1"]
            per.setdefault(c, {}).update(fit=t_fit, eval=time.perf_counter() - t)
        return accs

    # the seed round: every head fitted from zero on the shared seed set
    t = time.perf_counter()
    accs = fit_all({})
    ctrl.observe(ctrl.round, accs[cands[0]], labels_spent=args.labeled)
    print(f"seed round: {len(cands)} heads fitted from zero in {time.perf_counter() - t:.2f} s")
    if args.prepare and args.engine == "cached":
        t = time.perf_counter()
        engine.prepare(members[cands[0]], args.k, names=cands, seed=args.seed)
        print(f"prepare (while the seed round is labeled): {time.perf_counter() - t:.2f} s")
    rounds: list[dict[str, Any]] = []
    for r in range(1, args.rounds + 1):
        per: dict[str, dict[str, float]] = {}
        t_round = time.perf_counter()
        cpu_round = time.process_time()
        # --- query: every survivor selects with its head
        picks = {}
        for c in cands:
            rng = np.random.default_rng([args.seed, r, 1 + cands.index(c)])
            t = time.perf_counter()
            if args.engine == "plain":
                picks[c] = engine.select(c, args.k, members[c], rng, engine.heads[c])
            else:
                picks[c] = engine.select(c, args.k, labeled=members[c], rng=rng)
            per[c] = {"select": time.perf_counter() - t}
        for c in cands:  # the human labels the picks
            assert picks[c].size == args.k and not members[c][picks[c]].any()
            members[c][picks[c]] = True
        # --- finish: fit and evaluate every survivor, the controller observes
        accs = fit_all(per)
        t = time.perf_counter()
        ctrl.observe(ctrl.round, accs, labels_spent=0, labels_sum=0,
                     n_labeled={c: int(members[c].sum()) for c in cands})
        t_forecast = time.perf_counter() - t
        wall = time.perf_counter() - t_round
        rounds.append({"round": r, "wall": wall, "cpu": time.process_time() - cpu_round,
                       "forecast": t_forecast, "per": per, "acc": accs})
        print_round(rounds[-1], rounds[0]["wall"])
    print_table(rounds, cands)
    if args.engine == "cached":
        print(f"engine: {engine.counters}; pool state: {dict(engine.state.counters)}")
    print(f"load average at the end {_load()}")
    return {"rounds": rounds}


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"


def print_round(rec: dict[str, Any], cold: float) -> None:
    print(f"  round {rec['round']}: {rec['wall']:.2f} s wall, {rec['cpu']:.2f} s cpu "
          f"({rec['wall'] / cold:.2f} x round 1)", flush=True)


def print_table(rounds: list[dict[str, Any]], cands: list[str]) -> None:
    w = max(len(c) for c in cands + ["forecast"])
    head = f"{'strategy':<{w}} " + " ".join(
        f"{'r' + str(r['round']) + ' fit/eval/select s':>26}" for r in rounds)
    print(head)
    print("-" * len(head))
    for c in cands:
        cells = []
        for r in rounds:
            p = r["per"][c]
            cells.append(f"{p['fit']:>8.3f}{p['eval']:>9.3f}{p['select']:>9.3f}")
        print(f"{c:<{w}} " + " ".join(cells))
    print(f"{'forecast':<{w}} " + " ".join(f"{r['forecast']:>26.3f}" for r in rounds))
    cold = rounds[0]["wall"]
    print(f"{'round wall s':<{w}} " + " ".join(f"{r['wall']:>26.2f}" for r in rounds))
    print(f"{'round cpu s':<{w}} " + " ".join(f"{r['cpu']:>26.2f}" for r in rounds))
    print(f"{'x round 1':<{w}} " + " ".join(f"{r['wall'] / cold:>26.2f}" for r in rounds))
    acc = " ".join(f"{100 * max(r['acc'].values()):>25.1f}%" for r in rounds)
    print(f"{'best top-1':<{w}} {acc}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=args.threads):
            return run(args)
    return run(args)


if __name__ == "__main__":
    main()
