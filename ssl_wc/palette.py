"""Colours shared by the dashboards and the static report: one colour per model."""

from __future__ import annotations

from collections.abc import Sequence

BASELINE_COLOR = "#7f7f7f"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#393b79", "#637939", "#8c6d31")
#: Style colours (the four study styles first, in WikiChurches order, then the rest).
STYLE_PALETTE = ("#4e79a7", "#e15759", "#59a14f", "#edc948", "#b07aa1", "#76b7b2",
                 "#ff9da7", "#9c755f", "#f28e2b", "#bab0ac")


def is_baseline_key(model: str) -> bool:
    """Baselines are models ``baseline:<name>``."""
    return model.startswith(("baseline:", "baseline_"))


def model_colors(models: Sequence[str]) -> dict[str, str]:
    """A stable colour per model (sorted names), grey for baselines."""
    out: dict[str, str] = {}
    i = 0
    for m in sorted(set(models)):
        if is_baseline_key(m):
            out[m] = BASELINE_COLOR
        else:
            out[m] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def style_colors(styles: Sequence[str]) -> dict[str, str]:
    """A stable colour per style name (sorted names)."""
    return {s: STYLE_PALETTE[i % len(STYLE_PALETTE)] for i, s in enumerate(sorted(set(styles)))}
