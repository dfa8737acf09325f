"""PSHEA against running every strategy every round: the paper's Fig. 5 on digits and MNIST.

For each data set and seed it runs, with :func:`alaas_lab.agent.run_pshea`:

* **brute force**: every candidate every round (``eliminate="none"``), which gives
  each strategy's whole learning curve, the best single strategy in hindsight,
  and a forecast for every strategy at every round;
* **PSHEA, Algorithm 1**: one strategy eliminated per round (``eliminate="one"``);
* **PSHEA, halving**: the worse half eliminated per round (``eliminate="half"``).

All three start from the same seed set and each strategy picks exactly what it
picks alone (same seed), so the runs differ only in who keeps running. The
convergence rule is off (``min_delta=0``) so that every run lasts the 8 rounds.

Reported (mean +- std over seeds): the forecast error per round (MAE in accuracy
points of the forecast made one round earlier, over every strategy of the
brute-force runs, by how many points it was made from), the winner per budget
level, labels spent (the paper's sum over strategies, and unique labels asked of
the oracle when candidates reuse each other's labels), and PSHEA's final accuracy
against the best single strategy in hindsight and against random. A figure of
predicted against actual accuracy goes to ``benchmarks/results/pshea.png``.

Set-ups
    digits: 1,797 8x8 images, 25% held out for testing (449), pool 1,348, seed set
    20, 20 labels per strategy per round. MNIST: pixels flattened and scaled to
    [0, 1]; pool = the first 10,000 training images, test = the first 2,000 test
    images (a subset, for time), seed set 100, 100 per strategy per round. Head:
    the linear last layer (L-BFGS), one BLAS thread per process.

Run::

    .venv/bin/python benchmarks/pshea.py            # both data sets, 3 seeds, 8 rounds
    .venv/bin/python benchmarks/pshea.py --quick    # smoke run: small, 4 candidates
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ARGS = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ARGS.add_argument("--quick", action="store_true", help="smoke run: small pools, 4 candidates")
ARGS.add_argument("--seeds", type=int, default=None, help="seeds per data set (default 3)")
ARGS.add_argument("--rounds", type=int, default=None, help="strategy rounds (default 8)")
ARGS.add_argument("--datasets", default="digits,mnist", help="comma-separated: digits,mnist")
ARGS.add_argument("--mnist", default=None, help="MNIST folder (default ../shared/data/mnist)")
ARGS.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
ARGS.add_argument("--out", default=None, help="figure path (default benchmarks/results/pshea.png)")
args = ARGS.parse_args() if __name__ == "__main__" else ARGS.parse_args([])

# one BLAS thread per process: set before numpy loads (see the head's docstring)
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the source tree

from alaas_lab import strategies  # noqa: E402
from alaas_lab.agent import run_pshea  # noqa: E402

ROUNDS = args.rounds or (4 if args.quick else 8)
SEEDS = args.seeds or (1 if args.quick else 3)
MNIST_DIR = args.mnist or str(ROOT.parent / "shared" / "data" / "mnist")
QUICK_CANDIDATES = ["random", "margin", "entropy", "kcenter_greedy"]
#: Strategies left out, per data set, and why.
SKIP = {
    "mnist": {"typiclust": "k-means over the whole 10,000-item pool every round: about 3 "
                           "minutes per run here, more than the rest of a seed together"},
}
SETUPS = {
    "digits": {"initial": 20, "k": 20},
    "mnist": {"initial": 100, "k": 100},
}
VARIANTS = ("brute", "one", "half")

_DATA: dict[str, tuple] = {}


def load(name: str):
    """(X_pool, y_pool, X_test, y_test) of a data set (cached per process)."""
    if name in _DATA:
        return _DATA[name]
    from alaas_lab import datasets

    if name == "digits":
        d = datasets.digits()
        out = (d.X, d.y, None, None)  # run_pshea holds out 25% with the run's seed
    else:
        n_pool, n_test = (2000, 500) if args.quick else (10_000, 2000)
        train = datasets.mnist(MNIST_DIR, split="train", limit=n_pool)
        test = datasets.mnist(MNIST_DIR, split="test", limit=n_test)
        out = (train.X, train.y, test.X, test.y)
    _DATA[name] = out
    return out


def candidates(name: str) -> list[str]:
    if args.quick:
        return list(QUICK_CANDIDATES)
    return [s for s in strategies.names() if s not in SKIP.get(name, {})]


def run_one(task: tuple[str, int, str]) -> dict:
    """One run; returns what the report needs (plain Python)."""
    name, seed, variant = task
    X, y, X_te, y_te = load(name)
    setup = SETUPS[name]
    t0 = time.perf_counter()
    res = run_pshea(
        X, y, X_test=X_te, y_test=y_te, candidates=candidates(name),
        budget_per_round=setup["k"], initial_labeled=setup["initial"], rounds=ROUNDS,
        seed=seed, eliminate="none" if variant == "brute" else variant, min_delta=0,
        head_params={"threads": 1})
    ctrl = res.controller
    return {
        "dataset": name, "seed": seed, "variant": variant,
        "seconds": time.perf_counter() - t0,
        "curves": {s: res.curve(s).tolist() for s in ctrl.candidates},
        "forecasts": res.forecast_errors(),
        "eliminated": dict(ctrl.eliminated),
        "winner": res.winner, "final": res.final_accuracy,
        "unique": res.labels_unique, "sum": res.labels_sum,
        "n_pool": res.n_pool, "n_test": res.n_test,
        "query_s": {s: float(sum(r.query_seconds for r in rs)) for s, rs in res.records.items()},
    }


def pm(values, scale: float = 1.0, digits: int = 2) -> str:
    v = np.asarray(values, dtype=float) * scale
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def report(name: str, runs: list[dict]) -> tuple[str, dict]:
    brute = sorted((r for r in runs if r["variant"] == "brute"), key=lambda r: r["seed"])
    seeds = [r["seed"] for r in brute]
    cands = list(brute[0]["curves"])
    setup = SETUPS[name]
    lines = [f"## {name}: pool {brute[0]['n_pool']}, test {brute[0]['n_test']}, seed set "
             f"{setup['initial']}, {setup['k']} per strategy per round, {ROUNDS} rounds, "
             f"seeds {seeds}, {len(cands)} candidates"]
    if SKIP.get(name) and not args.quick:
        lines.append("skipped: " + "; ".join(f"{s} ({why})" for s, why in SKIP[name].items()))

    # forecast error per predicted round, over every strategy of the brute-force runs
    lines += ["", "Forecast error (brute-force runs: every strategy, every round), accuracy "
              "points", f"{'round':>5}  {'from':>6}  {'MAE':>13}  {'n':>4}  models"]
    all_err, used_err = [], []
    summary: dict = {}
    for rnd in range(1, ROUNDS + 1):
        per_seed, models, n_pts, n = [], {}, set(), 0
        for r in brute:
            errs = [abs(f["predicted"] - f["actual"]) for f in r["forecasts"]
                    if f["round"] == rnd]
            per_seed.append(100 * np.mean(errs))
            n += len(errs)
            for f in r["forecasts"]:
                if f["round"] == rnd:
                    models[f["model"]] = models.get(f["model"], 0) + 1
                    n_pts.add(f["n_points"])
            if rnd >= 2:
                all_err += [100 * e for e in errs]
        note = "  (1 point: last value, never used to eliminate)" if rnd == 1 else ""
        lines.append(f"{rnd:>5}  {min(n_pts):>3} pt  {pm(per_seed):>13}  {n:>4}  "
                     + ", ".join(f"{m} {c}" for m, c in sorted(models.items())) + note)
    mae = float(np.mean(all_err))
    for r in runs:
        if r["variant"] == "one":
            used_err += [100 * abs(f["predicted"] - f["actual"]) for f in r["forecasts"]
                         if f["round"] >= 2]
    lines.append(f"MAE rounds 2..{ROUNDS}: {mae:.2f} points (goal <= 1.5); on the forecasts "
                 f"PSHEA (Algorithm 1) met in its own runs: {np.mean(used_err):.2f}")
    summary["mae"] = mae

    # winner per budget level
    curves = {s: np.array([r["curves"][s] for r in brute]) for s in cands}  # (seeds, R+1)
    lines += ["", "Winner per budget level (brute force, mean over seeds)",
              f"{'round':>5}  {'labels':>6}  {'best':<18} {'top-1 %':>13}  {'runner-up':<18} "
              f"{'top-1 %':>13}  {'random %':>13}"]
    for rnd in range(1, ROUNDS + 1):
        order = sorted(cands, key=lambda s: -curves[s][:, rnd].mean())
        a, b = order[0], order[1]
        lines.append(
            f"{rnd:>5}  {setup['initial'] + rnd * setup['k']:>6}  {a:<18} "
            f"{pm(curves[a][:, rnd], 100):>13}  {b:<18} {pm(curves[b][:, rnd], 100):>13}  "
            f"{pm(curves['random'][:, rnd], 100):>13}")

    # labels and final accuracy
    best_fixed = max(cands, key=lambda s: curves[s][:, -1].mean())
    oracle = np.max([curves[s][:, -1] for s in cands], axis=0)  # best per seed
    rand = curves["random"][:, -1]
    lines += ["", f"Labels and final accuracy after {ROUNDS} rounds (mean ± std over seeds)",
              f"{'run':<22} {'labels (sum)':>15} {'labels (unique)':>17} {'% of brute':>16} "
              f"{'top-1 %':>13} {'vs best':>8}  winners"]
    b_sum = np.array([r["sum"] for r in brute], float)
    b_uni = np.array([r["unique"] for r in brute], float)
    lines.append(f"{'brute force (all)':<22} {pm(b_sum, 1, 0):>15} {pm(b_uni, 1, 0):>17} "
                 f"{'100 / 100':>16} {pm(oracle, 100):>13} {'1.000':>8}  best per seed")
    summary["oracle"] = float(oracle.mean())
    for variant, label in (("one", "PSHEA (Algorithm 1)"), ("half", "PSHEA halving")):
        vr = sorted((r for r in runs if r["variant"] == variant), key=lambda r: r["seed"])
        s_ = np.array([r["sum"] for r in vr], float)
        u_ = np.array([r["unique"] for r in vr], float)
        fin = np.array([r["final"] for r in vr])
        share = f"{100 * (s_ / b_sum).mean():.0f} / {100 * (u_ / b_uni).mean():.0f}"
        ratio = (fin / oracle).mean()
        winners = ", ".join(r["winner"] for r in vr)
        lines.append(f"{label:<22} {pm(s_, 1, 0):>15} {pm(u_, 1, 0):>17} {share:>16} "
                     f"{pm(fin, 100):>13} {ratio:>8.3f}  {winners}")
        summary[variant] = {"ratio": float(ratio), "labels_sum": float((s_ / b_sum).mean()),
                            "labels_unique": float((u_ / b_uni).mean()),
                            "vs_fixed": float((fin / curves[best_fixed][:, -1]).mean())}
    lines.append(f"{'best fixed: ' + best_fixed:<22} {'':>15} {'':>17} {'':>16} "
                 f"{pm(curves[best_fixed][:, -1], 100):>13} "
                 f"{(curves[best_fixed][:, -1] / oracle).mean():>8.3f}")
    lines.append(f"{'random':<22} {'':>15} {'':>17} {'':>16} {pm(rand, 100):>13} "
                 f"{(rand / oracle).mean():>8.3f}")
    lines.append("'% of brute': labels as a share of brute force's, sum / unique; 'vs best': "
                 "final top-1 over the best strategy of the same seed (in hindsight).")
    secs = {v: sum(r["seconds"] for r in runs if r["variant"] == v) for v in VARIANTS}
    lines.append("run time, all seeds: " + ", ".join(f"{v} {s:.0f} s" for v, s in secs.items()))
    return "\n".join(lines), summary


def figure(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(len(names), 2, figsize=(13, 4.6 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        runs = results[name]
        run = min((r for r in runs if r["variant"] == "one"), key=lambda r: r["seed"])
        brute = next(r for r in runs if r["variant"] == "brute" and r["seed"] == run["seed"])
        setup = SETUPS[name]
        ax = axes[row][0]
        cmap = plt.get_cmap("tab20")
        for i, s in enumerate(brute["curves"]):
            color = cmap((2 * i) % 20 + (2 * i // 20) % 2)  # dark shades first
            full = np.array(brute["curves"][s]) * 100
            x = setup["initial"] + setup["k"] * np.arange(full.size)
            ax.plot(x, full, color=color, lw=0.8, alpha=0.35)
            mine = np.array(run["curves"][s]) * 100
            ax.plot(x[: mine.size], mine, color=color, lw=2, label=s)
            fc = [f for f in run["forecasts"] if f["strategy"] == s and f["round"] >= 2]
            ax.scatter([x[f["round"]] for f in fc], [100 * f["predicted"] for f in fc],
                       color=color, marker="x", s=30, zorder=3)
            if s in run["eliminated"]:
                r = run["eliminated"][s]
                ax.scatter([x[r]], [mine[r]], color=color, marker="o", s=60,
                           facecolors="none", zorder=4)
        ax.set_title(f"{name}, seed {run['seed']}: PSHEA (Algorithm 1) — bold: run, "
                     f"thin: brute force,\nx: forecast made a round earlier, o: eliminated; "
                     f"winner {run['winner']}", fontsize=9)
        ax.set_xlabel("labels per strategy")
        ax.set_ylabel("test top-1 accuracy (%)")
        ax.legend(fontsize=7, ncol=2, loc="lower right")
        ax = axes[row][1]
        pred = np.array([f["predicted"] for r in runs if r["variant"] == "brute"
                         for f in r["forecasts"] if f["round"] >= 2]) * 100
        act = np.array([f["actual"] for r in runs if r["variant"] == "brute"
                        for f in r["forecasts"] if f["round"] >= 2]) * 100
        rnd = np.array([f["round"] for r in runs if r["variant"] == "brute"
                        for f in r["forecasts"] if f["round"] >= 2])
        sc = ax.scatter(act, pred, c=rnd, cmap="viridis", s=10)
        lo, hi = min(act.min(), pred.min()) - 1, max(act.max(), pred.max()) + 1
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("actual accuracy (%)")
        ax.set_ylabel("forecast a round earlier (%)")
        ax.set_title(f"{name}: every strategy, round and seed (brute force); MAE "
                     f"{np.abs(pred - act).mean():.2f} points", fontsize=9)
        fig.colorbar(sc, ax=ax, label="round")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    from concurrent.futures import ProcessPoolExecutor

    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    tasks = [(n, seed, v) for n in reversed(names) for seed in range(SEEDS) for v in VARIANTS]
    t0 = time.perf_counter()
    print(f"PSHEA benchmark: {', '.join(names)}; {SEEDS} seed(s); {ROUNDS} rounds; "
          f"{len(tasks)} runs on {args.jobs} process(es)", flush=True)
    out: list[dict] = []
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            for r in pool.map(run_one, tasks):
                print(f"  {r['dataset']} seed {r['seed']} {r['variant']}: {r['seconds']:.0f} s",
                      flush=True)
                out.append(r)
    else:
        for task in tasks:
            out.append(run_one(task))
            r = out[-1]
            print(f"  {r['dataset']} seed {r['seed']} {r['variant']}: {r['seconds']:.0f} s",
                  flush=True)
    results = {n: [r for r in out if r["dataset"] == n] for n in names}
    print()
    for n in names:
        text, _ = report(n, results[n])
        print(text + "\n", flush=True)
    path = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / "pshea.png"
    figure(results, path)
    print(f"figure: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    print(f"total wall time: {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
