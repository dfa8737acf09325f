"""The tutorial notebooks' sources: each ``notebooks/NN_name.py`` (a jupytext percent
script, the source) and its pair ``NN_name.ipynb`` (stored without outputs) hold the same
cells; the scripts lint clean; no notebook reaches for data by path.

If a check fails after an edit, bring the pair back in step (``docs/notebooks.md``)::

    .venv/bin/jupytext --to ipynb --update notebooks/NN_name.py   # script -> notebook
    .venv/bin/jupyter nbconvert --clear-output --inplace notebooks/NN_name.ipynb

Executing the notebooks is ``tests/test_notebooks.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
STEMS = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
FIX = ("run `.venv/bin/jupytext --to ipynb --update notebooks/{stem}.py` (the script is the "
       "source), then `.venv/bin/jupyter nbconvert --clear-output --inplace "
       "notebooks/{stem}.ipynb`")


def cells(nb) -> list[tuple[str, str, list[str]]]:
    """What must agree between a script and its notebook: kind, source, tags."""
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def test_every_notebook_has_its_script_and_nothing_else_generates_them():
    scripts = sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
    assert STEMS and scripts == STEMS, "each notebooks/NN_name.ipynb pairs with NN_name.py"
    assert not (NOTEBOOK_DIR / "make_notebooks.py").exists()
    config = (NOTEBOOK_DIR / "jupytext.toml").read_text()
    assert 'formats = "ipynb,py:percent"' in config


@pytest.mark.parametrize("stem", STEMS)
def test_stored_notebook_is_clean(stem):
    nb = nbformat.read(NOTEBOOK_DIR / f"{stem}.ipynb", as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            fix = FIX.format(stem=stem)
            assert cell.outputs == [], f"{stem}.ipynb cell {i} has outputs: {fix}"
            assert cell.execution_count is None, f"{stem}.ipynb cell {i} has a count: {fix}"
    assert "widgets" not in nb.metadata, f"{stem}.ipynb stores widget state: strip it"
    assert nb.metadata["jupytext"]["formats"] == "ipynb,py:percent"
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith(f"# {stem[:2]} · ")
    assert "What you'll learn" in first.source
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and 'os.environ.get("CI") == "true"' in params[0].source


@pytest.mark.parametrize("stem", STEMS)
def test_script_and_notebook_hold_the_same_cells(stem):
    script = jupytext.read(NOTEBOOK_DIR / f"{stem}.py")
    stored = jupytext.read(NOTEBOOK_DIR / f"{stem}.ipynb")
    a, b = cells(script), cells(stored)
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        assert x == y, f"{stem}: cell {i} differs between .py and .ipynb; {FIX.format(stem=stem)}"
    assert len(a) == len(b), (f"{stem}: {len(a)} cells in the .py, {len(b)} in the .ipynb; "
                              f"{FIX.format(stem=stem)}")


@pytest.mark.parametrize("stem", STEMS)
def test_data_comes_from_the_loaders_never_from_a_path(stem):
    text = (NOTEBOOK_DIR / f"{stem}.py").read_text()
    assert "../shared" not in text and "shared/data" not in text
    for call in re.finditer(r"datasets\.(\w+)\(([^)]*)\)", text):
        args = call[2].strip()
        assert not args or re.match(r"\w+=", args), (
            f"{stem}: {call[0]} passes a path; call the loader with keywords only")


def test_the_scripts_lint_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", str(NOTEBOOK_DIR)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
