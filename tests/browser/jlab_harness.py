"""A real JupyterLab + Chromium for browser tests and ``benchmarks/labeler_latency.py``.

Nothing here reaches the network: JupyterLab runs on 127.0.0.1 with news and
update checks off, config/data/runtime dirs in a temp folder, and a kernelspec
(installed into that folder) that runs this interpreter, so the kernel is the
``.venv``'s Python. Chromium is Debian's (``apt-get install -y chromium``),
driven by Playwright from pip; ``playwright install`` is never needed.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import nbformat

CHROMIUM = os.environ.get("ALAAS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
KERNEL_NAME = "alaas-venv"
REPO = Path(__file__).resolve().parents[2]
#: Screenshots go here (git-ignored ``artifacts/``); ``ALAAS_ARTIFACTS`` moves them.
ARTIFACTS = Path(os.environ.get("ALAAS_ARTIFACTS") or REPO / "artifacts")

# JupyterLab user settings: no news or update prompts, every cell rendered
_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class JupyterLab:
    """A running JupyterLab server."""

    proc: subprocess.Popen
    url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except FileNotFoundError:
            return ""


def jupyter_env(base: Path) -> dict[str, str]:
    """An environment whose Jupyter paths all live under ``base`` (plus the venv's)."""
    dirs = {name: base / name for name in ("config", "data", "runtime", "ipython", "share",
                                           "settings", "workspaces")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(dirs["share"]),
                    "--name", KERNEL_NAME, "--display-name", "alaas_lab (.venv)"],
                   check=True, capture_output=True)
    spec = json.loads((dirs["share"] / "share/jupyter/kernels" / KERNEL_NAME /
                       "kernel.json").read_text())
    assert Path(spec["argv"][0]).resolve() == Path(sys.executable).resolve(), spec["argv"]
    for name, value in _SETTINGS.items():
        plugin, _, file = name.rpartition("/")
        target = dirs["settings"] / plugin / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value))
    env = {**os.environ,
           "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_DATA_DIR": str(dirs["data"]),
           "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]), "IPYTHONDIR": str(dirs["ipython"]),
           "JUPYTER_PATH": str(dirs["share"] / "share/jupyter"),
           "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
           "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]),
           "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("JUPYTER_PREFER_ENV_PATH", None)
    return env


_Server = TypeVar("_Server", bound=JupyterLab)


def start_jupyterlab(root: Path, base: Path, *, timeout: float = 90.0) -> JupyterLab:
    """JupyterLab on a free 127.0.0.1 port with a token, serving ``root``."""
    return _start_server(JupyterLab, "JupyterLab", "jupyterlab", "LabApp", root, base,
                         timeout=timeout, extra=[
                             "--LabApp.news_url=None",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"])


def _start_server(kind: type[_Server], title: str, module: str, app: str, root: Path,
                  base: Path, *, timeout: float, extra: list[str]) -> _Server:
    """``python -m <module>`` (a Jupyter server app) on a free 127.0.0.1 port with a token,
    serving ``root``, isolated by :func:`jupyter_env`; ``app`` is its configurable
    class (``LabApp``, ``JupyterNotebookApp``). Returns once ``/api/status`` answers."""
    env = jupyter_env(base)
    port, token = free_port(), secrets.token_hex(16)
    log = base / f"{module}.log"
    args = [sys.executable, "-m", module, "--allow-root", "--no-browser",
            "--ServerApp.open_browser=False", "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
            "--ServerApp.terminals_enabled=False",
            f"--{app}.expose_app_in_browser=True",
            f"--{app}.user_settings_dir={env['JUPYTERLAB_SETTINGS_DIR']}",
            f"--{app}.workspaces_dir={env['JUPYTERLAB_WORKSPACES_DIR']}",
            "--LanguageServerManager.autodetect=False",
            "--KernelSpecManager.ensure_native_kernel=False", *extra]
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = kind(proc, f"http://127.0.0.1:{port}", token, root, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{title} exited ({proc.returncode}):\n{server.log_tail()}")
        try:
            urllib.request.urlopen(f"{server.url}/api/status?token={token}", timeout=2).close()
            return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{title} did not answer within {timeout} s:\n{server.log_tail()}")


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": KERNEL_NAME, "display_name": "alaas_lab (.venv)",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


MNIST_DIR = REPO.parent / "shared" / "data" / "mnist"


def digits_session(root: Path, *, per_round: int = 10, total: int = 100, pool: int = 300,
                   labeler: str = "browser", dataset: str = "digits",
                   strategy: str = "least_confidence",
                   candidates: tuple[str, ...] = (), mode: str = "sync",
                   target_accuracy: float = 0.8, params: dict | None = None) -> list[str]:
    """Write ``config.yml`` for a session in ``root``; return the notebook's cells.

    ``dataset`` is ``"digits"`` (scikit-learn's 8×8 digits, ``pool`` ≤ 1500) or
    ``"mnist"`` (28×28, from ``../shared/data/mnist``). Pool items get ids
    ``0..pool-1`` in order, so the test knows each item's true class. ``strategy="auto"``
    races ``candidates`` with PSHEA (``params``: its ``strategy.params``).
    ``mode`` is ``rounds.mode`` (``sync``: the paper's loop; ``async``: the worker's
    default, the next round selected while this one is labeled).
    """
    strat = {"type": strategy, "candidates": list(candidates)}
    if params:
        strat["params"] = params
    config = {"name": f"browser-{dataset}", "session_dir": str(root / "session"),
              "active_learning": {"strategy": strat,
                                  "model": {"name": "flatten", "batch_size": 256}},
              "data": {"kind": "array"}, "classes": [str(i) for i in range(10)],
              "budget": {"total": total, "per_round": per_round, "initial": per_round},
              "target_accuracy": target_accuracy, "cache_dir": str(root / "cache"),
              "seed": 0, "rounds": {"mode": mode}}
    (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
    if dataset == "mnist":
        load = ("from alaas_lab.datasets import mnist\n"
                f"train = mnist({str(MNIST_DIR)!r}, limit={pool})\n"
                f"test = mnist({str(MNIST_DIR)!r}, split='test', limit=2000)\n"
                "pool = train.images.astype(np.float32)\n"
                "X_eval = test.images.astype(np.float32)\n"
                "y_eval = test.y.astype(str).tolist()")
    else:
        load = ("from sklearn.datasets import load_digits\n"
                "digits = load_digits()\n"
                f"pool = digits.images[:{pool}].astype(np.float32)\n"
                "X_eval = digits.images[1500:].astype(np.float32)\n"
                "y_eval = digits.target[1500:].astype(str).tolist()")
    return [
        "%load_ext alaas_lab\nimport numpy as np\n" + load,
        "%alaas start config.yml",
        "%alaas monitor",
        "%alaas push pool\n%alaas push X_eval --eval y_eval\n"
        # a list is not checked up front (one missing file is refused): fetch quarantines them
        "scans = ['incoming/scan-0042.png', 'incoming/scan-0043.png']  # no such files\n"
        "%alaas push scans",
        f"%alaas label --labeler {labeler}",
        "%alaas dashboard",
    ]


def small_digits_session(root: Path, name: str, *, per_round: int, total: int = 200,
                         **config: Any) -> list[str]:
    """Write ``<name>.yml`` for a synchronous least-confidence session on flattened digits
    (in ``<name>-session/``; ``config``: more top-level keys); return the cells that load
    300 digits (``d``, ``pool``), start the session and push the pool."""
    config = {"name": f"browser-{name}", "session_dir": str(root / f"{name}-session"),
              "active_learning": {"strategy": {"type": "least_confidence"},
                                  "model": {"name": "flatten", "batch_size": 256}},
              "data": {"kind": "array"}, "classes": [str(i) for i in range(10)],
              "budget": {"total": total, "per_round": per_round, "initial": per_round},
              "cache_dir": str(root / "cache"), "seed": 0, "rounds": {"mode": "sync"},
              **config}
    (root / f"{name}.yml").write_text(json.dumps(config))  # JSON is YAML
    return [
        "%load_ext alaas_lab\nimport numpy as np\nfrom sklearn.datasets import load_digits\n"
        "d = load_digits()\npool = d.images[:300].astype(np.float32)",
        f"%alaas start {name}.yml",
        "%alaas push pool",
    ]


@contextmanager
def session_notebook(root: Path, notebook: str, cells: list[str], config: str) -> Iterator[Path]:
    """Write ``root/notebook`` with ``cells``; yield ``root``; then kill the worker that
    the session ``root/config`` started (if it still runs)."""
    from alaas_lab.server import Server

    write_notebook(root / notebook, cells)
    try:
        yield root
    finally:
        srv = Server(config_path=root / config)
        if srv.is_alive():
            srv.kill()


def launch_chromium(playwright: Any) -> Any:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"no Chromium at {CHROMIUM}: apt-get update && apt-get install -y "
                           "chromium (or set ALAAS_CHROMIUM to its path).")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


# ---------------------------------------------------------------- page helpers

OPEN_NOTEBOOK_JS = """async () => {
  const app = window.jupyterapp;
  if (!app) return null;
  const nb = app.shell.currentWidget;
  if (!nb || !nb.sessionContext) return null;
  await nb.context.ready;
  await nb.sessionContext.ready;
  const kernel = nb.sessionContext.session && nb.sessionContext.session.kernel;
  return kernel ? kernel.name : null;
}"""

RUN_ALL_JS = """async () => {
  await window.jupyterapp.commands.execute('notebook:run-all-cells');
  return true;
}"""

# time a trivial execution from the browser: request → reply, in the page's clock
TRIVIAL_CELL_JS = """async (code) => {
  const nb = window.jupyterapp.shell.currentWidget;
  const kernel = nb.sessionContext.session.kernel;
  const t0 = performance.now();
  const future = kernel.requestExecute({ code, silent: false, store_history: false });
  await future.done;
  return performance.now() - t0;
}"""


def open_notebook(page: Any, lab: JupyterLab, name: str, *, timeout: float = 120.0) -> str:
    """Open ``name`` and wait until its kernel is ready; return the kernel's name."""
    page.goto(lab.notebook_url(name))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            kernel = page.evaluate(OPEN_NOTEBOOK_JS)
        except Exception:  # the page is still loading
            kernel = None
        if kernel:
            return kernel
        time.sleep(0.25)
    raise RuntimeError(f"the notebook's kernel did not start in {timeout} s:\n{lab.log_tail()}")


def current_item(page: Any) -> str:
    return page.get_attribute(".alaas-labeler", "data-item-id") or ""


def key_for(class_index: int) -> str:
    """The default key of a digit class: its own digit (see alaas_lab.widgets.keys)."""
    return str(class_index)


def wait_labeling(page: Any, timeout: float = 60.0) -> str:
    page.wait_for_selector(".alaas-labeler[data-state='labeling'][data-item-id]:not([data-item-id=''])",
                           timeout=timeout * 1000)
    return current_item(page)


# ---------------------------------------------------------------- a session of image strips

def write_strips(folder: Path, n: int, *, start: int = 0, size: tuple[int, int] = (1200, 40)
                 ) -> list[str]:
    """``n`` grey PNG strips (a line of text each, 1200×40 by default) in ``folder``.

    Strip ``i`` is named ``strip-{i:04d}-{i % 10}.png``: its class is the last digit.
    """
    from PIL import Image, ImageDraw, ImageFont

    folder.mkdir(parents=True, exist_ok=True)
    try:
        font = ImageFont.load_default(size=22)
    except TypeError:  # Pillow < 10.1: the small bitmap font
        font = ImageFont.load_default()
    names = []
    for i in range(start, start + n):
        img = Image.new("L", size, 235)
        ImageDraw.Draw(img).text(
            (8, 7), f"receipt {i:04d} · class {i % 10} · total {17 * i + 3:,}.00 EUR · "
            f"due 2025-{1 + i % 12:02d}-{1 + i % 28:02d} · ref ALAAS-{i * 7919 % 100000:05d}",
            fill=20, font=font)
        name = folder / f"strip-{i:04d}-{i % 10}.png"
        img.save(name)
        names.append(str(name.relative_to(folder.parent)))
    return names


def strips_session(root: Path, *, pool: int = 24, per_round: int = 6) -> list[str]:
    """A session of long, thin images (1200×40 strips of text) in ``root``; its cells.

    The pool is ``incoming/strip-*.png`` plus one file that is not a PNG (quarantined
    by the decode stage); the evaluation set is ``eval/strip-*.png``.
    """
    write_strips(root / "incoming", pool)
    write_strips(root / "eval", 10, start=500)
    (root / "incoming" / "strip-broken.png").write_bytes(b"not a png at all")
    config = {"name": "browser-strips", "session_dir": str(root / "session"),
              "active_learning": {"strategy": {"type": "least_confidence"},
                                  "model": {"name": "flatten", "batch_size": 64}},
              "data": {"kind": "image", "image_mode": "L"},
              "classes": [str(i) for i in range(10)],
              "budget": {"total": pool, "per_round": per_round, "initial": per_round},
              "target_accuracy": 0.8, "cache_dir": str(root / "cache"), "seed": 0,
              "rounds": {"mode": "sync"}}
    (root / "config.yml").write_text(json.dumps(config))
    return [
        "%load_ext alaas_lab\nimport glob\n"
        "pool = sorted(glob.glob('incoming/strip-*.png'))  # the broken one too\n"
        "evals = sorted(glob.glob('eval/strip-*.png'))\n"
        "eval_labels = [p[-5] for p in evals]",
        "%alaas start config.yml",
        "%alaas monitor",
        "%alaas push evals --eval eval_labels\n%alaas push pool",
        "%alaas label --labeler browser",
        "%alaas dashboard",
    ]


# ---------------------------------------------------------------- more page helpers

# run code in the notebook's kernel; resolve to its stdout (and the error, if any)
EXEC_JS = """async (code) => {
  const nb = window.jupyterapp.shell.currentWidget;
  const kernel = nb.sessionContext.session.kernel;
  const future = kernel.requestExecute({ code, silent: false, store_history: false });
  let out = "";
  future.onIOPub = (msg) => {
    const c = msg.content;
    if (msg.header.msg_type === "stream") out += c.text;
    else if (msg.header.msg_type === "error") out += `ERROR ${c.ename}: ${c.evalue}`;
    else if (msg.header.msg_type === "execute_result") out += c.data["text/plain"] || "";
  };
  await future.done;
  return out;
}"""


def kernel_exec(page: Any, code: str) -> str:
    """Run ``code`` in the notebook's kernel (no cell); return what it printed."""
    out = page.evaluate(EXEC_JS, code)
    if "ERROR " in out:
        raise AssertionError(f"kernel code failed:\n{code}\n---\n{out}")
    return out


THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


def set_theme(page: Any, theme: str, timeout: float = 30.0) -> None:
    """Switch JupyterLab's theme (``light`` or ``dark``) and wait until it applies."""
    page.evaluate("(t) => window.jupyterapp.commands.execute('apputils:change-theme', "
                  "{ theme: t })", THEMES[theme])
    light = "true" if theme == "light" else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}' && "
                           "document.body.dataset.jpThemeName === " + json.dumps(THEMES[theme]),
                           timeout=timeout * 1000)
    page.wait_for_timeout(500)  # the theme's stylesheet settles


# WCAG 2 contrast of the widgets' text and graphics (see contrast.js)
# (Playwright takes a string for a function only when it starts as one: no leading comment)
CONTRAST_JS = "\n".join(line for line in (Path(__file__).parent / "contrast.js").read_text()
                         .splitlines() if not line.startswith("//"))


# ---------------------------------------------------------------- key → next item probe

# Installed once on a page with a labeler (``page.evaluate(KEY_PROBE_JS)``): from each
# key press (a capture listener on ``window``, before the widget's own) until the
# labeler shows another item, it records in ``window.__alaasKeyProbe.samples``
# ``{dom_ms, paint_ms, prev, id, seen}``: the time until ``data-item-id`` changed, until
# the first frame painted after that (requestAnimationFrame, then a task), the item
# answered and the one shown, and every other state it passed through on the way
# (``no item``, ``state=waiting``, ``state=done``...; from the mutation records' old
# values, so even a flicker is seen). A sample is pushed after the paint.
KEY_PROBE_JS = """() => {
  const el = document.querySelector('.alaas-labeler');
  const probe = { t0: null, prev: null, seen: [], samples: [] };
  window.__alaasKeyProbe = probe;
  window.addEventListener('keydown', () => {
    probe.t0 = performance.now(); probe.prev = el.dataset.itemId; probe.seen = [];
  }, true);
  const afterPaint = (fn) => requestAnimationFrame(() => {
    const ch = new MessageChannel(); ch.port1.onmessage = fn; ch.port2.postMessage(0);
  });
  new MutationObserver((records) => {
    if (probe.t0 === null) return;
    for (const r of records) {
      if (r.attributeName === 'data-state' && r.oldValue !== 'labeling')
        probe.seen.push(`state=${r.oldValue}`);
      if (r.attributeName === 'data-item-id' && r.oldValue === '') probe.seen.push('no item');
    }
    const id = el.dataset.itemId, state = el.dataset.state;
    if (!id || state !== 'labeling') {
      probe.seen.push(id ? `state=${state}` : 'no item');
      if (state !== 'labeling') probe.seen.push(`state=${state}`);
      return;
    }
    if (id === probe.prev) return;
    const t0 = probe.t0, dom = performance.now() - t0;
    const sample = { dom_ms: dom, prev: probe.prev, id, seen: [...new Set(probe.seen)] };
    probe.t0 = null;
    afterPaint(() => probe.samples.push({ ...sample, paint_ms: performance.now() - t0 }));
  }).observe(el, { attributes: true, attributeOldValue: true,
                   attributeFilter: ['data-item-id', 'data-state'] });
  return true;
}"""


def key_probe_samples(page: Any) -> list[dict[str, Any]]:
    """What :data:`KEY_PROBE_JS` recorded so far, one dict per key press answered."""
    return page.evaluate("window.__alaasKeyProbe.samples")


# ---------------------------------------------------------------- Jupyter Notebook 7

class Notebook7(JupyterLab):
    """A running Jupyter Notebook 7 server (``jupyter notebook``): one document per tab."""

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/notebooks/{name}?token={self.token}"


def start_notebook7(root: Path, base: Path, *, timeout: float = 90.0) -> Notebook7:
    """Jupyter Notebook 7 (the ``notebook`` package) on a free 127.0.0.1 port, serving ``root``.

    The same isolation as :func:`start_jupyterlab` (temp Jupyter dirs, this
    interpreter's kernelspec, no news, no update checks); the app is exposed as
    ``window.jupyterapp``, so the page helpers above work unchanged.
    """
    return _start_server(Notebook7, "Jupyter Notebook", "notebook", "JupyterNotebookApp",
                         root, base, timeout=timeout, extra=[])
