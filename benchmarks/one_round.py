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

A remote store's latency: ``--s3-latency-ms 0,20,50`` runs the S3 paths once per
value, reading through a proxy (``benchmarks/_latency_proxy.py``, its own process on
127.0.0.1) that delays the first byte of every response by that many milliseconds
(±25 % jitter); 0 reads moto directly. Each latency gets its own copy of the pool
(``s3://alaas-bench/pool-<ms>ms/``), so each cold push is cold.

The limit: the backbone alone, on preprocessed tensors in memory, at 1, 2 and all
cores' torch threads, and as one batch per core side by side on one torch thread
each; the best is what this machine can embed, and the cold pipeline is reported as
a fraction of it. ``--model efficientnet_lite0 --image-size 112`` runs
everything with the pretrained backbone (no initial training; the worker loads
``model: {name: efficientnet_lite0, input_size: 112}``).

    .venv/bin/pip install modAL-python
    .venv/bin/python benchmarks/one_round.py --quick             # pool 2,000: smoke run
    .venv/bin/python benchmarks/one_round.py --pool 8000 --s3-latency-ms 0,20,50 --out r.json
    .venv/bin/python benchmarks/one_round.py --pool 8000 --model efficientnet_lite0 \
        --image-size 112 --s3-latency-ms 20

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
    p.add_argument("--model", choices=("resnet18", "efficientnet_lite0"), default="resnet18",
                   help="resnet18: trained here on --init images (default); efficientnet_lite0:"
                        " the pretrained backbone, no training")
    p.add_argument("--size", "--image-size", dest="size", type=int, default=None,
                   help="input side of the backbone (default 32 for resnet18, 112 for "
                        "efficientnet_lite0)")
    p.add_argument("--s3-latency-ms", default="0", type=_latencies,
                   help="comma-separated first-byte delays of the S3 store, e.g. 0,20,50 "
                        "(default 0: moto directly; none: local disk only)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="embedding batch, worker (model.batch_size) and modAL path alike")
    p.add_argument("--out", default=None, help="write every figure as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = p.parse_args(argv)
    if args.size is None:
        args.size = 32 if args.model == "resnet18" else 112
    if args.quick:
        args.pool, args.init, args.test = 2_000, 2_000, 500
        args.epochs = min(args.epochs, 1)
    if args.init + args.pool > 60_000:
        p.error(f"--init + --pool must be <= 60,000 (MNIST's training set); got "
                f"{args.init + args.pool}")
    if args.pool < 8:
        p.error("--pool must be >= 8")
    return args


def _latencies(text: str) -> list[int]:
    if text.strip().lower() == "none":
        return []  # local disk only
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(
            f"--s3-latency-ms takes comma-separated milliseconds >= 0, e.g. 0,20,50, or none; got "
            f"{text!r}")
    return list(dict.fromkeys(values))


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
    """Torch threads (1, 2 or all cores) that embed faster right now; sets them."""
    import torch

    batch = [bb.preprocess(image[0])] * batch_size
    rates = {}
    for th in thread_counts(cores):
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


def thread_counts(cores: int) -> list[int]:
    """The torch thread counts a user would try: 1, 2 and every core."""
    return sorted({1, 2, cores})


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


def worker_config(tag: str, model: dict[str, Any], cache_dir: Path, s3_opts: dict[str, Any],
                  batch_size: int, seed: int) -> dict[str, Any]:
    return {
        "name": f"one-round-{tag}",
        "active_learning": {"strategy": {"type": "least_confidence"},
                            "model": {**model, "batch_size": batch_size}},
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
              test_y: np.ndarray, pool_y: np.ndarray, k: int, store_pids: dict[str, int]
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
        # a finished round also starts the suspect-label scoring (5-fold refits of the head on
        # its own thread): let it end, so that the timed push has the worker to itself
        t_s = time.perf_counter()
        client.suspects(wait=True)
        suspects_s = time.perf_counter() - t_s
        setup_s = time.perf_counter() - t

        pids = {"worker": srv.process.pid, **store_pids}
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
            "stages": pipe.get("stages", []), "threads": pipe.get("threads", []),
            "strategy": sel.strategy,
            "top1": result["top1"], "top5": result["top5"], "n_labeled": result["n_labeled"],
            "initial_top1": r0["top1"], "initial_top5": r0["top5"],
            "selected": sorted(chosen.tolist()), "setup_s": setup_s,
            "seed_label_s": seed_label_s, "round0_fit_s": r0_fit_s, "label_s": label_s,
            "suspects_wait_s": suspects_s,
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


def decode_embed_alone(blobs: list[bytes], uris: list[str], bb: Any, batch_size: int,
                       cores: int, limit_items: int = 4096) -> dict[str, Any]:
    """Decode + preprocess on one thread; then the backbone alone under each thread plan.

    Decoding is timed as the pipeline's decode stage does it (each item decoded, then
    ``DECODE_BATCH`` of them prepared as one stack). The backbone alone embeds the first
    ``limit_items`` preprocessed tensors (in memory, in batches of ``batch_size``) at 1,
    2 and ``cores`` torch threads, and as ``cores`` batches side by side on one torch
    thread each; the best rate is the machine's limit, the bound on any pipeline's
    throughput here.
    """
    import torch

    from alaas_lab.models.head import torch_threads
    from alaas_lab.worker.ingest import DECODE_BATCH

    dec = Decoder("image", mode="L")
    t = time.perf_counter()
    tensors: list[Any] = []
    with torch_threads(1):
        for i in range(0, len(blobs), DECODE_BATCH):
            tensors += bb.preprocess_many([dec.decode_bytes(b, uri=u) for b, u in zip(
                blobs[i:i + DECODE_BATCH], uris[i:i + DECODE_BATCH], strict=True)])
    decode_s = time.perf_counter() - t
    part = tensors[:limit_items]
    batches = [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    rates: dict[str, float] = {}
    for th in thread_counts(cores):
        with torch_threads(th):
            bb.embed(batches[0])  # warm-up: allocator, kernels
            t = time.perf_counter()
            for b in batches:
                bb.embed(b)
            rates[f"{th} torch thread(s)"] = len(part) / (time.perf_counter() - t)
    if cores > 1:
        def side(share: list[Any]) -> None:
            torch.set_num_threads(1)  # this thread's own setting
            for b in share:
                bb.embed(b)

        side(batches[:1])  # warm-up
        threads = [threading.Thread(target=side, args=(batches[w::cores],))
                   for w in range(cores)]
        t = time.perf_counter()
        for th_ in threads:
            th_.start()
        for th_ in threads:
            th_.join()
        rates[f"{cores} batches side by side x 1 torch thread"] = (
            len(part) / (time.perf_counter() - t))
    best = max(rates, key=rates.get)
    return {"decode_s": decode_s, "embed_s": len(tensors) / rates[best],
            "embed_rate_by_threads": {k: round(r, 1) for k, r in rates.items()},
            "limit_threads": best, "limit_img_s": rates[best], "limit_items": len(part)}


# ---------------------------------------------------------------- report


def pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{100 * x:6.2f}"


def path_label(key: str) -> str:
    return "local disk" if key == "local" else f"S3 (moto, {key.split('-')[1]})"


def print_report(res: dict[str, Any]) -> None:
    n, k = res["pool"], res["k"]
    print()
    model = (f"initial ResNet-18 trained on {res['init']:,} images ({res['epochs']} epoch(s), "
             f"{res['size']} px)" if res["model"] == "resnet18" else
             f"pretrained {res['model']} at {res['size']} px, head on {res['init']:,} labels")
    print(f"Table 2 at this machine's scale: MNIST, {model}, pool {n:,} PNGs, least confidence "
          f"selects {k:,}; scored on {res['test']:,} test images.")
    print(f"initial model (head on the {res['init']:,} seed labels): top-1 "
          f"{pct(res['initial']['top1']).strip()} %, top-5 {pct(res['initial']['top5']).strip()}"
          " %")
    lim = res["limit"]
    print(f"the limit: {res['model']} alone embeds {lim['limit_img_s']:.0f} img/s at its best "
          f"thread plan ({lim['limit_threads']}; by plan "
          f"{lim['embed_rate_by_threads']} img/s, {lim['limit_items']:,} tensors in memory)")
    print()
    head = (f"{'tool / path':<38} {'top-1 %':>8} {'top-5 %':>8} {'latency s':>10} "
            f"{'images/s':>9} {'vs modAL':>9} {'vs limit':>9}")
    print(head)
    print("-" * len(head))
    for key in res["paths"]:
        st = res[key]
        base = st["modal"]["latency_s"]
        for phase, tool in (("modal", "modAL"), ("cold", "alaas_lab cold"),
                            ("warm", "alaas_lab warm")):
            r = st[phase]
            print(f"{tool + ', ' + path_label(key):<38} {pct(r['top1']):>8} {pct(r['top5']):>8} "
                  f"{r['latency_s']:>10.2f} {r['images_per_s']:>9.1f} "
                  f"{base / r['latency_s']:>8.2f}x {r['images_per_s'] / lim['limit_img_s']:>8.2f}x")
    for key in res["paths"]:
        st = res[key]
        label = path_label(key)
        cold, warm, md, alone, brk = st["cold"], st["warm"], st["modal"], st["alone"], \
            st["breakdown"]
        print()
        print(f"-- {label}: stages alone vs end to end ({n:,} items) --")
        busy = {s["name"]: s["busy_s"] for s in cold["stages"]}
        rows = [("lookup, every item (" + ("stat" if key == "local" else "HEAD") + ")",
                 brk["lookup_every_item_s"], None),
                (f"fetch ({res['fetch_in_flight']} in flight)", alone["fetch_s"],
                 busy.get("fetch")),
                ("decode + preprocess (1 thread; CPU s in pipeline)", alone["decode_s"],
                 busy.get("decode")),
                (f"embed alone (batch {res['batch_size']}, the limit's plan)", alone["embed_s"],
                 busy.get("embed")),
                ("store (cache + matrix)", None, busy.get("store"))]
        print(f"{'stage':<44} {'alone s':>8} {'alone img/s':>12} {'busy in pipeline s':>19}")
        for name, a, b in rows:
            a_s = "" if a is None else f"{a:8.2f}"
            r_s = "" if a is None else f"{n / a:12.0f}"
            b_s = "" if b is None else f"{b:19.2f}"
            print(f"{name:<44} {a_s:>8} {r_s:>12} {b_s:>19}")
        print(f"{'pipeline wall, cold (fetch -> store)':<44} {cold['pipeline_wall_s']:8.2f} "
              f"{n / max(cold['pipeline_wall_s'], 1e-9):12.0f}")
        print(f"{'push, cold (worker: identity + pipeline)':<44} {cold['push_worker_s']:8.2f}")
        print(f"{'push + query, cold (client wall)':<44} {cold['latency_s']:8.2f}")
        print(f"pipeline / limit = {st['pipeline_vs_limit']:.2f}; cold push + query / limit = "
              f"{cold['images_per_s'] / lim['limit_img_s']:.2f}   [goal >= 0.75 locally]")
        print(f"pipeline efficiency = slowest stage alone ({alone['slowest']}, "
              f"{alone['slowest_s']:.2f} s) / pipeline wall ({cold['pipeline_wall_s']:.2f} s)"
              f" = {st['efficiency']:.2f}")
        plans = cold.get("threads") or []
        if plans:
            print(f"thread plan of the cold push: {plans[0]}"
                  + (f" -> {plans[-1]} ({len(plans) - 1} re-plans)" if len(plans) > 1 else
                     " (kept)"))
        wire = cold["push_client_s"] - cold["push_worker_s"]
        ident = cold["push_worker_s"] - cold["pipeline_wall_s"]
        print(f"cold latency: expand + wire {wire:.2f} s, identity + journal + cache {ident:.2f}"
              f" s, pipeline {cold['pipeline_wall_s']:.2f} s, query {cold['query_s']:.2f} s")
        wire = warm["push_client_s"] - warm["push_worker_s"]
        print(f"warm latency: {warm['latency_s']:.2f} s = expand + wire {wire:.2f} s, push in the "
              f"worker {warm['push_worker_s']:.2f} s ({warm['cache_hits']:,} cache hits, "
              f"{warm['embedded']} embedded), query {warm['query_s']:.2f} s; "
              f"warm/cold speed-up = {st['warm_speedup']:.1f}x   [goal >= 20x locally]")
        print("push before its pipeline, each call timed alone in process (warm cache; "
              "listing infos " + ("reused" if brk["listing_infos_used"] else "not reused") + "):")
        print("  " + ", ".join(f"{k_[:-2]} {brk[k_]:.2f} s" for k_ in (
            "expand_s", "journal_add_items_s", "identity_s", "journal_content_keys_s",
            "cache_get_many_s", "store_embeddings_s"))
              + f"; {brk['lookups']:,} lookups, {brk['cache_hits']:,}/{brk['n']:,} cache hits")
        every = brk["lookup_every_item_s"]
        print(f"  one lookup per item instead: {every:.2f} s = {every / n * 1000:.2f} ms per item "
              f"({n / every:.0f} items/s)")
        print(f"modAL: read {md['read_s']:.2f} s, embed {md['embed_s']:.2f} s "
              f"({md['torch_threads']} torch threads), query {md['query_s']:.3f} s; "
              f"alaas_lab cold vs modAL: {st['speedup_cold']:.2f}x"
              + ("   [goal >= 5x at 20 ms]" if key == "s3-20ms" else ""))
        print(f"selection overlap |alaas cold & modAL| / k = {st['overlap_modal']:.3f}; "
              f"|cold & warm| / k = {st['overlap_warm']:.3f}")
        cpus = "; ".join(f"{ph}: " + ", ".join(f"{p} {v:.1f}" for p, v in st[ph]["cpu_s"].items())
                         for ph in ("cold", "warm", "modal") if st[ph]["cpu_s"])
        if cpus:
            print(f"CPU seconds during the timed part: {cpus}")
    print()
    print("threads:", res["threads"]["notes"])
    print("goals: " + "; ".join(f"{g}: {v}" for g, v in res["goals"].items()))


# ---------------------------------------------------------------- main


def start_proxy(target: str, delay_ms: int) -> tuple[subprocess.Popen, str]:
    """The latency proxy in its own process (its CPU is not the worker's nor modAL's)."""
    script = Path(__file__).resolve().parent / "_latency_proxy.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--target", target.split("://", 1)[1],
         "--delay-ms", str(delay_ms)], stdout=subprocess.PIPE, text=True,
        preexec_fn=_die_with_parent if _prctl is not None else None)
    url = proc.stdout.readline().strip()
    if not url.startswith("http://"):
        stop_proc(proc)
        raise RuntimeError(f"the latency proxy did not start (said {url!r})")
    return proc, url


def goals(res: dict[str, Any]) -> dict[str, str]:
    def met(ok: bool) -> str:
        return "MET" if ok else "MISSED"

    loc = res["local"]
    out = {
        "cold local pipeline >= 0.75x limit":
            f"{loc['pipeline_vs_limit']:.2f}x {met(loc['pipeline_vs_limit'] >= 0.75)}",
        "cold local >= modAL": f"{loc['speedup_cold']:.2f}x {met(loc['speedup_cold'] >= 1)}",
        "warm/cold >= 20x locally":
            f"{loc['warm_speedup']:.1f}x {met(loc['warm_speedup'] >= 20)}",
    }
    if "s3-20ms" in res:
        v = res["s3-20ms"]["speedup_cold"]
        out["cold S3 at 20 ms >= 5x modAL"] = f"{v:.2f}x {met(v >= 5)}"
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import s3fs
    import torch

    import alaas_lab
    from alaas_lab.models import backbone as make_backbone
    from alaas_lab.models.backbones import resnet18_trained_on

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

    # A user's torch thread count: whichever of 1, 2 and all cores embeds faster right now
    # (2 threads collapse when another process holds a core; 1 wastes an idle core).
    logging.getLogger("alaas_lab.models.backbones").setLevel(logging.ERROR)  # random probe
    probe = (make_backbone("resnet18", init="random", size=args.size)
             if args.model == "resnet18" else make_backbone(args.model, size=args.size))
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
    # Workers (and moto) inherit this: one BLAS thread. The head's L-BFGS refit with
    # OpenBLAS's default (all cores) crawled on a shared machine (15-30 s for 2,000 rows).
    # Only the untimed refits use BLAS to speak of; the timed query is one small matmul.
    blas_env = {v: "1" for v in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    os.environ.update(blas_env)
    threadpool_limits(user_threads)  # this process: BLAS like torch
    moto = None
    proxy = None
    results: dict[str, Any] = {
        "pool": args.pool, "k": k, "init": args.init, "test": args.test, "epochs": args.epochs,
        "model": args.model, "size": args.size, "batch_size": args.batch_size, "seed": args.seed,
        "cores": cores, "s3_latency_ms": args.s3_latency_ms,
        "fetch_in_flight": plan.fetch_in_flight,
        "versions": {"alaas_lab": alaas_lab.__version__, "torch": torch.__version__,
                     "modAL-python": modal_version, "numpy": np.__version__},
        "embed_rate_by_threads": rates, "load_start": load(),
    }
    try:
        # ---- the initial model: ResNet-18 trained here (the worker loads its weights from
        # a file), or the pretrained backbone as it is
        t = time.perf_counter()
        if args.model == "resnet18":
            trained = resnet18_trained_on(init_images, init_y, epochs=args.epochs,
                                          seed=args.seed, size=args.size, threads=user_threads)
            weights = tmp / "resnet18_mnist.pth"
            torch.save(trained._model.state_dict(), weights)
            results["train_loss"] = trained.describe()["weights"].get("loss_per_epoch")
            model_cfg: dict[str, Any] = {"name": "resnet18", "weights": str(weights)}
            bb = make_backbone("resnet18", weights=weights, size=args.size)
            assert bb.fingerprint == trained.fingerprint
            del trained
        else:
            results["train_loss"] = None
            model_cfg = {"name": args.model, "input_size": args.size}
            bb = make_backbone(args.model, size=args.size)
        results["train_s"] = time.perf_counter() - t
        log(f"initial model: {args.model} at {args.size} px, {args.init:,} seed images, "
            f"{results['train_s']:.1f} s, loss {results['train_loss']}")
        t = time.perf_counter()
        seed_X = bb.embed_items(init_images, batch_size=256)
        test_X = bb.embed_items(test_images, batch_size=256)
        log(f"seed + test embeddings for the modAL side: {time.perf_counter() - t:.1f} s")

        # ---- the pool as PNG files, on disk and in S3 (one copy per latency)
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
        moto_url = "(not started)"
        t = time.perf_counter()
        if args.s3_latency_ms:
            moto, moto_url = start_moto()
            upload_opts = {"endpoint_url": moto_url, **S3_KEYS}
            fs = s3fs.S3FileSystem(skip_instance_cache=True, **upload_opts)
            fs.mkdir(BUCKET)
            for ms in args.s3_latency_ms:
                fs.pipe({f"{BUCKET}/pool-{ms}ms/{name}": data for name, data in blobs.items()})
        results["s3_upload_s"] = time.perf_counter() - t
        sizes = [len(b) for b in blobs.values()]
        results["png_bytes_mean"] = float(np.mean(sizes))
        del blobs
        log(f"pool: {args.pool:,} PNGs (mean {np.mean(sizes):.0f} B) in {pool_dir} and "
            f"s3://{BUCKET}/pool-<ms>ms/ for ms in {args.s3_latency_ms} (upload "
            f"{results['s3_upload_s']:.1f} s, moto at {moto_url})")

        cache_dir = tmp / "cache"
        decoded: dict[str, Any] | None = None
        paths = ["local"] + [f"s3-{ms}ms" for ms in args.s3_latency_ms]
        results["paths"] = paths
        for key in paths:
            if key == "local":
                source = str(pool_dir / "*.png")
                uris = sorted(glob.glob(source))
                s3_opts: dict[str, Any] = {}
            else:
                ms = int(key.split("-")[1][:-2])
                prefix = f"{BUCKET}/pool-{ms}ms"
                if proxy is not None:
                    stop_proc(proxy)
                    proxy = None
                url = moto_url
                if ms:
                    proxy, url = start_proxy(moto_url, ms)
                s3_opts = {"endpoint_url": url, **S3_KEYS}
                source = f"s3://{prefix}/*.png"
                uris = [f"s3://{prefix}/{i:06d}.png" for i in range(args.pool)]
            extra_pids = {"proxy": proxy.pid} if proxy is not None and key != "local" else {}
            store_pids = ({"moto": moto.pid, **extra_pids} if key != "local" else {})
            st: dict[str, Any] = {"source": source}
            for phase in ("cold", "warm"):
                cfg = worker_config(f"{key}-{phase}", model_cfg, cache_dir, s3_opts,
                                    args.batch_size, args.seed)
                log(f"alaas_lab {phase} cache, {key}: push {source} + query({k})")
                r = run_alaas(f"alaas {phase} {key}", cfg, sessions / f"{key}-{phase}",
                              source, init_images, init_y, test_images, test_y, pool_y, k,
                              store_pids)
                st[phase] = r
                log(f"  latency {r['latency_s']:.2f} s ({r['images_per_s']:.0f} img/s), "
                    f"embedded {r['embedded']}, hits {r['cache_hits']}, top-1 {r['top1']:.4f}, "
                    f"setup {r['setup_s']:.1f} s (suspect scoring waited for "
                    f"{r['suspects_wait_s']:.1f} s), label_many({k}) {r['label_s']:.1f} s, "
                    f"refit {r['fit_wait_s']:.1f} s; plans {r['threads'][-1:]}")
                results["initial"] = {"top1": r["initial_top1"], "top5": r["initial_top5"]}

            log(f"modAL, {key}: list, read one by one, embed, uncertainty_sampling({k})")
            if key == "local":
                def list_and_read(source: str = source) -> tuple[list[str], np.ndarray]:
                    paths_ = sorted(glob.glob(source))
                    return paths_, read_local(paths_)
            else:
                def list_and_read(opts: dict = s3_opts, prefix: str = prefix
                                  ) -> tuple[list[str], np.ndarray]:
                    user_fs = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
                    keys = sorted(user_fs.glob(f"{prefix}/*.png"))
                    return keys, read_s3(user_fs, keys)
            pids = {**store_pids, "bench": os.getpid()}
            user_threads, rates_now = best_threads(bb, init_images[:1], args.batch_size, cores)
            st["modal_thread_probe"] = rates_now
            st["modal"] = run_modal(f"modAL {key}", list_and_read, bb, seed_X, init_y,
                                    test_X, test_y, pool_y, k, args.batch_size, user_threads,
                                    args.seed, CPU(pids))
            torch.set_num_threads(user_threads)
            m = st["modal"]
            log(f"  latency {m['latency_s']:.2f} s (read {m['read_s']:.2f}, embed "
                f"{m['embed_s']:.2f}, query {m['query_s']:.3f}), top-1 {m['top1']:.4f}")

            log(f"stages alone, {key}: identity phase, fetch"
                + (", decode, backbone alone at each thread count" if decoded is None else ""))
            brk = identity_breakdown(worker_config(f"{key}-breakdown", model_cfg, cache_dir,
                                                   s3_opts, args.batch_size, args.seed),
                                     sessions / f"{key}-breakdown", source, s3_opts, bb,
                                     plan)
            fetch_s, data = fetch_alone(uris, s3_opts, plan)
            if decoded is None:  # the same bytes on every storage: decode and embed once
                decoded = decode_embed_alone(data, uris, bb, args.batch_size, cores)
                results["limit"] = decoded
                torch.set_num_threads(user_threads)
            del data
            alone = {"fetch_s": fetch_s, "decode_s": decoded["decode_s"],
                     "embed_s": decoded["embed_s"]}
            slowest = max(("fetch", "decode", "embed"), key=lambda s_: alone[f"{s_}_s"])
            alone["slowest"], alone["slowest_s"] = slowest, alone[f"{slowest}_s"]
            st["alone"], st["breakdown"] = alone, brk
            cold, warm = st["cold"], st["warm"]
            st["efficiency"] = alone["slowest_s"] / max(cold["pipeline_wall_s"], 1e-9)
            st["pipeline_vs_limit"] = (args.pool / max(cold["pipeline_wall_s"], 1e-9)
                                       / decoded["limit_img_s"])
            st["warm_speedup"] = cold["latency_s"] / warm["latency_s"]
            st["speedup_cold"] = st["modal"]["latency_s"] / cold["latency_s"]
            st["speedup_warm"] = st["modal"]["latency_s"] / warm["latency_s"]
            a = set(cold["selected"])
            st["overlap_modal"] = len(a & set(st["modal"]["selected"])) / k
            st["overlap_warm"] = len(a & set(warm["selected"])) / k
            log(f"  identity {brk['identity_s']:.2f} s ({brk['lookups']} lookups; every item "
                f"{brk['lookup_every_item_s']:.2f} s), fetch {fetch_s:.2f} s, decode "
                f"{alone['decode_s']:.2f} s, embed alone {alone['embed_s']:.2f} s; pipeline / "
                f"limit {st['pipeline_vs_limit']:.2f}")
            results[key] = st

        results["threads"] = {
            "worker_start_plan": {"decode_workers": plan.decode_workers,
                                  "torch_threads": plan.torch_threads,
                                  "fetch_in_flight": plan.fetch_in_flight},
            "train_torch_threads": train_threads, "worker_env": blas_env,
            "session_dirs": str(sessions),
            "notes": (f"worker: starts each push at '{plan.notes}' and re-plans every few "
                      "batches from measured stage rates (alaas_lab/threads.py); env "
                      "OPENBLAS/MKL_NUM_THREADS=1 (head refits). This process: "
                      f"torch.set_num_threads(t) and BLAS t threads, t = the fastest of "
                      f"{thread_counts(cores)} on a probe just before use: training t="
                      f"{train_threads} {rates}; modAL per path: " + ", ".join(
                          f"{p_} t={results[p_]['modal']['torch_threads']}" for p_ in paths)
                      + ". Stages alone: 1 decode thread; the backbone alone at each thread "
                      "count. moto and the latency proxy: their own processes."),
        }
        results["goals"] = goals(results)
        results["load_end"] = load()
        results["wall_s"] = time.perf_counter() - t_start
        print_report(results)
        print(f"\nrun: {results['wall_s']:.0f} s wall; load average {results['load_start']} at "
              f"start, {results['load_end']} at end")
        if args.out:
            for key in paths:  # selections: only their overlaps are kept
                for phase in ("cold", "warm", "modal"):
                    results[key][phase].pop("selected", None)
            Path(args.out).write_text(json.dumps(results, indent=1, default=float))
            print(f"figures written to {args.out}")
    finally:
        for proc in (proxy, moto):
            if proc is not None:
                stop_proc(proc)
        if args.keep:
            print(f"kept {tmp} and {sessions}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(sessions, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
