"""The simulated labeler (:mod:`alaas_lab.oracle`) against a real worker process."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alaas_lab import Lab
from alaas_lab.errors import InputError
from alaas_lab.oracle import label_round, wait_for_round

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oracle")
    d = load_digits()
    X, y = d.images.astype(np.float32), d.target.astype(str)
    cfg = {"name": "oracle", "classes": CLASSES,
           "active_learning": {"strategy": {"type": "margin"},
                               "model": {"name": "flatten", "batch_size": 64}},
           "budget": {"total": 100, "per_round": 10, "initial": 10},
           "cache_dir": str(tmp / "cache")}
    lab = Lab(cfg, tmp / "session").start()
    reply = lab.push(X[:300])
    lab.push(X[1000:1200], role="eval", labels=list(y[1000:1200]))
    lab.truth = dict(zip(reply["item_ids"], y[:300], strict=True))
    yield lab
    lab.stop()


def test_label_round_answers_every_item_and_returns_the_scored_round(lab):
    first, rows = label_round(lab, lab.truth, 10)
    assert len(first.item_ids) == 10 and [r["round"] for r in rows] == [first.round]
    assert rows[0]["n_labeled"] == 10 and 0 < rows[0]["top1"] <= 1
    second, rows = label_round(lab, lab.truth, 10, labeler="bot")
    assert second.round == first.round + 1 and rows[0]["n_labeled"] == 20
    labels = lab.labels()
    assert len(labels) == 20 and set(labels["labeler"]) == {"oracle", "bot"}
    assert all(lab.truth[i] == v for i, v in zip(labels["item_id"], labels["label"], strict=True))
    # a scored round is returned at once
    assert wait_for_round(lab, first.round, timeout=0)[0]["n_labeled"] == 10


def test_wait_for_a_round_that_is_never_scored_times_out_saying_which_were(lab):
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match=r"round 99 was not scored within 0.3 s \(scored: \["):
        wait_for_round(lab, 99, timeout=0.3)
    assert time.monotonic() - t0 < 5


def test_bad_input_is_refused_with_what_to_give(lab):
    with pytest.raises(InputError, match="round must be a round number"):
        wait_for_round(lab, "1")
    with pytest.raises(InputError, match=r"truth has no label for item\(s\)"):
        label_round(lab, {}, 5)
