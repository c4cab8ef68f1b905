"""Static figures of the report, drawn with matplotlib (Agg: no display, no browser).

Why matplotlib and not Plotly's static export: Plotly 6+ exports images through
Kaleido 1.x, which drives a Chrome/Chromium it finds on the machine or downloads at run
time (``plotly_get_chrome``); neither is guaranteed offline. matplotlib renders PNG, SVG
and PDF in-process from a pure wheel. The data of every figure comes from the same named
queries the dashboards use; only the drawing differs.

Every figure can carry a watermark (synthetic annotations or random-weight models): a
large diagonal text across the canvas, kept as real text in SVG (``svg.fonttype =
none``) and repeated in the PNG / PDF metadata.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ssl_wc.palette import BASELINE_COLOR, PALETTE

FORMATS = ("png", "svg", "pdf")
DPI = 130
BOX_COLOR = "#00e5ff"
DIVERGING = LinearSegmentedColormap.from_list(
    "gain_loss", ["#2166ac", "#92c5de", "#f7f7f7", "#f4a582", "#b2182b"])

plt.rcParams.update({
    "svg.fonttype": "none", "svg.hashsalt": "ssl-wc", "font.size": 9, "axes.titlesize": 10,
    "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": DPI,
    "savefig.bbox": "tight", "pdf.fonttype": 42,
})


@dataclass(frozen=True)
class Line:
    """One line over layers: mean with an optional CI band."""

    label: str
    x: Sequence[float]
    mean: Sequence[float]
    low: Sequence[float] | None = None
    high: Sequence[float] | None = None
    color: str = PALETTE[0]


@dataclass(frozen=True)
class Interval:
    """One row of a dot-and-whisker chart."""

    label: str
    value: float
    low: float | None
    high: float | None
    color: str = PALETTE[0]
    marker: str = "o"
    note: str = ""


@dataclass(frozen=True)
class Panel:
    """One image cell of a grid: a photo with a heatmap (or a signed difference) and boxes.

    ``heat`` is at the photo's size, in [0, 1] (or in [-1, 1] when ``signed``);
    ``boxes`` are clamped (left, top, width, height) fractions.
    """

    title: str
    photo: np.ndarray
    heat: np.ndarray | None = None
    boxes: np.ndarray | None = None
    signed: bool = False
    cmap: str = "inferno"


def watermark(fig: Figure, text: str) -> None:
    """Diagonal watermark over the whole canvas (drawn last, on top)."""
    w, h = fig.get_size_inches()
    size = max(14.0, min(44.0, 3.2 * min(w, h) + 6))
    fig.text(0.5, 0.5, text, ha="center", va="center", rotation=28, fontsize=size,
             color="#d62728", alpha=0.2, weight="bold", zorder=1000, gid="watermark",
             transform=fig.transFigure, wrap=False)


def save(fig: Figure, stem: Path, formats: Sequence[str], mark: str | None) -> dict[str, bytes]:
    """Write ``stem.<fmt>`` for each format; returns the bytes of each (for the HTML)."""
    meta_note = f"ssl-wc report; {mark}" if mark else "ssl-wc report"
    out: dict[str, bytes] = {}
    for fmt in formats:
        buf = io.BytesIO()
        if fmt == "png":
            meta: dict[str, str] = {"Software": "ssl-wc", "Description": meta_note}
            if mark:
                meta["Watermark"] = mark
            fig.savefig(buf, format="png", dpi=DPI, metadata=meta)
        elif fmt == "svg":
            fig.savefig(buf, format="svg", metadata={"Description": meta_note})
        elif fmt == "pdf":
            fig.savefig(buf, format="pdf", metadata={"Subject": meta_note,
                                                    "Keywords": mark or ""})
        else:
            raise ValueError(f"unknown figure format {fmt!r}; choose from {', '.join(FORMATS)}")
        data = buf.getvalue()
        stem.with_suffix(f".{fmt}").write_bytes(data)
        out[fmt] = data
    plt.close(fig)
    return out


def _fig(width: float, height: float) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def empty_note(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_axis_off()


# --------------------------------------------------------------------------- charts
def bars(labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str,
         color: str = PALETTE[0], fmt: str = "{:.0f}") -> Figure:
    """Horizontal bars, first label at the top, value written at each bar's end."""
    fig, ax = _fig(6.4, max(2.0, 0.6 + 0.26 * len(labels)))
    y = np.arange(len(labels))
    ax.barh(y, values, color=color)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    for yi, v in zip(y, values, strict=True):
        ax.text(float(v), float(yi), " " + fmt.format(v), va="center", fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.margins(x=0.12)
    return fig


def histograms(panels: Sequence[tuple[str, np.ndarray, str, bool]], *, title: str) -> Figure:
    """Side-by-side histograms: (title, values, x label, log-x) per panel."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 2.8),
                             layout="constrained", squeeze=False)
    for ax, (sub, values, xlabel, logx) in zip(axes[0], panels, strict=True):
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        if logx:
            v = v[v > 0]
        if v.size == 0:
            empty_note(ax, "no data")
            continue
        if logx:
            bins = np.geomspace(v.min(), v.max() * 1.0001, 20) if v.min() < v.max() else 10
            ax.set_xscale("log")
        elif np.allclose(v, np.round(v)):
            bins = np.arange(v.min() - 0.5, v.max() + 1.5)
        else:
            bins = 20
        ax.hist(v, bins=bins, color=PALETTE[0], edgecolor="white")
        ax.set_title(sub)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
    fig.suptitle(title)
    return fig


def intervals(rows: Sequence[Interval], *, title: str, xlabel: str,
              reference: tuple[str, float] | None = None, zero_line: bool = False) -> Figure:
    """Dots with 95 % CI whiskers, first row at the top (rankings, forest plots)."""
    fig, ax = _fig(6.8, max(2.2, 0.8 + 0.32 * len(rows)))
    if not rows:
        empty_note(ax, "nothing to show")
        return fig
    for i, r in enumerate(rows):
        if r.low is not None and r.high is not None and np.isfinite([r.low, r.high]).all():
            ax.plot([r.low, r.high], [i, i], color=r.color, lw=1.6)
        ax.plot([r.value], [i], marker=r.marker, color=r.color, ms=7 if r.marker == "o" else 6)
        if r.note:
            ax.annotate(r.note, (1.0, i), xycoords=("axes fraction", "data"), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=7, color="#444")
    ax.set_yticks(range(len(rows)), [r.label for r in rows])
    ax.invert_yaxis()
    if reference is not None:
        ax.axvline(reference[1], color=BASELINE_COLOR, ls="--", lw=1)
        ax.annotate(reference[0], (reference[1], 0), xytext=(3, 8), textcoords="offset points",
                    color=BASELINE_COLOR, fontsize=7, annotation_clip=False)
    if zero_line:
        ax.axvline(0.0, color="#333", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.xaxis.set_major_formatter("{x:.3f}")
    ax.set_title(title)
    return fig


def lines(series: Sequence[Line], *, title: str, ylabel: str, xlabel: str = "layer",
          references: Mapping[str, float] | None = None) -> Figure:
    """One line per series with its CI band; dashed grey reference lines (baselines)."""
    fig, ax = _fig(7.0, 3.6)
    if not series:
        empty_note(ax, "nothing to show")
        return fig
    for s in series:
        x = np.asarray(s.x, dtype=float)
        if s.low is not None and s.high is not None:
            lo = np.asarray(s.low, dtype=float)
            hi = np.asarray(s.high, dtype=float)
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                ax.fill_between(x[ok], lo[ok], hi[ok], color=s.color, alpha=0.15, lw=0)
        ax.plot(x, s.mean, marker="o", ms=3, color=s.color, label=s.label, lw=1.6)
    for label, value in (references or {}).items():
        ax.axhline(value, color=BASELINE_COLOR, ls="--", lw=1)
        ax.annotate(label, (1.0, value), xycoords=("axes fraction", "data"), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=7, color=BASELINE_COLOR)
    xs = sorted({float(v) for s in series for v in s.x})
    if len(xs) <= 26:
        ax.set_xticks(xs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.yaxis.set_major_formatter("{x:.3f}")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def matrix(z: np.ndarray, xlabels: Sequence[str], ylabels: Sequence[str], *, title: str,
           xlabel: str, ylabel: str, cbar: str, reverse: bool = False,
           fmt: str = "{:.3f}", cmap: str = "viridis",
           limits: tuple[float, float] | None = None) -> Figure:
    """A labelled heatmap with the value written in each cell (blank where NaN)."""
    z = np.asarray(z, dtype=float)
    w = min(13.0, max(4.5, 1.8 + 0.62 * len(xlabels)))
    h = min(12.0, max(2.4, 1.2 + 0.34 * len(ylabels)))
    fig, ax = _fig(w, h)
    if z.size == 0 or not np.isfinite(z).any():
        empty_note(ax, "nothing to show")
        return fig
    lo, hi = limits if limits is not None else (np.nanmin(z), np.nanmax(z))
    im = ax.imshow(np.ma.masked_invalid(z), cmap=cmap + ("_r" if reverse else ""), aspect="auto",
                   vmin=lo, vmax=hi if hi > lo else lo + 1e-9)
    ax.set_xticks(range(len(xlabels)), xlabels, rotation=35, ha="right")
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.spines[:].set_visible(False)
    if z.size <= 400:
        mid = (lo + hi) / 2
        for (i, j), v in np.ndenumerate(z):
            if np.isfinite(v):
                dark = (v < mid) != reverse
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    fig.colorbar(im, ax=ax, label=cbar, shrink=0.85)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def scatter_groups(groups: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   colors: Mapping[str, str], *, title: str, xlabel: str,
                   ylabel: str) -> Figure:
    """Points per group (e.g. per model: one point per image) with a legend."""
    fig, ax = _fig(6.4, 4.2)
    if not groups:
        empty_note(ax, "nothing to show")
        return fig
    for label, (x, y) in groups.items():
        ax.scatter(x, y, s=14, alpha=0.75, color=colors.get(label, PALETTE[0]), label=label,
                   edgecolors="none")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_formatter("{x:.3f}")
    ax.yaxis.set_major_formatter("{x:.3f}")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def embedding_maps(panels: Sequence[tuple[str, np.ndarray, Sequence[str]]],
                   colors: Mapping[str, str], *, title: str) -> Figure:
    """Small multiples of 2-D maps: (title, (n, 2) points, style of each point)."""
    n = max(1, len(panels))
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.0 * cols + 1.2, 2.9 * rows),
                             layout="constrained", squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (sub, pts, styles) in zip(axes.ravel(), panels, strict=False):
        ax.set_axis_on()
        for style in sorted(set(styles)):
            sel = np.asarray([s == style for s in styles])
            ax.scatter(pts[sel, 0], pts[sel, 1], s=12, color=colors.get(style, "#999"),
                       label=style, edgecolors="none")
        ax.set_title(sub, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=s)
               for s, c in colors.items()]
    fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False,
               title="first listed style")
    fig.suptitle(title)
    return fig


def blend(cell: Panel, opacity: float, norm: TwoSlopeNorm) -> np.ndarray:
    """The panel as one RGB picture: the heatmap painted over the photo with weight
    ``opacity * (0.3 + 0.7 * heat)`` (strong attention covers, weak leaves the facade
    visible); a signed difference over the greyed photo with weight 0.75."""
    photo = np.asarray(cell.photo, dtype=np.float64)[..., :3]
    if cell.heat is None:
        return np.asarray(cell.photo, dtype=np.uint8)[..., :3]
    if cell.signed:
        grey = photo.mean(axis=2, keepdims=True).repeat(3, axis=2)
        base = 255.0 - 0.55 * (255.0 - grey)  # greyed and lightened
        colour = DIVERGING(norm(cell.heat))[..., :3] * 255.0
        weight = np.full((*cell.heat.shape, 1), 0.75)
    else:
        heat = np.clip(cell.heat, 0.0, 1.0)
        base = photo
        colour = plt.get_cmap(cell.cmap)(heat)[..., :3] * 255.0
        weight = (opacity * (0.3 + 0.7 * heat))[..., None]
    return np.clip(np.rint((1.0 - weight) * base + weight * colour), 0, 255).astype(np.uint8)


def image_grid(panels: Sequence[Sequence[Panel | None]], *, title: str, opacity: float = 0.6,
               signed_label: str = "difference (red: higher after fine-tuning)") -> Figure:
    """Rows x columns of photos with heatmaps (or signed differences) and expert boxes."""
    n_rows = max(1, len(panels))
    n_cols = max(1, max((len(r) for r in panels), default=1))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.3 * n_cols + 0.6, 2.5 * n_rows),
                             layout="constrained", squeeze=False)
    diffs = [float(np.abs(p.heat).max()) for row in panels for p in row
             if p is not None and p.signed and p.heat is not None]
    lim = max([*diffs, 1e-6])  # one scale for every difference panel
    norm = TwoSlopeNorm(0.0, -lim, lim)
    for r, row in enumerate(panels):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.spines[:].set_visible(False)
            cell = row[c] if c < len(row) else None
            if cell is None:
                ax.set_axis_off()
                continue
            h, w = cell.photo.shape[:2]
            # one composited picture per panel (half the images a vector file embeds)
            ax.imshow(blend(cell, opacity, norm), interpolation="nearest")
            for left, top, bw, bh in (cell.boxes if cell.boxes is not None else []):
                ax.add_patch(Rectangle((left * w - 0.5, top * h - 0.5), bw * w, bh * h,
                                       fill=False, ec=BOX_COLOR, lw=1.0))
            ax.set_xlim(-0.5, w - 0.5)
            ax.set_ylim(h - 0.5, -0.5)
            ax.set_title(cell.title, fontsize=7)
    signed_image = ScalarMappable(norm=norm, cmap=DIVERGING) if diffs else None
    if signed_image is not None:
        fig.colorbar(signed_image, ax=axes, shrink=0.6, label=signed_label)
    fig.suptitle(title)
    return fig
