"""Selection time of alaas_lab's strategies, round 1 (cold) and round 2 (warm), against peers.

One run prints one table, a row per strategy and budget k: CPU seconds of the
plain call (no state), of round 1 with a cold :class:`PoolState` (built inside
the timed call) and of round 2 with that state warm, after round 1's k picks
were labeled and the head refitted; then the peers' implementations of the same
strategy (scikit-activeml, ALiPy) on round 1's inputs (they keep nothing between
rounds, so their round 2 costs the same), and whether our slower round meets the
5 s goal. It also checks that round 1 with a state picks what the plain call
picks, and that ``kcenter_greedy`` picks exactly what the textbook greedy picks
(a plain float64 loop, one pass over the pool per pick) and what the peers pick.

Setup (the peers live in their own environment, ``make bench-env``; a missing one
is skipped)::

    python -m venv --system-site-packages .bench-venv
    .bench-venv/bin/pip install -r benchmarks/requirements.txt
    .bench-venv/bin/python benchmarks/strategies.py --pool 50000   # N=50,000, d=512, k=1,000
    .bench-venv/bin/python benchmarks/strategies.py --quick        # N=5,000, d=64, k=100

The pool is synthetic and seeded (``--seed``, default 0): a Gaussian mixture of
10 classes x 5 components in d dimensions (centres ~ N(0, 2^2 I), points =
centre + N(0, I)), float32, 100 random labeled items. The probabilities are a
real head's: alaas_lab's ``LastLayerHead`` (L-BFGS, one thread) fitted on the
labeled items' classes (about 87% accurate on the pool after 100 labels), and
its MC-dropout samples (``MC_SAMPLES`` = 20) for BALD; round 2 refits it on the
labeled set plus round 1's picks. ``--blob`` drops the cluster structure (all
centres at 0): the worst case for the k-center pruning.
Threads: every BLAS/OpenMP pool is limited to ``--threads`` (default 1: the
machine is shared and one thread per process gives stable numbers), for us and
the peers alike (threadpoolctl; torch, if installed, to one thread too).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ARGS = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ARGS.add_argument("--quick", action="store_true", help="small pool for a smoke run")
ARGS.add_argument("--pool", type=int, default=None, help="pool size N (default 50,000)")
ARGS.add_argument("--dim", type=int, default=None, help="embedding width d (default 512)")
ARGS.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1)")
ARGS.add_argument("--seed", type=int, default=0, help="seed of the synthetic pool")
ARGS.add_argument("--ks", default=None, help="comma-separated budgets (default 1000)")
ARGS.add_argument("--only", default=None, help="comma-separated strategy names")
ARGS.add_argument("--no-peers", action="store_true", help="time alaas_lab only")
ARGS.add_argument("--no-reference", action="store_true", help="skip the textbook k-center run")
ARGS.add_argument("--peer-max-k", type=int, default=None, help="skip peer runs above this k")
ARGS.add_argument(
    "--blob", action="store_true", help="structureless pool: one Gaussian blob (worst case)"
)
args = ARGS.parse_args()

# Thread pools read these when the libraries load: set them before importing numpy.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)

import warnings  # noqa: E402

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree
from alaas_lab import strategies as S  # noqa: E402
from alaas_lab.models.head import LastLayerHead  # noqa: E402

threadpool_limits(args.threads)
try:  # the head fits with L-BFGS (numpy/scipy); keep torch to the same budget if present
    import torch

    torch.set_num_threads(args.threads)
    TORCH = f"torch threads {torch.get_num_threads()}"
except ImportError:
    TORCH = "torch not installed"
warnings.filterwarnings("ignore")

N, D, KS = (5_000, 64, (100,)) if args.quick else (50_000, 512, (1_000,))
N = args.pool or N
D = args.dim or D
if args.ks:
    KS = tuple(int(k) for k in args.ks.split(","))
N_LABELED, N_CLASSES = 100, 10
GOAL_S = 5.0  # issue 15: 1,000 from 50,000 x 512 in <= 5 s on one thread


# ----------------------------------------------------------------------------- pool
def make_pool(n: int, d: int, seed: int):
    """Embeddings ``[n, d]`` float32, their classes ``[n]`` and a labeled mask of 100."""
    rng = np.random.default_rng(seed)
    n_comp = N_CLASSES * 5
    centres = (0.0 if args.blob else 2.0) * rng.standard_normal((n_comp, d))
    comp = rng.integers(0, n_comp, n)
    X = (centres[comp] + rng.standard_normal((n, d))).astype(np.float32)
    labeled = np.zeros(n, dtype=bool)
    labeled[rng.choice(n, N_LABELED, replace=False)] = True
    return X, comp // 5, labeled


def head_probs(X: np.ndarray, y: np.ndarray, labeled: np.ndarray, seed: int):
    """A real head fitted on the labeled items: ``(probs [N, C], mc [T, N, C], accuracy)``."""
    head = LastLayerHead(classes=N_CLASSES, threads=args.threads, seed=seed)
    head.fit(X[labeled], y[labeled])
    probs = head.predict_proba(X)
    mc = head.predict_proba_mc(X, S.MC_SAMPLES, np.random.default_rng(seed))
    return probs, mc, float((probs.argmax(axis=1) == y).mean())


def timed(fn, repeat: int = 3):
    """((cpu s, wall s) of the best call, result); repeats only calls under a second.

    CPU time is the primary measure: with one thread per library it equals wall
    time on a quiet machine, and it is far less distorted when other processes
    share the cores (wall time is printed too).
    """
    best, out = (np.inf, np.inf), None
    for i in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        t = (time.process_time() - c0, time.perf_counter() - w0)
        best = min(best, t)
        if t[1] > 1.0 or i + 1 == repeat:
            break
    return best, out


# ----------------------------------------------------------------------------- textbook
def textbook_kcenter(X: np.ndarray, labeled: np.ndarray, k: int) -> np.ndarray:
    """Plain incremental greedy in float64: one pass over the pool per pick."""
    X = np.asarray(X, dtype=np.float64)
    sq = np.einsum("ij,ij->i", X, X)
    mind = np.full(X.shape[0], np.inf)
    lab = np.flatnonzero(labeled)
    for s in range(0, lab.size, 256):
        L = lab[s : s + 256]
        D = sq[:, None] + sq[L][None, :] - 2.0 * (X @ X[L].T)
        np.minimum(mind, D.min(axis=1), out=mind)
    mind[lab] = -np.inf
    picks = np.empty(k, dtype=np.int64)
    for i in range(k):
        p = int(np.argmax(mind))
        picks[i] = p
        d = X @ X[p]
        d *= -2.0
        d += sq
        d += sq[p]
        np.minimum(mind, d, out=mind)
        mind[p] = -np.inf
    return picks


def explain_difference(X, labeled, ours, theirs) -> str:
    """Where a peer's k-center picks leave ours, and whether float32 rounding explains it."""
    if np.array_equal(ours, theirs):
        return "identical"
    i = int(np.argmax(ours != theirs))
    centers = np.r_[np.flatnonzero(labeled), ours[:i]]
    X64 = np.asarray(X, dtype=np.float64)

    def dist(p):
        return float(np.sqrt(((X64[centers] - X64[p]) ** 2).sum(axis=1)).min())

    a, b = dist(ours[i]), dist(theirs[i])
    tie = np.float32(a) == np.float32(b)
    why = (
        "equal once rounded to float32 (the peers keep float32 distances and break the tie"
        " by index or at random)"
        if tie
        else "NOT a float32 tie"
    )
    return (
        f"same first {i} picks, then pick {i}: ours at exact distance {a:.7f}, theirs "
        f"{b:.7f}: {why}"
    )


# ----------------------------------------------------------------------------- peers
def load_skactiveml():
    try:
        import skactiveml  # noqa: F401
        from skactiveml.pool import CoreSet, RandomSampling, TypiClust, uncertainty_scores
        from skactiveml.utils import simple_batch
    except ImportError as exc:
        return None, f"scikit-activeml not installed ({exc}); pip install scikit-activeml"

    def y_of(labeled):
        y = np.full(labeled.size, np.nan)
        y[labeled] = 0.0  # the label values play no part in these strategies
        return y

    def uncertainty(method):
        def run(k, X, probs, mc, labeled):
            unl = np.flatnonzero(~labeled)
            util = np.full(labeled.size, np.nan)
            util[unl] = uncertainty_scores(probs[unl], method=method)
            return simple_batch(util, random_state=0, batch_size=k)

        return run

    impl = {
        "random": lambda k, X, probs, mc, labeled: RandomSampling(random_state=0).query(
            X, y_of(labeled), batch_size=k
        ),
        "least_confidence": uncertainty("least_confident"),
        "margin": uncertainty("margin_sampling"),
        "entropy": uncertainty("entropy"),
        "kcenter_greedy": lambda k, X, probs, mc, labeled: CoreSet(random_state=0).query(
            X, y_of(labeled), batch_size=k
        ),
        "typiclust": lambda k, X, probs, mc, labeled: TypiClust(random_state=0).query(
            X, y_of(labeled), batch_size=k
        ),
    }
    impl["coreset"] = impl["kcenter_greedy"]  # its "CoreSet" is the greedy k-center
    return impl, None


def load_alipy():
    import collections
    import collections.abc

    shim = not hasattr(collections, "Iterable")
    if shim:  # ALiPy 1.2.5 uses collections.Iterable, removed in Python 3.10
        collections.Iterable = collections.abc.Iterable
    try:
        from alipy.index import IndexCollection
        from alipy.query_strategy.query_labels import (
            QueryInstanceCoresetGreedy,
            QueryInstanceRandom,
            QueryInstanceUncertainty,
        )
    except ImportError as exc:
        return None, f"ALiPy not installed ({exc}); pip install alipy"

    def uncertainty(measure):
        def run(k, X, probs, mc, labeled):
            unl = np.flatnonzero(~labeled)
            q = QueryInstanceUncertainty(measure=measure)
            return q.select_by_prediction_mat(unl, probs[unl].copy(), batch_size=k)

        return run

    def kcenter(k, X, probs, mc, labeled):
        q = QueryInstanceCoresetGreedy(X, np.zeros(X.shape[0]), np.arange(X.shape[0]))
        return q.select(np.flatnonzero(labeled), np.flatnonzero(~labeled), batch_size=k)

    def random(k, X, probs, mc, labeled):
        unl = IndexCollection(np.flatnonzero(~labeled).tolist())
        return QueryInstanceRandom().select(np.flatnonzero(labeled), unl, batch_size=k)

    impl = {
        "random": random,
        "least_confidence": uncertainty("least_confident"),
        "margin": uncertainty("margin"),
        "entropy": uncertainty("entropy"),
        "kcenter_greedy": kcenter,
        "coreset": kcenter,  # QueryInstanceCoresetGreedy is the greedy k-center
    }
    note = "ALiPy needs collections.Iterable; shimmed to collections.abc.Iterable" if shim else None
    return impl, note


PEER_NOTES = {
    "ratio": "no peer implements ratio of confidence",
    "dbal": "no peer implements DBAL",
    "bald": "scikit-activeml's BALD needs a fitted ensemble; ALiPy has none",
    "badge": "scikit-activeml's Badge needs a fitted classifier, builds [N, C*d]; ALiPy: none",
    "coreset": "peers' 'core-set' is the greedy k-center (ours: robust variant)",
    "typiclust": "scikit-activeml clusters into |L|+k (no cap), ours caps at 500",
}


# ----------------------------------------------------------------------------- main
def inputs_for(name: str, X, probs, mc, labeled, rng) -> dict:
    """The keyword inputs of ``S.select`` for strategy ``name``."""
    need = S.requirements(name)
    kw = {"labeled": labeled, "rng": rng}
    if "probs" in need:
        kw["probs"] = probs
    if "mc_probs" in need:
        kw["probs"] = mc
    if "embeddings" in need:
        kw["embeddings"] = X
    return kw


def two_rounds(name: str, k: int, X, y, labeled, probs, mc, repeat: int = 3):
    """Round 1 on a cold state (built inside the timing), round 2 on it warm.

    Round 2's labeled set is round 1's plus its ``k`` picks, and its
    probabilities come from the head refitted on them. Both rounds are repeated
    (from a fresh state) while each takes under a second; best times kept.

    Returns
    -------
    (t1, t2, picks1, counters) : cpu/wall pairs, round 1's picks, round 2's cache counters
    """
    best1 = best2 = (np.inf, np.inf)
    r2_inputs = None
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        state = S.PoolState(X)
        picks1 = S.select(name, k, state=state, **inputs_for(name, X, probs, mc, labeled, 1))
        t1 = (time.process_time() - c0, time.perf_counter() - w0)
        if r2_inputs is None:  # the same picks every repeat (same seed): fit once, untimed
            lab2 = labeled.copy()
            lab2[picks1] = True
            p2, mc2, _ = head_probs(X, y, lab2, seed=2)
            r2_inputs = inputs_for(name, X, p2, mc2, lab2, 2)
        before = dict(state.counters)
        c0, w0 = time.process_time(), time.perf_counter()
        S.select(name, k, state=state, **r2_inputs)
        t2 = (time.process_time() - c0, time.perf_counter() - w0)
        best1, best2 = min(best1, t1), min(best2, t2)
        if max(t1[1], t2[1]) > 1.0:
            break
    counters = {c: v - before.get(c, 0) for c, v in state.counters.items()
                if v != before.get(c, 0)}
    return best1, best2, picks1, counters


def fmt_counters(counters: dict) -> str:
    """``{'kcenter:reused': 1, ...}`` -> ``'reused 1, centers_applied 1000'``."""
    return ", ".join(f"{c.split(':', 1)[1]} {v}" for c, v in sorted(counters.items()))


def main() -> None:
    print(f"alaas_lab strategies benchmark {'(quick)' if args.quick else ''}")
    kind = (
        "ONE Gaussian blob"
        if args.blob
        else f"Gaussian mixture ({N_CLASSES} classes x 5 components)"
    )
    load0 = os.getloadavg()
    print(
        f"pool: N={N:,} x d={D} float32 {kind}, "
        f"{N_LABELED} labeled, seed={args.seed}; budgets k={', '.join(f'{k:,}' for k in KS)}"
    )
    blas = sorted({(i["internal_api"], i["num_threads"]) for i in threadpool_info()})
    print(
        f"threads: --threads {args.threads} -> OMP/OPENBLAS/MKL_NUM_THREADS={args.threads}, "
        f"threadpoolctl limits {blas}; {TORCH}; cpus={os.cpu_count()}, "
        f"load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} (1/5/15 min) at start"
    )
    X, y, labeled = make_pool(N, D, args.seed)
    probs, mc, acc = head_probs(X, y, labeled, seed=1)
    print(f"head: LastLayerHead (L-BFGS) on the {N_LABELED} labeled items, {acc:.1%} accurate "
          f"on the pool; BALD gets {S.MC_SAMPLES} MC-dropout samples")
    names = S.names() if not args.only else args.only.split(",")
    peers: dict[str, dict] = {}
    if not args.no_peers:
        for peer, loader in (("scikit-activeml", load_skactiveml), ("ALiPy", load_alipy)):
            impl, note = loader()
            if impl is None:
                print(f"note: skipping {peer}: {note}")
                continue
            if note:
                print(f"note: {note}")
            peers[peer] = impl

    rows = []
    picks: dict[tuple[str, int], np.ndarray] = {}
    peer_runs: dict[tuple[str, object, int], tuple[float, np.ndarray]] = {}
    mismatch = []
    for name in names:
        for k in KS:
            kw = inputs_for(name, X, probs, mc, labeled, 1)
            t_plain, plain = timed(lambda name=name, k=k, kw=kw: S.select(name, k, **kw))
            t1, t2, out, counters = two_rounds(name, k, X, y, labeled, probs, mc)
            if not np.array_equal(plain, out):
                mismatch.append(f"{name} k={k}")
            picks[(name, k)] = out
            peer_t = {}
            for peer, impl in peers.items():
                if name not in impl or (args.peer_max_k and k > args.peer_max_k):
                    continue
                if name == "typiclust" and k > 1_000:
                    continue  # |L| + k k-means clusters: hours at k=10,000
                fn = impl[name]
                key = (peer, fn, k)  # coreset maps to the same peer call as k-center
                if key not in peer_runs:
                    peer_runs[key] = timed(lambda fn=fn, k=k: fn(k, X, probs, mc, labeled))
                t, p = peer_runs[key]
                peer_t[peer] = t
                picks[(f"{peer}:{name}", k)] = np.asarray(p, dtype=np.int64)
            rows.append((name, k, t_plain, t1, t2, peer_t, fmt_counters(counters),
                         PEER_NOTES.get(name, "")))
            said = ", ".join(f"{p} {c:.2f}/{w:.2f}s" for p, (c, w) in peer_t.items())
            print(
                f"  measured {name} k={k}: plain {t_plain[0]:.2f}/{t_plain[1]:.2f}s, round 1 "
                f"{t1[0]:.2f}/{t1[1]:.2f}s, round 2 {t2[0]:.2f}/{t2[1]:.2f}s (cpu/wall) {said}",
                flush=True,
            )

    # ------------------------------------------------------------------ the table
    peer_names = list(peers)
    head = ["strategy", "k", "plain", "round 1 cold", "round 2 warm", f"<= {GOAL_S:g} s"]
    head += [f"{p}" for p in peer_names] + ["best peer / plain", "wall r1", "wall r2"]
    lines = []
    for name, k, t_plain, t1, t2, peer_t, cache, note in rows:
        worst = max(t1[0], t2[0])
        cells = [name, f"{k:,}", f"{t_plain[0]:.3f}", f"{t1[0]:.3f}", f"{t2[0]:.3f}",
                 "yes" if worst <= GOAL_S else "NO"]
        cells += [f"{peer_t[p][0]:.2f}" if p in peer_t else "-" for p in peer_names]
        best = min((t[0] for t in peer_t.values()), default=None)
        cells.append(f"{best / t_plain[0]:.1f}x" if best is not None and t_plain[0] > 0 else "-")
        cells += [f"{t1[1]:.3f}", f"{t2[1]:.3f}"]
        lines.append((cells, "; ".join(x for x in (f"round 2 state: {cache}" if cache else "",
                                                    note) if x)))
    widths = [max(len(head[i]), *(len(c[i]) for c, _ in lines)) for i in range(len(head))]
    fmt = " | ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    print()
    print("CPU seconds per selection (best of up to 3 runs under 1 s; 'wall' = wall seconds);"
          " plain = no state; round 1 builds its PoolState inside the timing; peers (stateless)"
          " on round 1's inputs, compared with our plain call")
    print(fmt.format(*head) + " | note")
    print("-|-".join("-" * w for w in widths) + "-|-----")
    for cells, note in lines:
        print(fmt.format(*cells) + f" | {note}")
    print()
    if mismatch:
        print(f"round 1 with a state picked differently from the plain call: {mismatch}")
    else:
        print("round 1 with a cold state picked exactly what the plain call picked, every row")

    # ------------------------------------------------------------------ k-center exactness
    if "kcenter_greedy" in names:
        for k in KS:
            ours = picks.get(("kcenter_greedy", k))
            if ours is None:
                continue
            checks = []
            if not args.no_reference:
                t_ref, ref = timed(lambda k=k: textbook_kcenter(X, labeled, k), repeat=1)
                same = np.array_equal(ours, ref)
                first = "" if same else f", first difference at pick {np.argmax(ours != ref)}"
                verdict = "identical" if same else "DIFFERENT"
                what = f"textbook float64 greedy (plain numpy loop, {t_ref[0]:.1f}s cpu)"
                checks.append(f"{what}: {verdict}{first}")
            for peer in peer_names:
                other = picks.get((f"{peer}:kcenter_greedy", k))
                if other is not None:
                    checks.append(f"{peer}: {explain_difference(X, labeled, ours, other)}")
            said = "; ".join(checks or ["(nothing to compare)"])
            print(f"kcenter_greedy k={k:,} picks vs {said}")
    load1 = os.getloadavg()
    print(f"\nload average {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} (1/5/15 min) at the end")


if __name__ == "__main__":
    main()
