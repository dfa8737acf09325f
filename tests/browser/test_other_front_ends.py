"""The widgets in the other front ends: Jupyter Notebook 7, and JupyterLab's dark theme.

Each test runs a small digits session, checks that the labeler, the monitor and the
dashboard render, answers one item with its key, sees the answer reach the worker,
and checks that the views take their colours from the page's ``--jp-*`` variables.
Screenshots: ``artifacts/front-ends/{notebook7,jupyterlab-dark}-{labeler,page}.png``.
"""

from __future__ import annotations

import time

import pytest
from sklearn.datasets import load_digits

from alaas_lab.server import Server

from .jlab_harness import (
    KERNEL_NAME,
    RUN_ALL_JS,
    digits_session,
    kernel_exec,
    key_for,
    open_notebook,
    set_theme,
    start_notebook7,
    wait_labeling,
    write_notebook,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the stage's background and the labeler's text, next to what the page's --jp-* give
THEME_COLOURS_JS = """() => {
  const probe = document.createElement('div');
  probe.style.background = 'var(--jp-layout-color0)';
  probe.style.color = 'var(--jp-ui-font-color1)';
  document.body.append(probe);
  const jp = getComputedStyle(probe);
  const stage = getComputedStyle(document.querySelector('.alaas-labeler .alaas-stage'));
  const text = getComputedStyle(document.querySelector('.alaas-labeler'));
  const out = { jpBg: jp.backgroundColor, jpFg: jp.color, stageBg: stage.backgroundColor,
                fg: text.color };
  probe.remove();
  return out;
}"""


def luminance(css: str) -> float:
    """Relative luminance of ``rgb(r, g, b)`` / ``rgba(...)`` as computed by the browser."""
    r, g, b = (int(float(v)) / 255 for v in css[css.index("(") + 1:-1].split(",")[:3])
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


@pytest.fixture
def session(tmp_path_factory):
    """A folder with a digits notebook; its worker is killed afterwards."""
    made = []

    def make(server, name):
        root = server.root / name
        root.mkdir()
        write_notebook(root / "label.ipynb", digits_session(root, per_round=10, total=40,
                                                            pool=200))
        made.append(root)
        return f"{name}/label.ipynb"

    yield make
    for root in made:
        srv = Server(config_path=root / "config.yml")  # the worker outlives the kernel
        if srv.is_alive():
            srv.kill()


def label_one_item(page, server, notebook, shots, prefix, theme=None):
    """Run the notebook (in ``theme``), answer the item shown with its key; return the
    page's colours."""
    y = load_digits().target
    assert open_notebook(page, server, notebook) == KERNEL_NAME
    if theme:
        set_theme(page, theme)
    # Notebook 7 itself throws one at load on a fresh settings dir ("reading 'schema'")
    errors_before = len(page.errors)
    page.evaluate(RUN_ALL_JS)
    item = wait_labeling(page, timeout=150)
    for view in (".alaas-labeler", ".alaas-monitor", ".alaas-dashboard"):
        page.wait_for_selector(view, timeout=60_000)
    labeler = page.locator(".alaas-labeler")
    labeler.scroll_into_view_if_needed()
    labeler.locator(".alaas-stage").click()  # focus, as a person would
    assert labeler.evaluate("(el) => document.activeElement === el")
    labeler.screenshot(path=str(shots / f"{prefix}-labeler.png"))
    page.keyboard.press(key_for(int(y[int(item)])))
    page.wait_for_function("(prev) => { const el = document.querySelector('.alaas-labeler');"
                           " return el.dataset.itemId && el.dataset.itemId !== prev; }", arg=item)
    deadline = time.monotonic() + 30
    while True:  # the answer reached the worker's journal
        labeled = kernel_exec(page, "from alaas_lab.magics import current_lab\n"
                                    "print(current_lab().status()['n_labeled'])").strip()
        if int(labeled) >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert int(labeled) >= 1
    page.screenshot(path=str(shots / f"{prefix}-page.png"), full_page=True)
    assert page.errors[errors_before:] == []  # none from the views
    return page.evaluate(THEME_COLOURS_JS)


@pytest.fixture
def shots(artifacts):
    folder = artifacts / "front-ends"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def notebook7(tmp_path_factory):
    base = tmp_path_factory.mktemp("notebook7")
    root = base / "root"
    root.mkdir()
    server = start_notebook7(root, base)
    yield server
    server.stop()


def test_the_widgets_render_and_take_keys_in_jupyter_notebook_7(notebook7, page, session,
                                                                shots):
    notebook = session(notebook7, "nb7")
    colours = label_one_item(page, notebook7, notebook, shots, "notebook7")
    assert page.locator("#main-panel, .jp-NotebookPanel").count() >= 1
    assert page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"
    assert colours["stageBg"] == colours["jpBg"] and colours["fg"] == colours["jpFg"], colours


def test_the_labeler_renders_and_takes_keys_in_jupyterlabs_dark_theme(jupyterlab, page,
                                                                      session, shots):
    notebook = session(jupyterlab, "dark")
    try:
        colours = label_one_item(page, jupyterlab, notebook, shots, "jupyterlab-dark", "dark")
        assert page.evaluate("() => document.body.dataset.jpThemeLight") == "false"
        assert colours["stageBg"] == colours["jpBg"] and colours["fg"] == colours["jpFg"], colours
        assert luminance(colours["stageBg"]) < 0.1 < 0.5 < luminance(colours["fg"]), colours
    finally:
        set_theme(page, "light")  # the theme is a user setting: later tests expect light
