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
# # 02 · Automatic strategy selection (PSHEA) on MNIST
#
# **What you'll learn**
#
# - why there is no single best active-learning strategy, and how alaas_lab picks one for
#   your data: **PSHEA** (*Predictive-based Successive Halving Early-stop*, Algorithm 1 of
#   the ALaaS paper);
# - run it as a service: a worker with `strategy: {type: auto}`, fed by a labeling loop
#   (here a simulated oracle that knows the MNIST labels), with the **live dashboard**
#   (`lab.dashboard()`);
# - read the run: the **elimination story in words**, generated from the controller's
#   decisions, and the **predicted-vs-actual** figure (the paper's Fig. 5);
# - run the same controller in-process with `alaas_lab.run_pshea(...)` and compare it with
#   brute force (every strategy every round): the labels PSHEA saves and what it costs in
#   accuracy.
#
# **How PSHEA works.** Every candidate strategy starts from the same random seed set. Each
# round, every surviving strategy selects its own items (the labeler is asked only for the
# union of the picks nobody has labeled yet, so shared picks cost one label), its own last
# layer is retrained, and a learning-curve model (an average of exponential and
# power-law fits) **forecasts** its accuracy one round ahead. The strategy with the lowest
# forecast is dropped. The run stops at the target accuracy, when the budget is spent,
# after `max_rounds`, or when accuracy stops improving.

# %% tags=["parameters"]
# Parameters (papermill-style: this cell is tagged "parameters")
import os

CI = os.environ.get("CI") == "true"   # CI sets CI=true: a smaller pool and fewer rounds
N_POOL = 2_000 if CI else 10_000       # MNIST training images in the pool
N_TEST = 500 if CI else 2_000          # MNIST test images, the evaluation set
PER_ROUND = 50 if CI else 100          # labels each surviving strategy selects per round
ROUNDS = 4 if CI else 8                # strategy rounds after the seed round
CANDIDATES = ["random", "least_confidence", "margin", "entropy", "kcenter_greedy", "dbal"]
TARGET = 0.97                          # stop early if some strategy gets there
SEED = 0

# %%
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import yaml
from threadpoolctl import threadpool_limits

from alaas_lab import Lab, datasets, run_pshea
from alaas_lab.agent import Pshea
from alaas_lab.journal import Journal
from alaas_lab.oracle import label_round
from alaas_lab.plots import pshea_forecasts

# Everything this notebook writes (session, cache) goes in one temporary folder, removed
# at the end.
WORK = Path(tempfile.mkdtemp(prefix="alaas_nb02_"))
print(f"CI={CI}; working folder {WORK}")

# One BLAS thread: the last-layer fits are small, and on a busy machine more threads
# make them slower, not faster (results are also reproducible per thread count).
_blas = threadpool_limits(1, user_api="blas")

# %% [markdown]
# ## 1. A subset of MNIST
#
# The first `N_POOL` training images form the unlabeled pool, the first `N_TEST` test
# images the evaluation set. The backbone is `flatten` (raw pixels): no pretrained weights
# are needed, and it keeps the tutorial fast. Notebook 04 uses a ResNet-18.
# `datasets.mnist()` downloads the files the first time (checked against their md5s) and
# keeps them in `~/.cache/alaas_lab/data/mnist` (`$ALAAS_DATA` moves the cache,
# `$ALAAS_DATA_MIRROR` names a mirror; see `docs/models.md`).

# %%
train = datasets.mnist(split="train", limit=N_POOL)
test = datasets.mnist(split="test", limit=N_TEST)
print(f"pool {train.images.shape}, evaluation set {test.images.shape}")

# %% [markdown]
# ## 2. A worker that races strategies
#
# `strategy.type: auto` hands the selection to PSHEA. `candidates` are the strategies to
# race (empty: the whole zoo); `budget.per_round` is what each survivor selects per round
# and `budget.initial` the shared seed set; `budget.total: 0` sets no label cap, so
# `max_rounds` ends the run unless the target is reached or accuracy stalls (by default:
# less than 0.1 point of progress over 2 rounds).

# %%
config = {
    "name": "MNIST_AUTO",
    "active_learning": {
        "strategy": {"type": "auto", "candidates": CANDIDATES,
                     "params": {"eliminate": "one", "max_rounds": ROUNDS}},
        "model": {"name": "flatten", "batch_size": 512},
    },
    "data": {"kind": "array"},
    "classes": [str(c) for c in range(10)],
    "budget": {"total": 0, "per_round": PER_ROUND, "initial": PER_ROUND},
    "target_accuracy": TARGET,
    "cache_dir": str(WORK / "cache"),
    "seed": SEED,
}
print(yaml.safe_dump(config, sort_keys=False))

lab = Lab(config, session_dir=WORK / "session").start()
reply = lab.push(train.images)
truth = dict(zip(reply["item_ids"], (str(v) for v in train.y), strict=True))  # the oracle's answers
lab.push(test.images, role="eval", labels=[str(v) for v in test.y])
print(lab.describe())

# %% [markdown]
# ## 3. The live dashboard
#
# One line per strategy: measured top-1 per round (solid), the forecaster's prediction
# (dashed), × where PSHEA eliminated it, the target as a dotted line; cards for the round,
# labels and the strategies still racing. It follows the worker's events, so it fills in
# while the next cell labels.

# %% tags=["dashboard"]
dashboard = lab.dashboard()
dashboard


# %% [markdown]
# ## 4. Label, round after round
#
# A human would use the labeling widget (`lab.label()`: it shows which strategies asked
# for each item). Here a simulated oracle answers through the client: `query` returns the
# round's items — the union of every survivor's picks that nobody has labeled yet — and
# `label_many` answers them (`alaas_lab.oracle.label_round` does both, and waits until
# the worker has scored the round). When a round's last item is labeled the worker fits one last
# layer per survivor, scores each on the evaluation set, forecasts, and eliminates.

# %% tags=["rounds-table"]
def label_one_round(lab):
    """Answer one round's items from `truth`, wait until the worker scored it, sum it up."""
    sel, _ = label_round(lab, truth, PER_ROUND)  # query, label_many, wait for the scores
    auto = lab.status()["auto"]
    return {"round": sel.round, "items asked": len(sel.item_ids),
            "racing": len(auto["survivors"]),
            "best top-1 %": round(100 * auto["best_accuracy"], 2),
            "labels unique": auto["labels_unique"], "labels summed": auto["labels_sum"],
            "eliminated so far": ", ".join(auto["eliminated"]) or "-"}

t0 = time.perf_counter()
log = []
while not lab.status()["auto"]["stopped"]:
    log.append(label_one_round(lab))
auto = lab.status()["auto"]
print(f"{len(log)} rounds in {time.perf_counter() - t0:.1f} s. PSHEA stopped: "
      f"{auto['stop_reason']}; winner {auto['winner']} at {100 * auto['best_accuracy']:.2f}%")
pd.DataFrame(log)


# %% [markdown]
# "items asked" is smaller than "racing × per round" because strategies that pick the
# same item share its label: the uncertainty strategies (least confidence, margin,
# entropy) overlap a lot.
#
# ## 5. The story, in words
#
# The worker journals the controller's whole state after every round; `Pshea.from_dict`
# rebuilds it, with every decision it made and why; `story()` tells them in words.

# %% tags=["story"]
with Journal(lab.session_dir / "session.sqlite", synchronous="NORMAL") as journal:
    saved = journal.events("pshea_state")[-1].payload["controller"]
ctrl = Pshea.from_dict(saved)
print(ctrl.story())

# %% [markdown]
# ## 6. Predicted vs actual (the paper's Fig. 5)
#
# The forecast for round *r* is made from the rounds before it; the elimination rests on
# it. From one point (the seed round) the forecast is only "the last value", so it is
# never used to eliminate, and it is left out of the right panel.
# `alaas_lab.plots.pshea_forecasts` draws it from the controller.

# %% tags=["figure"]
pshea_forecasts(ctrl, title=f"PSHEA in the worker: MNIST, pool {N_POOL}")
plt.show()

# %% [markdown]
# ## 7. Under the hood: `run_pshea`, and what brute force would cost
#
# `alaas_lab.run_pshea` drives the same controller in-process with a simulated oracle: one
# learner per candidate, one shared label store. Running it with `eliminate="none"` (every
# strategy every round) gives each strategy's full learning curve, the best strategy *in
# hindsight*, and the labels PSHEA saved. Both runs start from the same seed set and each
# strategy picks exactly what it would pick alone, so they differ only in who keeps
# running. (The in-process runs do not repeat the worker's run above pick for pick: the
# worker draws its own seed set.)

# %%
common = dict(X_test=test.X, y_test=test.y, candidates=CANDIDATES, budget_per_round=PER_ROUND,
              initial_labeled=PER_ROUND, rounds=ROUNDS, target=TARGET, seed=SEED,
              head_params={"threads": 1})
t0 = time.perf_counter()
pshea = run_pshea(train.X, train.y, eliminate="one", **common)
brute = run_pshea(train.X, train.y, eliminate="none", min_delta=0, **common)
print(f"two runs in {time.perf_counter() - t0:.1f} s\n")
print(pshea.to_table())
print()
print(brute.to_table())

# %% tags=["comparison"]
curves = {s: brute.curve(s) for s in CANDIDATES}
n = len(pshea.curve(pshea.winner))                     # rounds PSHEA ran, seed round included
best = max(CANDIDATES, key=lambda s: curves[s][n - 1])  # best strategy in hindsight, same round
comparison = pd.DataFrame([
    {"run": "PSHEA (Algorithm 1)", "winner": pshea.winner,
     "top-1 %": 100 * pshea.final_accuracy,
     "labels summed": pshea.labels_sum, "labels unique": pshea.labels_unique},
    {"run": "brute force (all, every round)", "winner": brute.winner,
     "top-1 %": 100 * curves[best][n - 1],
     "labels summed": brute.labels_sum, "labels unique": brute.labels_unique},
    {"run": "random alone", "winner": "random", "top-1 %": 100 * curves["random"][n - 1],
     "labels summed": None, "labels unique": None},
]).round(2)
saved = 1 - pshea.labels_sum / brute.labels_sum
print(f"PSHEA reached {pshea.final_accuracy / curves[best][n - 1]:.3f} of the best strategy "
      f"in hindsight ({best}) with {100 * saved:.0f}% fewer labels (summed) than brute force.")
comparison

# %% tags=["figure-inprocess"]
print(pshea.controller.story())
pshea_forecasts(pshea.controller, title="run_pshea (bold) over brute force (thin)",
                reference=curves)
plt.show()

# %% [markdown]
# **Reading it.** The thin lines are each strategy run to the end (brute force); the bold
# part is how long PSHEA kept it. A strategy that starts slowly can be dropped although it
# would have caught up later — the price of forecasting from a few points; the forecast
# error shrinks as the curves grow (notebook 04 and `benchmarks/pshea.py` measure it over
# seeds).
#
# ## 8. Clean up

# %%
lab.stop()
shutil.rmtree(WORK, ignore_errors=True)
