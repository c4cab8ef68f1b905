"""The exploration notebook (marimo) runs headless on a scored warehouse, cell by cell."""

from __future__ import annotations

import polars as pl

from ssl_wc.report.notebook import NOTEBOOK, cell_sources, output_html, run_notebook


def test_every_cell_executes(scored_wh) -> None:
    cells = run_notebook(scored_wh)
    assert len(cells) == len(cell_sources(NOTEBOOK)) >= 12
    frames = [c.output for c in cells if isinstance(c.output, pl.DataFrame)]
    assert len(frames) >= 6
    agreement = next(c.output for c in cells if isinstance(c.output, pl.DataFrame)
                     and "max_abs_difference" in c.output.columns)
    # the built-in iou_at UDF, called from the notebook, gives the stored IoU@90 exactly
    assert agreement["maps"][0] > 0
    assert agreement["max_abs_difference"][0] < 1e-12
    ontology = next(c.output for c in cells if isinstance(c.output, pl.DataFrame)
                    and "boxes_rolled_up" in c.output.columns)
    assert (ontology["boxes_rolled_up"] >= ontology["boxes_own"]).all()
    for c in cells:
        html = output_html(c.output)
        assert "<script" not in html


def test_cell_sources_strip_the_return() -> None:
    names = cell_sources(NOTEBOOK)
    assert all(not code.rstrip().splitlines()[-1].startswith("return") for _, code in names
               if code.strip())
