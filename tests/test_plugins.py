"""Plugins that reach the worker, and a notebook's own model as the backbone (issue 14, 4-5).

Every test here runs a real worker process (or ``python -m alaas_lab.worker``
itself) and checks that what the kernel registered, the worker registered too,
and that a broken plugin is named with its file and line on both sides.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import yaml
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from sklearn.datasets import load_digits

from alaas_lab import Lab, magics
from alaas_lab.config import load_config
from alaas_lab.errors import ConfigError
from alaas_lab.plugins import load_plugins, write_strategy_plugin

LAST_K = textwrap.dedent("""
    import numpy as np

    def last_k(k, *, probs, embeddings, labeled, rng):
        # the k unlabeled items with the highest index: easy to recognise in a test
        return np.flatnonzero(~labeled)[::-1][:k]
""")


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return d.images[:60].astype(np.float32)


def base(tmp, name, **extra):
    cfg = {"name": name,
           "active_learning": {"strategy": {"type": "least_confidence"},
                               "model": {"name": "flatten", "batch_size": 64}},
           "data": {"kind": "array"}, "classes": ["a", "b"],
           "budget": {"total": 50, "per_round": 5, "initial": 0},
           "rounds": {"mode": "sync"},
           "cache_dir": str(tmp / "cache")}
    cfg.update(extra)
    return cfg


def write_config(tmp, cfg):
    path = tmp / "config.yml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_worker(config_file, session_dir):
    """``python -m alaas_lab.worker``: how the worker itself reports a bad start."""
    return subprocess.run(
        [sys.executable, "-m", "alaas_lab.worker", "--config", str(config_file),
         "--session-dir", str(session_dir)],
        capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- config plugins
def test_a_plugin_file_strategy_is_used_by_the_worker(tmp_path, digits):
    plugin = tmp_path / "my_strategies.py"
    plugin.write_text(LAST_K + "\nfrom alaas_lab.strategies import register\n"
                      "register('last_k', last_k, needs={'embeddings'})\n")
    cfg = base(tmp_path, "plugin_file", plugins=["my_strategies.py"],  # relative to the file
               active_learning={"strategy": {"type": "last_k"},
                                "model": {"name": "flatten"}})
    config = load_config(write_config(tmp_path, cfg))
    assert config.plugins == (str(plugin.resolve()),)
    assert config.active_learning.strategy.type == "last_k"
    lab = Lab(config, tmp_path / "session").start()
    try:
        lab.push(digits)
        sel = lab.client.query(5)
        assert sel.strategy == "last_k"
        assert sel.item_ids == list(range(59, 54, -1))
    finally:
        lab.stop()


def test_module_function_strategy_in_kernel_and_worker(tmp_path, digits, monkeypatch):
    (tmp_path / "pick_mod.py").write_text(LAST_K + "\nlast_k.needs = {'embeddings'}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]))
    cfg = base(tmp_path, "module_fn", active_learning={"strategy": {"type": "pick_mod:last_k"},
                                                       "model": {"name": "flatten"}})
    config = load_config(cfg)
    from alaas_lab import strategies

    assert strategies.requirements("pick_mod:last_k") == {"embeddings"}
    lab = Lab(config, tmp_path / "session").start()
    try:
        lab.push(digits)
        sel = lab.client.query(3)
        assert (sel.strategy, sel.item_ids) == ("pick_mod:last_k", [59, 58, 57])
    finally:
        lab.stop()
    with pytest.raises(ConfigError, match="pick_mod.*no function 'nope'"):
        load_config(base(tmp_path, "x", active_learning={
            "strategy": {"type": "pick_mod:nope"}, "model": {"name": "flatten"}}))
    with pytest.raises(ConfigError, match="module 'no_such_mod' cannot be imported"):
        load_config(base(tmp_path, "x", active_learning={
            "strategy": {"type": "no_such_mod:f"}, "model": {"name": "flatten"}}))


def test_a_broken_plugin_names_its_file_and_line_in_kernel_and_worker(tmp_path):
    bad = tmp_path / "broken.py"
    bad.write_text("import numpy as np\n\ndef f(k, *, probs, embeddings, labeled, rng)\n"
                   "    return []\n")
    cfg = base(tmp_path, "broken", plugins=[str(bad)])
    with pytest.raises(ConfigError, match=rf"plugin .*broken\.py.* \({bad}, line 3\).*Syntax"):
        load_config(cfg)
    path = write_config(tmp_path, cfg)
    out = run_worker(path, tmp_path / "session")
    assert out.returncode == 2
    assert f"({bad}, line 3)" in out.stderr and "SyntaxError" in out.stderr

    # an exception while importing: the plugin's own line, not importlib's
    raising = tmp_path / "raising.py"
    raising.write_text("x = 1\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(ConfigError, match=rf"\({raising}, line 2\): RuntimeError: no GPU here"):
        load_plugins([str(raising)])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(base(tmp_path, "x", plugins=["missing.py"]))

    # a broken file in the session's plugins folder stops the worker the same way
    session = tmp_path / "session2"
    (session / "plugins").mkdir(parents=True)
    (session / "plugins" / "bad.py").write_text("def (:\n")
    out = run_worker(write_config(tmp_path, base(tmp_path, "broken2")), session)
    assert out.returncode == 2
    assert f"({session / 'plugins' / 'bad.py'}, line 1)" in out.stderr


def test_kernel_and_worker_refuse_an_unknown_strategy_alike(tmp_path):
    cfg = base(tmp_path, "unknown", active_learning={"strategy": {"type": "least_confidense"},
                                                     "model": {"name": "flatten"}})
    with pytest.raises(ConfigError) as kernel:
        load_config(cfg)
    assert "Did you mean 'least_confidence'?" in str(kernel.value)
    out = run_worker(write_config(tmp_path, cfg), tmp_path / "session")
    assert out.returncode == 2
    # the same message (the kernel's list may hold strategies earlier tests registered here)
    head, _, tail = str(kernel.value).partition("allowed:")
    assert head in out.stderr and tail.split(". ")[-1] in out.stderr


# ---------------------------------------------------------------- the cell magic
@pytest.fixture
def shell(tmp_path):
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "alaas_lab")
    yield ip
    lab = magics.current_lab()
    if lab is not None:
        lab.close_widgets()
        lab.server.kill()
    magics._LAB = None


def test_cell_magic_adds_a_strategy_the_worker_queries(shell, tmp_path, digits, capsys):
    path = write_config(tmp_path, base(tmp_path, "cell", session_dir=str(tmp_path / "s")))
    shell.run_line_magic("alaas", f"start {path}")
    lab = magics.current_lab()
    pid = lab.status()["pid"]
    lab.push(digits)
    with pytest.raises(UsageError, match=r"line 2\).*SyntaxError"):
        shell.run_cell_magic("alaas", "strategy broken", "def f(k):\n  return [\n")
    assert not (tmp_path / "s" / "plugins" / "broken.py").exists()
    assert lab.status()["pid"] == pid  # nothing restarted for a broken cell
    with pytest.raises(UsageError, match="unknown option|lacks"):
        shell.run_cell_magic("alaas", "strategy bad_sig", "def bad_sig(k):\n  return []\n")
    shell.run_cell_magic("alaas", "strategy last_k --needs embeddings", LAST_K)
    assert "strategy 'last_k' saved" in capsys.readouterr().out
    assert (tmp_path / "s" / "plugins" / "last_k.py").is_file()
    lab = magics.current_lab()
    status = lab.status()
    assert status["pid"] != pid and status["n_items"] == 60  # restarted, session resumed
    sel = lab.client.query(4, strategy="last_k")
    assert sel.item_ids == [59, 58, 57, 56]
    # a second kernel (or after a restart) checks names the same way: the session's plugins
    other = Lab(session_dir=tmp_path / "s")
    assert other.config == lab.config


def test_write_strategy_plugin_refuses_what_it_cannot_register(tmp_path):
    with pytest.raises(ConfigError, match="may hold only"):
        write_strategy_plugin(tmp_path, "../evil", LAST_K)
    with pytest.raises(ConfigError, match="defines 2 functions"):
        write_strategy_plugin(tmp_path, "two", "def a(k): pass\ndef b(k): pass\n")


# ---------------------------------------------------------------- a model from the notebook
def test_a_torch_module_is_exported_and_embeds_in_the_worker(tmp_path, digits):
    torch = pytest.importorskip("torch")
    from alaas_lab.models import backbone

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 6), torch.nn.Tanh())

    class Scale(torch.nn.Module):
        def forward(self, x):
            return x / 16.0

    cfg = base(tmp_path, "torch_module")
    lab = Lab(cfg, tmp_path / "session", backbone=module, input_shape=(8, 8),
              preprocess=Scale())
    model = lab.config.active_learning.model
    assert model.name == "torchscript"
    weights = tmp_path / "session" / os.path.basename(model.weights)
    assert weights.is_file()
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert weights.name == f"backbone-{digest[:16]}.pt"

    # the worker's view of it, loaded without this test's classes
    bb = backbone("torchscript", weights=str(weights))
    assert bb.fingerprint == f"torchscript-sha256:{digest}" and bb.dim == 6
    with torch.no_grad():
        expected = module(torch.from_numpy(digits[:5] / 16.0)).numpy()
    np.testing.assert_allclose(bb.embed_items(digits[:5]), expected, rtol=1e-5, atol=1e-6)

    lab.start()
    try:
        reply = lab.push(digits)
        assert reply["embedded"] == 60
        status = lab.status()
        assert status["n_embedded"] == 60
        assert len(lab.client.query(5).item_ids) == 5
    finally:
        lab.stop()

    # the same module again (e.g. after a kernel restart): the same file, the same config
    again = Lab(cfg, tmp_path / "session", backbone=module, input_shape=(8, 8),
                preprocess=Scale())
    assert again.config == lab.config
    assert len(list((tmp_path / "session").glob("backbone-*.pt"))) == 1

    # another module: another file, another fingerprint (the cache cannot mix them)
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 6))
    lab2 = Lab(cfg, tmp_path / "session2", backbone=other, input_shape=(8, 8))
    assert lab2.config.active_learning.model.weights != model.weights

    with pytest.raises(Exception, match="input_shape"):
        Lab(cfg, tmp_path / "session3", backbone=module)


def test_entry_points_add_strategies_and_backbones(tmp_path, monkeypatch):
    from alaas_lab import plugins, strategies
    from alaas_lab.models import backbone_names

    (tmp_path / "ep_pkg.py").write_text(LAST_K + "\nlast_k.needs = {'embeddings'}\n")
    info = tmp_path / "ep_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ep_pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[alaas_lab.strategies]\nep_last_k = ep_pkg:last_k\n\n"
        "[alaas_lab.backbones]\nep_net = ep_pkg:Net\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_ENTRY_POINTS_LOADED", False)
    config = load_config({"active_learning": {"strategy": {"type": "ep_last_k"},
                                              "model": {"name": "ep_net"}}})
    assert config.active_learning.model.name == "ep_net" and "ep_net" in backbone_names()
    assert strategies.requirements("ep_last_k") == {"embeddings"}
