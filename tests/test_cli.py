"""Tests for the alaas-lab command line (in-process via main() and once as a subprocess)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from alaas_lab import __version__
from alaas_lab.cli import format_table, main, verdict

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = Path(os.environ.get("ALAAS_LAB_MNIST_DIR") or ROOT / ".." / "shared" / "data" / "mnist")


def table_rows(text: str) -> dict[int, list[str]]:
    """round -> cells of the demo's table (parsed from its output)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("round"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        parts = line.split()
        rows[int(parts[0])] = parts[1:]
    return rows


def test_demo_prints_a_round_by_round_table(capsys):
    code = main(
        [
            "demo",
            "--rounds",
            "2",
            "--budget",
            "10",
            "--initial",
            "10",
            "--seeds",
            "2",
            "--strategies",
            "random,least_confidence",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "digits (1797 images 8x8)" in out and "2 seed(s)" in out
    header = next(line for line in out.splitlines() if line.lstrip().startswith("round"))
    assert header.split() == ["round", "labeled", "random", "least_confidence"]
    rows = table_rows(out)
    assert sorted(rows) == [0, 1, 2]
    assert [rows[r][0] for r in rows] == ["10", "20", "30"]
    # each cell is "mean ± std" in percent; round 0 is the same seed set for both
    assert rows[0][1:4] == rows[0][4:7]
    assert all(0 < float(rows[r][1]) <= 100 for r in rows)
    assert "ahead at 30 labels:" in out


@pytest.mark.slow
def test_default_demo_shows_least_confidence_ahead_of_random(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert sorted(rows) == list(range(9)) and rows[8][0] == "180"
    random_final, lc_final = float(rows[8][1]), float(rows[8][4])
    assert lc_final > random_final
    assert "ahead at 180 labels: least_confidence" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"alaas-lab {__version__}"


def test_bad_input_exits_2_with_a_message(capsys):
    assert main(["demo", "--strategies", "random,oracle"]) == 2
    err = capsys.readouterr().err
    assert "unknown ['oracle']" in err and "least_confidence" in err
    assert main(["demo", "--budget", "0"]) == 2
    assert "--budget must be >= 1" in capsys.readouterr().err
    assert main(["demo", "--rounds", "100", "--budget", "100", "--seeds", "1"]) == 2
    assert "pool holds only" in capsys.readouterr().err
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_demo_on_mnist_missing_files_says_where(tmp_path, capsys):
    code = main(["demo", "--dataset", "mnist", "--mnist-path", str(tmp_path), "--seeds", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and str(tmp_path) in err


@pytest.mark.skipif(
    not (MNIST_DIR / "train-images.idx3-ubyte.gz").is_file(), reason=f"no MNIST in {MNIST_DIR}"
)
def test_demo_on_mnist(capsys):
    code = main(
        [
            "demo",
            "--dataset",
            "mnist",
            "--mnist-path",
            str(MNIST_DIR),
            "--pool",
            "600",
            "--test",
            "300",
            "--rounds",
            "1",
            "--budget",
            "20",
            "--seeds",
            "1",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "mnist-train (600 images 28x28)" in out and "600 pool items, 300 test items" in out
    assert sorted(table_rows(out)) == [0, 1]


def test_demo_resnet18_without_weights_explains_the_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("ALAAS_LAB_RESNET18_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert main(["demo", "--backbone", "resnet18", "--seeds", "1"]) == 2
    err = capsys.readouterr().err
    assert "never falls back to a random network" in err
    assert "--weights FILE, or --backbone-init train" in err


@pytest.mark.slow
def test_demo_with_a_resnet18_backbone(capsys):
    argv = ["demo", "--backbone", "resnet18", "--backbone-init", "random", "--seeds", "1"]
    assert main([*argv, "--rounds", "1", "--budget", "10", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "embeddings: resnet18 with RANDOM weights" in out
    assert sorted(table_rows(out)) == [0, 1]


def test_demo_as_a_subprocess():
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alaas_lab.cli",
            "demo",
            "--rounds",
            "1",
            "--budget",
            "10",
            "--initial",
            "10",
            "--seeds",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(table_rows(proc.stdout)) == [0, 1]
    assert "ahead at 20 labels:" in proc.stdout
    version = subprocess.run(
        [sys.executable, "-m", "alaas_lab", "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert version.returncode == 0 and version.stdout.strip() == f"alaas-lab {__version__}"


def test_format_table_and_verdict_by_hand():
    acc = {
        "random": np.array([[0.5, 0.6], [0.7, 0.8]]),
        "margin": np.array([[0.5, 0.9], [0.7, 0.9]]),
    }
    table = format_table(np.array([10, 20]), acc)
    lines = table.splitlines()
    assert lines[0].split() == ["round", "labeled", "random", "margin"]
    assert lines[2].split() == ["0", "10", "60.0", "±", "10.0", "60.0", "±", "10.0"]
    assert lines[3].split() == ["1", "20", "70.0", "±", "10.0", "90.0", "±", "0.0"]
    line = verdict(np.array([10, 20]), acc)
    assert line.startswith("ahead at 20 labels: margin (90.0% top-1, +20.0 points over random")
    assert "best mean over all rounds: margin (75.0%)" in line


# ------------------------------------------------------------------------ failures
CLI = Path(sys.executable).with_name("alaas-lab")


def _config_file(tmp_path: Path, **extra) -> str:
    import yaml

    config = {"name": "t", "classes": ["a", "b"], "cache_dir": str(tmp_path / "cache"),
              "active_learning": {"model": {"name": "flatten"}}} | extra
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _session_under_a_file(tmp_path: Path) -> list[str]:
    (tmp_path / "file").write_text("not a folder")
    return ["serve", _config_file(tmp_path), "--session-dir", str(tmp_path / "file" / "s")]


def _bad_key(tmp_path: Path, text: str) -> str:
    path = tmp_path / "c.yml"
    path.write_text(text)
    return str(path)


FAILURES = {
    "missing config file": (lambda t: ["serve", str(t / "nope.yml")], "does not exist"),
    "bad YAML key": (lambda t: ["serve", _bad_key(t, "dat: {kind: image}\n")],
                     "unknown config key 'dat'. Did you mean 'data'?"),
    "bad YAML": (lambda t: ["serve", _bad_key(t, "name: [\n")], "is not valid YAML"),
    "unknown argument": (lambda t: ["serve", _config_file(t), "--bogus"],
                         "unrecognized arguments: --bogus"),
    "unknown subcommand": (lambda t: ["frobnicate"], "invalid choice: 'frobnicate'"),
    "missing argument": (lambda t: ["serve"], "required: config"),
    "session dir not creatable": (_session_under_a_file, "cannot write to the session directory"),
    "unreadable key file": (lambda t: ["serve", _config_file(t), "--key-file", str(t / "k")],
                            "--key-file"),
    "bad demo option": (lambda t: ["demo", "--budget", "0"], "--budget must be >= 1"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_every_cli_failure_is_one_line_and_a_non_zero_exit(case, tmp_path):
    build, expected = FAILURES[case]
    proc = subprocess.run([str(CLI), *build(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("alaas-lab") and ": error: " in proc.stderr
    assert expected in proc.stderr


def test_serve_on_a_port_in_use_is_one_error_line(tmp_path):
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = _config_file(tmp_path, al_worker={"port": port})
        proc = subprocess.run([str(CLI), "serve", config, "--session-dir", str(tmp_path / "s")],
                              capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert errors == [proc.stderr.splitlines()[-1]], proc.stderr  # after serve's log lines
    assert errors[0].startswith(f"alaas-lab serve: error: cannot listen on tcp://127.0.0.1:{port}")


def test_main_turns_an_unexpected_error_into_one_line(monkeypatch, capsys):
    import alaas_lab.cli as cli

    def boom(args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "run_keygen", boom)
    assert main(["keygen", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("alaas-lab keygen: error: OSError: [Errno 28] No space left on device")
    assert "run with -v for the traceback" in err


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_lab_allows_root_only_for_root():
    def dry_run(*assign):  # -n prints the recipe; -o: the venv counts as built
        return subprocess.run(["make", "-n", "-o", ".venv/.installed", "lab", *assign],
                              capture_output=True, text=True, cwd=ROOT, timeout=60,
                              check=True).stdout

    assert "jupyter lab --allow-root notebooks/01_quickstart.ipynb" in dry_run("USER_ID=0")
    assert "--allow-root" not in dry_run("USER_ID=1000")
    assert ("--allow-root" in dry_run()) == (os.getuid() == 0)  # this user, as make sees it
