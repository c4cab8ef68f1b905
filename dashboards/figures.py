"""Plotly figures shared by the pages (overlays, progressions, rankings).

Every figure carries ``layout.meta = {"chart": <name>}`` so tests can find it in the
page. Metric axes use three decimals: real IoU values are around 0.05 to 0.13.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

from dashboards import heatmap
from ssl_wc.palette import BASELINE_COLOR, PALETTE, model_colors

BOX_COLOR = "#00e5ff"
BOX_SELECTED = "#ffea00"

__all__ = ["BASELINE_COLOR", "PALETTE", "model_colors"]

#: Height of Plotly's toolbar (mode bar) at the top right of every chart, in pixels.
MODEBAR_PX = 30
TITLE_FONT = 14
#: Title characters per line before it wraps (at the smallest width pages give a chart).
TITLE_CHARS = 72


def title_layout(text: str, *, chars: int = TITLE_CHARS) -> dict[str, Any]:
    """Layout for a chart title that never runs under the toolbar icons: left-aligned,
    in its own band below the toolbar row, wrapped at `` · `` (or spaces) into lines of
    at most ``chars`` characters; the top margin makes room for every line."""
    lines = wrap_title(text, chars)
    top = MODEBAR_PX + (TITLE_FONT + 6) * len(lines) + 8
    return {"title": {"text": "<br>".join(lines), "font": {"size": TITLE_FONT},
                      "x": 0, "xanchor": "left", "xref": "container", "y": 1,
                      "yanchor": "top", "yref": "container",
                      "pad": {"t": MODEBAR_PX, "l": 8}},
            "margin_t": top}


def wrap_title(text: str, chars: int = TITLE_CHARS) -> list[str]:
    """``text`` in lines of at most ``chars`` characters, broken at `` · `` first."""
    if not text:
        return []
    lines: list[str] = []
    for part in text.split(" · "):
        piece = part if not lines else f"{lines[-1]} · {part}"
        if lines and len(piece) <= chars:
            lines[-1] = piece
            continue
        words: list[str] = []
        for word in part.split(" "):
            if words and len(" ".join([*words, word])) > chars:
                lines.append(" ".join(words))
                words = []
            words.append(word)
        lines.append(" ".join(words))
    return lines


def with_title(fig: go.Figure, text: str, margin: Mapping[str, int]) -> go.Figure:
    """Apply :func:`title_layout` and ``margin`` (its top replaced by the title band)."""
    lay = title_layout(text)
    fig.update_layout(title=lay["title"], margin={**margin, "t": lay["margin_t"]})
    return fig


def rgba(hex_color: str, alpha: float) -> str:
    c = hex_color.lstrip("#")
    r, g, b = int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
    return f"rgba({r},{g},{b},{alpha})"


@dataclass(frozen=True)
class BoxShape:
    """One expert box for drawing: clamped fractions and hover text."""

    index: int
    left: float
    top: float
    width: float
    height: float
    hover: str
    label: str


def box_shapes(boxes: pl.DataFrame) -> list[BoxShape]:
    """Boxes with hover text: feature name, its ontology ancestors, area."""
    out = []
    for b in boxes.iter_rows(named=True):
        anc = ", ".join(b["ancestors"] or []) or "none (a root feature)"
        hover = (f"<b>#{b['box_index']} {b['feature_name']}</b><br>ancestors: {anc}"
                 f"<br>area {100 * (b['area_c'] or 0):.2f} % of the image"
                 + ("<br>clamped to the image" if b["was_clamped"] else ""))
        out.append(BoxShape(int(b["box_index"]), float(b["left_c"]), float(b["top_c"]),
                                    float(b["width_c"]), float(b["height_c"]), hover,
                                    str(b["feature_name"])))
    return out


def image_height(photo: np.ndarray, width: int, lo: int = 300, hi: int = 720) -> int:
    """Figure height that fits a picture shown about ``width`` pixels wide."""
    h, w = photo.shape[:2]
    return int(min(max(width * h / max(w, 1) + 40, lo), hi))


def _image_axes(fig: go.Figure, width: int, height: int, fig_height: int) -> None:
    fig.update_xaxes(visible=False, range=[0, width], constrain="domain")
    fig.update_yaxes(visible=False, range=[height, 0], scaleanchor="x", constrain="domain")
    fig.update_layout(margin={**IMAGE_MARGIN, "t": 30}, height=fig_height,
                      plot_bgcolor="rgba(0,0,0,0)", dragmode=False, hovermode="closest")


IMAGE_MARGIN = {"l": 0, "r": 0, "b": 0}


def frame_pixels(frame: Sequence[float] | None, width: int,
                 height: int) -> tuple[int, int, int, int]:
    """A map frame (left, top, right, bottom fractions; None = the whole picture) as
    pixel bounds ``x0, y0, x1, y1`` of a ``width x height`` picture (at least 1 px)."""
    if frame is None:
        return 0, 0, width, height
    left, top, right, bottom = (float(v) for v in frame)
    x0, y0 = min(round(left * width), width - 1), min(round(top * height), height - 1)
    x1, y1 = max(round(right * width), x0 + 1), max(round(bottom * height), y0 + 1)
    return x0, y0, min(x1, width), min(y1, height)


def overlay_figure(photo: np.ndarray, grid: np.ndarray | None, *, cmap: str, opacity: float,
                   percentile: float | None, boxes: Sequence[BoxShape] = (),
                   selected_box: int | None = None, title: str = "",
                   name: str = "overlay", fig_height: int = 560,
                   frame: Sequence[float] | None = None,
                   value_label: str = "attention") -> go.Figure:
    """The photo with the upsampled heatmap blended in, the top-k outline and the boxes.

    The blend is drawn in numpy (one picture); a transparent heatmap trace of the patch
    grid on top gives the colour bar and the per-patch hover values. ``frame`` (fractions
    of the picture) is the part the map covers when the model saw a crop (ResNet-50's
    centre crop): the map is drawn there, the rest of the picture dimmed and the crop
    outlined (dashed).
    """
    h, w = photo.shape[:2]
    full = frame is None or tuple(frame) == (0.0, 0.0, 1.0, 1.0)
    x0, y0, x1, y1 = frame_pixels(None if full else frame, w, h)
    fw, fh = x1 - x0, y1 - y0
    heat = heatmap.display_heat(grid, fh, fw) if grid is not None else None
    region = (heatmap.eval_region(grid, percentile)
              if grid is not None and percentile is not None else None)
    picture = heatmap.overlay(photo, None, dim=0.55) if not full else np.array(photo)
    picture[y0:y1, x0:x1] = heatmap.overlay(photo[y0:y1, x0:x1], heat, cmap=cmap,
                                            opacity=opacity, region=region)
    fig = go.Figure()
    fig.add_trace(go.Image(source=heatmap.to_data_uri(picture), x0=0, y0=0, dx=1, dy=1,
                           hoverinfo="skip", name="image"))
    if grid is not None:
        gh, gw = grid.shape
        fig.add_trace(go.Heatmap(
            z=heatmap.normalise(grid), x0=x0 + fw / (2 * gw), dx=fw / gw,
            y0=y0 + fh / (2 * gh), dy=fh / gh,
            zmin=0.0, zmax=1.0, colorscale=heatmap.plotly_colorscale(cmap), opacity=0.0,
            name=value_label, showscale=True,
            colorbar={"title": {"text": f"{value_label}<br>(min-max)"}, "thickness": 12,
                      "len": 0.6},
            hovertemplate=f"patch row %{{y:.0f}}, col %{{x:.0f}}<br>{value_label} "
                          "%{z:.3f}<extra></extra>"))
    if not full:
        fig.add_shape(type="rect", x0=x0, y0=y0, x1=x1, y1=y1,
                      line={"color": "white", "dash": "dash", "width": 2})
    _add_boxes(fig, boxes, w, h, selected_box)
    _image_axes(fig, w, h, fig_height)
    with_title(fig, title, IMAGE_MARGIN)
    fig.update_layout(meta={"chart": name}, showlegend=False)
    return fig


def _add_boxes(fig: go.Figure, boxes: Sequence[BoxShape], w: int, h: int,
               selected: int | None) -> None:
    if not boxes:
        return
    for b in boxes:
        x0, y0 = b.left * w, b.top * h
        x1, y1 = (b.left + b.width) * w, (b.top + b.height) * h
        sel = selected is not None and b.index == selected
        fig.add_trace(go.Scatter(
            x=[x0, x1, x1, x0, x0], y=[y0, y0, y1, y1, y0], mode="lines", fill="toself",
            fillcolor="rgba(255,255,255,0.03)", hoveron="fills",
            line={"color": BOX_SELECTED if sel else BOX_COLOR, "width": 4 if sel else 2},
            hovertemplate=b.hover + "<extra></extra>", name=b.label, showlegend=False))
    fig.add_trace(go.Scatter(
        x=[b.left * w for b in boxes], y=[b.top * h for b in boxes], mode="markers+text",
        text=[f"#{b.index}" for b in boxes], textposition="top right",
        textfont={"color": "white", "size": 12},
        marker={"size": 11, "color": [BOX_SELECTED if b.index == selected else BOX_COLOR
                                      for b in boxes], "line": {"color": "black", "width": 1}},
        customdata=[b.index for b in boxes], hovertemplate=[b.hover + "<extra></extra>"
                                                            for b in boxes],
        name="boxes", showlegend=False))


def difference_figure(photo: np.ndarray, diff: np.ndarray, *, title: str, gain_label: str,
                      loss_label: str, boxes: Sequence[BoxShape] = (),
                      name: str = "difference", fig_height: int = 560) -> go.Figure:
    """A signed difference map (already normalised maps, a - b) over a dimmed photo.

    Red is where the first map is higher (the gain), blue where it is lower.
    """
    h, w = photo.shape[:2]
    grey = photo.mean(axis=2, keepdims=True).repeat(3, axis=2)
    fig = go.Figure()
    fig.add_trace(go.Image(source=heatmap.to_data_uri(heatmap.overlay(grey, None, dim=0.35)),
                           x0=0, y0=0, dx=1, dy=1, hoverinfo="skip", name="image"))
    dh, dw = diff.shape
    lim = float(max(np.abs(diff).max(), 1e-6))
    fig.add_trace(go.Heatmap(
        z=diff.astype(np.float32), x0=w / (2 * dw), dx=w / dw, y0=h / (2 * dh), dy=h / dh,
        zmin=-lim, zmax=lim, zmid=0.0, colorscale=heatmap.plotly_colorscale("diverging"),
        opacity=0.7, zsmooth="best", name="difference",
        colorbar={"title": {"text": "difference"}, "thickness": 12, "len": 0.75,
                  "tickvals": [-lim, 0.0, lim],
                  "ticktext": [f"−{lim:.2f} {loss_label}", "0 same", f"+{lim:.2f} {gain_label}"]},
        hovertemplate="difference %{z:+.3f}<extra></extra>"))
    _add_boxes(fig, boxes, w, h, None)
    _image_axes(fig, w, h, fig_height)
    with_title(fig, title, IMAGE_MARGIN)
    fig.update_layout(meta={"chart": name}, showlegend=False)
    return fig


def metric_axis(fig: go.Figure, title: str, axis: str = "y") -> None:
    """Three-decimal ticks for a metric axis."""
    kw: dict[str, Any] = {"title": {"text": title}, "tickformat": ".3f",
                          "zeroline": False}
    if axis == "y":
        fig.update_yaxes(**kw)
    else:
        fig.update_xaxes(**kw)


def progression_figure(lines: Mapping[str, pl.DataFrame], *, title: str, y_title: str,
                       colors: Mapping[str, str], baselines: Mapping[str, float] | None = None,
                       current_layer: int | None = None, bands: bool = True,
                       name: str = "progression", height: int = 420) -> go.Figure:
    """One line per key over layers (columns layer, mean[, ci_low, ci_high]).

    CI bands are drawn where the frame has ``ci_low``/``ci_high``; baselines are dashed
    horizontal reference lines.
    """
    fig = go.Figure()
    layers_all: list[int] = []
    for label, df in lines.items():
        if df.height == 0:
            continue
        df = df.sort("layer")
        x = df["layer"].to_list()
        layers_all += x
        color = colors.get(label, PALETTE[0])
        if bands and {"ci_low", "ci_high"} <= set(df.columns) and \
                df["ci_low"].null_count() < df.height:
            lo, hi = df["ci_low"].to_list(), df["ci_high"].to_list()
            fig.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", mode="lines",
                                     fillcolor=rgba(color, 0.15), line={"width": 0},
                                     hoverinfo="skip", showlegend=False, name=f"{label} CI"))
        fig.add_trace(go.Scatter(x=x, y=df["mean"].to_list(), mode="lines+markers",
                                 name=label, line={"color": color, "width": 2},
                                 hovertemplate=f"{label}<br>layer %{{x}}<br>%{{y:.3f}}"
                                               "<extra></extra>"))
    shown = {k: float(v) for k, v in (baselines or {}).items() if v is not None}
    lay = title_layout(title)
    y_range = _value_range(lines, shown)
    if shown:
        x0 = min(layers_all) if layers_all else 0
        x1 = max(layers_all) if layers_all else 1
        plot_px = height - lay["margin_t"] - PROGRESSION_BOTTOM_PX
        shifts = label_shifts(list(shown.values()), y_range, plot_px)
        for (label, value), shift in zip(shown.items(), shifts, strict=True):
            fig.add_trace(go.Scatter(x=[x0, x1], y=[value, value], mode="lines",
                                     line={"color": BASELINE_COLOR, "dash": "dash", "width": 1.5},
                                     name=label, hovertemplate=f"{label}: %{{y:.3f}}"
                                                               "<extra></extra>"))
            fig.add_annotation(x=x1, y=value, text=label.replace("baseline: ", ""),
                               showarrow=False, xanchor="left", xshift=4, yshift=shift,
                               font={"size": BASELINE_LABEL_PX - 3, "color": BASELINE_COLOR})
    if current_layer is not None:
        fig.add_vline(x=current_layer, line={"color": "#999", "dash": "dot", "width": 1})
    fig.update_xaxes(title={"text": "layer"}, dtick=1 if len(set(layers_all)) <= 24 else None)
    metric_axis(fig, y_title)
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    with_title(fig, title, {"l": 10, "r": 130 if shown else 10, "b": 10})
    fig.update_layout(height=height, meta={"chart": name},
                      legend={"orientation": "h", "y": -0.2})
    return fig


#: Pixels below a progression plot (x axis title and the legend under it).
PROGRESSION_BOTTOM_PX = 110
#: Vertical pixels one baseline label needs.
BASELINE_LABEL_PX = 13


def _value_range(lines: Mapping[str, pl.DataFrame],
                 baselines: Mapping[str, float]) -> tuple[float, float] | None:
    """The y range that shows every mean, CI bound and baseline, padded 6 %."""
    vals: list[float] = list(baselines.values())
    for df in lines.values():
        for col in ("mean", "ci_low", "ci_high"):
            if col in df.columns:
                vals += [float(v) for v in df[col].to_list() if v is not None]
    vals = [v for v in vals if np.isfinite(v)]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    pad = 0.06 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 0.01)
    return lo - pad, hi + pad


def label_shifts(values: Sequence[float], y_range: tuple[float, float] | None,
                 plot_px: float, gap_px: float = BASELINE_LABEL_PX) -> list[float]:
    """Vertical pixel shifts that keep labels at ``values`` at least ``gap_px`` apart
    (closest to their own value: stacked upward from the lowest, then the stack is
    centred on the values so no label moves further than it must)."""
    if not values or y_range is None or plot_px <= 0:
        return [0.0] * len(values)
    lo, hi = y_range
    scale = plot_px / (hi - lo) if hi > lo else 0.0
    px = [(v - lo) * scale for v in values]
    order = sorted(range(len(px)), key=lambda i: px[i])
    placed: dict[int, float] = {}
    prev = -np.inf
    for i in order:
        placed[i] = max(px[i], prev + gap_px)
        prev = placed[i]
    # groups of touching labels: centre each group on the mean of its own positions
    groups: list[list[int]] = []
    for i in order:
        if groups and placed[i] - placed[groups[-1][-1]] <= gap_px + 1e-9:
            groups[-1].append(i)
        else:
            groups.append([i])
    for g in groups:
        offset = float(np.mean([px[i] for i in g]) - np.mean([placed[i] for i in g]))
        for i in g:
            placed[i] += offset
    return [placed[i] - px[i] for i in range(len(px))]


def ranking_figure(table: pl.DataFrame, *, title: str, x_title: str,
                   colors: Mapping[str, str], best_baseline: tuple[str, float] | None = None,
                   name: str = "ranking") -> go.Figure:
    """Rows as dots with 95 % CI whiskers, in the given order (best first, at the top).

    ``table`` has columns label, model, mean, ci_low, ci_high; baseline rows (grey
    diamonds) sit among the models; the best baseline is also a dashed reference line.
    """
    labels = table["label"].to_list()
    models = table["model"].to_list()
    mean = np.asarray(table["mean"].to_list(), dtype=float)
    lo = np.asarray(table["ci_low"].fill_null(float("nan")).to_list(), dtype=float)
    hi = np.asarray(table["ci_high"].fill_null(float("nan")).to_list(), dtype=float)
    base = [m.startswith(("baseline:", "baseline_")) for m in models]
    fig = go.Figure(go.Scatter(
        x=mean, y=labels, mode="markers+text", text=[f"{v:.3f}" for v in mean],
        textposition="top center",
        marker={"size": [10 if b else 13 for b in base],
                "symbol": ["diamond" if b else "circle" for b in base],
                "color": [colors.get(m, PALETTE[0]) for m in models]},
        error_x={"type": "data", "symmetric": False, "array": np.nan_to_num(hi - mean),
                 "arrayminus": np.nan_to_num(mean - lo), "thickness": 1.5, "width": 6},
        hovertemplate="%{y}<br>%{x:.4f}<extra></extra>", name="rows", showlegend=False))
    if best_baseline is not None:
        fig.add_vline(x=best_baseline[1], line={"color": BASELINE_COLOR, "dash": "dash",
                                                "width": 1.5},
                      annotation={"text": f"best baseline ({best_baseline[0]})",
                                  "font": {"size": 11, "color": BASELINE_COLOR}},
                      annotation_position="top")
    lows = np.where(np.isnan(lo), mean, lo)
    highs = np.where(np.isnan(hi), mean, hi)
    span = float(np.nanmax(highs) - np.nanmin(lows)) if len(mean) else 1.0
    pad = 0.08 * span if span > 0 else 0.01
    fig.update_xaxes(range=[float(np.nanmin(lows)) - pad, float(np.nanmax(highs)) + pad])
    fig.update_yaxes(autorange="reversed", title=None, type="category")
    metric_axis(fig, x_title, axis="x")
    with_title(fig, title, {"l": 10, "r": 10, "b": 10})
    lay = title_layout(title)
    fig.update_layout(height=max(260, 60 + lay["margin_t"] + 40 * len(labels)),
                      margin={"t": lay["margin_t"] + 20},  # room for the baseline label
                      meta={"chart": name})
    return fig


def matrix_figure(z: np.ndarray, x: Sequence[Any], y: Sequence[Any], *, title: str,
                  x_title: str, y_title: str, colorbar: str, reverse: bool = False,
                  text: np.ndarray | None = None, name: str = "matrix",
                  height: int | None = None) -> go.Figure:
    """A labelled heatmap with values written in the cells (three decimals), each in
    black or white, whichever contrasts more with its cell's colour."""
    cells = text if text is not None else np.vectorize(
        lambda v: "" if v != v else f"{v:.3f}")(z.astype(float))
    xs, ys = [str(v) for v in x], [str(v) for v in y]
    scale = "Viridis"
    fig = go.Figure(go.Heatmap(
        z=z, x=xs, y=ys, colorscale=scale, reversescale=reverse,
        colorbar={"title": {"text": colorbar}},
        hovertemplate=f"{y_title} %{{y}}<br>{x_title} %{{x}}<br>%{{z:.4f}}<extra></extra>",
        hoverongaps=False))
    zf = np.asarray(z, dtype=float)
    rows, cols = np.nonzero(np.asarray(cells, dtype=object) != "")
    if rows.size:
        fig.add_trace(go.Scatter(
            x=[xs[c] for c in cols], y=[ys[r] for r in rows], mode="text",
            text=[str(cells[r][c]) for r, c in zip(rows, cols, strict=True)],
            textfont={"size": 11, "color": text_colors(zf[rows, cols], zf, scale, reverse)},
            hoverinfo="skip", showlegend=False, name="values"))
    fig.update_xaxes(title={"text": x_title}, type="category")
    fig.update_yaxes(title={"text": y_title}, type="category", autorange="reversed")
    with_title(fig, title, {"l": 10, "r": 10, "b": 10})
    fig.update_layout(height=height or max(300, 80 + 28 * len(y)), meta={"chart": name})
    return fig


def text_colors(values: np.ndarray, z: np.ndarray, scale: str,
                reverse: bool) -> list[str]:
    """Black or white per value: the one with the higher WCAG contrast against the
    colour the heatmap gives that value (z's finite min..max mapped onto ``scale``)."""
    import plotly.colors as pc

    finite = z[np.isfinite(z)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    t = np.clip((values - lo) / (hi - lo), 0, 1) if hi > lo else np.full(values.shape, 0.5)
    t = np.where(np.isfinite(t), t, 0.5)
    if reverse:
        t = 1 - t
    rgb = pc.sample_colorscale(scale, t.tolist(), colortype="tuple")
    return ["#000000" if _contrast_black(c) >= _contrast_white(c) else "#ffffff" for c in rgb]


def _luminance(rgb: Sequence[float]) -> float:
    """WCAG relative luminance of an sRGB colour with channels in [0, 1]."""
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast_black(rgb: Sequence[float]) -> float:
    return (_luminance(rgb) + 0.05) / 0.05


def _contrast_white(rgb: Sequence[float]) -> float:
    return 1.05 / (_luminance(rgb) + 0.05)
