"""Four labelers on one worker: distinct items, nothing labeled twice, no label lost."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from alaas_lab.journal import Journal
from alaas_lab.server import Server

pytestmark = pytest.mark.slow


def test_four_labelers_share_one_worker(tmp_path):
    rng = np.random.default_rng(0)
    n_items, per_labeler, batch = 6000, 1250, 25  # 5,000 labels in all
    config = {"name": "crowd", "classes": ["a", "b"], "cache_dir": str(tmp_path / "c"),
              "active_learning": {"strategy": {"type": "random"}, "model": {"name": "flatten"}},
              "budget": {"total": n_items, "per_round": batch, "initial": 0}}
    server = Server(config=config, session_dir=tmp_path / "s").start()
    try:
        server.client().push_data(rng.normal(size=(n_items, 4, 4)).astype(np.float32))
        given: dict[str, list[int]] = {}
        errors: list[BaseException] = []

        def labeler(name: str) -> None:
            try:
                client = server.client(timeout=60)
                mine: list[int] = []
                while len(mine) < per_labeler:
                    selection = client.query(batch)
                    for start in range(0, batch, 5):
                        ids = selection.item_ids[start:start + 5]
                        client.label_many(ids, [("a", "b")[i % 2] for i in ids], labeler=name)
                    mine += selection.item_ids
                given[name] = mine
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=labeler, args=(f"labeler-{k}",)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not errors, errors
        everyone = [i for ids in given.values() for i in ids]
        assert len(everyone) == 5000 and len(set(everyone)) == 5000  # nobody got another's item
        status = server.client().status()
        assert status["n_labeled"] == 5000 and status["n_pending"] == 0
    finally:
        server.stop()
    with Journal(server.session_dir / "session.sqlite") as journal:
        history = journal.label_history()
        labels = journal.labels()
    assert len(history) == 5000  # each item labeled once, by the one who was asked
    for name, ids in given.items():
        assert {h.item_id for h in history if h.labeler == name} == set(ids)
    assert all(labels[i] == ("a", "b")[i % 2] for i in everyone)
