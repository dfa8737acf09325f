"""The widgets' views in a real JupyterLab (issue 18): focus, chords, scrolling, images,
themes, narrow outputs, messages, accessibility, and a kernel that goes away.

One JupyterLab, one notebook and one worker serve the whole module; the tests run in
file order and share the page. The session's items are 1200×40 PNG strips of text
(``strips_session``). Beside the real widgets, the notebook shows a few whose traits
the test sets itself (``FAKES``): a 40-class labeler with a long text, a labeler with
a fine-striped image, and two PSHEA dashboards. Screenshots go to
``artifacts/views/`` (``ALAAS_ARTIFACTS`` moves them), in the light and dark themes.
"""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import pytest

from alaas_lab.server import Server

from .jlab_harness import (
    CONTRAST_JS,
    KERNEL_NAME,
    RUN_ALL_JS,
    kernel_exec,
    open_notebook,
    set_theme,
    strips_session,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# widgets whose traits the test sets (their queue never starts): a view test's fixtures
FAKES = r'''
import io, time
import numpy as np
from PIL import Image
from alaas_lab.magics import current_lab
from alaas_lab.widgets import Dashboard, LabelingWidget

cf = current_lab().connection_file

def png(a):
    buf = io.BytesIO()
    Image.fromarray(np.asarray(a, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()

def show(w, items, *, state="labeling", order=None):
    """Put ``items`` (slot metadata, ``data`` for image bytes) into a labeler's traits."""
    slots = [{} for _ in range(6)]
    with w._state():
        for i, it in enumerate(items):
            meta = {"seq": 100 + i, "round": 2, "strategy": "margin", "skips": 0,
                    "relabel": False, "loaded": True, "mime": "image/png", "text": "",
                    **{k: v for k, v in it.items() if k != "data"}}
            slots[i] = meta
            setattr(w, f"slot_{i}", it.get("data", b""))
        w.slots = slots
        w.order = list(range(len(items))) if order is None else order
        w.progress = {"round": 2, "round_done": 3, "round_size": 12, "labeled": 9,
                      "budget_total": 60}
        w.state, w.message, w.error = state, "", ""

words = ("The reviewer notes that the shipment arrived late and the packaging was "
         "damaged; the replacement, however, worked as described. ")
LONG = "\n\n".join(f"Paragraph {i + 1}. " + words * 4 for i in range(14))
TOKEN = "tok_" + "".join("abcdefghij0123456789"[i * 7 % 20] for i in range(3000))
TEXT = LONG[:900] + "\n\nAttached key: " + TOKEN + "\n\n" + LONG[900:]
TEXT_ITEM = {"item_id": 7001, "uri": "file:///data/reviews/review-7001.txt", "kind": "text",
             "text": TEXT}
tw = LabelingWidget(connection_file=cf, classes=[f"class-{i:02d}" for i in range(40)],
                    labeler="views", autofocus=False, start=False)
got = []
tw.on_msg(lambda _w, content, _b: got.append(content))
show(tw, [TEXT_ITEM])

# a fine pattern at the size the worker sends (512 px): stripes 3 px apart
x = np.arange(512)
stripes = np.where(x % 3 == 0, 20, 235)[None, :].repeat(512, 0)
iw = LabelingWidget(connection_file=cf, classes=["cat", "dog"], labeler="views",
                    autofocus=False, start=False)
show(iw, [{"item_id": 42, "uri": "file:///data/textures/fabric-0042.png", "kind": "image",
           "data": png(stripes)}])

def race(order):
    """A PSHEA race that has stopped; ``order`` is the order the names arrived in."""
    d = Dashboard(connection_file=cf, target=0.8, budget_total=200, start=False)
    curve = {"random": [0.37, 0.52], "margin": [0.37, 0.57, 0.81], "entropy": [0.37, 0.56, 0.65]}
    with d._state():
        d.strategies = list(order)
        d.results = [{"round": r + 1, "strategy": s, "n_labeled": 10 + 15 * r, "top1": v,
                      "top5": None} for s, vs in curve.items() for r, v in enumerate(vs)]
        d.forecasts = [{"round": 3, "strategy": "random", "predicted": 0.60},
                       {"round": 4, "strategy": "margin", "predicted": 0.80},
                       {"round": 4, "strategy": "entropy", "predicted": 0.69}]
        d.eliminations = [{"round": 2, "strategy": "random", "predicted": 0.60,
                           "reason": "lowest forecast"}]
        d.active = ["margin", "entropy"]
        d.budget = {"labeled": 55, "total": 200, "left": 145}
        d.round = 3
        d.outcome = {"stopped": True, "winner": "margin", "best_accuracy": 0.811,
                     "stop_reason": "target reached", "labels_unique": 55, "labels_sum": 60}
        d.state, d.updated = "live", time.time()
    return d

d1 = race(["random", "margin", "entropy"])  # as live
d2 = race(["entropy", "margin", "random"])  # as after a worker restart: history order
m2 = current_lab().monitor()  # made after the pushes
'''

# cell index of each widget in the notebook
CELLS = {"monitor": 2, "labeler": 4, "dashboard": 5, "text": 7, "image": 8, "d1": 9,
         "d2": 10, "monitor2": 11}


@pytest.fixture(scope="module")
def views(jupyterlab, browser, artifacts):
    root = jupyterlab.root / "views"
    cells = [*strips_session(root), FAKES, "tw", "iw", "d1", "d2", "m2"]
    write_notebook(root / "views.ipynb", cells)
    shots = artifacts / "views"
    shots.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 1000},
                                  device_scale_factor=1)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        assert open_notebook(page, jupyterlab, "views/views.ipynb") == KERNEL_NAME
        page.evaluate(RUN_ALL_JS)
        ns = SimpleNamespace(page=page, root=root, shots=shots, errors=errors, lab=jupyterlab)
        wait_ready(ns)
        yield ns
    finally:
        context.close()
        srv = Server(config_path=root / "config.yml")
        if srv.is_alive():
            srv.kill()


def wait_ready(ns, timeout=180):
    page = ns.page
    page.wait_for_selector(".alaas-labeler[data-state='labeling'][data-item-id]"
                           ":not([data-item-id=''])", timeout=timeout * 1000)
    for name in ("text", "image", "d1", "d2", "monitor2"):
        widget(ns, name).wait_for(timeout=60_000)


def cell(ns, name):
    return ns.page.locator(".jp-Notebook .jp-Cell").nth(CELLS[name])


def widget(ns, name):
    return cell(ns, name).locator(".alaas")


def shot(ns, name, locator=None, theme="light"):
    target = locator if locator is not None else widget(ns, name)
    target.scroll_into_view_if_needed()
    target.screenshot(path=str(ns.shots / f"{name}-{theme}.png"))


def focus(locator):
    locator.scroll_into_view_if_needed()
    locator.locator(".alaas-stage").click()
    assert locator.evaluate("(el) => document.activeElement === el")


def class_of(labeler):
    """The true class of the strip shown (its file name ends in it)."""
    item = labeler.get_attribute("data-item-id")
    alt = labeler.locator(f".alaas-slot[data-item-id='{item}'] img").get_attribute("alt")
    assert alt.startswith("strip-") and alt.endswith(".png"), alt
    return alt[-5]


def answer_shown(ns, labeler):
    item = labeler.get_attribute("data-item-id")
    ns.page.keyboard.press(class_of(labeler))
    ns.page.wait_for_function("([el, id]) => el.dataset.itemId !== id && el.dataset.itemId",
                              arg=[labeler.element_handle(), item])
    return item


def notebook_scroll(page):
    return page.evaluate("() => (document.querySelector('.jp-NotebookPanel "
                         ".jp-WindowedPanel-outer') || document.scrollingElement).scrollTop")


# ---------------------------------------------------------------- 3, 4: focus and chords

def test_mouse_undo_keeps_the_focus_and_chords_reach_jupyterlab(views):
    page = views.page
    labeler = widget(views, "labeler")
    focus(labeler)
    assert labeler.locator(".alaas-hint").inner_text() == "Keys active: press a class key"
    first = answer_shown(views, labeler)
    answer_shown(views, labeler)

    # Undo with the mouse until nothing is left: the button goes grey, the focus stays
    undo = labeler.get_by_role("button", name="Undo")
    for _ in range(2):
        undo.click()
        page.wait_for_timeout(150)
    page.wait_for_function("(el) => el.querySelector('button[aria-keyshortcuts=Backspace]')"
                           ".disabled", arg=labeler.element_handle())
    assert labeler.get_attribute("data-item-id") == first  # both answers taken back
    assert labeler.evaluate("(el) => document.activeElement === el")
    answer_shown(views, labeler)  # the next class key labels
    page.wait_for_function("(el) => el.querySelector('.alaas-count').textContent === '1'",
                           arg=labeler.element_handle(), timeout=10_000)

    # Ctrl+S with the widget focused saves the notebook (JupyterLab's shortcut)
    assert page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.dirty")
    cells = page.locator(".jp-Notebook .jp-Cell").count()
    item = labeler.get_attribute("data-item-id")
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
                           timeout=15_000)
    assert labeler.get_attribute("data-item-id") == item  # the chord labeled nothing
    assert labeler.evaluate("(el) => el.getAttribute('data-lm-suppress-shortcuts')") == "true"
    assert page.locator(".jp-Notebook .jp-Cell").count() == cells
    assert labeler.evaluate("(el) => document.activeElement === el")
    assert views.errors == []


# ---------------------------------------------------------------- 8: images

def test_images_keep_their_shape_and_open_at_full_size(views):
    page = views.page
    labeler = widget(views, "labeler")
    focus(labeler)
    img = labeler.locator(".alaas-slot:not([hidden]) img")
    box = img.evaluate("""(i) => ({w: i.naturalWidth, h: i.naturalHeight,
        rw: i.getBoundingClientRect().width, rh: i.getBoundingClientRect().height,
        fit: getComputedStyle(i).objectFit, render: getComputedStyle(i).imageRendering,
        bg: getComputedStyle(i).backgroundColor})""")
    # the worker's thumbnail keeps the strip's shape (1200×40 → 512×17), the view too
    assert (box["w"], box["h"]) == (512, 17)
    assert abs(box["rw"] / box["rh"] - 512 / 17) < 0.5
    assert box["fit"] == "contain" and box["render"] == "auto"
    assert box["bg"] == "rgba(0, 0, 0, 0)"  # no black box around it

    # Full size: the worker sends the item at its own size; the keys scroll it
    before = notebook_scroll(page)
    labeler.get_by_role("button", name="Full size").click()
    page.wait_for_function("(el) => el.dataset.zoom === 'full'", arg=labeler.element_handle(),
                           timeout=30_000)
    zoom = labeler.locator(".alaas-zoom")
    full = zoom.locator("img").evaluate("(i) => [i.naturalWidth, i.naturalHeight, i.alt]")
    assert full[:2] == [1200, 40] and full[2].endswith("at full size")
    assert labeler.evaluate("(el) => document.activeElement === el")
    page.keyboard.press("End")
    page.keyboard.press("ArrowLeft")
    left = zoom.evaluate("(z) => [z.scrollLeft, z.scrollWidth - z.clientWidth]")
    assert 0 < left[0] < left[1]
    assert notebook_scroll(page) == before
    assert labeler.get_by_role("button", name="Fit to view").get_attribute("aria-pressed") == "true"
    shot(views, "labeler-full-size", labeler)
    answer_shown(views, labeler)  # the next item comes fitted again
    assert labeler.get_attribute("data-zoom") == ""

    # a fine pattern shrunk to fit is smoothed: no moiré, i.e. no bands in the brightness
    # averaged over a few stripes (pixelated scaling, as before, left bands of ±20 levels)
    image = widget(views, "image")
    image.scroll_into_view_if_needed()
    pic = image.locator(".alaas-slot:not([hidden]) img")
    page.wait_for_function("(i) => i.complete && i.naturalWidth === 512", arg=pic.element_handle())
    assert pic.get_attribute("alt") == "fabric-0042.png"
    rendered = pic.evaluate("(i) => [i.getBoundingClientRect().width, "
                            "i.getBoundingClientRect().height]")
    assert rendered[0] < 512 and abs(rendered[0] - rendered[1]) < 1.5  # shrunk, still square
    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(io.BytesIO(pic.screenshot())).convert("L"), dtype=float)
    profile = grey[4:-4, 4:-4].mean(axis=0)  # brightness across the stripes
    bands = np.convolve(profile, np.ones(9) / 9, mode="valid")  # over ~5 stripes
    assert bands.std() < 10, bands.std()
    shot(views, "labeler-fine-pattern", image)


# ---------------------------------------------------------------- 7: long text

def test_long_text_wraps_and_the_keys_scroll_it(views):
    page = views.page
    text = widget(views, "text")
    focus(text)
    body = text.locator(".alaas-text")
    size = body.evaluate("(t) => [t.scrollWidth, t.clientWidth, t.scrollHeight, t.clientHeight]")
    assert size[0] <= size[1] + 1  # the 3,000-character token wraps
    assert size[2] > 3 * size[3]
    before = notebook_scroll(page)
    page.keyboard.press("PageDown")
    page.keyboard.press("ArrowDown")
    top = body.evaluate("(t) => t.scrollTop")
    assert top > size[3] * 0.5
    page.keyboard.press("PageUp")
    assert body.evaluate("(t) => t.scrollTop") < top
    page.keyboard.press("End")
    assert body.evaluate("(t) => t.scrollTop + t.clientHeight >= t.scrollHeight - 2")
    assert notebook_scroll(page) == before  # the notebook did not move
    assert text.evaluate("(el) => document.activeElement === el")
    page.keyboard.press("Home")
    page.keyboard.press("PageDown")  # the long token, wrapped
    shot(views, "labeler-long-text", text)
    page.keyboard.press("Home")


# ---------------------------------------------------------------- 12, 10: the dashboard

def test_strategy_colours_follow_names_and_the_dashboard_reflows(views):
    page = views.page
    d1, d2 = widget(views, "d1"), widget(views, "d2")
    colours = []
    for d in (d1, d2):
        d.scroll_into_view_if_needed()
        colours.append(d.evaluate("""(el) => Object.fromEntries([...el.querySelectorAll(
            "g[data-strategy]")].map((g) => [g.dataset.strategy,
            getComputedStyle(g.querySelector('.alaas-actual-line')).stroke]))"""))
    assert colours[0] == colours[1]  # another order of arrival, the same colours
    assert len(set(colours[0].values())) == 3
    legend = d2.evaluate("""(el) => Object.fromEntries([...el.querySelectorAll(
        ".alaas-legend-item")].map((i) => [i.dataset.strategy, getComputedStyle(
        i.firstChild).color]))""")
    assert legend == colours[0]
    banner = d1.locator(".alaas-banner")
    assert "Winner: margin" in banner.inner_text() and "target reached" in banner.inner_text()

    # 600 px wide: the cards wrap, the chart is drawn at that width, its text stays 11 px
    d1.evaluate("(el) => { el.parentElement.style.width = '600px'; }")
    page.wait_for_function("(el) => el.querySelector('svg').getAttribute('width') < 600",
                           arg=d1.element_handle())
    layout = d1.evaluate("""(el) => {
        const r = el.getBoundingClientRect();
        const svg = el.querySelector('svg');
        const scale = svg.getScreenCTM().a;
        return {width: r.width, overflow: el.scrollWidth - el.clientWidth,
          cards: [...el.querySelectorAll('.alaas-card')].map(
            (c) => c.getBoundingClientRect().right - r.right),
          rows: [...el.querySelectorAll('.alaas-tl-row')].map((c) => c.scrollWidth - c.clientWidth),
          text: Math.min(...[...svg.querySelectorAll('text')].map(
            (t) => parseFloat(getComputedStyle(t).fontSize) * scale))};
    }""")
    assert layout["width"] <= 600 and layout["overflow"] <= 0
    assert max(layout["cards"]) <= 0.5 and max(layout["rows"]) <= 1
    assert layout["text"] >= 10.9, layout
    shot(views, "dashboard-600", d1)
    shot(views, "dashboard-pshea", d2)


# ---------------------------------------------------------------- 11: messages

def test_messages_end_with_their_cause(views):
    page = views.page
    text = widget(views, "text")
    # an item still loading: the note goes once it loads; the placeholder fills the stage
    kernel_exec(page, "show(tw, [{**TEXT_ITEM, 'loaded': False, 'kind': 'text', 'text': ''}])")
    page.wait_for_function("(el) => el.dataset.itemId === ''", arg=text.element_handle())
    focus(text)
    page.keyboard.press("1")
    assert text.locator(".alaas-message").inner_text() == "The next item is still loading."
    boxes = text.evaluate("""(el) => [el.querySelector('.alaas-stage'),
        el.querySelector('.alaas-placeholder')].map((n) => {
        const r = n.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })""")
    stage, holder = boxes
    assert all(abs(a - b) <= 2 for a, b in zip(stage, holder, strict=True)), boxes
    assert text.locator(".alaas-placeholder").inner_text() == "Loading the item…"
    kernel_exec(page, "show(tw, [TEXT_ITEM])")
    page.wait_for_function("(el) => el.dataset.itemId === '7001'", arg=text.element_handle())
    assert text.locator(".alaas-message").inner_text() == ""

    # a finished view does not say "Keys active"
    image = widget(views, "image")
    kernel_exec(page, "show(iw, [], state='done')")
    page.wait_for_function("(el) => el.dataset.state === 'done'", arg=image.element_handle())
    focus(image)
    assert image.locator(".alaas-hint").inner_text() == "Nothing left to label"
    page.keyboard.press("1")
    assert "All done" in image.locator(".alaas-message").inner_text()

    # stopped: the reason once, no "Stopped: stopped:", no "Keys active"
    kernel_exec(page, "show(iw, [{'item_id': 42, 'uri': 'file:///data/textures/fabric-0042.png',"
                      " 'kind': 'image', 'data': png(stripes)}])\n"
                      "iw.shutdown('a newer labeling widget took over')\n"
                      "iw._receive({'type': 'skip', 'item_id': 42, 'seq': 999})")
    page.wait_for_function("(el) => el.dataset.state === 'stopped'", arg=image.element_handle())
    placeholder = image.locator(".alaas-placeholder").inner_text()
    assert placeholder == "Stopped: a newer labeling widget took over.", placeholder
    assert image.locator(".alaas-message").inner_text() == ""
    focus(image)
    assert image.locator(".alaas-hint").inner_text() == "Stopped: keys do nothing"

    # the monitor: what the stages did, without the failed item passing through them
    monitor = widget(views, "monitor")
    monitor.scroll_into_view_if_needed()
    done = monitor.evaluate("(el) => Object.fromEntries([...el.querySelectorAll('[data-stage]')]"
                            ".map((r) => [r.dataset.stage, Number(r.dataset.done)]))")
    # the last push: 24 strips and one file that is no PNG, quarantined by decode
    assert done == {"fetch": 25, "decode": 24, "embed": 24, "store": 24}, done
    assert "1 failed" in monitor.locator("[data-stage=decode]").inner_text()
    bars = monitor.get_by_role("progressbar")  # one per stage, with its numbers (point 13)
    assert bars.count() == 4 and bars.nth(2).get_attribute("aria-valuenow") == "24"
    cards = monitor.locator(".alaas-cards").inner_text()
    assert "35" in cards and "1 quarantined" in cards and "10 for evaluation" in cards, cards

    # a monitor made after the pushes: counts asked again during a push, never "0 items"
    m2 = widget(views, "monitor2")
    kernel_exec(page, "m2.totals = {**m2.totals, 'n_items': 0}\n"
                      "class Progress:\n    msg_type = 'progress'\n"
                      "    content = {'stage': 'pipeline', 'done': 3, 'total': 9, 'stages': [],"
                      " 'wall_s': 0.4}\n"
                      "m2.on_event(Progress())")
    page.wait_for_function("(el) => el.querySelector('.alaas-card-value').textContent === '35'",
                           arg=m2.element_handle(), timeout=10_000)
    # a push with nothing to compute: no "No push seen yet" beside it
    kernel_exec(page, "current_lab().push(pool)")
    page.wait_for_function("(el) => el.dataset.state === 'idle' && "
                           "el.textContent.includes('computed nothing')",
                           arg=m2.element_handle(), timeout=30_000)
    assert "no push seen yet" not in m2.inner_text().lower()
    assert "nothing to embed in 1 push" in m2.locator(".alaas-cards").inner_text()
    shot(views, "monitor-nothing-to-do", m2)
    shot(views, "monitor", monitor)


# ---------------------------------------------------------------- 13: accessibility

def test_announcements_roles_and_names(views):
    page = views.page
    labeler = widget(views, "labeler")
    focus(labeler)
    bars = labeler.get_by_role("progressbar")
    assert bars.count() == 2
    now = [int(bars.nth(i).get_attribute("aria-valuenow")) for i in range(2)]
    assert int(bars.nth(0).get_attribute("aria-valuemax")) > 0
    name = labeler.locator(".alaas-slot:not([hidden]) img").get_attribute("alt")
    status = labeler.get_by_role("status")
    assert name in status.inner_text()
    answer_shown(views, labeler)
    after = [int(bars.nth(i).get_attribute("aria-valuenow")) for i in range(2)]
    assert after[1] == now[1] + 1  # the budget bar moved
    new = labeler.locator(".alaas-slot:not([hidden]) img").get_attribute("alt")
    page.wait_for_function("([el, n]) => el.querySelector('[role=status]').textContent"
                           ".includes(n)", arg=[labeler.element_handle(), new])
    assert labeler.get_by_role("button", name="Label as 3").count() == 1
    assert labeler.get_by_role("button", name="Skip this item").count() == 1

    # every button has a name that says what it does, not "0 0" or "item 774"
    names = page.evaluate("""() => [...document.querySelectorAll('.alaas button')].map(
        (b) => b.getAttribute('aria-label') || b.textContent.trim())""")
    assert names and all(n and not n.replace(" ", "").isdigit() for n in names), names

    # errors are alerts
    image = widget(views, "image")
    kernel_exec(page, "iw.error = 'the worker does not answer: timed out after 5 s'")
    alert = image.locator(".alaas-error[role=alert]")
    alert.wait_for()
    assert "does not answer" in alert.inner_text()
    dashboard = widget(views, "d1")
    assert dashboard.get_by_role("progressbar").count() == 1

    # 40 classes: the last four have no key, but Tab reaches them and Enter answers
    text = widget(views, "text")
    buttons = text.locator("button.alaas-class")
    assert buttons.count() == 40
    assert [buttons.nth(i).get_attribute("aria-keyshortcuts") for i in (0, 35, 36, 39)] == [
        "1", "Z", None, None]
    focus(text)
    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.dataset.class") == "class-37":
            break
    assert page.evaluate("() => document.activeElement.dataset.class") == "class-37"
    assert page.evaluate("() => document.activeElement.getAttribute('aria-label')") == (
        "Label as class-37")
    page.keyboard.press("Enter")
    sent = kernel_exec(page, "time.sleep(0.3); print(got[-1])")
    assert "'type': 'answer'" in sent and "'label': 'class-37'" in sent, sent
    assert "'item_id': 7001" in sent


# ---------------------------------------------------------------- 9: themes

@pytest.mark.parametrize("theme", ["dark", "light"])
def test_colours_meet_contrast_in_both_themes(views, theme):
    page = views.page
    kernel_exec(page, "show(tw, [TEXT_ITEM])")  # the 40 classes enabled, a text shown
    set_theme(page, theme)
    result = page.evaluate(CONTRAST_JS, ".alaas")
    assert result["checked"] > 150, result
    assert result["failures"] == [], "\n".join(result["failures"])
    # the PSHEA banner's winner and the badges are readable (the examples)
    winner = widget(views, "d1").locator(".alaas-banner b")
    assert winner.inner_text() == "Winner: margin"
    for name in ("labeler", "dashboard", "monitor", "text", "image", "d1", "d2", "monitor2"):
        shot(views, name, theme=theme)


# ---------------------------------------------------------------- 2: the kernel goes away

GONE = "(el) => el.dataset.alive === 'false'"


def dismiss_dialog(page, timeout=15_000):
    try:
        page.locator(".jp-Dialog .jp-mod-accept").click(timeout=timeout)
    except Exception:  # no dialog came
        pass


def test_a_view_whose_kernel_is_gone_says_so(views):
    page = views.page
    labeler = widget(views, "labeler")
    focus(labeler)
    item = labeler.get_attribute("data-item-id")
    assert item
    # the kernel dies (no restart yet): only the silence tells the views
    page.evaluate("() => { window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                  ".requestExecute({ code: 'import os, signal; os.kill(os.getpid(), "
                  "signal.SIGKILL)' }).done.catch(() => {}); }")
    dismiss_dialog(page)  # "the kernel appears to have died"
    for name in ("labeler", "dashboard", "monitor"):
        page.wait_for_function(GONE, arg=widget(views, name).element_handle(), timeout=30_000)
    assert labeler.locator(".alaas-badge").inner_text().lower() == "disconnected"
    gone = labeler.locator(".alaas-gone").inner_text()
    assert "%alaas start" in gone and "%alaas label" in gone
    assert "%alaas dashboard" in widget(views, "dashboard").locator(".alaas-gone").inner_text()
    assert widget(views, "dashboard").locator(".alaas-badge").inner_text().lower() == (
        "disconnected")
    focus(labeler)
    assert "Keys active" not in labeler.locator(".alaas-hint").inner_text()
    page.keyboard.press("1")
    assert "Not saved" in labeler.locator(".alaas-message").inner_text()
    assert labeler.get_attribute("data-item-id") == ""
    shot(views, "labeler-disconnected", labeler)
    shot(views, "dashboard-disconnected", widget(views, "dashboard"))

    # run the cells again, as the views say: a live labeler; then a restart from the menu
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget.sessionContext"
                           ".session.kernel.status === 'idle'", timeout=60_000)
    page.evaluate(RUN_ALL_JS)
    page.wait_for_function("() => document.querySelector('.alaas-labeler').dataset.alive "
                           "=== 'true'", timeout=60_000)
    wait_ready(views)
    labeler = widget(views, "labeler")
    t0 = time.monotonic()
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.restartKernel()")
    page.wait_for_function(GONE, arg=labeler.element_handle(), timeout=30_000)
    # the widget manager's word (comm_live) comes before a heartbeat could be missed
    assert time.monotonic() - t0 < 5.5
    assert "kernel restarted" in labeler.locator(".alaas-gone").inner_text()
    page.wait_for_function(GONE, arg=widget(views, "dashboard").element_handle(), timeout=5_000)
    # JupyterLab itself rejects the kernel_info request a restart cuts short: not ours
    assert [e for e in views.errors if "Canceled future" not in e] == []
