"""Suspect labels on seeded noise: out-of-fold confident learning finds flipped labels."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alaas_lab.errors import InputError
from alaas_lab.worker.suspects import find_suspects, out_of_fold_proba


def test_find_suspects_by_hand():
    # class thresholds: t0 = mean(.9, .8, .3) = .667, t1 = mean(.7, .6) = .65
    proba = np.array([[.9, .1], [.8, .2], [.3, .7], [.3, .7], [.4, .6]])
    y = np.array([0, 0, 0, 1, 1])
    out = find_suspects(proba, y)
    assert out["order"].tolist() == [2]  # labeled 0, confidently 1
    assert out["suggested"].tolist() == [1]
    np.testing.assert_allclose(out["thresholds"], [2 / 3, 0.65])
    assert out["self_confidence"].tolist() == [0.3]


@pytest.mark.parametrize("rate", [0.05, 0.10])
def test_flipped_digits_are_found(rate):
    d = load_digits()
    X, y = d.data[:600].astype(np.float32), d.target[:600].copy()
    rng = np.random.default_rng(0)
    wrong = rng.choice(y.size, int(rate * y.size), replace=False)
    y[wrong] = (y[wrong] + rng.integers(1, 10, wrong.size)) % 10
    proba = out_of_fold_proba(X, y, 10, seed=0)
    assert proba.shape == (600, 10)
    order = find_suspects(proba, y)["order"]
    hits = np.isin(order, wrong)
    recall = hits.sum() / wrong.size
    precision = hits.mean()
    assert recall > 0.7 and precision > 0.4, (recall, precision)  # chance: precision = rate
    # ranked: the top of the list is purer than the whole list
    top = np.isin(order[:wrong.size], wrong).mean()
    assert top >= precision


def test_out_of_fold_checks_shapes():
    with pytest.raises(InputError, match="X"):
        out_of_fold_proba(np.zeros((5, 2)), np.zeros(4, dtype=int), 2)
