"""The pool map in a real JupyterLab: a canvas of points, hover shows an item, lasso queues."""

from __future__ import annotations

import pytest

from .jlab_harness import (
    RUN_ALL_JS,
    kernel_exec,
    open_notebook,
    session_notebook,
    small_digits_session,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def map_session(root):
    return [
        *small_digits_session(root, "map", per_round=20),
        "from alaas_lab.magics import current_lab\nlab = current_lab()\n"
        "sel = lab.client.query(20)\n"
        "lab.client.label_many(sel.item_ids, [str(d.target[i]) for i in sel.item_ids])\n"
        "lab.client.pool_map(wait=True, timeout=300)\n"
        "lab.client.query(20);",
        "%alaas map",
        # 100,000 synthetic points in a second map: the frame time of a big pool
        "from alaas_lab.client import Client\nfrom alaas_lab.widgets.pool_map import PoolMap\n"
        "rng = np.random.default_rng(0)\nN = 100_000\n"
        "big = PoolMap(Client('tcp://127.0.0.1:9', key=b'k' * 32, timeout=1.0), start=False)\n"
        "big.apply({'version': 1, 'n': N, 'method': 'tsne', 'classes': [str(i) for i in "
        "range(10)], 'states': ['unlabeled', 'queued', 'labeled', 'evaluation'], "
        "'strategies': [''], 'xy': rng.normal(size=(N, 2)).astype(np.float32), "
        "'item_ids': np.arange(N, dtype=np.int32), "
        "'predicted': rng.integers(0, 10, N).astype(np.int16), "
        "'uncertainty': rng.random(N).astype(np.float32), "
        "'point_state': rng.integers(0, 3, N).astype(np.uint8), "
        "'strategy': np.zeros(N, np.uint8), 'label': np.full(N, -1, np.int16), "
        "'suspect': np.zeros(N, np.uint8)})\nbig",
    ]


@pytest.fixture
def map_notebook(jupyterlab):
    root = jupyterlab.root
    with session_notebook(root, "pool_map.ipynb", map_session(root), "map.yml"):
        yield root


COLOURS_JS = """(el) => {
  const c = el.querySelector('canvas.alaas-map-canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const seen = new Set();
  const bg = (d[0] << 16) | (d[1] << 8) | d[2];
  let painted = 0;
  for (let i = 0; i < d.length; i += 4) {
    const v = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
    seen.add(v);
    if (v !== bg) painted++;
  }
  return [seen.size, painted];
}"""


def test_map_draws_hovers_and_queues_a_lasso(jupyterlab, page, artifacts, map_notebook):
    open_notebook(page, jupyterlab, "pool_map.ipynb")
    page.evaluate(RUN_ALL_JS)
    small = page.locator(".alaas-map").first
    page.wait_for_selector(".alaas-map[data-state='ready'][data-n='300']", timeout=240_000)
    small.scroll_into_view_if_needed()
    assert small.get_attribute("data-lm-suppress-shortcuts") == "true"
    assert int(small.get_attribute("data-drawn")) == 300
    colours, painted = small.evaluate(COLOURS_JS)
    assert colours >= 5 and painted >= 300  # points of several classes on the background
    assert small.locator("canvas").count() == 2 and small.locator(".alaas-map-stage *").count() < 10
    small.screenshot(path=str(artifacts / "pool_map.png"))

    # hover: the nearest point's item, with its thumbnail from the worker
    x, y = small.evaluate("(el) => el.alaasScreenOf(5)")
    page.mouse.move(x - 20, y - 20)
    page.mouse.move(x, y)
    page.wait_for_function("() => { const m = document.querySelector('.alaas-map'); "
                           "return !!m.dataset.hoverItem; }")
    tip = small.locator(".alaas-map-tip")
    tip.locator("img.alaas-map-thumb").wait_for(timeout=20_000)
    assert tip.inner_text().startswith("item ")

    # colour by state: the legend names the states
    small.locator("select.alaas-map-color").select_option("state")
    page.wait_for_function("() => document.querySelector('.alaas-map-legend').innerText"
                           ".includes('queued')")

    # lasso a box around the left half of the stage, send it to the labeler
    box = small.locator(".alaas-map-stage").bounding_box()
    x0, y0 = box["x"] + 5, box["y"] + 5
    x1, y1 = box["x"] + box["width"] / 2, box["y"] + box["height"] - 5
    page.mouse.move(x0, y0)
    page.mouse.down()
    for px, py in ((x1, y0), (x1, y1), (x0, y1), (x0, y0 + 2)):
        page.mouse.move(px, py, steps=4)
    page.mouse.up()
    selected = int(small.get_attribute("data-selected"))
    assert 0 < selected < 300
    small.locator("button.alaas-map-send").click()
    page.wait_for_function("() => document.querySelector('.alaas-map .alaas-message')"
                           ".innerText.startsWith('queued ')", timeout=30_000)
    out = kernel_exec(page, "r = lab.client.next_items(3, labeler='browser')\n"
                            "print(r['strategies'])")
    assert "map" in out, out

    # 100,000 points: one pass into an ImageData, no per-point DOM
    big = page.locator(".alaas-map").nth(1)
    page.wait_for_function("() => { const m = document.querySelectorAll('.alaas-map')[1]; "
                           "return m && m.dataset.n === '100000'; }", timeout=60_000)
    big.scroll_into_view_if_needed()
    times = []
    for mode in ("uncertainty", "state", "class", "uncertainty", "state"):
        big.locator("select.alaas-map-color").select_option(mode)
        page.wait_for_timeout(150)
        times.append(float(big.get_attribute("data-draw-ms")))
    print(f"pool map frame time, 100,000 points in Chromium: median "
          f"{sorted(times)[len(times) // 2]:.1f} ms ({', '.join(f'{t:.1f}' for t in times)})")
    assert int(big.get_attribute("data-drawn")) > 90_000
    assert sorted(times)[len(times) // 2] < 250
    assert not page.errors, page.errors
