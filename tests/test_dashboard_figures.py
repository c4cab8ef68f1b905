"""Chart furniture with known answers: titles clear of the toolbar, baseline labels that
never overlap, cell text that contrasts with its cell."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from dashboards import figures


def test_titles_wrap_at_separators_and_sit_below_the_toolbar() -> None:
    text = ("dinov2 (random weights) · rollout · layer 11 · mean over heads · top 10 % "
            "region · image Q2034923_wd0.jpg")
    lines = figures.wrap_title(text, chars=40)
    assert all(len(line) <= 40 for line in lines) and len(lines) >= 3
    assert " ".join(lines).replace(" · ", " ").split() == text.replace(" · ", " ").split()
    lay = figures.title_layout(text, chars=40)
    assert lay["title"]["yref"] == "container" and lay["title"]["pad"]["t"] >= figures.MODEBAR_PX
    assert lay["title"]["x"] == 0 and lay["title"]["xanchor"] == "left"
    # the top margin holds the toolbar row and every title line
    assert lay["margin_t"] >= figures.MODEBAR_PX + figures.TITLE_FONT * len(lines)
    assert figures.wrap_title("") == [] and figures.wrap_title("short") == ["short"]


def test_overlay_title_is_below_the_toolbar() -> None:
    photo = np.zeros((40, 60, 3), dtype=np.uint8)
    fig = figures.overlay_figure(photo, np.ones((2, 3)), cmap="inferno", opacity=0.5,
                                 percentile=90, title="x · " * 40)
    assert fig.layout.title.pad.t >= figures.MODEBAR_PX
    assert fig.layout.margin.t >= figures.MODEBAR_PX + figures.TITLE_FONT


@pytest.mark.parametrize("values", [[0.10, 0.101, 0.102, 0.5], [0.3, 0.3, 0.3], [0.9, 0.1]])
def test_baseline_labels_keep_their_distance(values: list[float]) -> None:
    y_range, plot_px, gap = (0.0, 1.0), 300.0, 13.0
    shifts = figures.label_shifts(values, y_range, plot_px, gap)
    placed = sorted(v * plot_px + s for v, s in zip(values, shifts, strict=True))
    assert all(b - a >= gap - 1e-6 for a, b in itertools.pairwise(placed))
    # labels far from the others stay where their line is
    lone = [i for i, v in enumerate(values)
            if all(abs(v - w) * plot_px > 2 * gap for j, w in enumerate(values) if j != i)]
    assert all(abs(shifts[i]) < 1e-9 for i in lone)


def test_progression_baseline_annotations_do_not_overlap() -> None:
    line = pl.DataFrame({"layer": [0, 1, 2], "mean": [0.1, 0.2, 0.15]})
    base = {"baseline: random": 0.120, "baseline: center_gaussian": 0.121,
            "baseline: saliency_prior": 0.1215, "baseline: sobel_edges": 0.3}
    fig = figures.progression_figure({"m": line}, title="IoU", y_title="IoU", colors={},
                                     baselines=base, height=420)
    lo, hi = fig.layout.yaxis.range
    plot_px = 420 - fig.layout.margin.t - figures.PROGRESSION_BOTTOM_PX
    ys = sorted((a.y - lo) / (hi - lo) * plot_px + (a.yshift or 0) for a in fig.layout.annotations)
    assert len(ys) == 4
    assert all(b - a >= figures.BASELINE_LABEL_PX - 1e-6 for a, b in itertools.pairwise(ys))


def test_cell_text_is_black_on_light_and_white_on_dark_cells() -> None:
    z = np.array([[0.0, 1.0], [0.5, np.nan]])
    colors = figures.text_colors(np.array([0.0, 1.0]), z, "Viridis", reverse=False)
    assert colors == ["#ffffff", "#000000"]  # viridis: dark purple low, yellow high
    assert figures.text_colors(np.array([0.0, 1.0]), z, "Viridis", reverse=True) == \
        ["#000000", "#ffffff"]
    # WCAG: the chosen colour always reaches at least 4.5:1 on viridis
    import plotly.colors as pc

    t = np.linspace(0, 1, 101)
    chosen = figures.text_colors(t, t, "Viridis", reverse=False)
    for rgb, color in zip(pc.sample_colorscale("Viridis", t.tolist(), colortype="tuple"),
                          chosen, strict=True):
        ratio = figures._contrast_black(rgb) if color == "#000000" else \
            figures._contrast_white(rgb)
        assert ratio >= 4.5, (rgb, color, ratio)


def test_matrix_writes_each_value_in_its_contrasting_colour() -> None:
    z = np.array([[0.0, 1.0], [0.25, np.nan]])
    fig = figures.matrix_figure(z, ["a", "b"], [0, 1], title="t", x_title="x", y_title="y",
                                colorbar="c")
    text = next(t for t in fig.data if t.type == "scatter")
    assert list(text.text) == ["0.000", "1.000", "0.250"]  # no text for the missing cell
    assert list(text.x) == ["a", "b", "a"] and list(text.y) == ["0", "0", "1"]
    assert list(text.textfont.color) == ["#ffffff", "#000000", "#ffffff"]
