"""Run the exploration notebook (``notebooks/explore.py``, marimo) and export static HTML.

``marimo export html`` writes a page that loads marimo's front end from a CDN, so it does
not open offline. This export runs the notebook as a script instead (``App.run()``:
every cell, in dependency order, with each UI element at its default value), then writes
one self-contained page: each cell's code and its output (Markdown as HTML, polars
frames as tables, matplotlib figures as embedded SVG, anything else as text).

marimo is an optional dependency (``pip install ssl-wc[notebook]``).
"""

from __future__ import annotations

import ast
import contextlib
import html
import importlib.util
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssl_wc.paths import WarehousePaths
from ssl_wc.report.page import Section, css, data_uri, render

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explore.py"


class NotebookUnavailable(RuntimeError):
    """marimo is not installed, or the notebook file is missing."""


@dataclass(frozen=True)
class Cell:
    """One notebook cell: its code (without the trailing ``return``) and its output."""

    name: str
    code: str
    output: Any


def cell_sources(path: Path) -> list[tuple[str, str]]:
    """(function name, code) of every ``@app.cell`` function, in file order."""
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    out = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        if not any(_is_cell_decorator(d) for d in node.decorator_list):
            continue
        body = [n for n in node.body if not isinstance(n, ast.Return)]
        lines = text.splitlines()
        code = "\n".join(lines[body[0].lineno - 1:body[-1].end_lineno]) if body else ""
        indent = min((len(ln) - len(ln.lstrip()) for ln in code.splitlines() if ln.strip()),
                     default=0)
        out.append((node.name, "\n".join(ln[indent:] for ln in code.splitlines())))
    return out


def _is_cell_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    return isinstance(target, ast.Attribute) and target.attr == "cell"


@contextlib.contextmanager
def _warehouse_env(wh: WarehousePaths) -> Iterator[None]:
    old = os.environ.get("SSL_WC_WAREHOUSE")
    os.environ["SSL_WC_WAREHOUSE"] = str(wh.root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("SSL_WC_WAREHOUSE", None)
        else:
            os.environ["SSL_WC_WAREHOUSE"] = old


def run_notebook(wh: WarehousePaths, path: Path = NOTEBOOK) -> list[Cell]:
    """Execute every cell of the notebook against ``wh``; raises on the first error."""
    if importlib.util.find_spec("marimo") is None:
        raise NotebookUnavailable("The exploration notebook needs marimo: pip install "
                                  "'ssl-wc[notebook]'.")
    if not path.is_file():
        raise NotebookUnavailable(f"The exploration notebook is missing ({path}).")
    spec = importlib.util.spec_from_file_location("ssl_wc_explore_notebook", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with _warehouse_env(wh), contextlib.redirect_stdout(io.StringIO()):
        spec.loader.exec_module(module)
        outputs, _defs = module.app.run()
    sources = cell_sources(path)
    if len(sources) != len(outputs):
        raise RuntimeError(f"{path.name}: {len(sources)} cells in the file but "
                           f"{len(outputs)} outputs")
    return [Cell(name, code, out) for (name, code), out in zip(sources, outputs, strict=True)]


def output_html(value: Any) -> str:
    """A cell output as static HTML (no scripts)."""
    if value is None:
        return ""
    mod = type(value).__module__
    if mod.startswith("polars"):
        df = value.head(20)
        more = (f'<p class="note">first 20 of {value.height} rows</p>'
                if value.height > 20 else "")
        return f'<div class="table-wrap">{df._repr_html_()}</div>{more}'
    if mod.startswith("matplotlib"):
        fig = value.get_figure() if hasattr(value, "get_figure") else value
        buf = io.BytesIO()
        fig.savefig(buf, format="svg")
        return f'<img alt="figure" src="{data_uri(buf.getvalue(), "svg")}">'
    if mod.startswith("marimo._output.md") or type(value).__name__ in ("Html", "_md"):
        text = getattr(value, "text", "")
        if "<marimo-" not in text:
            return f"<div>{text}</div>"
    if mod.startswith("marimo._plugins.ui"):
        label = type(value).__name__
        return (f'<p class="note">[interactive control: {html.escape(label)} = '
                f'{html.escape(repr(getattr(value, "value", "")))}; open the notebook with '
                f'<code>marimo edit notebooks/explore.py</code> to change it]</p>')
    return f"<pre>{html.escape(repr(value))}</pre>"


def export_notebook(wh: WarehousePaths, dest: Path, path: Path = NOTEBOOK) -> Path:
    """Run the notebook on ``wh`` and write its static HTML to ``dest``."""
    cells = run_notebook(wh, path)
    blocks = [f'<h3 class="meta">cell {i + 1}</h3><pre>{html.escape(c.code)}</pre>'
              + output_html(c.output) for i, c in enumerate(cells)]
    import matplotlib.pyplot as plt

    plt.close("all")
    page = render("ssl-wc exploration notebook", f"{path.name} executed on {wh.root} "
                  f"(python {sys.version.split()[0]})", None,
                  [Section("cells", "Cells and outputs", "", blocks)],
                  "Static export: interactive controls are shown at their default values.")
    assert css()  # the page is self-contained (styles inline)
    dest.write_text(page, encoding="utf-8")
    return dest
