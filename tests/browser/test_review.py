"""The review of suspect labels in a real JupyterLab: a seeded wrong label shows up in
review mode, one key corrects it, and the worker journals the correction."""

from __future__ import annotations

import json

import pytest

from .jlab_harness import (
    RUN_ALL_JS,
    kernel_exec,
    open_notebook,
    session_notebook,
    small_digits_session,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def review_session(root):
    return [
        *small_digits_session(root, "review", per_round=40, evaluation={"holdout": 0.0}),
        # two rounds labeled, three answers of each wrong (seeded): the suspects to find
        "from alaas_lab.magics import current_lab\nlab = current_lab()\nflipped = {}\n"
        "for _ in range(2):\n"
        "    sel = lab.client.query(40)\n"
        "    answers = [str(d.target[i]) for i in sel.item_ids]\n"
        "    for k in range(3):\n"
        "        i = int(sel.item_ids[k]); flipped[i] = str((d.target[i] + 3) % 10)\n"
        "        answers[k] = flipped[i]\n"
        "    lab.client.label_many(sel.item_ids, answers)\n"
        "lab.client.suspects(refresh=True, wait=True, timeout=120);",
        "%alaas label --review",
    ]


@pytest.fixture
def review_notebook(jupyterlab):
    root = jupyterlab.root
    with session_notebook(root, "review.ipynb", review_session(root), "review.yml"):
        yield root


def test_a_seeded_wrong_label_is_corrected_with_one_key(jupyterlab, page, artifacts,
                                                        review_notebook):
    open_notebook(page, jupyterlab, "review.ipynb")
    page.evaluate(RUN_ALL_JS)
    sel = ".alaas-labeler[data-mode='review'][data-state='labeling']"
    page.wait_for_selector(sel, timeout=240_000)
    w = page.locator(sel).first
    w.scroll_into_view_if_needed()
    assert w.locator(".alaas-title").inner_text() == "Review labels"
    assert w.locator(".alaas-review-back").is_visible()
    # the human's label shown, the head's beside it; Enter keeps a label that was right,
    # up to the first seeded mistake (most likely mistakes come first)
    truth = json.loads(kernel_exec(page, "import json\nprint(json.dumps({str(i): "
                                         "[v, str(d.target[i])] for i, v in flipped.items()}))"))
    w.click(position={"x": 5, "y": 5})
    for _ in range(6):
        item = w.get_attribute("data-item-id")
        if item in truth:
            break
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => document.querySelector(\"{sel}\")?.dataset.itemId "
                               f"!== '{item}'", timeout=10_000)
    assert item in truth, "no seeded wrong label among the first suspects"
    given, right = truth[item]
    assert w.get_attribute("data-given") == given
    line = w.locator(".alaas-review-line").inner_text()
    assert f"labeled {given}" in line and "says" in line
    assert "alaas-given" in w.locator(f".alaas-class[data-class='{given}']").get_attribute(
        "class")
    w.screenshot(path=str(artifacts / "review_mode.png"))

    # one key: the true class corrects it; the next suspect shows at once
    page.keyboard.press(f"Digit{right}")
    page.wait_for_function(f"() => document.querySelector(\"{sel}\")?.dataset.itemId !== "
                           f"'{item}'", timeout=10_000)
    page.wait_for_function("() => document.querySelector('.alaas-recent').innerText"
                           f".includes('{item}')", timeout=10_000)
    # the journal has the correction: who, before, after, and a new label row
    out = kernel_exec(page, "import time, json\nw = lab._labeler\nw.flush(30)\n"
                            "s = lab.status()['suspects']\n"
                            "rows = lab.labels(history=True)\n"
                            f"mine = rows[rows.item_id == {item}]\n"
                            "print(json.dumps([s['corrected'], mine.label.tolist(), "
                            "mine.labeler.tolist()[-1], w.labeler]))")
    corrected, labels, who, labeler = json.loads(out.strip().splitlines()[-1])
    assert corrected == 1 and labels == [given, right], out
    assert who == labeler and labeler  # the reviewer, journaled with the correction

    # Backspace takes it back: the label from before returns, and the item shows again
    page.keyboard.press("Backspace")
    page.wait_for_function(f"() => document.querySelector(\"{sel}\")?.dataset.itemId === "
                           f"'{item}'", timeout=10_000)
    out = kernel_exec(page, "w.flush(30)\nprint(lab.status()['suspects']['corrected'])")
    assert out.strip().splitlines()[-1] == "0"
    assert not page.errors, page.errors
