"""The wheel carries the front end: js/ ships as alaas_lab/js and is found there (issue 16)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_ships_js_and_the_installed_package_reads_it(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (tmp_path / "dist").glob("alaas_lab-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        front_end = sorted(p.name for p in (ROOT / "js").iterdir()
                           if p.suffix in (".js", ".css"))
        assert front_end, "js/ holds no module"
        missing = [n for n in front_end if f"alaas_lab/js/{n}" not in names]
        assert missing == [], f"not in {wheel.name}: {missing}"
        for name in front_end:  # the very files, not stale copies
            assert zf.read(f"alaas_lab/js/{name}") == (ROOT / "js" / name).read_bytes(), name
        zf.extractall(tmp_path / "site")

    # the unpacked wheel first on sys.path: it, not the checkout, is imported
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "import alaas_lab; from alaas_lab.widgets import _base, Dashboard; "
            "print(alaas_lab.__file__); print(_base.JS_DIR); "
            "print('function h(' in str(Dashboard._esm))")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "site")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    package, js_dir, inlined = run.stdout.split()
    site = (tmp_path / "site").resolve()
    assert Path(package).resolve().is_relative_to(site), package
    assert Path(js_dir).resolve() == site / "alaas_lab" / "js"
    assert inlined == "True"
