# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Reproducing the ALaaS paper's experiments, at this machine's scale
#
# **What you'll learn**
#
# - how the paper's efficiency claim (**Table 2**: one least-confidence round, ALaaS
#   against modAL-style tools) is measured, and what it gives here: a worker pushed a
#   folder of PNGs by glob against a script that reads the files one by one;
# - per-strategy accuracy and selection speed (**Fig. 4a/b**), with `alaas_lab.simulate`;
# - inference batch size against throughput (**Fig. 4c**), with a ResNet-18;
# - PSHEA's forecasts against what happened, and the labels it saves (**Fig. 5**);
# - where our numbers agree with the paper's, where they differ, and why.
#
# **The setups.** Every figure below is computed when the notebook runs; the paper's
# numbers (from `PAPER.md`) sit beside ours.
#
# | | paper | here (default) | here (CI) |
# |---|---|---|---|
# | data | CIFAR-10 (SVHN for Fig. 5) | MNIST | MNIST |
# | initial ResNet-18 trained on | 10,000 random images | 5,000 (32 px), 2 epochs | 500, 1 epoch |
# | pool, one round selects | 40,000, selects 10,000 | 4,000, selects 1,000 | 1,000, selects 250 |
# | Fig. 4a/b, 5: seed set + rounds × labels | 8 rounds | 100 + 8 × 100 | 50 + 5 × 50 |
# | storage | S3 | local disk (PNG files); S3 is notebook 03 | local disk |
# | hardware | GPU server | 2 CPU cores, shared | 2 CPU cores, shared |
#
# Only the last layer is trained on the selected, labeled items (as in the paper). No
# pretrained weights are downloaded: the initial model is trained here, on a labeled
# seed set — the paper's protocol of an initial model trained on random labeled
# samples. The full-size measurements live in `benchmarks/one_round.py`,
# `benchmarks/pshea.py` and `benchmarks/strategies.py`.

# %% tags=["parameters"]
# Parameters (papermill-style: this cell is tagged "parameters")
import os

CI = os.environ.get("CI") == "true"   # CI sets CI=true: small sizes, same code
N_INIT = 500 if CI else 5_000          # labeled images the initial ResNet-18 is trained on
EPOCHS = 1 if CI else 2
N_POOL = 1_000 if CI else 4_000        # unlabeled pool (PNG files); one round selects N_POOL // 4
N_TEST = 500 if CI else 2_000          # MNIST test images to score on
BATCH = 64                             # inference batch size, both paths of Table 2
STRATEGIES = ["random", "least_confidence", "margin", "ratio", "entropy",
              "kcenter_greedy", "coreset", "dbal"]           # the paper's zoo
SIM_INITIAL = 50 if CI else 100        # Fig. 4a/b and 5: seed set,
SIM_BUDGET = 50 if CI else 100         # labels per round,
SIM_ROUNDS = 5 if CI else 8            # and rounds
BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64] # Fig. 4c
N_BS = 64 if CI else 512               # images embedded per batch size
SEED = 0

# %%
import copy
import glob
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from PIL import Image
from threadpoolctl import threadpool_limits

import alaas_lab
from alaas_lab import Server, datasets, run_pshea, simulate
from alaas_lab.models import LastLayerHead, ResNet18Backbone, resnet18_trained_on
from alaas_lab.oracle import wait_for_round
from alaas_lab.plots import learning_curves, pshea_forecasts

# Everything this notebook writes (sessions, caches, PNGs, weights) goes in one temporary
# folder, removed at the end.
WORK = Path(tempfile.mkdtemp(prefix="alaas_nb04_"))
_blas = threadpool_limits(1, user_api="blas")   # small head fits: one BLAS thread is fastest
pd.set_option("display.max_colwidth", 200)      # show the summary table's cells whole
CLASSES = [str(c) for c in range(10)]
print(f"CI={CI}; working folder {WORK}")
print(f"alaas_lab {alaas_lab.__version__}, torch {torch.__version__} "
      f"({torch.get_num_threads()} threads), {os.cpu_count()} cores, "
      f"load average {os.getloadavg()[0]:.1f} (timings below depend on it)")

# %% [markdown]
# ## 1. Data and the initial model
#
# A seeded split of MNIST: `N_INIT` labeled training images for the initial model,
# `N_POOL` others as the unlabeled pool, `N_TEST` test images. The pool is written as PNG
# files: both tools of Table 2 start from files in storage.

# %%
train = datasets.mnist(split="train")
test = datasets.mnist(split="test")
rng = np.random.default_rng(SEED)
perm = rng.permutation(len(train.y))
init_images, init_y = train.images[perm[:N_INIT]], train.y[perm[:N_INIT]]
pool_part = perm[N_INIT:N_INIT + N_POOL]
pool_images, pool_y = train.images[pool_part], train.y[pool_part]
test_idx = np.sort(rng.choice(len(test.y), N_TEST, replace=False))
test_images, test_y = test.images[test_idx], test.y[test_idx]
K = N_POOL // 4                                   # one round selects a quarter of the pool

t0 = time.perf_counter()
initial = resnet18_trained_on(init_images, init_y, epochs=EPOCHS, seed=SEED)
train_s = time.perf_counter() - t0
WEIGHTS = initial.save(WORK / "resnet18_mnist.pth")   # a state_dict file the worker loads
bb = ResNet18Backbone(weights=WEIGHTS)
assert bb.fingerprint == initial.fingerprint
print(f"{bb.describe()['summary']}: trained in {train_s:.0f} s")

POOL_DIR = WORK / "pool"
POOL_DIR.mkdir()
for i, img in enumerate(pool_images):
    Image.fromarray(img).save(POOL_DIR / f"{i:06d}.png")
print(f"pool: {N_POOL} PNG files in {POOL_DIR}; one round selects K = {K}")


# %% [markdown]
# ## 2. Table 2: one least-confidence round
#
# Latency runs from *the pool is in storage* to *the selection is known*. Then the
# selected items get their true labels, the last layer is refitted, and top-1/top-5 are
# measured on the test images.
#
# - **alaas_lab**, the paper's three steps: `Server(config).start()`,
#   `server.client()`, then `push_data(["<pool>/*.png"])` + `query(K)`. The worker
#   (model `resnet18` with `weights:` the file above) overlaps reading, decoding and
#   embedding. Its initial last layer is trained first, untimed, as round 1: the seed
#   images are pushed, selected by one `random` query and labeled (a worker only takes
#   labels for items a query returned); the test images go in with `role="eval"`.
#   **Cold**: a fresh embedding cache. **Warm**: a new session on the same cache.
# - **modAL-style, by hand**: modAL is not installed here, so we do what a modAL user's
#   script does: list the files, read them one by one (PIL), embed them in batches of
#   `BATCH` with the same backbone, `predict_proba` with a last layer fitted on the seed
#   set, and sort by least confidence — `modAL.uncertainty.uncertainty_sampling` is that
#   argsort. The last layer is the same `LastLayerHead` the worker uses.
#
# This is a compact re-implementation of the protocol of `benchmarks/one_round.py`, which
# runs it at larger sizes, on S3 as well, and against the real modAL package.

# %%
def alaas_one_round(tag):
    config = {
        "name": f"TABLE2_{tag}",
        "active_learning": {"strategy": {"type": "least_confidence"},
                            "model": {"name": "resnet18", "weights": str(WEIGHTS),
                                      "batch_size": BATCH}},
        "data": {"kind": "image", "image_mode": "L"},
        "classes": CLASSES,
        "budget": {"total": 0, "per_round": 1},      # total 0: no cap
        "cache_dir": str(WORK / "cache"),            # shared by the cold and warm runs
        "seed": SEED,
    }
    server = Server(config=config, session_dir=WORK / f"session-{tag}").start()
    client = server.client(timeout=900)  # reads the worker's key from its connection file
    try:
        # untimed set-up: the evaluation set, and the initial last layer as round 1
        client.push_data(test_images, role="eval", labels=[str(v) for v in test_y])
        seed_ids = client.push_data(init_images)["item_ids"]
        seed = client.query(len(seed_ids), strategy="random")
        y_of = dict(zip(seed_ids, init_y, strict=True))
        client.label_many(seed.item_ids, [str(y_of[i]) for i in seed.item_ids])
        before = wait_for_round(client, seed.round, timeout=900)[0]  # its scores
        # timed: the pool is in storage -> the selection is known
        t0 = time.perf_counter()
        reply = client.push_data([str(POOL_DIR / "*.png")])
        selected = client.query(K)
        latency = time.perf_counter() - t0
        # label the selection, let the worker refit and score
        picked = np.array([int(Path(u).stem) for u in selected.uris])
        client.label_many(selected.item_ids, [str(v) for v in pool_y[picked]])
        after = wait_for_round(client, selected.round, timeout=900)[0]
    finally:
        client.close()
        server.stop()
    return {"tool": f"alaas_lab, {tag} cache", "top-1 %": 100 * after["top1"],
            "top-5 %": 100 * after["top5"], "latency s": latency,
            "images/s": N_POOL / latency, "cache hits": reply["cache_hits"],
            "initial top-1 %": 100 * before["top1"], "picked": picked}


cold = alaas_one_round("cold")
warm = alaas_one_round("warm")
print({k: v for k, v in cold.items() if k != "picked"})
print({k: v for k, v in warm.items() if k != "picked"})

# %%
# modAL-style, by hand. Untimed, as for modAL's X_training: the seed and test embeddings
# and the initial last layer (fitted like the worker's round 1).
seed_X = bb.embed_items(init_images, batch_size=256)
test_X = bb.embed_items(test_images, batch_size=256)
head = LastLayerHead(10, seed=SEED)
head.fit(seed_X, init_y, standardize_on=np.concatenate([test_X, seed_X]))

t0 = time.perf_counter()
paths = sorted(glob.glob(str(POOL_DIR / "*.png")))                     # list
images = np.stack([np.asarray(Image.open(p).convert("L")) for p in paths])   # read, one by one
pool_X = bb.embed_items(images, batch_size=BATCH)                       # embed
probs = head.predict_proba(pool_X)                                      # predict_proba
by_hand = np.argsort(probs.max(axis=1), kind="stable")[:K]             # least confidence
hand_latency = time.perf_counter() - t0

refit = copy.deepcopy(head)
refit.fit(np.concatenate([seed_X, pool_X[by_hand]]), np.concatenate([init_y, pool_y[by_hand]]),
          standardize_on=np.concatenate([test_X, seed_X, pool_X]))
scores = refit.evaluate(test_X, test_y)
hand = {"tool": "modAL-style script (by hand)", "top-1 %": 100 * scores["top1"],
        "top-5 %": 100 * scores["top5"], "latency s": hand_latency,
        "images/s": N_POOL / hand_latency}
overlap = len(set(by_hand) & set(cold["picked"])) / K
print(f"by hand: {hand_latency:.2f} s; selections of alaas_lab and the script overlap "
      f"{overlap:.1%}; initial model (before the round) top-1 {cold['initial top-1 %']:.2f}%")

# %% tags=["table2"]
paper = pd.DataFrame([
    ("DeepAL", 72.40, 75.46, 2287, 17.5), ("ModAL", 72.40, 75.46, 2007, 19.9),
    ("ALiPy", 72.40, 75.46, 2411, 16.6), ("libact", 71.34, 72.32, 1771, 22.6),
    ("ALaaS", 72.40, 75.46, 552, 72.4)],
    columns=["tool", "top-1 %", "top-5 %", "latency s", "images/s"])
paper["vs modAL"] = paper["images/s"] / 19.9
paper.insert(0, "where", "paper: CIFAR-10, 40,000 from S3, GPU")
ours = pd.DataFrame([hand, cold, warm])[["tool", "top-1 %", "top-5 %", "latency s", "images/s"]]
ours["vs modAL"] = ours["images/s"] / hand["images/s"]
ours.insert(0, "where", f"here: MNIST, {N_POOL:,} PNGs on local disk, 2 CPU cores")
table2 = pd.concat([paper, ours], ignore_index=True).round(2)
table2

# %% [markdown]
# Like the paper (every least-confidence tool at 72.40%), the script and the worker pick
# almost the same items from the same model, so they reach the same accuracy; only the
# time differs. Cold, the worker overlaps reading, decoding and embedding; warm, it does
# none of them. How much the overlap buys depends on where the files are (section 6).
#
# ## 3. Fig. 4a/b: accuracy and speed per strategy
#
# `simulate` runs one strategy with an oracle that knows the labels: a random seed set,
# then rounds of selection, labeling and refit, all on the pool's ResNet-18 embeddings.
# Every strategy starts from the same seed set (same `seed`). "Selection throughput" is
# the pool items a query scored per second (head inference plus the strategy), averaged
# over rounds.

# %% tags=["fig4ab-table"]
sims, rows = {}, []
for name in STRATEGIES:
    t0 = time.perf_counter()
    sims[name] = sim = simulate(pool_X, pool_y, strategy=name, rounds=SIM_ROUNDS,
                                budget_per_round=SIM_BUDGET, initial_labeled=SIM_INITIAL,
                                X_test=test_X, y_test=test_y, seed=SEED,
                                head_params={"threads": 1})
    rates = [(N_POOL - r.n_labeled + SIM_BUDGET) / r.query_seconds for r in sim.records[1:]]
    rows.append({"strategy": name, "top-1 %": 100 * sim.accuracies[-1],
                 "top-5 %": 100 * sim.top5[-1], "labels": int(sim.n_labeled[-1]),
                 "selection items/s": float(np.mean(rates)),
                 "query s per round": float(np.mean([r.query_seconds for r in sim.records[1:]]))})
fig4ab = pd.DataFrame(rows).sort_values("top-1 %", ascending=False).round(3)
fig4ab

# %% tags=["fig4ab-plot"]
fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.8))
learning_curves({name: (sim.n_labeled, sim.accuracies) for name, sim in sims.items()},
                title="Fig. 4a: accuracy per strategy", ax=ax)
by_speed = fig4ab.sort_values("selection items/s")
bx.barh(by_speed["strategy"], by_speed["selection items/s"])
bx.set_xscale("log")
bx.set_xlabel("pool items scored per second (log)")
bx.set_title("Fig. 4b: selection throughput")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Fig. 4c: inference batch size against throughput
#
# The same ResNet-18 embeds `N_BS` images in batches of 1 to 64 (inputs preprocessed
# once, so this is model inference alone).

# %% tags=["fig4c"]
x = torch.stack([bb.preprocess(img) for img in test_images[:N_BS]])
bb.embed(x[:8])                                   # warm-up
rows = []
for bs in BATCH_SIZES:
    best = 0.0
    for _ in range(2 if CI else 3):               # best of a few passes: the machine is shared
        t0 = time.perf_counter()
        for start in range(0, N_BS, bs):
            bb.embed(x[start:start + bs])
        best = max(best, N_BS / (time.perf_counter() - t0))
    rows.append({"batch size": bs, "images/s": best})
fig4c = pd.DataFrame(rows)
fig4c["vs batch 1"] = fig4c["images/s"] / fig4c["images/s"].iloc[0]
fig4c = fig4c.round(2)

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(fig4c["batch size"], fig4c["images/s"], "o-")
ax.set_xscale("log", base=2)
ax.set_xticks(BATCH_SIZES, [str(b) for b in BATCH_SIZES])
ax.set_xlabel("inference batch size")
ax.set_ylabel("images/s")
ax.set_title(f"Fig. 4c: ResNet-18, {torch.get_num_threads()} CPU threads")
ax.grid(alpha=0.3)
plt.show()
fig4c


# %% [markdown]
# ## 5. Fig. 5: PSHEA, forecast against actual
#
# `run_pshea` races the same strategies from the same seed set, eliminating the lowest
# forecast every round. Each strategy picks exactly what it picks alone, so its curve
# matches its `simulate` run above up to its elimination, and the simulate runs are the
# brute-force reference (every strategy, every round).

# %% tags=["fig5"]
pshea = run_pshea(pool_X, pool_y, X_test=test_X, y_test=test_y, candidates=STRATEGIES,
                  budget_per_round=SIM_BUDGET, initial_labeled=SIM_INITIAL, rounds=SIM_ROUNDS,
                  seed=SEED, eliminate="one", min_delta=0, head_params={"threads": 1})
same = all(np.allclose(pshea.curve(s), sims[s].accuracies[:len(pshea.curve(s))])
           for s in STRATEGIES)
print(f"each strategy's PSHEA curve equals its simulate run: {same}\n")
print(pshea.controller.story())
pshea_forecasts(pshea.controller, title="PSHEA (bold) over every strategy run alone (thin)",
                reference={s: sims[s].accuracies for s in STRATEGIES})
plt.show()

# %% tags=["fig5-table"]
errors = pd.DataFrame(pshea.forecast_errors())
errors = errors[errors["n_points"] >= 2]
mae = 100 * (errors["predicted"] - errors["actual"]).abs().mean()
final = {s: sims[s].accuracies[-1] for s in STRATEGIES}
best = max(final, key=final.get)
brute_sum = SIM_INITIAL + len(STRATEGIES) * SIM_ROUNDS * SIM_BUDGET
fig5 = pd.DataFrame([
    {"run": "PSHEA (Algorithm 1)", "winner": pshea.winner,
     "top-1 %": 100 * pshea.final_accuracy, "labels summed": pshea.labels_sum,
     "labels unique": pshea.labels_unique,
     "% of brute force (summed)": 100 * pshea.labels_sum / brute_sum},
    {"run": "brute force: every strategy alone", "winner": best, "top-1 %": 100 * final[best],
     "labels summed": brute_sum, "labels unique": None, "% of brute force (summed)": 100.0},
    {"run": "random alone", "winner": "random", "top-1 %": 100 * final["random"],
     "labels summed": None, "labels unique": None, "% of brute force (summed)": None},
]).round(2)
print(f"forecast MAE (forecasts from >= 2 points): {mae:.2f} accuracy points over "
      f"{len(errors)} forecasts")
fig5

# %% [markdown]
# ## 6. The paper's findings beside ours

# %% tags=["summary"]
acc_rank = list(fig4ab["strategy"])
speed = [s for s in fig4ab.sort_values("selection items/s", ascending=False)["strategy"]
         if s != "random"]                       # random scores nothing: not a contender
bs = dict(zip(fig4c["batch size"], fig4c["images/s"], strict=True))
summary = pd.DataFrame([
    ("Table 2", "ALaaS vs ModAL, images/s", "3.6x (72.4 vs 19.9)",
     f"cold {cold['images/s'] / hand['images/s']:.1f}x, "
     f"warm {warm['images/s'] / hand['images/s']:.1f}x "
     f"({cold['images/s']:.0f} / {warm['images/s']:.0f} vs {hand['images/s']:.0f})"),
    ("Table 2", "same top-1 for every LC tool", "72.40% for all but libact",
     f"worker {cold['top-1 %']:.2f}%, script {hand['top-1 %']:.2f}% ({overlap:.0%} same picks)"),
    ("Fig. 4a", "most accurate", "Core-Set, then DBAL, then MC", ", ".join(acc_rank[:3])),
    ("Fig. 4a", "least accurate", "random (lower bound)", acc_rank[-1]),
    ("Fig. 4b", "fastest / slowest selection (random aside)", "LC / Core-Set",
     f"{speed[0]} / {speed[-1]}"),
    ("Fig. 4c", "batch 2 vs 1; 16 vs 4; 64 vs 16", "~1x; big rise; flat",
     f"{bs[2] / bs[1]:.1f}x; {bs[16] / bs[4]:.1f}x; {bs[64] / bs[16]:.1f}x"),
    ("Fig. 5", "forecast tracks actual", "closely", f"MAE {mae:.2f} points"),
    ("Fig. 5", "candidates stopped early, cost saved", "most stopped early",
     f"{len(pshea.eliminated)} of {len(STRATEGIES)} eliminated; "
     f"{100 * pshea.labels_sum / brute_sum:.0f}% of brute force's labels; winner {pshea.winner} "
     f"at {pshea.final_accuracy / final[best]:.3f} of the best ({best})"),
], columns=["figure", "finding", "paper", "here"])
summary

# %% [markdown]
# **What differs, and why.**
#
# - **Scale and hardware.** The paper selects 10,000 of 40,000 CIFAR-10 images on a GPU
#   server; we select a quarter of a few thousand MNIST digits on two shared CPU cores.
#   Absolute latencies and images/s are not comparable; ratios are.
# - **Table 2's speed-up.** In the paper the pool is on S3: a sequential reader waits on
#   every request, and ALaaS's concurrent fetching pays most. Here the pool is a folder of
#   small PNGs on local disk, so reading costs the script almost nothing and both paths
#   are bound by ResNet-18 inference on the same two cores. The worker embeds with one
#   torch thread (its thread plan keeps a core for decoding and fetching) while the
#   script uses two, and the worker journals every item it takes in. So on a small local
#   pool the cold worker may be no faster than the script, or slower — the table above
#   says which, on this run. `benchmarks/one_round.py` measured, at 8,000 images: local
#   disk 1.20x cold and 9.9x warm, S3 (moto) 2.07x cold and 27x warm. The **warm** run
#   (the embedding cache) is the large win, and it has no counterpart in the paper's
#   table.
# - **Fig. 4a.** MNIST is easy for a ResNet-18 trained on thousands of its images: the
#   initial model already scores in the high 80s (CI) or mid 90s (default), so the
#   strategies end within a point or two of each other — differences of the size of the
#   test set's noise. CIFAR-10 at the paper's ~72% leaves far more room. Beyond that,
#   rankings move with the data, the budget and the seed (Hacohen et al.:
#   typical samples win at low budgets, uncertain ones at high) — the paper's own
#   argument for PSHEA. Features matter too: on raw MNIST pixels (`benchmarks/pshea.py`,
#   3 seeds) DBAL led throughout while k-center and core-set fell below random (they
#   picked outliers); on the ResNet-18 features here the order differs, and one seed
#   cannot rank strategies that end within a point. The CI run (5 rounds of 50) is a
#   smoke test; the default sizes give a fairer picture.
# - **Fig. 4b.** As in the paper, the uncertainty scores are cheapest (one pass over the
#   probabilities) and the geometric ones (k-center, core-set, DBAL's k-means) cost the
#   most. Our k-center greedy is the exact, pruned implementation of
#   `docs/strategies.md`, much faster than a textbook loop.
# - **Fig. 4c.** On a GPU, small batches leave the device idle and throughput saturates
#   once it is busy (from about 16). On a CPU throughput keeps rising past 16 because
#   larger matrix products use the cores better, and one image per call pays the most
#   Python and framework overhead. The paper's data also came from S3, so fetching
#   overlapped with inference; this is inference alone.
# - **Fig. 5.** Same algorithm, same forecast-then-eliminate logic; our forecaster
#   averages four learning-curve models (the paper fits one exponential). With few rounds
#   and a small test set, accuracy moves by a point from noise alone, which bounds how
#   well any forecast can do. `benchmarks/pshea.py` runs 8 rounds over 3 seeds (MAE 1.03
#   points on MNIST, 1.56 on digits).

# %%
shutil.rmtree(WORK, ignore_errors=True)
