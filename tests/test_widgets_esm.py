"""The widgets' ES modules as anywidget receives them: sibling imports inlined (issue 16)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap

import anywidget
import pytest
import traitlets

from alaas_lab.widgets import Dashboard, LabelingWidget, PipelineMonitor
from alaas_lab.widgets._base import JS_DIR, FrontEndModule, inline_imports

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH (CI has it)")


def _write(folder, **files):
    for name, text in files.items():
        (folder / name.replace("_js", ".js")).write_text(textwrap.dedent(text))


def _run_module(path, expr):
    """Import ``path`` in Node and print ``expr`` (``m`` is the module) as JSON."""
    code = f"import(process.argv[1]).then((m) => console.log(JSON.stringify({expr})))"
    out = subprocess.run([NODE, "--input-type=module", "-e", code, str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("widget", [Dashboard, PipelineMonitor, LabelingWidget])
def test_widget_modules_ship_without_relative_imports(widget):
    text = str(widget._esm)
    assert not re.search(r"^\s*import\b", text, re.M)  # nothing left for a browser to fetch
    assert "function h(" in text and "export default { render }" in text
    assert text == inline_imports(JS_DIR / widget._esm.path.name)


@pytest.mark.parametrize("widget", [Dashboard, PipelineMonitor, LabelingWidget])
def test_inlined_helpers_bring_no_colour_literal(widget):
    """Colours come from --jp-* variables (alaas.css), in the helpers as in the widgets."""
    code = re.sub(r"//[^\n]*", "", str(widget._esm))
    assert not re.findall(r"#[0-9a-fA-F]{3,8}\b|\brgba?\(|\bhsla?\(", code)


@needs_node
@pytest.mark.parametrize("name", ["dashboard.js", "monitor.js", "labeler.js"])
def test_inlined_widget_modules_load_as_one_file(tmp_path, name):
    path = tmp_path / name.replace(".js", ".mjs")  # alone: nothing beside it to import
    path.write_text(inline_imports(JS_DIR / name))
    assert _run_module(path, "typeof m.default.render") == "function"


@needs_node
def test_nested_aliased_imports_are_inlined_once_and_keep_private_names_private(tmp_path):
    _write(tmp_path,
           base_js="""\
               const secret = 2;
               export const twice = (x) => secret * x;
               """,
           mid_js="""\
               import { twice } from "./base.js";
               const secret = 10;
               export function quad(x) { return twice(twice(x)) + secret - secret; }
               """,
           main_js="""\
               import { twice as double } from "./base.js";
               import {
                 quad,
               } from "./mid.js";
               const secret = 100;
               export default { run: (x) => [double(x), quad(x), secret] };
               """)
    text = inline_imports(tmp_path / "main.js")
    assert text.count("const __alaas_base_js =") == 1
    assert text.index("__alaas_base_js =") < text.index("__alaas_mid_js =")
    out = tmp_path / "out.mjs"
    out.write_text(text)
    assert _run_module(out, "m.default.run(3)") == [6, 12, 100]


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({"main_js": 'import dom from "./dom.js";\n', "dom_js": "export const h = 1;\n"},
         r"main\.js: cannot inline 'import dom from \"\./dom\.js\"'"),
        ({"main_js": 'import { g } from "./dom.js";\n', "dom_js": "export const h = 1;\n"},
         r"main\.js imports 'g' from dom\.js, which exports only \['h'\]"),
        ({"main_js": 'import { h } from "./nope.js";\n'}, r"nope\.js, which is not a module in"),
        ({"main_js": 'import { h } from "./dom.js";\n',
          "dom_js": "const h = 1;\nexport default h;\n"},
         r"dom\.js: cannot inline 'export default h;'"),
        ({"main_js": 'import { a } from "./a.js";\n',
          "a_js": 'import { b } from "./b.js";\nexport const a = 1;\n',
          "b_js": 'import { a } from "./a.js";\nexport const b = 2;\n'},
         r"import cycle between the front-end modules: main\.js -> a\.js -> b\.js -> a\.js"),
    ],
)
def test_what_cannot_be_inlined_is_refused_naming_the_file(tmp_path, files, match):
    _write(tmp_path, **files)
    with pytest.raises(ImportError, match=match):
        inline_imports(tmp_path / "main.js")


def test_reload_sends_the_rebuilt_module_to_live_widgets(tmp_path):
    _write(tmp_path,
           dom_js="export const label = 'one';\n",
           w_js='import { label } from "./dom.js";\n'
                'export default { render() { return label; } };\n')

    class Probe(anywidget.AnyWidget):
        _esm = FrontEndModule("w.js", tmp_path)
        value = traitlets.Int(0).tag(sync=True)

    widget = Probe()
    assert "'one'" in widget._esm
    assert Probe._esm.reload() is False  # nothing changed
    (tmp_path / "dom.js").write_text("export const label = 'two';\n")
    assert Probe._esm.reload() is True
    assert "'two'" in widget._esm and "'one'" not in widget._esm
    (tmp_path / "dom.js").write_text("export default 3;\n")  # broken: the last good text stays
    assert Probe._esm.reload() is False
    assert "'two'" in widget._esm
    widget.close()
