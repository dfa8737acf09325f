"""The views' assets and kernel-side helpers, without a browser (issue 18).

Colours come only from JupyterLab's ``--jp-*`` variables; the worker's thumbnails
keep their aspect ratio and are smoothed; every widget's kernel side beats.
"""

from __future__ import annotations

import io
import re
import time

import numpy as np
import pytest
from PIL import Image

from alaas_lab.client import Client
from alaas_lab.widgets import Dashboard, PipelineMonitor, _base
from alaas_lab.worker.items import _png

JS = _base.JS_DIR
COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}\b|\b(?:rgba?|hsla?|hwb|lab|lch|oklch|color)\(|"
                    r"(?<![\w-])(?:white|black|red|green|blue|grey|gray|orange|purple|yellow)"
                    r"(?![\w-])")


def _strip_jp_fallbacks(css: str) -> str:
    """``css`` with each ``var(--jp-name, fallback)`` reduced to ``var(--jp-name)``."""
    out, i = [], 0
    for m in re.finditer(r"var\(--jp-[\w-]+,", css):
        if m.start() < i:
            continue
        depth, j = 1, m.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(css[j], 0)
            j += 1
        out.append(css[i:m.end() - 1] + ")")
        i = j
    out.append(css[i:])
    return "".join(out)


def test_every_colour_is_a_jupyterlab_variable():
    css = re.sub(r"/\*.*?\*/", "", (JS / "alaas.css").read_text(), flags=re.S)
    bare = _strip_jp_fallbacks(css)
    assert not COLOUR.findall(bare), COLOUR.findall(bare)
    for name in ("labeler.js", "dashboard.js", "monitor.js"):
        code = re.sub(r"//[^\n]*", "", (JS / name).read_text())
        assert not re.findall(r"#[0-9a-fA-F]{3,8}\b|\brgba?\(|\bhsla?\(", code), name
    # the strategy palette: eight colours, each a --jp-* variable
    series = re.findall(r"--alaas-series-(\d): (var\(--jp-[\w-]+)", css)
    assert sorted({int(i) for i, _ in series}) == list(range(8))
    assert "N_SERIES = 8" in (JS / "dashboard.js").read_text()


def test_colour_pairs_meet_wcag_aa_with_jupyterlab_values():
    """The pairs the stylesheet uses, with the values JupyterLab's themes give them."""
    def lum(hexa):
        rgb = [int(hexa[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    def ratio(a, b):
        x, y = sorted((lum(a), lum(b)))
        return (y + 0.05) / (x + 0.05)

    # (text or graphic, background, needed): light theme, then dark theme
    pairs = [("#1b5e20", "#ffffff", 4.5), ("#b71c1c", "#ffffff", 4.5),  # ok/danger text
             ("#0d47a1", "#ffffff", 4.5), ("#757575", "#ffffff", 3),  # accent text, seed
             ("#81c784", "#212121", 4.5), ("#e57373", "#212121", 4.5),
             ("#64b5f6", "#212121", 4.5), ("#757575", "#111111", 3),
             ("#1976d2", "#eeeeee", 3), ("#2196f3", "#424242", 3)]  # bar fill on track
    light = ["#1976d2", "#e65100", "#388e3c", "#d32f2f", "#7800c2", "#0097a7", "#770088",
             "#408080"]
    dark = ["#2196f3", "#ff9800", "#4caf50", "#f44336", "#d48fff", "#00bcd4", "#ba68c8",
            "#408080"]
    pairs += [(c, "#ffffff", 3) for c in light] + [(c, "#111111", 3) for c in dark]
    low = [(a, b, round(ratio(a, b), 2)) for a, b, need in pairs if ratio(a, b) < need]
    assert low == []


def _decoded(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_thumbnails_keep_the_aspect_ratio_and_are_smoothed():
    strip = _decoded(_png(Image.new("L", (1200, 40), 200), 512))
    assert strip.size == (512, 17)
    tall = _decoded(_png(Image.new("RGB", (300, 2000)), 512))
    assert tall.size == (77, 512)
    # one-pixel stripes: a smooth (Lanczos) downscale averages them; nearest would not
    x = np.arange(1000)
    fine = np.where(x % 2 == 0, 0, 255).astype(np.uint8)[None, :].repeat(1000, 0)
    thumb = np.asarray(_decoded(_png(Image.fromarray(fine), 512)), dtype=float)
    assert thumb.shape == (512, 512) and thumb.std() < 10 and abs(thumb.mean() - 127.5) < 3
    # tiny images are enlarged with crisp pixels: only the original values
    digit = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    big = np.asarray(_decoded(_png(Image.fromarray(digit), 512)))
    assert big.shape == (128, 128) and set(np.unique(big)) <= set(np.unique(digit))


@pytest.fixture
def fast_heartbeat(monkeypatch):
    monkeypatch.setattr(_base._HEARTBEAT, "interval", 0.05)


def test_every_widget_beats_until_it_is_closed(fast_heartbeat):
    client = Client("tcp://127.0.0.1:9", key=b"k" * 32, timeout=1.0)  # never asked
    widgets = [PipelineMonitor(client, start=False), Dashboard(client, start=False)]
    try:
        deadline = time.monotonic() + 5
        while min(w.heartbeat for w in widgets) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert min(w.heartbeat for w in widgets) >= 2
        assert widgets[0].heartbeat_s == _base.HEARTBEAT_S
        widgets[0].close()
        time.sleep(0.3)
        beats = widgets[0].heartbeat
        time.sleep(0.3)
        assert widgets[0].heartbeat == beats  # a closed widget is not kept alive
        assert widgets[1].heartbeat > beats or widgets[1].heartbeat >= 2
    finally:
        for w in widgets:
            w.close()
        client.close()
