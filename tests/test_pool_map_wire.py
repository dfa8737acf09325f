"""The pool map, the map's queue and the suspect labels over the wire, with a real worker."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from sklearn.datasets import load_digits

from alaas_lab import Lab
from alaas_lab.errors import RemoteError
from alaas_lab.journal import Journal
from alaas_lab.protocol.messages import check_content, undeclared

CLASSES = [str(i) for i in range(10)]


def config(tmp):
    return {"name": "pool-map",
            "active_learning": {"strategy": {"type": "least_confidence"},
                                "model": {"name": "flatten", "batch_size": 256}},
            "classes": CLASSES, "budget": {"total": 400, "per_round": 40, "initial": 40},
            "evaluation": {"holdout": 0.0}, "rounds": {"mode": "sync"},
            "cache_dir": str(tmp / "cache")}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A worker with 400 digits, two labeled rounds (6 labels flipped), one queued."""
    tmp = tmp_path_factory.mktemp("map")
    d = load_digits()
    X, y = d.images[:400].astype(np.float32), d.target[:400]
    lab = Lab(config(tmp), tmp / "s", labeler="tester").start()
    events: list = []
    got = threading.Event()

    def on_event(m):
        events.append(m)
        if m.msg_type in ("pool_map_ready", "suspects_ready"):
            got.set()
    stop = lab.client.subscribe(on_event, types=["pool_map_ready", "suspects_ready"])
    lab.push(X)
    flipped = {}
    for _ in range(2):
        sel = lab.client.query(40)
        answers = [str(y[i]) for i in sel.item_ids]
        for k in range(3):  # three wrong answers per round, seeded
            i = sel.item_ids[k]
            flipped[i] = str((y[i] + 3) % 10)
            answers[k] = flipped[i]
        lab.client.label_many(sel.item_ids, answers, labeler="tester")
    lab.client.fit()
    queued = lab.client.query(40)
    yield lab, y, flipped, queued, events
    stop()
    lab.stop()


def test_pool_map_arrives_as_binary_arrays(session):
    lab, y, _, queued, events = session
    reply = lab.client.pool_map(wait=True, timeout=300)
    assert check_content("pool_map_reply", reply) is None and not undeclared("pool_map_reply",
                                                                             reply)
    n = reply["n"]
    assert n == 400 and reply["version"] >= 1 and reply["method"] == "tsne"
    xy, ids = reply["xy"], reply["item_ids"]
    assert isinstance(xy, np.ndarray) and xy.dtype == np.float32 and xy.shape == (n, 2)
    assert ids.dtype == np.int32 and sorted(ids.tolist()) == list(range(400))
    assert np.isfinite(xy).all() and xy.std() > 0
    for name, dtype in (("predicted", np.int16), ("uncertainty", np.float32),
                        ("point_state", np.uint8), ("strategy", np.uint8), ("label", np.int16),
                        ("suspect", np.uint8)):
        assert reply[name].dtype == dtype and reply[name].shape == (n,), name
    states = reply["states"]
    pos = {int(i): k for k, i in enumerate(ids)}
    state = reply["point_state"]
    assert all(states[state[pos[i]]] == "queued" for i in queued.item_ids)
    assert (state == states.index("labeled")).sum() == 80
    strategies = reply["strategies"]
    assert strategies[reply["strategy"][pos[queued.item_ids[0]]]] == "least_confidence"
    # the head is fitted: a prediction for every point, uncertainty in [0, 1)
    assert (reply["predicted"] >= 0).all()
    u = reply["uncertainty"]
    assert np.isfinite(u).all() and (u >= 0).all() and (u < 1).all()
    # the 2-D map keeps digits together: a point's nearest neighbour is mostly its class
    truth = y[ids]
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    assert (truth[d2.argmin(1)] == truth).mean() > 0.85
    assert any(e.msg_type == "pool_map_ready" and e.content["n"] == 400 for e in events)

    # the same version again: only the per-point fields travel
    again = lab.client.pool_map(since_version=reply["version"])
    assert again["version"] == reply["version"] and "xy" not in again
    assert again["point_state"].shape == (n,)


def test_a_lasso_selection_is_labeled_next(session):
    lab, y, _, queued, _ = session
    reply = lab.client.pool_map()
    state = reply["point_state"]
    unlabeled = reply["item_ids"][state == reply["states"].index("unlabeled")][:5]
    labeled = reply["item_ids"][state == reply["states"].index("labeled")][:2]
    out = lab.client.queue_items(np.concatenate([unlabeled, labeled]), labeler="mapper")
    assert check_content("queue_items_reply", out) is None
    assert out["item_ids"].tolist() == unlabeled.tolist() and out["skipped"] == {"labeled": 2}
    leased = lab.client.next_items(5, labeler="mapper")
    assert leased["item_ids"] == unlabeled.tolist()
    assert set(leased["strategies"]) == {"map"}
    # another labeler gets the round's items, not the ones leased from the map
    other = lab.client.next_items(3, labeler="someone-else")
    assert not set(other["item_ids"]) & set(unlabeled.tolist())
    lab.client.label(int(unlabeled[0]), str(y[unlabeled[0]]), labeler="mapper")
    with pytest.raises(RemoteError, match="not in the pool"):
        lab.client.queue_items([10_000])


def test_suspects_find_flipped_labels_and_corrections_are_journaled(session):
    lab, y, flipped, _, events = session
    reply = lab.client.suspects(refresh=True, wait=True, timeout=120)
    assert check_content("suspects_reply", reply) is None and not undeclared("suspects_reply",
                                                                             reply)
    assert reply["n_scored"] >= 80
    found = [r["item_id"] for r in reply["items"]]
    # 6 of 80 labels are wrong (7.5 %): recall well above chance, precision too
    hits = set(found) & set(flipped)
    assert len(hits) >= 4, (found, flipped)
    assert len(hits) / max(1, len(found)) > 0.3
    top = next(r for r in reply["items"] if r["item_id"] in flipped)
    assert top["label"] == flipped[top["item_id"]] and top["rank"] >= 1
    assert any(e.msg_type == "suspects_ready" for e in events)

    item = top["item_id"]
    fixed = lab.client.relabel(item, str(y[item]), labeler="reviewer")
    assert check_content("relabel_reply", fixed) is None
    assert fixed["kind"] == "corrected" and fixed["after"] == str(y[item]) and fixed["row_id"]
    keep = next(r["item_id"] for r in reply["items"] if r["item_id"] != item)
    table = lab.suspects()
    assert list(table.columns) == ["item_id", "uri", "label", "suggested", "self_confidence",
                                   "rank"] and keep in set(table.item_id)
    kept = lab.relabel(keep, _current(lab, keep))  # the Lab's labeler: "tester"
    assert kept["kind"] == "confirmed" and kept["row_id"] is None
    status = lab.status()["suspects"]
    assert status["corrected"] == 1 and status["confirmed"] == 1
    open_now = [r["item_id"] for r in lab.client.suspects()["items"]]
    assert item not in open_now and keep not in open_now
    # the correction is a new label row, with who and when, and the label history keeps both
    rows = lab.labels(history=True)
    mine = rows[rows.item_id == item]
    assert mine.label.tolist() == [flipped[item], str(y[item])]
    assert mine.labeler.tolist() == ["tester", "reviewer"]
    with Journal(lab.session_dir / "session.sqlite") as journal:  # who and when, durable
        reviews = {r["item_id"]: r for r in journal.reviews()}
    assert reviews[item]["kind"] == "corrected" and reviews[item]["labeler"] == "reviewer"
    assert reviews[item]["before"] == flipped[item] and reviews[item]["time"] > 0
    assert reviews[keep]["kind"] == "confirmed" and reviews[keep]["labeler"] == "tester"
    with pytest.raises(RemoteError, match="not labeled yet"):
        lab.client.relabel(next(i for i in range(400) if i not in set(rows.item_id)), "1")


def _current(lab, item):
    rows = lab.labels()
    return rows[rows.item_id == item].label.iloc[0]
