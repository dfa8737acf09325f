"""The tutorial notebooks (``notebooks/*.ipynb``) run top to bottom.

Each notebook is executed with nbclient in a fresh kernel of this interpreter (a
kernelspec written to a temporary ``JUPYTER_PATH``, so no other Python's kernel is
picked up), with ``CI=true`` (the notebooks' small sizes), cwd ``notebooks/`` and
``TMPDIR`` in the test's temporary folder. The notebooks call the data set loaders with
no path, so they download: ``ALAAS_DATA_MIRROR`` points at an HTTP server on 127.0.0.1
serving ``../shared/data`` (the ``data_mirror`` fixture) and ``ALAAS_DATA`` at an empty
cache folder shared by this module's notebooks. Afterwards the test checks the key outputs of
tagged cells (a figure, a table with the expected columns, a line of text), and that
nothing the notebook started is still running: every process that inherited the
kernel's environment marker (workers, the moto server) must be gone once the kernel has
shut down; leftovers are killed and reported.

The stored ``.ipynb`` is what runs; ``tests/test_notebook_sources.py`` keeps it clean and
in step with its jupytext script (``notebooks/NN_name.py``). See ``docs/notebooks.md``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"

WIDGET = "application/vnd.jupyter.widget-view+json"

# notebook -> (seconds allowed for the whole notebook under CI=true, the data set it
#              downloads (its cache folder) or None, {cell tag: [checks]}). Checks: "png" (a
#              figure), "widget" (a widget view), "table:col1|col2" (an HTML table with
#              these columns), "text:substring".
EXPECT: dict[str, tuple[int, str | None, dict[str, list[str]]]] = {
    "01_quickstart.ipynb": (240, "fashion-mnist", {
        "labeler": ["widget"],
        "dashboard": ["widget"],
        "accuracy-table": ["table:round|strategy|n_labeled|top1|top5"],
        "accuracy-plot": ["png", "text:top-1 went from"],
        "pixels-vs-features": ["text:on EfficientNet-Lite0 features (the worker)",
                               "text:on raw pixels"],
        "labels": ["table:item_id|uri|label|labeler|round|strategy"],
    }),
    "02_auto_strategy_pshea.ipynb": (300, "mnist", {
        "dashboard": ["widget"],
        "rounds-table": ["table:round|items asked|racing|best top-1 %", "text:PSHEA stopped"],
        "story": ["text:is eliminated", "text:The run stops"],
        "figure": ["png"],
        "comparison": ["table:run|winner|top-1 %|labels summed|labels unique"],
        "figure-inprocess": ["png"],
    }),
    "03_remote_data_s3.ipynb": (240, "mnist", {
        "monitor": ["widget"],
        "cold-push": ["table:name|workers|items_in|items_out|busy_s", "text:cold push"],
        "cache-table": ["table:push|cache hits|embedded|pipeline s|end to end s",
                        "text:hit rate 100%"],
        "cleanup": ["text:moto stopped", "text:workers alive: False"],
    }),
    "04_paper_reproduction.ipynb": (600, "mnist", {
        "table2": ["table:where|tool|top-1 %|top-5 %|latency s|images/s|vs modAL",
                   "text:modAL-style script", "text:alaas_lab, warm cache"],
        "fig4ab-table": ["table:strategy|top-1 %|top-5 %|selection items/s"],
        "fig4ab-plot": ["png"],
        "fig4c": ["png", "table:batch size|images/s|vs batch 1"],
        "fig5": ["png", "text:is eliminated", "text:equals its simulate run: True"],
        "fig5-table": ["table:run|winner|top-1 %|labels summed", "text:forecast MAE"],
        "summary": ["table:figure|finding|paper|here"],
    }),
    "05_bring_your_own.ipynb": (300, "mnist", {
        "backbone-comparison": ["png", "table:raw pixels (flatten)|gradient histograms (ours)"],
        "weights": ["text:backbone: resnet18 with weights from"],
        "strategy-race": ["table:strategy", "text:density_margin"],
        "text": [],  # skipped with a message when the text extra is missing; checked below
    }),
    "06_pool_map.ipynb": (180, "mnist", {
        "map": ["widget"],
        "rounds": ["table:round|strategy|n_labeled|top1|top5"],
        "map-figure": ["png", "text:tsne map of"],
        "lasso": ["png", "text:queued 10 items for the labeler", "text:(asked by: ['map'])"],
        "careless": ["text:the careless labeler answered"],
        "suspects": ["table:item_id|uri|label|suggested|self_confidence|rank|wrong_on_purpose"],
        "suspects-figure": ["png"],
        "review": ["table:item_id|kind|before|after", "text:precision"],
        "review-mode": ["widget"],
        "review-widget": ["text:in the widget:"],
        "journal": ["table:item_id|label|labeler|time", "text:corrections journaled"],
        "top1": ["text:after the review"],  # the numbers: checked below
        "cleanup": ["text:worker stopped: True"],
    }),
}


def test_every_notebook_is_listed_here():
    on_disk = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert on_disk == sorted(EXPECT), "add the new notebook to EXPECT"


# ---------------------------------------------------------------- execution


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory):
    """A kernelspec that runs this interpreter's ipykernel, on a temporary JUPYTER_PATH."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "alaas-notebook-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "alaas_lab tests", "language": "python"}))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root), *([old] if old else [])])
    yield "alaas-notebook-test"
    if old is None:
        os.environ.pop("JUPYTER_PATH", None)
    else:
        os.environ["JUPYTER_PATH"] = old


def marked_processes(marker: str) -> dict[int, str]:
    """pid -> command line of every process whose environment holds ``marker`` (Linux)."""
    found = {}
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found[int(entry.name)] = cmd.strip()
        except OSError:
            continue
    return found


def outputs_of(nb, tag: str) -> list:
    cells = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"no single cell tagged {tag!r}"
    return cells[0].outputs


def texts(outputs) -> str:
    parts = []
    for o in outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            parts.append(o.data.get("text/plain", ""))
    return "\n".join(parts)


def check(nb, tag: str, what: str) -> None:
    outs = outputs_of(nb, tag)
    if what == "png":
        assert any("image/png" in o.get("data", {}) for o in outs), f"{tag}: no figure"
    elif what == "widget":
        assert any(WIDGET in o.get("data", {}) for o in outs), f"{tag}: no widget view"
    elif what.startswith("table:"):
        html = [o.data["text/html"] for o in outs if "text/html" in o.get("data", {})]
        assert html, f"{tag}: no table"
        headers = set(re.findall(r"<th[^>]*>([^<]*)</th>", "".join(html)))
        missing = [col for col in what[6:].split("|") if col not in headers]
        assert not missing, f"{tag}: table lacks columns {missing} (has {sorted(headers)})"
    elif what.startswith("text:"):
        assert what[5:] in texts(outs), f"{tag}: no {what[5:]!r} in\n{texts(outs)[-2000:]}"
    else:  # pragma: no cover - a typo in EXPECT
        raise AssertionError(f"unknown check {what!r}")


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory) -> Path:
    """An empty ``ALAAS_DATA`` for the notebooks: the first to load a data set downloads it."""
    return tmp_path_factory.mktemp("alaas_data")


def run_notebook(name: str, kernel: str, tmp_path: Path, budget: int,
                 data_env: dict[str, str] | None = None):
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    marker = f"ALAAS_NOTEBOOK_TEST={uuid.uuid4().hex}"
    env = {**os.environ, "CI": "true", "TMPDIR": str(tmp_path), **(data_env or {}),
           marker.split("=")[0]: marker.split("=")[1]}
    env.pop("ALAAS_LAB_MNIST_DIR", None)  # the loaders take the download path
    env.pop("MPLBACKEND", None)  # the kernel's inline backend makes the figures
    client = nbclient.NotebookClient(nb, kernel_name=kernel, timeout=budget, startup_timeout=120,
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    t0 = time.perf_counter()
    try:
        client.execute(env=env, cwd=str(NOTEBOOK_DIR))
    finally:
        seconds = time.perf_counter() - t0
        print(f"{name}: {seconds:.1f} s with CI=true")
        deadline = time.monotonic() + 15  # the kernel shuts down after execute()
        while (left := marked_processes(marker)) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not left, f"{name} left processes running: {left}"
    return nb, seconds


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.timeout(EXPECT[n][0] + 120))
                                  for n in sorted(EXPECT)])
def test_notebook_runs(name, kernel_name, tmp_path, data_cache, request):
    budget, data_set, checks = EXPECT[name]
    data_env = {"ALAAS_DATA": str(data_cache)}
    if data_set:  # skips where ../shared/data is absent
        data_env["ALAAS_DATA_MIRROR"] = request.getfixturevalue("data_mirror")
    nb, seconds = run_notebook(name, kernel_name, tmp_path, budget, data_env)
    if data_set:  # the notebook's loader went through the cache (downloaded into it)
        cached = sorted(p.name for p in (data_cache / data_set).glob("*-ubyte.gz"))
        assert cached, f"nothing of {data_set} cached in {data_cache}"
    for tag, whats in checks.items():
        outputs_of(nb, tag)  # the tagged cell exists
        for what in whats:
            check(nb, tag, what)
    assert seconds < budget, f"{name} took {seconds:.0f} s, more than its {budget} s"

    if name == "01_quickstart.ipynb":  # accuracy rose over the rounds
        m = re.search(r"top-1 went from ([\d.]+)% .* to ([\d.]+)%",
                      texts(outputs_of(nb, "accuracy-plot")))
        assert m and float(m[2]) > float(m[1])
    elif name == "05_bring_your_own.ipynb":  # MiniLM section: ran, or skipped with a reason
        text = texts(outputs_of(nb, "text"))
        assert "all-MiniLM-L6-v2" in text or "Skipped" in text
    elif name == "06_pool_map.ipynb":
        check_pool_map_numbers(nb)


def check_pool_map_numbers(nb) -> None:
    """06: the suspects beat a random review, every correction is journaled, and top-1
    does not drop when the seeded mistakes they found are corrected."""
    careless = texts(outputs_of(nb, "careless"))
    m = re.search(r"(\d+) wrong labels of (\d+)", careless)
    assert m and int(m[1]) > 0, careless
    share = int(m[1]) / int(m[2])
    review = texts(outputs_of(nb, "review"))
    m = re.search(r"(\d+) corrected, .*\nprecision ([\d.]+) recall ([\d.]+)", review)
    assert m and int(m[1]) > 0, review
    assert float(m[2]) > 2 * share, f"suspects no better than a random review:\n{review}"
    counts = texts(outputs_of(nb, "review-widget"))
    journal = texts(outputs_of(nb, "journal"))
    corrected = re.search(r"'corrected': (\d+)", counts)
    journaled = re.search(r"(\d+) corrections journaled", journal)
    assert corrected and journaled and corrected[1] == journaled[1], counts + journal
    top1 = texts(outputs_of(nb, "top1"))
    m = re.search(r"after it ([\d.]+)%, after the review ([\d.]+)%", top1)
    assert m and float(m[2]) >= float(m[1]), top1
