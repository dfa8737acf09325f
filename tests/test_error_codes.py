"""Every error names a stable ``reason`` code, in the worker and across the wire."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
from sklearn.datasets import load_digits

import alaas_lab
from alaas_lab.config import load_config
from alaas_lab.errors import REASONS, AlaasError, InputError, RemoteError
from alaas_lab.pipeline import thread_plan
from alaas_lab.protocol import error_content
from alaas_lab.worker import PoolSession
from alaas_lab.worker.ingest import Ingestor

CLASSES = [str(i) for i in range(10)]


def make_session(tmp_path, total: int, n_items: int):
    cfg = load_config({"name": "codes", "classes": CLASSES,
                       "active_learning": {"strategy": {"type": "least_confidence"},
                                           "model": {"name": "flatten"}},
                       "budget": {"total": total, "per_round": 10, "initial": 10},
                       "cache_dir": str(tmp_path / "cache")})
    s = PoolSession(cfg, tmp_path / f"s{total}")
    ing = Ingestor(s, thread_plan())
    ing.push_arrays(load_digits().images[:n_items].astype(np.float32))
    ing.close()
    return s


@pytest.fixture
def session(tmp_path):
    s = make_session(tmp_path, total=40, n_items=25)
    yield s, None
    s.close()


def reason_of(call) -> str:
    with pytest.raises(AlaasError) as info:
        call()
    return info.value.reason


def test_the_worker_names_each_refusal(session):
    s, y = session
    assert reason_of(lambda: s.fit()) == "no_labels"
    assert reason_of(lambda: s.label(1000, "3")) == "unknown_item"
    assert reason_of(lambda: s.label(0, "3")) == "not_queued"
    assert reason_of(lambda: s.query(10, strategy="nope")) == "unknown_strategy"
    assert reason_of(lambda: s.query(41)) == "over_budget"
    first = s.query(10)["item_ids"]
    assert reason_of(lambda: s.label(first[0], "seven")) == "bad_label"
    assert reason_of(lambda: s.query(31)) == "over_budget"
    s.query(10)
    assert reason_of(lambda: s.query(6)) == "pool_exhausted"
    s.mark_quarantined(first[1], s.uris[first[1]], "decode", "broken")
    assert reason_of(lambda: s.label(first[1], "3")) == "quarantined_item"


def test_a_spent_budget_is_its_own_code(tmp_path):
    s = make_session(tmp_path, total=10, n_items=20)
    try:
        s.query(10)
        assert reason_of(lambda: s.query(1)) == "budget_spent"
    finally:
        s.close()


def test_codes_cross_the_wire(tmp_path):
    lab = alaas_lab.Lab({"name": "wire", "classes": CLASSES,
                         "active_learning": {"model": {"name": "flatten"}},
                         "cache_dir": str(tmp_path / "cache")}, tmp_path / "s").start()
    try:
        with pytest.raises(RemoteError) as info:
            lab.client.label(5, "3")
        assert info.value.reason == "unknown_item" and info.value.ename == "InputError"
        with pytest.raises(RemoteError) as info:
            lab.client.request("query", {"budget": 1})
        assert info.value.reason == "pool_exhausted"
    finally:
        lab.stop()


def test_a_bug_is_internal_and_a_code_is_checked():
    assert error_content(ValueError("x"))["reason"] == "internal"
    assert error_content(InputError("x", reason="bad_label"))["reason"] == "bad_label"
    assert RemoteError("E", "v", {"reason": "made-up"}).reason == "error"
    with pytest.raises(ValueError, match="unknown reason code"):
        InputError("x", reason="made_up")


def test_every_exception_class_lives_in_errors():
    outside = []
    for mod in pkgutil.walk_packages(alaas_lab.__path__, "alaas_lab."):
        if mod.name.endswith("__main__"):
            continue
        module = importlib.import_module(mod.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, AlaasError)
                    and obj.__module__ != "alaas_lab.errors"):
                outside.append(f"{mod.name}.{name}")
    assert outside == []
    assert all(isinstance(k, str) and v for k, v in REASONS.items())
