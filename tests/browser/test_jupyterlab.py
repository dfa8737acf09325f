"""The widgets in a real JupyterLab, driven with the keyboard in Chromium."""

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
    current_item,
    digits_session,
    kernel_exec,
    key_for,
    open_notebook,
    wait_labeling,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NEXT_ITEM_JS = """(prev) => {
  const el = document.querySelector('.alaas-labeler');
  return el && el.dataset.itemId !== prev;
}"""


def stop_session(page):
    """``%alaas stop`` in the notebook's kernel: the widgets stay, marked stopped."""
    page.evaluate(TRIVIAL_CELL_JS, "%alaas stop")
    page.wait_for_selector(".alaas-labeler[data-state='stopped']", timeout=30_000)
    assert "worker was stopped" in page.locator(".alaas-labeler .alaas-placeholder").inner_text()


@pytest.fixture
def digits_notebook(jupyterlab):
    root = jupyterlab.root
    write_notebook(root / "labeling.ipynb", digits_session(root, per_round=10, total=100))
    yield root
    srv = Server(config_path=root / "config.yml")  # the worker outlives the kernel
    if srv.is_alive():
        srv.kill()


def test_label_with_keys_undo_and_watch_the_dashboard(jupyterlab, page, artifacts,
                                                      digits_notebook):
    y = load_digits().target
    root = digits_notebook
    assert open_notebook(page, jupyterlab, "labeling.ipynb") == KERNEL_NAME
    page.evaluate(RUN_ALL_JS)
    wait_labeling(page, timeout=150)
    cells_before = page.locator(".jp-Notebook .jp-Cell").count()

    labeler = page.locator(".alaas-labeler")
    labeler.scroll_into_view_if_needed()
    labeler.locator(".alaas-stage").click()  # focus the widget, as a user would
    assert page.evaluate("document.activeElement.classList.contains('alaas-labeler')")
    assert labeler.get_attribute("data-lm-suppress-shortcuts") == "true"
    assert labeler.get_attribute("tabindex") == "0"
    buttons = labeler.locator("button.alaas-class")
    assert buttons.count() == 10 and buttons.nth(3).inner_text().split() == ["3", "3"]

    answered = []
    for i in range(20):
        item = wait_labeling(page)
        # "1"-"6" are JupyterLab command-mode shortcuts (cell → heading): they must not fire
        page.keyboard.press(key_for(int(y[int(item)])))
        answered.append(int(item))
        page.wait_for_function(NEXT_ITEM_JS, arg=item)
        if i == 4:
            labeler.screenshot(path=str(artifacts / "labeler.png"))

    # Undo: the last answer comes back to be answered again
    page.keyboard.press("Backspace")
    page.wait_for_function("(id) => document.querySelector('.alaas-labeler').dataset.itemId"
                           " === id", arg=str(answered[-1]))
    assert "answer again" in labeler.locator(".alaas-item-meta").inner_text()
    labeler.screenshot(path=str(artifacts / "labeler-undo.png"))
    page.keyboard.press(key_for(int(y[answered[-1]])))
    page.wait_for_function(NEXT_ITEM_JS, arg=str(answered[-1]))

    # the keys stayed in the widget: no cell was added or turned into markdown
    assert page.locator(".jp-Notebook .jp-Cell").count() == cells_before
    assert page.locator(".jp-Notebook .jp-MarkdownCell").count() == 0

    # two rounds were labeled: the dashboard draws both results
    dashboard = page.locator(".alaas-dashboard")
    dashboard.scroll_into_view_if_needed()
    page.wait_for_selector(".alaas-dashboard[data-rounds='2']", timeout=60_000)
    assert dashboard.locator("circle.alaas-pt").count() == 2
    assert {dashboard.locator("circle.alaas-pt").nth(i).get_attribute("data-strategy")
            for i in range(2)} == {"random", "least_confidence"}
    page.wait_for_timeout(300)  # one frame for the budget card
    # one strategy after a grey seed round, not "1 of 2" racing
    cards = dashboard.locator(".alaas-cards").inner_text()
    assert "after a random seed round" in cards and "racing" not in cards
    assert "random (seed)" in dashboard.locator(".alaas-legend").inner_text()
    dashboard.screenshot(path=str(artifacts / "dashboard.png"))
    monitor = page.locator(".alaas-monitor")
    monitor.scroll_into_view_if_needed()
    # the last push (two missing files) computed nothing: no stage rows, and it says why
    assert monitor.locator("[data-stage]").count() == 0
    assert "could not be fetched" in monitor.locator(".alaas-empty").first.inner_text()
    rows = [row.inner_text() for row in monitor.locator("tbody tr").all()]
    assert len(rows) == 2 and all("not found" in row for row in rows)
    assert any("scan-0042.png" in row for row in rows)
    monitor.screenshot(path=str(artifacts / "monitor.png"))
    page.screenshot(path=str(artifacts / "notebook.png"), full_page=True)

    # every answer reached the journal, the retraction too
    journal_file = root / "session" / "session.sqlite"
    deadline = time.monotonic() + 15
    while True:
        with Journal(journal_file) as journal:
            rows = [r for r in journal.label_history() if r.labeler == "browser"]
            labels = journal.labels()
        if len(rows) == 22 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [r.item_id for r in rows] == [*answered, answered[-1], answered[-1]]
    assert rows[-2].label is None and rows[-1].label == str(y[answered[-1]])
    assert all(labels[i] == str(y[i]) for i in answered)
    assert current_item(page) not in {str(i) for i in answered}
    stop_session(page)
    assert page.errors == []


# the item to answer now, or "stop" once round 3 is on the dashboard or the labeler is done
NEXT_OR_STOP_JS = """() => {
  const el = document.querySelector('.alaas-labeler');
  const round3 = document.querySelector(".alaas-dashboard circle.alaas-pt[data-round='3']");
  if (round3 || el.dataset.state === 'done') return 'stop';
  return el.dataset.state === 'labeling' && el.dataset.itemId ? el.dataset.itemId : false;
}"""


@pytest.fixture
def pshea_notebook(jupyterlab):
    pytest.importorskip("alaas_lab.worker.auto")  # PSHEA's worker side
    root = jupyterlab.root / "pshea"
    root.mkdir()
    cells = digits_session(root, per_round=10, total=200, pool=400, strategy="auto",
                           candidates=("random", "margin", "entropy"))
    write_notebook(root / "pshea.ipynb", cells)
    yield root
    srv = Server(config_path=root / "config.yml")
    if srv.is_alive():
        srv.kill()


def test_pshea_race_on_the_dashboard(jupyterlab, page, artifacts, pshea_notebook):
    y = load_digits().target
    assert open_notebook(page, jupyterlab, "pshea/pshea.ipynb") == KERNEL_NAME
    page.evaluate(RUN_ALL_JS)
    wait_labeling(page, timeout=150)
    labeler = page.locator(".alaas-labeler")
    labeler.scroll_into_view_if_needed()
    labeler.locator(".alaas-stage").click()
    dashboard = page.locator(".alaas-dashboard")
    names, shot, shared = set(), None, False
    # the seed round (10), round 2 (~28 picks), round 3 (~17); PSHEA may stop there (target)
    for _ in range(90):
        item = page.wait_for_function(NEXT_OR_STOP_JS, timeout=60_000).json_value()
        if item == "stop":
            break
        chip = labeler.locator(".alaas-chip").inner_text()  # "asked by margin, entropy"
        names |= set(chip.removeprefix("asked by ").split(", "))
        shared = shared or "," in chip
        if shot is None and "auto:seed" not in chip or shot == "one" and "," in chip:
            labeler.screenshot(path=str(artifacts / "labeler-pshea.png"))
            shot = "two" if "," in chip else "one"
        page.keyboard.press(key_for(int(y[int(item)])))
        page.wait_for_function(NEXT_ITEM_JS, arg=item)
    assert names == {"auto:seed", "random", "margin", "entropy"}
    # an item two strategies asked for is exported with both (issue 18, point 12)
    exported = kernel_exec(page, "from alaas_lab.magics import current_lab\n"
                                 "rows = current_lab().labels()\n"
                                 "if hasattr(rows, 'to_dict'):\n"
                                 "    rows = rows.to_dict('records')\n"
                                 "print(sorted({r['strategy'] for r in rows}))")
    if shared:
        assert ", " in exported, exported
    dashboard.scroll_into_view_if_needed()
    page.wait_for_selector(".alaas-dashboard path.alaas-pt-eliminated", timeout=30_000)
    assert dashboard.locator("path.alaas-forecast-line").count() >= 2
    (out,) = dashboard.locator(".alaas-legend-item.alaas-out").all()
    gone = out.inner_text()
    row = dashboard.locator(f".alaas-tl-row[data-strategy='{gone}']")
    assert "dropped in round 2" in row.inner_text() and "forecast" in row.inner_text()
    assert "of 3" in dashboard.locator(".alaas-cards").inner_text()
    page.wait_for_timeout(300)
    dashboard.screenshot(path=str(artifacts / "dashboard-pshea.png"))
    stop_session(page)
    assert page.errors == []
