"""The ALaaS paper's Table 2 at this machine's scale: one least-confidence round on MNIST.

An initial ResNet-18 is trained on a random ``--init`` (10,000) MNIST training images;
its weights go to a file that the worker (a separate process, ``name: resnet18``,
``weights: <file>``) loads. The rest of the training set provides a pool of ``--pool``
images, stored as PNG files (a) on local disk and (b) in a local S3 server (moto,
started here on 127.0.0.1). One round selects a quarter of the pool with least
confidence, timed from "the pool is in storage" to "the selection is known":

- alaas_lab, cold embedding cache: ``client.push_data(["<dir or s3 prefix>/*.png"])``
  then ``client.query(pool // 4)``, in a fresh session and a fresh cache;
- alaas_lab, warm cache: the same pool pushed into a new session on the same cache_dir;
- modAL (the real package), the way its users do it: list, read every file one by one
  (PIL; s3fs ``open``/``read`` for S3), embed with the same backbone in batches, then
  ``ActiveLearner.query`` with ``modAL.uncertainty.uncertainty_sampling``.

The worker gets the initial model's labels the way its protocol allows (labels only
for items a query returned): the ``--init`` images are pushed alone, selected by one
``random`` query and labeled (round 1, the head is fitted on them); the test images go
in with ``role="eval"``. After the timed selection the selected items get their true
labels (``client.label_many`` / modAL ``teach``), the last layer is refit, and top-1 /
top-5 are measured on ``--test`` images of the MNIST test set. modAL's estimator is an
sklearn wrapper of the same :class:`~alaas_lab.models.LastLayerHead`. Each pipeline
stage is also timed alone on the same items (lookup, fetch, decode, embed) to get the
pipeline efficiency (slowest stage alone / pipeline wall time), and the calls the push
makes before its pipeline are timed one by one.

    .venv/bin/pip install modAL-python
    .venv/bin/python benchmarks/one_round.py --quick             # pool 2,000: smoke run
    .venv/bin/python benchmarks/one_round.py --pool 8000 --out results.json

Everything lives in a temporary folder that is removed at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import glob
import inspect
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the source tree

from alaas_lab.cache import item_identity  # noqa: E402
from alaas_lab.config import load_config  # noqa: E402
from alaas_lab.data import Decoder, Fetcher, expand  # noqa: E402
from alaas_lab.datasets import mnist  # noqa: E402
from alaas_lab.models import LastLayerHead  # noqa: E402
from alaas_lab.pipeline import thread_plan  # noqa: E402
from alaas_lab.server import Server  # noqa: E402
from alaas_lab.worker.state import PoolSession  # noqa: E402

MNIST_DIR = os.environ.get("ALAAS_LAB_MNIST_DIR", "/work/shared/data/mnist")
BUCKET = "alaas-bench"
CLASSES = [str(i) for i in range(10)]
S3_KEYS = {"key": "testing", "secret": "testing"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pool", type=int, default=20_000, help="pool size (default 20,000)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: pool 2,000, init 2,000, test 500, 1 epoch")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits and the training")
    p.add_argument("--epochs", type=int, default=2, help="epochs of the initial model (default 2)")
    p.add_argument("--init", type=int, default=10_000, help="labeled images of the initial model")
    p.add_argument("--test", type=int, default=2_000, help="MNIST test images to score on")
    p.add_argument("--size", type=int, default=32, help="input side of the ResNet-18 (default 32)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="embedding batch, worker (model.batch_size) and modAL path alike")
    p.add_argument("--out", default=None, help="write every figure as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args(argv)
    if args.quick:
        args.pool, args.init, args.test = 2_000, 2_000, 500
        args.epochs = min(args.epochs, 1)
    if args.init + args.pool > 60_000:
        p.error(f"--init + --pool must be <= 60,000 (MNIST's training set); got "
                f"{args.init + args.pool}")
    if args.pool < 8:
        p.error("--pool must be >= 8")
    return args


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load() -> float:
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


try:  # Linux: the moto server gets SIGTERM if this script dies
    import ctypes

    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl if sys.platform == "linux" else None
except OSError:
    _prctl = None


def _die_with_parent() -> None:
    _prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        preexec_fn=_die_with_parent if _prctl is not None else None)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return proc, url
        except urllib.error.HTTPError:
            return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"moto server at {url} did not answer within 30 s")


def stop_proc(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class CPU:
    """CPU seconds (user + system) of some processes between start() and stop()."""

    def __init__(self, pids: dict[str, int]) -> None:
        try:
            import psutil

            self.procs = {k: psutil.Process(p) for k, p in pids.items()}
        except Exception:  # psutil missing or a process gone: no CPU figures
            self.procs = {}
        self.start_t: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {}
        for k, p in self.procs.items():
            try:
                t = p.cpu_times()
                out[k] = t.user + t.system
            except Exception:
                out[k] = float("nan")
        return out

    def start(self) -> CPU:
        self.start_t = self._now()
        return self

    def stop(self) -> dict[str, float]:
        end = self._now()
        return {k: round(end[k] - self.start_t.get(k, end[k]), 2) for k in end}


# ---------------------------------------------------------------- modAL side


def modal_estimator() -> Any:
    """An sklearn classifier wrapping alaas_lab's LastLayerHead (modAL needs sklearn's API)."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class HeadClassifier(ClassifierMixin, BaseEstimator):
        """Same model family as the worker's head: linear softmax, L-BFGS, warm refits."""

        def __init__(self, n_classes: int = 10, seed: int = 0) -> None:
            self.n_classes = n_classes
            self.seed = seed

        def fit(self, X: np.ndarray, y: np.ndarray) -> HeadClassifier:
            if not hasattr(self, "head_"):
                self.head_ = LastLayerHead(self.n_classes, seed=self.seed)
            self.head_.fit(np.asarray(X), np.asarray(y))
            self.classes_ = self.head_.classes_
            return self

        def predict_proba(self, X: np.ndarray) -> np.ndarray:
            return self.head_.predict_proba(X)

        def predict(self, X: np.ndarray) -> np.ndarray:
            return self.head_.predict(X)

    return HeadClassifier


def read_local(paths: list[str]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("L")) for p in paths])


def read_s3(fs: Any, keys: list[str]) -> np.ndarray:
    from PIL import Image

    out = []
    for k in keys:
        with fs.open(k, "rb") as f:
            data = f.read()
        out.append(np.asarray(Image.open(io.BytesIO(data)).convert("L")))
    return np.stack(out)


def best_threads(bb: Any, image: np.ndarray, batch_size: int, cores: int
                 ) -> tuple[int, dict[int, int]]:
    """Torch threads (1 or all cores) that embed faster right now; sets them."""
    import torch

    batch = [bb.preprocess(image[0])] * batch_size
    rates = {}
    for th in sorted({1, cores}):
        torch.set_num_threads(th)
        bb.embed(batch)
        t = time.perf_counter()
        for _ in range(6):
            bb.embed(batch)
        rates[th] = round(6 * batch_size / (time.perf_counter() - t))
    best = max(rates, key=rates.get)
    torch.set_num_threads(best)
    threadpool_limits(best)
    return best, rates


def run_modal(name: str, list_and_read: Any, bb: Any, seed_X: np.ndarray, seed_y: np.ndarray,
              test_X: np.ndarray, test_y: np.ndarray, pool_y: np.ndarray, k: int,
              batch_size: int, threads: int, seed: int, cpu: CPU) -> dict[str, Any]:
    """List + read + embed + query, timed; then teach the selection and score."""
    import torch
    from modAL.models import ActiveLearner
    from modAL.uncertainty import uncertainty_sampling

    learner = ActiveLearner(estimator=modal_estimator()(10, seed),
                            query_strategy=uncertainty_sampling,
                            X_training=seed_X, y_training=seed_y)  # the model before the round
    torch.set_num_threads(threads)
    cpu.start()
    t0 = time.perf_counter()
    names, images = list_and_read()
    t1 = time.perf_counter()
    emb = bb.embed_items(images, batch_size=batch_size)
    t2 = time.perf_counter()
    idx, _ = learner.query(emb, n_instances=k)
    t3 = time.perf_counter()
    cpu_s = cpu.stop()
    idx = np.asarray(idx, dtype=np.int64)
    pool_ids = np.array([int(Path(n).stem) for n in names], dtype=np.int64)
    chosen = pool_ids[idx]
    try:
        learner.teach(emb[idx], pool_y[chosen])
        teach = "learner.teach"
    except TypeError as exc:  # modAL 0.4.2.1 passes force_all_finite, gone in sklearn 1.8
        if "force_all_finite" not in str(exc):
            raise
        learner.X_training = np.concatenate([learner.X_training, emb[idx]])
        learner.y_training = np.concatenate([learner.y_training, pool_y[chosen]])
        learner._fit_to_known()
        teach = "X_training += selection; learner._fit_to_known() (teach() fails: " \
                "check_X_y(force_all_finite=...) is gone in scikit-learn >= 1.8)"
    scores = learner.estimator.head_.evaluate(test_X, test_y)
    return {"path": name, "latency_s": t3 - t0, "read_s": t1 - t0, "embed_s": t2 - t1,
            "query_s": t3 - t2, "images_per_s": len(names) / (t3 - t0),
            "top1": scores["top1"], "top5": scores["top5"], "selected": sorted(chosen.tolist()),
            "torch_threads": threads, "teach": teach, "cpu_s": cpu_s, "load": load()}


# ---------------------------------------------------------------- alaas side


def worker_config(tag: str, weights: Path, cache_dir: Path, s3_opts: dict[str, Any],
                  batch_size: int, seed: int) -> dict[str, Any]:
    return {
        "name": f"one-round-{tag}",
        "active_learning": {"strategy": {"type": "least_confidence"},
                            "model": {"name": "resnet18", "weights": str(weights),
                                      "batch_size": batch_size}},
        "data": {"kind": "image", "image_mode": "L", "storage_options": s3_opts},
        "classes": CLASSES,
        "budget": {"total": 0, "per_round": 1},  # total 0: no budget cap (10k seed labels)
        "cache_dir": str(cache_dir),
        "seed": seed,
    }


def label_round(client: Any, sel: Any, labels: list[int], name: str) -> tuple[dict, float, float]:
    """Label a whole selection; wait for the worker's refit + score of that round.

    The round completes when its last item is labeled: the worker refits and scores in
    its job thread and publishes ``round_result``. (Polling ``status()`` instead can
    time out: status waits for the session lock, which the refit holds.)
    """
    got: dict[str, Any] = {}
    done = threading.Event()

    def on_event(msg: Any) -> None:
        if msg.content.get("round") == sel.round:
            got.update(msg.content)
            done.set()

    unsubscribe = client.subscribe(on_event, types=["round_result"])
    try:
        t = time.perf_counter()
        client.label_many(sel.item_ids, labels)
        label_s = time.perf_counter() - t
        if not done.wait(900):
            raise RuntimeError(f"{name}: no round_result for round {sel.round}")
        fit_s = time.perf_counter() - t - label_s
    finally:
        unsubscribe()
    return got, label_s, fit_s


def run_alaas(name: str, config: dict[str, Any], session_dir: Path, source: str,
              init_images: np.ndarray, init_y: np.ndarray, test_images: np.ndarray,
              test_y: np.ndarray, pool_y: np.ndarray, k: int, moto_pid: int | None
              ) -> dict[str, Any]:
    srv = Server(config=config, session_dir=session_dir, log_level="WARNING")
    srv.start(timeout=180)
    try:
        client = srv.client(timeout=900)
        # Setup, untimed. The seed set is round 1, as in the paper's protocol: the worker
        # only takes labels for items a query returned, so the 10k seed images are pushed
        # alone, all selected by a random query and labeled; the evaluation images go in
        # with their labels (role="eval": scored, never trained on or selected).
        t = time.perf_counter()
        client.push_data(test_images, role="eval", labels=[int(v) for v in test_y])
        seed_ids = client.push_data(init_images)["item_ids"]
        seed_sel = client.query(len(seed_ids), strategy="random")
        if sorted(seed_sel.item_ids) != sorted(seed_ids):
            raise RuntimeError(f"{name}: the seed query did not return the seed items")
        pos = {item: j for j, item in enumerate(seed_ids)}
        r0, seed_label_s, r0_fit_s = label_round(
            client, seed_sel, [int(init_y[pos[i]]) for i in seed_sel.item_ids], name)
        setup_s = time.perf_counter() - t

        pids = {"worker": srv.process.pid}
        if moto_pid is not None:
            pids["moto"] = moto_pid
        cpu = CPU(pids).start()
        t0 = time.perf_counter()
        reply = client.push_data([source])
        t1 = time.perf_counter()
        sel = client.query(k)
        t2 = time.perf_counter()
        cpu_s = cpu.stop()

        chosen = np.array([int(Path(u).stem) for u in sel.uris], dtype=np.int64)
        result, label_s, fit_wait_s = label_round(client, sel,
                                                  [int(v) for v in pool_y[chosen]], name)
        pipe = reply.get("pipeline") or {}
        return {
            "path": name, "latency_s": t2 - t0, "push_client_s": t1 - t0,
            "push_worker_s": reply["seconds"], "pipeline_wall_s": pipe.get("wall_s", 0.0),
            "query_s": t2 - t1, "images_per_s": reply["n_new"] / (t2 - t0),
            "n_items": reply["n_new"], "embedded": reply["embedded"],
            "cache_hits": reply["cache_hits"], "quarantined": len(reply["quarantined"]),
            "stages": pipe.get("stages", []), "strategy": sel.strategy,
            "top1": result["top1"], "top5": result["top5"], "n_labeled": result["n_labeled"],
            "initial_top1": r0["top1"], "initial_top5": r0["top5"],
            "selected": sorted(chosen.tolist()), "setup_s": setup_s,
            "seed_label_s": seed_label_s, "round0_fit_s": r0_fit_s, "label_s": label_s,
            "fit_wait_s": fit_wait_s, "cpu_s": cpu_s, "load": load(),
        }
    except Exception:
        print(f"{name} failed; the worker's log ({srv.log_file}) ends with:\n{srv.log_tail(40)}",
              file=sys.stderr)
        raise
    finally:
        srv.stop(timeout=30)


# ---------------------------------------------------------------- stages alone


def identity_breakdown(config: dict[str, Any], session_dir: Path, source: str,
                       s3_opts: dict[str, Any], bb: Any, plan: Any) -> dict[str, Any]:
    """The calls the worker's push makes before its pipeline, timed one by one.

    Mirrors ``Worker._on_push_data`` + ``Ingestor.push_uris`` of this tree: ``expand``
    (keeping the listing's size/ETag/mtime when it accepts ``infos=``), journal, one
    lookup (``HEAD``/``stat``) per item the listing said nothing about, identities,
    journal, cache. Runs in this process on a scratch session over the (now warm)
    shared cache, so it is the warm push minus the wire. Then, for comparison, one
    lookup per item for every item (what the push did before listings were reused).
    """
    sess = PoolSession(load_config(config), session_dir, backbone=bb)
    fetcher = Fetcher(s3_opts or None, max_in_flight=plan.fetch_in_flight)
    out: dict[str, Any] = {}
    try:
        infos: dict[str, dict[str, Any]] = {}
        kw = {"infos": infos} if "infos" in inspect.signature(expand).parameters else {}
        out["listing_infos_used"] = bool(kw)
        t = time.perf_counter()
        uris = expand([source], storage_options=s3_opts or None, **kw)
        out["expand_s"] = time.perf_counter() - t
        t = time.perf_counter()
        ids = sess.add_items(uris)
        out["journal_add_items_s"] = time.perf_counter() - t
        t = time.perf_counter()
        keys = {u: item_identity(u, infos[u]) for u in uris if infos.get(u)}
        unknown = [u for u in uris if u not in keys]
        infos_l = list(fetcher.info_many(unknown))
        for u, r in zip(unknown, infos_l, strict=True):
            keys[u] = item_identity(u, r.info)
        out["identity_s"] = time.perf_counter() - t
        out["lookups"] = len(unknown)
        t = time.perf_counter()
        sess.journal.add_items(uris, content_keys=[keys[u] for u in uris])
        out["journal_content_keys_s"] = time.perf_counter() - t
        t = time.perf_counter()
        found, rows = sess.cache.get_many([keys[u] for u in uris])
        out["cache_get_many_s"] = time.perf_counter() - t
        t = time.perf_counter()
        sess.store_embeddings(ids[found], rows)
        out["store_embeddings_s"] = time.perf_counter() - t
        out["cache_hits"] = int(found.sum())
        out["n"] = len(uris)
        t = time.perf_counter()
        res = list(fetcher.info_many(uris))
        out["lookup_every_item_s"] = time.perf_counter() - t
        out["lookup_failed"] = sum(not r.ok for r in res)
    finally:
        fetcher.close()
        sess.close()
    return out


def fetch_alone(uris: list[str], s3_opts: dict[str, Any], plan: Any) -> tuple[float, list]:
    fetcher = Fetcher(s3_opts or None, max_in_flight=plan.fetch_in_flight)
    try:
        t = time.perf_counter()
        res = list(fetcher.fetch_many(uris))
        dt = time.perf_counter() - t
    finally:
        fetcher.close()
    bad = [r.error for r in res if not r.ok]
    if bad:
        raise RuntimeError(f"fetch alone: {len(bad)} failures, e.g. {bad[0]}")
    return dt, [r.data for r in res]


def decode_embed_alone(blobs: list[bytes], uris: list[str], bb: Any, batch_size: int
                       ) -> dict[str, float]:
    """Decode + preprocess (one thread, as decode_workers=1) and embed (one torch thread)."""
    import torch

    plan = thread_plan()
    old = torch.get_num_threads()
    torch.set_num_threads(plan.torch_threads)
    try:
        dec = Decoder("image", mode="L")
        t = time.perf_counter()
        tensors = [bb.preprocess(dec.decode_bytes(b, uri=u)) for b, u in zip(blobs, uris,
                                                                          strict=True)]
        decode_s = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(0, len(tensors), batch_size):
            bb.embed(tensors[i:i + batch_size])
        embed_s = time.perf_counter() - t
    finally:
        torch.set_num_threads(old)
    return {"decode_s": decode_s, "embed_s": embed_s, "torch_threads": plan.torch_threads}


# ---------------------------------------------------------------- report


def pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:6.2f}"


def print_report(res: dict[str, Any]) -> None:
    n, k = res["pool"], res["k"]
    print()
    print(f"Table 2 at this machine's scale: MNIST, initial ResNet-18 trained on "
          f"{res['init']:,} images ({res['epochs']} epoch(s), {res['size']} px), pool "
          f"{n:,} PNGs, least confidence selects {k:,}; scored on {res['test']:,} test images.")
    print(f"initial model (head on the {res['init']:,} seed labels): top-1 "
          f"{pct(res['initial']['top1']).strip()} %, top-5 {pct(res['initial']['top5']).strip()}"
          " %")
    print()
    head = (f"{'tool / path':<34} {'top-1 %':>8} {'top-5 %':>8} {'latency s':>10} "
            f"{'images/s':>9} {'vs modAL':>9}")
    print(head)
    print("-" * len(head))
    for storage in ("local", "s3"):
        st = res[storage]
        base = st["modal"]["latency_s"]
        label = "local disk" if storage == "local" else "S3 (moto)"
        for key, tool in (("modal", "modAL"), ("cold", "alaas_lab cold cache"),
                          ("warm", "alaas_lab warm cache")):
            r = st[key]
            print(f"{tool + ', ' + label:<34} {pct(r['top1']):>8} {pct(r['top5']):>8} "
                  f"{r['latency_s']:>10.2f} {r['images_per_s']:>9.1f} "
                  f"{base / r['latency_s']:>8.2f}x")
    for storage in ("local", "s3"):
        st = res[storage]
        label = "local disk" if storage == "local" else "S3 (moto)"
        cold, warm, md, alone, brk = st["cold"], st["warm"], st["modal"], st["alone"], \
            st["breakdown"]
        print()
        print(f"-- {label}: stages alone vs end to end ({n:,} items) --")
        busy = {s["name"]: s["busy_s"] for s in cold["stages"]}
        rows = [("lookup, every item (" + ("HEAD" if storage == "s3" else "stat") + ")",
                 brk["lookup_every_item_s"], None),
                ("fetch (32 in flight)", alone["fetch_s"], busy.get("fetch")),
                ("decode + preprocess (1 thread)", alone["decode_s"], busy.get("decode")),
                (f"embed (1 torch thread, batch {res['batch_size']})", alone["embed_s"],
                 busy.get("embed")),
                ("store (cache + matrix)", None, busy.get("store"))]
        print(f"{'stage':<40} {'alone s':>8} {'alone img/s':>12} {'busy in pipeline s':>19}")
        for name, a, b in rows:
            a_s = "" if a is None else f"{a:8.2f}"
            r_s = "" if a is None else f"{n / a:12.0f}"
            b_s = "" if b is None else f"{b:19.2f}"
            print(f"{name:<40} {a_s:>8} {r_s:>12} {b_s:>19}")
        print(f"{'pipeline wall, cold (fetch -> store)':<40} {cold['pipeline_wall_s']:8.2f} "
              f"{n / max(cold['pipeline_wall_s'], 1e-9):12.0f}")
        print(f"{'push, cold (worker: identity + pipeline)':<40} {cold['push_worker_s']:8.2f}")
        print(f"{'push + query, cold (client wall)':<40} {cold['latency_s']:8.2f}")
        print(f"pipeline efficiency = slowest stage alone ({alone['slowest']}, "
              f"{alone['slowest_s']:.2f} s) / pipeline wall ({cold['pipeline_wall_s']:.2f} s)"
              f" = {st['efficiency']:.2f}   [goal >= 0.85]")
        print(f"  same over the whole cold push incl. identity phase "
              f"({cold['push_worker_s']:.2f} s) = {st['efficiency_push']:.2f}")
        wire = cold["push_client_s"] - cold["push_worker_s"]
        ident = cold["push_worker_s"] - cold["pipeline_wall_s"]
        print(f"cold latency: expand + wire {wire:.2f} s, identity + journal + cache {ident:.2f}"
              f" s, pipeline {cold['pipeline_wall_s']:.2f} s, query {cold['query_s']:.2f} s")
        wire = warm["push_client_s"] - warm["push_worker_s"]
        print(f"warm latency: {warm['latency_s']:.2f} s = expand + wire {wire:.2f} s, push in the "
              f"worker {warm['push_worker_s']:.2f} s ({warm['cache_hits']:,} cache hits, "
              f"{warm['embedded']} embedded), query {warm['query_s']:.2f} s; "
              f"warm/cold speed-up = {st['warm_speedup']:.1f}x   [goal >= 20x]")
        print("push before its pipeline, each call timed alone in process (warm cache; "
              "listing infos " + ("reused" if brk["listing_infos_used"] else "not reused") + "):")
        print("  " + ", ".join(f"{key[:-2]} {brk[key]:.2f} s" for key in (
            "expand_s", "journal_add_items_s", "identity_s", "journal_content_keys_s",
            "cache_get_many_s", "store_embeddings_s"))
              + f"; {brk['lookups']:,} lookups, {brk['cache_hits']:,}/{brk['n']:,} cache hits")
        every = brk["lookup_every_item_s"]
        print(f"  one lookup per item instead (the push before listings were reused): "
              f"{every:.2f} s = {every / n * 1000:.2f} ms per item ({n / every:.0f} items/s)")
        print(f"modAL: read {md['read_s']:.2f} s, embed {md['embed_s']:.2f} s "
              f"({md['torch_threads']} torch threads), query {md['query_s']:.3f} s; "
              f"alaas_lab cold vs modAL: {st['speedup_cold']:.2f}x"
              + ("   [goal >= 5x on S3]" if storage == "s3" else ""))
        print(f"selection overlap |alaas cold & modAL| / k = {st['overlap_modal']:.3f}; "
              f"|cold & warm| / k = {st['overlap_warm']:.3f}")
        cpus = "; ".join(f"{key}: " + ", ".join(f"{p} {v:.1f}" for p, v in st[key]["cpu_s"].items())
                         for key in ("cold", "warm", "modal") if st[key]["cpu_s"])
        if cpus:
            print(f"CPU seconds during the timed part: {cpus}")
    print()
    t = res["threads"]
    print("threads:", t["notes"])
    print(f"goals: S3 alaas cold >= 5x modAL: {res['goals']['s3_5x']}; pipeline efficiency "
          f">= 0.85 (local/S3): {res['goals']['efficiency']}; warm >= 20x cold (local/S3): "
          f"{res['goals']['warm_20x']}")


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import s3fs
    import torch

    import alaas_lab
    from alaas_lab.models.backbones import ResNet18Backbone, resnet18_trained_on

    try:
        from importlib.metadata import version

        import modAL  # noqa: F401

        modal_version = version("modAL-python")
    except ImportError:
        print("modAL is not installed: .venv/bin/pip install modAL-python", file=sys.stderr)
        return 2

    t_start = time.perf_counter()
    plan = thread_plan()
    cores = plan.cores
    k = args.pool // 4
    rng = np.random.default_rng(args.seed)
    log(f"alaas_lab {alaas_lab.__version__}, torch {torch.__version__}, modAL {modal_version}, "
        f"{cores} cores, load {load()}")

    train = mnist(MNIST_DIR, split="train")
    test = mnist(MNIST_DIR, split="test")
    perm = rng.permutation(train.images.shape[0])
    init_idx, pool_idx = perm[:args.init], perm[args.init:args.init + args.pool]
    test_idx = np.sort(rng.choice(test.images.shape[0], args.test, replace=False))
    init_images, init_y = train.images[init_idx], train.y[init_idx]
    pool_images, pool_y = train.images[pool_idx], train.y[pool_idx]
    test_images, test_y = test.images[test_idx], test.y[test_idx]

    # A user's torch thread count: whichever of 1 and all cores embeds faster right now
    # (2 threads collapse when another process holds a core; 1 wastes an idle core).
    logging.getLogger("alaas_lab.models.backbones").setLevel(logging.ERROR)  # random probe
    probe = ResNet18Backbone(init="random", size=args.size)
    user_threads, rates = best_threads(probe, init_images[:1], args.batch_size, cores)
    train_threads = user_threads
    del probe
    log(f"embed rate by torch threads {rates} img/s -> this process uses {user_threads}")

    tmp = Path(tempfile.mkdtemp(prefix="alaas_one_round_"))
    # Session journals on tmpfs: the journal fsyncs once per label (~3.6 ms on this disk,
    # 36 s for the 10k seed labels of each session); the timed push + query commit only a
    # few times. The pool files, the weights and the embedding cache stay on disk.
    shm = Path("/dev/shm")
    sessions = Path(tempfile.mkdtemp(prefix="alaas_one_round_sessions_",
                                     dir=shm if shm.is_dir() else tmp))
    # Workers (and moto) inherit this: one BLAS thread. The worker's thread plan sets
    # torch's threads but not BLAS's, and the head's L-BFGS refit with OpenBLAS's default
    # (all cores) crawled on this shared machine (15-30 s for 2,000 rows). Only the
    # untimed refits use BLAS to speak of; the timed query is one small matmul.
    blas_env = {v: "1" for v in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(blas_env)
    threadpool_limits(user_threads)  # this process: BLAS like torch
    moto = None
    results: dict[str, Any] = {
        "pool": args.pool, "k": k, "init": args.init, "test": args.test, "epochs": args.epochs,
        "size": args.size, "batch_size": args.batch_size, "seed": args.seed, "cores": cores,
        "versions": {"alaas_lab": alaas_lab.__version__, "torch": torch.__version__,
                     "modAL-python": modal_version, "numpy": np.__version__},
        "embed_rate_by_threads": rates, "load_start": load(),
    }
    try:
        # ---- the initial model, trained here; the worker loads its weights from a file
        t = time.perf_counter()
        trained = resnet18_trained_on(init_images, init_y, epochs=args.epochs, seed=args.seed,
                                      size=args.size, threads=user_threads)
        weights = tmp / "resnet18_mnist.pth"
        torch.save(trained._model.state_dict(), weights)
        results["train_s"] = time.perf_counter() - t
        results["train_loss"] = trained.describe()["weights"].get("loss_per_epoch")
        bb = ResNet18Backbone(weights=weights, size=args.size)  # what the worker loads
        assert bb.fingerprint == trained.fingerprint
        del trained
        log(f"initial model: {args.init:,} images, {args.epochs} epoch(s) in "
            f"{results['train_s']:.1f} s, loss {results['train_loss']}")
        t = time.perf_counter()
        seed_X = bb.embed_items(init_images, batch_size=256)
        test_X = bb.embed_items(test_images, batch_size=256)
        log(f"seed + test embeddings for the modAL side: {time.perf_counter() - t:.1f} s")

        # ---- the pool as PNG files, on disk and in S3
        from PIL import Image

        pool_dir = tmp / "pool"
        pool_dir.mkdir()
        blobs: dict[str, bytes] = {}
        for i, img in enumerate(pool_images):
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            blobs[f"{i:06d}.png"] = buf.getvalue()
        for name, data in blobs.items():
            (pool_dir / name).write_bytes(data)
        moto, url = start_moto()
        s3_opts = {"endpoint_url": url, **S3_KEYS}
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_opts)
        fs.mkdir(BUCKET)
        t = time.perf_counter()
        fs.pipe({f"{BUCKET}/pool/{name}": data for name, data in blobs.items()})
        results["s3_upload_s"] = time.perf_counter() - t
        sizes = [len(b) for b in blobs.values()]
        results["png_bytes_mean"] = float(np.mean(sizes))
        del blobs
        log(f"pool: {args.pool:,} PNGs (mean {np.mean(sizes):.0f} B) in {pool_dir} and "
            f"s3://{BUCKET}/pool/ (upload {results['s3_upload_s']:.1f} s, moto at {url})")

        cache_dir = tmp / "cache"
        decoded: dict[str, float] | None = None
        for storage in ("local", "s3"):
            if storage == "local":
                source = str(pool_dir / "*.png")
                uris = sorted(glob.glob(source))
            else:
                source = f"s3://{BUCKET}/pool/*.png"
                uris = [f"s3://{BUCKET}/pool/{i:06d}.png" for i in range(args.pool)]
            st: dict[str, Any] = {"source": source}
            for phase in ("cold", "warm"):
                cfg = worker_config(f"{storage}-{phase}", weights, cache_dir, s3_opts,
                                    args.batch_size, args.seed)
                log(f"alaas_lab {phase} cache, {storage}: push {source} + query({k})")
                r = run_alaas(f"alaas {phase} {storage}", cfg, sessions / f"{storage}-{phase}",
                              source, init_images, init_y, test_images, test_y, pool_y, k,
                              moto.pid if storage == "s3" else None)
                st[phase] = r
                log(f"  latency {r['latency_s']:.2f} s ({r['images_per_s']:.0f} img/s), "
                    f"embedded {r['embedded']}, hits {r['cache_hits']}, top-1 {r['top1']:.4f}, "
                    f"setup {r['setup_s']:.1f} s (seed label_many {r['seed_label_s']:.1f} s, "
                    f"fit {r['round0_fit_s']:.1f} s), label_many({k}) {r['label_s']:.1f} s, "
                    f"refit {r['fit_wait_s']:.1f} s")
                results["initial"] = {"top1": r["initial_top1"], "top5": r["initial_top5"]}

            log(f"modAL, {storage}: list, read one by one, embed, uncertainty_sampling({k})")
            if storage == "local":
                def list_and_read(source: str = source) -> tuple[list[str], np.ndarray]:
                    paths = sorted(glob.glob(source))
                    return paths, read_local(paths)
                pids = {}
            else:
                def list_and_read() -> tuple[list[str], np.ndarray]:
                    user_fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_opts)
                    keys = sorted(user_fs.glob(f"{BUCKET}/pool/*.png"))
                    return keys, read_s3(user_fs, keys)
                pids = {"moto": moto.pid}
            pids["bench"] = os.getpid()
            user_threads, rates_now = best_threads(bb, init_images[:1], args.batch_size, cores)
            st["modal_thread_probe"] = rates_now
            st["modal"] = run_modal(f"modAL {storage}", list_and_read, bb, seed_X, init_y,
                                    test_X, test_y, pool_y, k, args.batch_size, user_threads,
                                    args.seed, CPU(pids))
            torch.set_num_threads(user_threads)
            m = st["modal"]
            log(f"  latency {m['latency_s']:.2f} s (read {m['read_s']:.2f}, embed "
                f"{m['embed_s']:.2f}, query {m['query_s']:.3f}), top-1 {m['top1']:.4f}")

            log(f"stages alone, {storage}: identity phase, fetch"
                + (", decode, embed" if decoded is None else ""))
            brk = identity_breakdown(worker_config(f"{storage}-breakdown", weights, cache_dir,
                                                   s3_opts, args.batch_size, args.seed),
                                     sessions / f"{storage}-breakdown", source, s3_opts, bb,
                                     plan)
            fetch_s, data = fetch_alone(uris, s3_opts, plan)
            if decoded is None:  # the same bytes on both storages: decode and embed once
                decoded = decode_embed_alone(data, uris, bb, args.batch_size)
                torch.set_num_threads(user_threads)
            del data
            alone = {"fetch_s": fetch_s, **decoded}
            slowest = max(("fetch", "decode", "embed"), key=lambda s: alone[f"{s}_s"])
            alone["slowest"], alone["slowest_s"] = slowest, alone[f"{slowest}_s"]
            st["alone"], st["breakdown"] = alone, brk
            cold, warm = st["cold"], st["warm"]
            st["efficiency"] = alone["slowest_s"] / max(cold["pipeline_wall_s"], 1e-9)
            st["efficiency_push"] = alone["slowest_s"] / cold["push_worker_s"]
            st["warm_speedup"] = cold["latency_s"] / warm["latency_s"]
            st["speedup_cold"] = st["modal"]["latency_s"] / cold["latency_s"]
            st["speedup_warm"] = st["modal"]["latency_s"] / warm["latency_s"]
            a = set(cold["selected"])
            st["overlap_modal"] = len(a & set(st["modal"]["selected"])) / k
            st["overlap_warm"] = len(a & set(warm["selected"])) / k
            log(f"  identity {brk['identity_s']:.2f} s ({brk['lookups']} lookups; every item "
                f"{brk['lookup_every_item_s']:.2f} s), fetch {fetch_s:.2f} s, decode "
                f"{alone['decode_s']:.2f} s, embed {alone['embed_s']:.2f} s; efficiency "
                f"{st['efficiency']:.2f}")
            results[storage] = st

        results["threads"] = {
            "worker_plan": {"decode_workers": plan.decode_workers,
                            "torch_threads": plan.torch_threads,
                            "fetch_in_flight": plan.fetch_in_flight},
            "train_torch_threads": train_threads, "worker_env": blas_env,
            "session_dirs": str(sessions),
            "notes": (f"worker: thread_plan({cores}) -> {plan.decode_workers} decode "
                      f"thread(s), torch.set_num_threads({plan.torch_threads}) in its job "
                      f"thread, {plan.fetch_in_flight} fetches in flight, env "
                      "OPENBLAS/MKL_NUM_THREADS=1 (head refits). This process: "
                      f"torch.set_num_threads(t) and BLAS t threads, t = the faster of "
                      f"{sorted(rates)} on a probe just before use: training t="
                      f"{train_threads} {rates}, modAL local t="
                      f"{results['local']['modal']['torch_threads']} "
                      f"{results['local']['modal_thread_probe']}, modAL S3 t="
                      f"{results['s3']['modal']['torch_threads']} "
                      f"{results['s3']['modal_thread_probe']} (img/s). Stages alone: 1 decode "
                      f"thread, torch.set_num_threads({plan.torch_threads}) as in the worker. "
                      "moto: its own process."),
        }
        results["goals"] = {
            "s3_5x": f"{results['s3']['speedup_cold']:.2f}x "
                     + ("MET" if results["s3"]["speedup_cold"] >= 5 else "MISSED"),
            "efficiency": " / ".join(f"{results[s]['efficiency']:.2f}" for s in ("local", "s3"))
                          + (" MET" if min(results[s]["efficiency"] for s in ("local", "s3"))
                             >= 0.85 else " MISSED"),
            "warm_20x": " / ".join(f"{results[s]['warm_speedup']:.1f}x" for s in ("local", "s3"))
                        + (" MET" if min(results[s]["warm_speedup"] for s in ("local", "s3"))
                           >= 20 else " MISSED"),
        }
        results["load_end"] = load()
        results["wall_s"] = time.perf_counter() - t_start
        print_report(results)
        print(f"\nrun: {results['wall_s']:.0f} s wall; load average {results['load_start']} at "
              f"start, {results['load_end']} at end")
        if args.out:
            for storage in ("local", "s3"):  # selections: only their overlaps are kept
                for key in ("cold", "warm", "modal"):
                    results[storage][key].pop("selected", None)
            Path(args.out).write_text(json.dumps(results, indent=1, default=float))
            print(f"figures written to {args.out}")
    finally:
        if moto is not None:
            stop_proc(moto)
        if args.keep:
            print(f"kept {tmp} and {sessions}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(sessions, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
