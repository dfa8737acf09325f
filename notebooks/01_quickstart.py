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
# # 01 · Quickstart: label clothes with pretrained image features
#
# **What you'll learn**
#
# - start an alaas_lab session from a notebook with `%load_ext alaas_lab` and
#   `%alaas start <config>`, on a config that embeds images with the pretrained
#   **EfficientNet-Lite0** backbone (`model: {name: efficientnet_lite0}`);
# - push a pool of images and an evaluation set;
# - label the items the worker selects in the **labeling widget** (`%alaas label`), round
#   after round, and watch top-1 accuracy rise on the **dashboard**;
# - see what the pretrained features are worth against raw pixels, on the same labels;
# - export the labels and stop the worker.
#
# The worker is a separate process: it embeds the pool once with the backbone (the
# embeddings are cached), keeps every label in a journal, retrains the last layer after
# each round and picks the next items with *least confidence*. Your kernel only holds a
# thin client and the widgets.
#
# **Labeling by hand or by oracle.** The widget shows one image at a time; keys `1`–`9`
# and `0` answer the ten classes in order. When `LABEL_BY_HAND` is `False` (the default,
# and always under CI) a simulated oracle that knows the true classes answers through the
# widget's own Python API (`widget.answer(label)` — exactly what a key press sends), so
# the notebook runs top to bottom unattended. Set it to `True` to label yourself.

# %% tags=["parameters"]
# Parameters (papermill-style: this cell is tagged "parameters")
import os

CI = os.environ.get("CI") == "true"  # CI sets CI=true: a smaller pool, fewer rounds
N_POOL = 1_000 if CI else 5_000  # Fashion-MNIST training images: the unlabeled pool
N_EVAL = 500 if CI else 2_000  # Fashion-MNIST test images: the evaluation set
ROUNDS = 4 if CI else 8  # labeling rounds of 20 items (the first is random)
LABEL_BY_HAND = False  # True: you answer in the widget yourself
SEED = 0
LABEL_BY_HAND = LABEL_BY_HAND and not CI

# %%
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import yaml

import alaas_lab
from alaas_lab import datasets, load_config
from alaas_lab.models import LastLayerHead
from alaas_lab.plots import learning_curves

# Everything this notebook writes (session, embedding cache, exports) goes in one
# temporary folder, removed at the end.
WORK = Path(tempfile.mkdtemp(prefix="alaas_nb01_"))
print(f"alaas_lab {alaas_lab.__version__}; CI={CI}; working folder {WORK}")

# %% [markdown]
# ## 1. The data: Fashion-MNIST
#
# Zalando's Fashion-MNIST: 28×28 grey photos of clothes in ten classes, harder than
# handwritten digits — where pretrained features earn their keep. `datasets.fashion_mnist()`
# downloads the files the first time (checked against their md5s) and keeps them in
# `~/.cache/alaas_lab/data/fashion-mnist` (`$ALAAS_DATA` moves the cache,
# `$ALAAS_DATA_MIRROR` names a mirror; see `docs/models.md`). The first `N_POOL` training
# images are the unlabeled **pool**; the first `N_EVAL` test images are an **evaluation
# set** whose labels we give up front (the worker scores every round on it).

# %%
train = datasets.fashion_mnist(split="train", limit=N_POOL)
test = datasets.fashion_mnist(split="test", limit=N_EVAL)
CLASSES = list(train.classes)
pool_images = train.images  # (N_POOL, 28, 28) uint8
y_pool = [CLASSES[v] for v in train.y]  # hidden: only the oracle knows them
X_eval = test.images
y_eval = [CLASSES[v] for v in test.y]

fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for ax, img, label in zip(axes, pool_images, y_pool, strict=False):
    ax.imshow(img, cmap="gray_r")
    ax.set_title(label, fontsize=7)
    ax.axis("off")
plt.show()
print(f"pool {pool_images.shape}, evaluation set {X_eval.shape}; classes: {CLASSES}")

# %% [markdown]
# ## 2. The config: configuration as a service
#
# A session is described by one YAML file in the shape of the ALaaS paper's example
# (strategy, model, worker address) plus what a session needs: classes, label budget,
# seed. `load_config` validates every key and names the key path of anything wrong.
#
# The **model** is `efficientnet_lite0`: ImageNet EfficientNet-Lite0, whose weights are
# installed with alaas_lab (nothing is downloaded). Each image becomes a 1,280-d feature
# vector; only a last layer is trained on them. `input_size: 112` keeps a CPU fast (224,
# the training size, is about 4× slower and a few points better). `examples/` holds more
# configs, such as `image_classification.yml` for your own images in S3.

# %%
CONFIG_TEXT = """
name: FASHION_QUICKSTART
active_learning:
  strategy: {type: least_confidence}
  model: {name: efficientnet_lite0, input_size: 112, batch_size: 64}
  device: cpu
data: {kind: array}
classes: [T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot]
budget: {total: 400, per_round: 20, initial: 20}
"""
# the same config, with our seed and the embedding cache in our temporary folder
config = load_config(CONFIG_TEXT, seed=SEED, cache_dir=str(WORK / "cache"))
assert list(config.classes) == CLASSES
CONFIG = WORK / "fashion.yml"
CONFIG.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
SESSION = WORK / "session"
print(f"strategy: {config.active_learning.strategy.type}; backbone: "
      f"{config.active_learning.model.name}; budget: {config.budget}")

# %% [markdown]
# ## 3. Start the worker
#
# `%alaas start` starts the worker process for this session (or attaches to it, if it is
# already running — after a kernel restart, run the same line again). `--session` says
# where its journal lives.

# %%
# %load_ext alaas_lab
# %alaas start $CONFIG --session $SESSION

# %% [markdown]
# `%alaas` drives a `Lab` object; `current_lab()` gives it to you for the Python API
# (`lab.push`, `lab.label`, `lab.status`, ...).
#
# ## 4. Push the pool and the evaluation set
#
# `%alaas push pool_images` would push the pool; in Python, `lab.push` returns the
# worker's reply, including the **item ids** it gave each row — our simulated oracle needs
# them to look up the true class. The worker embeds every image with EfficientNet-Lite0
# here (the slow part of this notebook, once: a second session on the same cache takes
# the embeddings from it). The evaluation set goes in with its labels (`--eval`).

# %%
from alaas_lab.magics import current_lab

lab = current_lab()
reply = lab.push(pool_images)  # the same as: %alaas push pool_images
truth = dict(zip(reply["item_ids"], y_pool, strict=True))
print(f"pushed {reply['n_items']} items: {reply['embedded']} embedded, "
      f"{reply['cache_hits']} from the cache, in {reply['seconds']:.1f} s "
      f"({reply['n_items'] / reply['seconds']:.0f} images/s)")

# %%
# %alaas push X_eval --eval y_eval

# %% [markdown]
# ## 5. Label in the widget
#
# `%alaas label` shows the labeling widget; `lab.label(...)` is the same in Python and
# returns the widget. Keys `1`–`9` and `0` answer the classes in the config's order
# (`keys=` changes them); Space skips, Backspace undoes.
#
# The first round is a random **seed set** (there is no model yet); after that the worker
# picks the items its model is least confident about. The next items are always
# preloaded: the worker selects ahead while you label, so you never wait for it. When a
# round's last item is answered it retrains the last layer, scores it and selects with the
# new model (a fraction of a second: the embeddings are cached). Items selected before the
# first model was ready are random too, so the table below may show a few random rounds.

# %% tags=["labeler"]
labeler = lab.label()  # the same as: %alaas label
labeler


# %%
def answer_with_oracle(widget, rounds, timeout=300.0):
    """Answer what the widget shows, as a perfect labeler would, until `rounds` are scored.

    `widget.current` is the item on screen; `widget.answer(label)` is what a key press
    sends. The answers go to the worker from the widget's sender thread. The worker
    selects ahead while you label (`rounds: {mode: async}`, the default), so a round may
    hold more than `budget.per_round` items when its fit takes a while.
    """
    deadline = time.monotonic() + timeout
    widget.wait_ready(60)
    while len(lab.status()["rounds"]) < rounds:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{rounds} rounds were not scored within {timeout:g} s")
        item = widget.current
        if item is None:  # nothing queued yet: the worker is selecting
            if widget.state in ("done", "error"):
                raise RuntimeError(f"widget {widget.state}: {widget.message} {widget.error}")
            time.sleep(0.02)
            continue
        widget.answer(truth[item["item_id"]])
    widget.flush()  # every answer given is saved by the worker


if LABEL_BY_HAND:
    print(f"Label {ROUNDS} rounds in the widget above, then run the next cells.")
else:
    t0 = time.perf_counter()
    answer_with_oracle(labeler, ROUNDS)
    print(f"the oracle labeled {ROUNDS} rounds in {time.perf_counter() - t0:.1f} s; "
          f"widget progress: {labeler.progress}")

# %% [markdown]
# ## 6. Accuracy, round by round
#
# The dashboard draws top-1 accuracy per round, live (with automatic strategy selection it
# also draws each strategy's forecast — see notebook 02). `%alaas status` says the same as
# text, and `lab.status()["rounds"]` has the numbers.

# %% tags=["dashboard"]
# %alaas dashboard

# %% tags=["accuracy-table"]
rounds = pd.DataFrame(lab.status()["rounds"])[["round", "strategy", "n_labeled", "top1", "top5"]]
rounds

# %% tags=["accuracy-plot"]
learning_curves({"least confidence, EfficientNet-Lite0 (worker)":
                 (rounds["n_labeled"], rounds["top1"])},
                title="Accuracy rises as you label", xlabel="labels (training)")
plt.show()
if len(rounds) > 1:
    print(f"top-1 went from {100 * rounds.top1.iloc[0]:.1f}% with {rounds.n_labeled.iloc[0]} "
          f"labels to {100 * rounds.top1.iloc[-1]:.1f}% with {rounds.n_labeled.iloc[-1]}")

# %% [markdown]
# ## 7. What the pretrained features are worth
#
# The same last layer, trained on the same labels, but on raw pixels instead of
# EfficientNet-Lite0 features. (The worker chose these items for its own model, so the
# comparison leans a little its way; `benchmarks/fashion_features.py` compares the two
# over seeds and strategies: about 3–4 points in the features' favour at a few hundred
# labels on Fashion-MNIST.)

# %% tags=["pixels-vs-features"]
labeled = lab.labels()
row_of = {item: row for row, item in enumerate(reply["item_ids"])}
rows = [row_of[i] for i in labeled["item_id"]]
pixels = pool_images.reshape(len(pool_images), -1) / 255.0
head = LastLayerHead(CLASSES)
head.fit(pixels[rows], list(labeled["label"]), standardize_on=pixels)
on_pixels = head.evaluate(X_eval.reshape(len(X_eval), -1) / 255.0, y_eval)["top1"]
print(f"{len(rows)} labels: top-1 {100 * rounds.top1.iloc[-1]:.1f}% on EfficientNet-Lite0 "
      f"features (the worker), {100 * on_pixels:.1f}% on raw pixels")

# %%
# %alaas status

# %% [markdown]
# The worker keeps a share of *your* labels out of training only when there is no
# evaluation set; here every label trains the model (`n_labeled`).
#
# ## 8. Export the labels, stop the worker
#
# Every label is in the session's journal with who gave it, when, and which round and
# strategy asked for it. `%alaas export` writes them (`.csv`, `.jsonl`, `.parquet`);
# `lab.labels()` gives a DataFrame.

# %% tags=["labels"]
# %alaas export $WORK/labels.csv
lab.labels().head()

# %%
# %alaas stop
shutil.rmtree(WORK, ignore_errors=True)

# %% [markdown]
# `%alaas stop` stops the widgets and the worker; the session directory would survive a
# stop (we delete it here), and `%alaas start` on it resumes from the journal.
#
# **Next:** `02_auto_strategy_pshea.ipynb` lets the worker choose the strategy itself.
