"""Patch-grid attention maps as pictures: upsampling, colour maps, overlays (numpy only).

Upsampling follows the metric protocol (see the brief's metrics page): bilinear with
half-pixel centres (``align_corners=False``): output index i samples the source position
``(i + 0.5) * n_in / n_out - 0.5`` clamped to ``[0, n_in - 1]``, so the outer half patch
repeats the edge value. Rows are y, columns x. Maps are min-max normalised per map
(epsilon 1e-8) after upsampling, as the metrics do.
"""

from __future__ import annotations

import base64
import io
import math
from functools import lru_cache

import numpy as np
from PIL import Image

NORM_EPS = 1e-8
EVAL_SIZE = (224, 224)

#: Colour maps offered for heatmaps: name -> anchor colours (low to high), evenly spaced.
COLORMAPS: dict[str, tuple[str, ...]] = {
    "inferno": ("#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925",
                "#fb9b06", "#f7d13d", "#fcffa4"),
    "viridis": ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779",
                "#6ece58", "#b5de2b", "#fde725"),
    "magma": ("#000004", "#180f3d", "#440f76", "#721f81", "#9e2f7f", "#cd4071", "#f1605d",
              "#fd9668", "#feca8d", "#fcfdbf"),
    "turbo": ("#30123b", "#4662d7", "#36aaf9", "#1ae4b6", "#72fe5e", "#c8ef34", "#faba39",
              "#f66b19", "#ca2a04", "#7a0403"),
    "jet": ("#00007f", "#0000ff", "#007fff", "#00ffff", "#7fff7f", "#ffff00", "#ff7f00",
            "#ff0000", "#7f0000"),
    "gray": ("#000000", "#ffffff"),
}
#: Diverging map for differences: blue (negative) - white - red (positive).
DIVERGING: tuple[str, ...] = ("#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
                              "#fddbc7", "#f4a582", "#d6604d", "#b2182b")


def _hex(c: str) -> tuple[int, int, int]:
    c = c.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


@lru_cache(maxsize=32)
def _lut(name: str) -> np.ndarray:
    """(256, 3) uint8 look-up table interpolated between the anchors of ``name``."""
    anchors = DIVERGING if name == "diverging" else COLORMAPS[name]
    rgb = np.asarray([_hex(c) for c in anchors], dtype=np.float64)
    pos = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, 256)
    out = np.stack([np.interp(t, pos, rgb[:, k]) for k in range(3)], axis=1)
    return np.round(out).astype(np.uint8)


def plotly_colorscale(name: str) -> list[list[float | str]]:
    """The same colour map as a Plotly colorscale (for colour bars and heatmap traces)."""
    anchors = DIVERGING if name == "diverging" else COLORMAPS[name]
    pos = np.linspace(0.0, 1.0, len(anchors))
    return [[float(p), c] for p, c in zip(pos, anchors, strict=True)]


@lru_cache(maxsize=64)
def _axis_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bilinear resampling matrix with half-pixel centres."""
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    w = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(w, (rows, i0), 1.0 - frac)
    np.add.at(w, (rows, i1), frac)
    w.setflags(write=False)
    return w


def upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a (gh, gw) grid to (height, width), float64."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 2:
        raise ValueError(f"expected a 2-D grid, got shape {g.shape}")
    return _axis_weights(g.shape[0], height) @ g @ _axis_weights(g.shape[1], width).T


def normalise(a: np.ndarray) -> np.ndarray:
    """Min-max normalisation to [0, 1] (epsilon 1e-8; a flat map becomes all zeros)."""
    a = np.asarray(a, dtype=np.float64)
    lo = float(np.nanmin(a)) if a.size else 0.0
    hi = float(np.nanmax(a)) if a.size else 0.0
    return (a - lo) / (hi - lo + NORM_EPS)


def grid_from_values(values: list[float] | np.ndarray, grid_h: int, grid_w: int) -> np.ndarray:
    """Stored row-major values (row = y) as a (grid_h, grid_w) array."""
    v = np.asarray(values, dtype=np.float64)
    if v.size != grid_h * grid_w:
        raise ValueError(f"map has {v.size} values, expected {grid_h}x{grid_w}")
    return v.reshape(grid_h, grid_w)


def topk_mask(heat: np.ndarray, percentile: float) -> np.ndarray:
    """The exactly k = max(1, round_half_up(n*(100-p)/100)) largest pixels.

    Ties are broken by the lowest flat (row-major) index, as the metrics do.
    """
    flat = np.asarray(heat, dtype=np.float64).ravel()
    n = flat.size
    k = max(1, math.floor(n * (100.0 - percentile) / 100.0 + 0.5))
    order = np.argsort(-flat, kind="stable")[:k]
    mask = np.zeros(n, dtype=bool)
    mask[order] = True
    return mask.reshape(np.shape(heat))


def box_mask(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """Union mask of clamped (left, top, width, height) fraction boxes at height x width."""
    mask = np.zeros((height, width), dtype=bool)
    for left, top, bw, bh in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
        lft, tp = min(max(left, 0.0), 1.0), min(max(top, 0.0), 1.0)
        rgt, bot = min(max(left + bw, 0.0), 1.0), min(max(top + bh, 0.0), 1.0)
        r0, c0 = int(np.floor(tp * height)), int(np.floor(lft * width))
        r1 = max(int(np.floor(bot * height)), r0 + 1)
        c1 = max(int(np.floor(rgt * width)), c0 + 1)
        mask[min(r0, height - 1):min(r1, height), min(c0, width - 1):min(c1, width)] = True
    return mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1e-8 in the denominator)."""
    inter = float(np.logical_and(a, b).sum())
    union = float(np.logical_or(a, b).sum())
    return inter / (union + NORM_EPS)


def colorize(heat01: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """(h, w) values in [0, 1] to (h, w, 3) uint8 colours."""
    idx = np.clip(np.rint(np.nan_to_num(heat01) * 255.0), 0, 255).astype(np.intp)
    return _lut(cmap)[idx]


def outline(mask: np.ndarray, thickness: int = 1) -> np.ndarray:
    """Pixels of ``mask`` that touch a pixel outside it (4-neighbourhood), thickened."""
    m = np.asarray(mask, dtype=bool)
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    edge = m & ~inner
    for _ in range(max(thickness - 1, 0)):
        grown = edge.copy()
        grown[1:, :] |= edge[:-1, :]
        grown[:-1, :] |= edge[1:, :]
        grown[:, 1:] |= edge[:, :-1]
        grown[:, :-1] |= edge[:, 1:]
        edge = grown
    return edge


def resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of a mask (pixel centres)."""
    h, w = mask.shape
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.intp), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.intp), w - 1)
    return np.asarray(mask)[rows][:, cols]


def overlay(photo: np.ndarray, heat01: np.ndarray | None, *, cmap: str = "inferno",
            opacity: float = 0.5, region: np.ndarray | None = None,
            region_color: tuple[int, int, int] = (255, 255, 255),
            dim: float = 0.0, floor: float = 0.3) -> np.ndarray:
    """Blend a heatmap (already at the photo's size, values in [0, 1]) over an RGB photo.

    The blend weight of a pixel is ``opacity * (floor + (1 - floor) * heat)``: strong
    attention is painted over, weak attention leaves the facade visible. ``region`` is a
    boolean mask (any size, resized to the photo) whose outline is drawn in
    ``region_color``; ``dim`` darkens the photo (0 = unchanged, 1 = black).
    """
    base = np.asarray(photo, dtype=np.float64)[..., :3] * (1.0 - dim)
    h, w = base.shape[:2]
    if heat01 is not None:
        if heat01.shape != (h, w):
            raise ValueError(f"heatmap {heat01.shape} does not match photo {(h, w)}")
        weight = float(np.clip(opacity, 0.0, 1.0)) * (
            floor + (1.0 - floor) * np.clip(heat01, 0.0, 1.0))[..., None]
        base = (1.0 - weight) * base + weight * colorize(heat01, cmap).astype(np.float64)
    out = np.clip(np.rint(base), 0, 255).astype(np.uint8)
    if region is not None and region.any():
        edge = outline(resize_nearest(region, h, w), thickness=max(1, round(max(h, w) / 300)))
        out[edge] = region_color
    return out


def placeholder(width: int, height: int) -> np.ndarray:
    """A neutral grey canvas for an image whose file is missing."""
    return np.full((height, width, 3), 128, dtype=np.uint8)


def fit_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled down so that the longer side is at most ``max_side``."""
    scale = min(1.0, max_side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_data_uri(rgb: np.ndarray, fmt: str = "JPEG", quality: int = 88) -> str:
    """An RGB array as a base64 data URI (for Plotly image traces)."""
    buf = io.BytesIO()
    img = Image.fromarray(np.asarray(rgb, dtype=np.uint8))
    if fmt.upper() == "JPEG":
        img.save(buf, "JPEG", quality=quality)
        mime = "jpeg"
    else:
        img.save(buf, "PNG", optimize=False)
        mime = "png"
    return f"data:image/{mime};base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def display_heat(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """A grid upsampled to a display size and normalised to [0, 1]."""
    return normalise(upsample(grid, height, width))


def eval_region(grid: np.ndarray, percentile: float,
                size: tuple[int, int] = EVAL_SIZE) -> np.ndarray:
    """Top-k mask at the evaluation resolution, as the IoU metric selects it."""
    return topk_mask(normalise(upsample(grid, *size)), percentile)
