"""Grid mode of the labeling widget against a real worker: pages, proposals, confirm, undo.

The browser's side is played by sending the messages ``js/labeler.js`` sends in
grid mode (``choose``, ``page_skip``, ``confirm_page``) through ipywidgets'
custom-message path; ``tests/browser/test_grid.py`` drives the real front-end.
"""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

from alaas_lab import Lab
from alaas_lab.errors import InputError
from alaas_lab.journal import Journal
from alaas_lab.magics import _PARSERS
from alaas_lab.widgets.labeler import GRID_MAX

from .conftest import wait_for
from .test_widgets import Front as LabelerFront

CLASSES = [str(i) for i in range(10)]
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def lab(tmp_path, digits):
    """A started Lab on a real worker: 200 digits in the pool, rounds of 10 (synchronous)."""
    X, y = digits
    config = {"name": "grid",
              "active_learning": {"strategy": {"type": "least_confidence"},
                                  "model": {"name": "flatten", "batch_size": 64}},
              "data": {"kind": "array"}, "classes": CLASSES,
              "budget": {"total": 60, "per_round": 10, "initial": 10},
              "target_accuracy": 0.99, "cache_dir": str(tmp_path / "cache"),
              "rounds": {"mode": "sync"}}
    lab = Lab(config, tmp_path / "session", labeler="tester").start()
    lab.push(X[:200])
    lab.push(X[1500:], role="eval", labels=list(y[1500:]))
    yield lab
    lab.close_widgets()
    lab.server.kill()


class Front(LabelerFront):
    """Plays labeler.js in grid mode: its messages, numbered as it numbers them."""

    def page(self, after: int = 0):
        """The page shown once one newer than ``after`` is open (``page_id``, items)."""
        wait_for(lambda: self.w.page and self.w.page_id > after, timeout=60)
        return self.w.page_id, list(self.w.page)


def journal_rows(lab):
    with Journal(lab.session_dir / "session.sqlite") as journal:
        return [r for r in journal.label_history() if r.labeler == "tester"]


def test_seed_page_needs_a_class_for_each_item_and_confirm_journals_each(lab, digits):
    _, y = digits
    w = lab.label(grid=8)
    front = Front(w)
    page_id, page = front.page()
    assert w.grid == 8 and len(page) == 8 and w.state == "labeling"
    assert len(w.page_data) == 8 and all(d.startswith(PNG) for d in w.page_data)
    # the seed round: no head yet, so no proposal; nothing may be confirmed unasked
    assert all(m["proposal"] is None and m["answer"] is None for m in page)
    front.send(type="confirm_page", page_id=page_id)
    assert w.acked == front.seq and w.page_id == page_id
    assert "8 item(s) have no proposal yet" in w.message and "give each a class" in w.message
    ids = [m["item_id"] for m in page]
    for i in ids[:-1]:
        front.send(type="choose", item_id=i, label=str(y[i]))
    assert not w.confirm()
    assert f"1 item(s) have no proposal yet (items {ids[-1]})" in w.message
    front.send(type="page_skip", item_id=ids[-1])  # Space: left out of the page's answers
    assert w.page[-1]["skip"] and w.page[-1]["answer"] is None
    wait_for(lambda: all(e.payload is not None for e in w.queue.items))  # two pages loaded
    sent = front.send(type="confirm_page", page_id=page_id)
    assert w.acked == sent and "page confirmed: 7 label(s) saved, 1 skipped" in w.message
    # the next page is there at once (prefetched): the round's last 2 and the skipped one
    assert w.page_id == page_id + 1 and {m["item_id"] for m in w.page} >= {ids[-1]}
    assert w.history[-1]["action"] == "page" and w.history[-1]["labels"] == 7
    assert w.flush(10)
    rows = journal_rows(lab)
    assert [(r.item_id, r.label) for r in rows] == [(i, str(y[i])) for i in ids[:-1]]
    assert all(r.time and r.round == 1 for r in rows)  # each its own row, with its time


def test_proposals_are_grouped_by_class_fixed_confirmed_and_undone(lab, digits):
    _, y = digits
    w = lab.label(grid=10)
    front = Front(w)
    page_id, page = front.page()
    for m in page:  # the seed round, answered right
        front.send(type="choose", item_id=m["item_id"], label=str(y[m["item_id"]]))
    assert w.confirm()
    page_id, page = front.page(after=page_id)  # round 2: the head of round 1 proposes
    assert all(m["round"] == 2 and m["proposal"] in CLASSES for m in page)
    assert all(m["answer"] == m["proposal"] and m["choice"] is None for m in page)
    # grouped by predicted class in class order, the least confident first in a class
    keys = [(CLASSES.index(m["proposal"]), m["suggestion"]["confidence"]) for m in page]
    assert keys == sorted(keys)
    assert all(m["suggestion"]["label"] == m["proposal"] for m in page)
    wrong = next((m for m in page if m["proposal"] != y[m["item_id"]]), page[0])
    fixed = str(y[wrong["item_id"]]) if wrong["proposal"] != y[wrong["item_id"]] else (
        CLASSES[(CLASSES.index(wrong["proposal"]) + 1) % 10])
    front.send(type="choose", item_id=wrong["item_id"], label=fixed)
    assert [m["answer"] for m in w.page] == [fixed if m is wrong else m["proposal"]
                                             for m in page]
    assert w.flush(10) and len(journal_rows(lab)) == 10  # choosing sends nothing
    front.send(type="confirm_page", page_id=page_id)
    assert w.flush(10)
    labels = {r.item_id: r.label for r in journal_rows(lab) if r.round == 2}
    assert labels == {m["item_id"]: fixed if m is wrong else m["proposal"] for m in page}

    # Undo: the page comes back, the fixed item set, the rest still proposals
    front.send(type="undo")
    assert w.page_id > page_id and [m["item_id"] for m in w.page] == [m["item_id"]
                                                                      for m in page]
    back = {m["item_id"]: m for m in w.page}
    assert back[wrong["item_id"]]["choice"] == fixed
    assert all(m["choice"] is None for i, m in back.items() if i != wrong["item_id"])
    assert "took back the page of 10 label(s)" in w.message
    assert w.flush(10)
    assert lab.labels().query("round == 2").empty  # retracted: the items wait again
    front.send(type="confirm_page", page_id=w.page_id)  # confirmed again: nothing is lost
    assert w.message.startswith("page confirmed"), w.message
    assert w.flush(10)
    # labels, retractions, labels again; the last ones count toward round 2, or toward round
    # 3 when the worker had opened it before the undo came (the items then wait in round 3)
    rows = [r for r in journal_rows(lab) if r.item_id in labels and r.round >= 2]
    assert len(rows) == 30 and [r.label for r in rows[10:20]] == [None] * 10, [
        (r.item_id, r.label, r.round) for r in rows]
    assert {r.item_id: r.label for r in rows[20:]} == labels
    current = lab.labels().set_index("item_id")["label"].to_dict()
    assert all(current[i] == label for i, label in labels.items())


def test_a_bad_grid_is_refused_in_one_line(lab):
    for grid in (0, -3, 2.5, "24", True, GRID_MAX + 1):
        with pytest.raises(InputError) as err:
            lab.label(grid=grid)
        assert str(err.value) == (f"grid (thumbnails per page) must be an int from 1 to "
                                  f"{GRID_MAX}; got {grid!r}; leave it out to label one item "
                                  "at a time.")
    assert lab._labeler is None  # no widget was made


def test_the_magic_parses_grid():
    assert _PARSERS["label"].parse_args(["--grid", "24"]).grid == 24
    assert _PARSERS["label"].parse_args([]).grid is None
    with pytest.raises(UsageError, match="argument --grid: thumbnails per page must be a "
                                         "whole number such as 24; got 'many'"):
        _PARSERS["label"].parse_args(["--grid", "many"])
