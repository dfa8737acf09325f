"""Grid mode in a real JupyterLab + Chromium: a page of thumbnails, one proposal fixed, Enter."""

from __future__ import annotations

import time

import pytest
from sklearn.datasets import load_digits

from alaas_lab.journal import Journal
from alaas_lab.server import Server

from .jlab_harness import (
    KERNEL_NAME,
    RUN_ALL_JS,
    TRIVIAL_CELL_JS,
    digits_session,
    key_for,
    open_notebook,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

GRID = ".alaas-labeler-grid"
# the page shown (its id) once it differs from `prev` and its thumbnails are drawn
NEW_PAGE_JS = """(prev) => {
  const el = document.querySelector('.alaas-labeler-grid');
  const id = el && el.dataset.state === 'labeling' ? el.dataset.pageId : '';
  return id && id !== prev && el.querySelectorAll('.alaas-cell').length ? id : false;
}"""
CELLS_JS = """() => [...document.querySelectorAll('.alaas-labeler-grid .alaas-cell')].map((c) => ({
  item: Number(c.dataset.itemId), state: c.dataset.state, answer: c.dataset.answer,
  group: c.closest('.alaas-group').dataset.group }))"""


@pytest.fixture
def grid_notebook(jupyterlab):
    root = jupyterlab.root / "grid"
    root.mkdir()
    cells = digits_session(root, per_round=10, total=60, pool=200)
    cells = [c.replace("%alaas label --labeler browser", "%alaas label --grid 10 --labeler browser")
             for c in cells if c not in ("%alaas dashboard", "%alaas monitor")]
    assert any("--grid 10" in c for c in cells)
    write_notebook(root / "grid.ipynb", cells)
    yield root
    srv = Server(config_path=root / "config.yml")  # the worker outlives the kernel
    if srv.is_alive():
        srv.kill()


def cursor(page) -> int:
    return int(page.get_attribute(GRID, "data-cursor"))


def test_grid_page_fix_one_proposal_and_confirm_with_enter(jupyterlab, page, artifacts,
                                                          grid_notebook):
    y = load_digits().target
    assert open_notebook(page, jupyterlab, "grid/grid.ipynb") == KERNEL_NAME
    page.evaluate(RUN_ALL_JS)
    first = page.wait_for_function(NEW_PAGE_JS, arg="", timeout=150_000).json_value()
    cells_before = page.locator(".jp-Notebook .jp-Cell").count()
    widget = page.locator(GRID)
    widget.scroll_into_view_if_needed()
    widget.locator(".alaas-cell").first.click()  # focus the widget, cursor on the first
    assert page.evaluate("document.activeElement.classList.contains('alaas-labeler')")

    # the seed round: no proposals, so Enter is refused and the page says why
    seed = page.evaluate(CELLS_JS)
    assert len(seed) == 10 and {c["state"] for c in seed} == {"missing"}
    assert "10 items need a class before this page can be confirmed" in widget.locator(
        ".alaas-page-summary").inner_text()
    page.keyboard.press("Enter")
    assert "Not confirmed: 10 items have no proposal" in widget.locator(
        ".alaas-message").inner_text()
    widget.screenshot(path=str(artifacts / "labeler-grid-seed.png"))
    for _ in range(10):  # a class key sets the item under the cursor and moves on
        item = cursor(page)
        page.keyboard.press(key_for(int(y[item])))
    assert {c["state"] for c in page.evaluate(CELLS_JS)} == {"chosen"}
    page.keyboard.press("Enter")

    # round 2: the round-1 head proposes a class for each thumbnail, grouped by class
    second = page.wait_for_function(NEW_PAGE_JS, arg=first, timeout=60_000).json_value()
    cells = page.evaluate(CELLS_JS)
    assert len(cells) == 10 and {c["state"] for c in cells} == {"proposed"}
    groups = [c["group"] for c in cells]
    assert groups == sorted(groups, key=int) and all(c["answer"] == c["group"] for c in cells)
    assert widget.locator(".alaas-cell[data-state='proposed']").first.evaluate(
        "(c) => getComputedStyle(c).borderTopStyle") == "dashed"  # marked as proposed
    wrong = [i for i, c in enumerate(cells) if c["answer"] != str(y[c["item"]])]
    fix = wrong[0] if wrong else 0
    target = cells[fix]["item"]
    truth = str(y[target])
    if not wrong:  # every proposal right: fix one to another class, then back to its own
        widget.locator(f".alaas-cell[data-item-id='{target}']").click()
        page.keyboard.press(key_for((int(truth) + 1) % 10))
    # move there with the arrows (from the first thumbnail), then press its class
    widget.locator(".alaas-cell").first.click()
    for _ in range(fix):
        page.keyboard.press("ArrowRight")
    assert cursor(page) == target
    page.keyboard.press(key_for(int(truth)))
    fixed = widget.locator(f".alaas-cell[data-item-id='{target}']")
    assert fixed.get_attribute("data-state") == "chosen" and fixed.get_attribute(
        "data-answer") == truth
    answers = {c["item"]: c["answer"] for c in page.evaluate(CELLS_JS)}
    assert answers[target] == truth
    widget.screenshot(path=str(artifacts / "labeler-grid.png"))
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.querySelector('{GRID}').dataset.pageId !== "
                           f"'{second}'", timeout=60_000)

    # each item of the page is its own label in the worker's journal, the fixed one right
    journal_file = grid_notebook / "session" / "session.sqlite"
    deadline = time.monotonic() + 15
    while True:
        with Journal(journal_file) as journal:
            rows = [r for r in journal.label_history() if r.labeler == "browser"]
        if len(rows) >= 20 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(r.item_id, r.label) for r in rows[:10]] == [(c["item"], str(y[c["item"]]))
                                                         for c in seed]
    page2 = {r.item_id: r.label for r in rows[10:]}
    assert len(rows) == 20 and page2 == answers and page2[target] == truth
    assert all(r.round == 2 and r.time for r in rows[10:])

    # the keys stayed in the widget: no cell was added or turned into markdown
    assert page.locator(".jp-Notebook .jp-Cell").count() == cells_before
    assert page.locator(".jp-Notebook .jp-MarkdownCell").count() == 0
    page.evaluate(TRIVIAL_CELL_JS, "%alaas stop")
    assert page.errors == []
