"""Report tables: one polars frame, written as CSV (full precision), LaTeX and HTML.

LaTeX uses booktabs rules (``\\toprule``, ``\\midrule``, ``\\bottomrule``) and escapes
every cell and header: the ten special characters ``& % $ # _ { } ~ ^ \\`` and the few
non-ASCII symbols the project writes (arrows, minus, times, middle dot, comparison
signs) become commands that compile under pdflatex. Numbers are right-aligned; metric
values get three decimals (IoU values are around 0.05 to 0.13), p-values three
significant digits (scientific below 0.001).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "↑": r"$\uparrow$", "↓": r"$\downarrow$", "−": "-", "×": r"$\times$",
    "·": r"\textperiodcentered{}", "≥": r"$\geq$", "≤": r"$\leq$", "±": r"$\pm$",
    "–": "--", "—": "---", "<": r"\textless{}", ">": r"\textgreater{}",
}
PVALUE_COLUMNS = ("p", "p_t", "p_wilcoxon", "p_holm", "p_bonferroni", "p_bh")


def latex_escape(text: str) -> str:
    """``text`` with every LaTeX special character escaped (see the module docstring)."""
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def format_cell(value: object, column: str, digits: int = 3) -> str:
    """A cell for people: p-values 3 significant digits, floats ``digits`` decimals."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if column in PVALUE_COLUMNS or column.startswith("p_"):
            return f"{value:.2e}" if value < 1e-3 else f"{value:.3f}"
        return f"{value:.{digits}f}"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


@dataclass
class Table:
    """One report table: name (file stem), title, caption and the frame shown."""

    name: str
    title: str
    frame: pl.DataFrame
    caption: str = ""
    digits: dict[str, int] = field(default_factory=dict)

    def cells(self) -> list[list[str]]:
        cols = self.frame.columns
        return [[format_cell(v, c, self.digits.get(c, 3)) for c, v in zip(cols, row, strict=True)]
                for row in self.frame.iter_rows()]

    def numeric(self) -> list[bool]:
        return [dt.is_numeric() for dt in self.frame.dtypes]

    def write_csv(self, path: Path) -> None:
        """Full precision; lists joined with ``;``."""
        out = self.frame.with_columns(
            [pl.col(c).cast(pl.List(pl.String)).list.join(";")
             for c, dt in self.frame.schema.items() if isinstance(dt, pl.List)])
        out.write_csv(path)

    def latex(self) -> str:
        """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
        align = "".join("r" if n else "l" for n in self.numeric())
        head = " & ".join(latex_escape(c) for c in self.frame.columns) + r" \\"
        body = [" & ".join(latex_escape(c) for c in row) + r" \\" for row in self.cells()]
        caption = latex_escape(self.title + (f". {self.caption}" if self.caption else ""))
        return "\n".join([
            r"\begin{table}[htbp]", r"\centering", r"\small",
            rf"\caption{{{caption}}}", rf"\label{{tab:{latex_escape(self.name)}}}",
            rf"\begin{{tabular}}{{{align}}}", r"\toprule", head, r"\midrule", *body,
            r"\bottomrule", r"\end{tabular}", r"\end{table}", ""])

    def html(self, max_rows: int = 60) -> str:
        """An HTML table (at most ``max_rows`` rows; the CSV holds them all)."""
        nums = self.numeric()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.frame.columns)
        rows = []
        for row in self.cells()[:max_rows]:
            tds = "".join(f'<td class="{"num" if n else "txt"}">{html.escape(v)}</td>'
                          for v, n in zip(row, nums, strict=True))
            rows.append(f"<tr>{tds}</tr>")
        more = (f'<p class="note">{self.frame.height - max_rows} more rows in '
                f'<code>tables/{html.escape(self.name)}.csv</code></p>'
                if self.frame.height > max_rows else "")
        return (f'<div class="table-wrap"><table id="table-{html.escape(self.name)}">'
                f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
                + more)

    def write(self, folder: Path) -> list[Path]:
        """``<name>.csv`` and ``<name>.tex`` under ``folder``."""
        csv, tex = folder / f"{self.name}.csv", folder / f"{self.name}.tex"
        self.write_csv(csv)
        tex.write_text(self.latex(), encoding="utf-8")
        return [csv, tex]
