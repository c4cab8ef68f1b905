"""Box-to-patch similarity in a model's feature space (dense ViT descriptors, Amir et al.
2022, "Deep ViT Features as Dense Visual Descriptors").

For an image's patch tokens ``t_p`` (one per cell of its (gh, gw) grid, row-major) and a box
(``left, top, width, height`` fractions of the map's frame, see ``frames``):

- the box's cells ``B``: cells whose centre ``((c + 0.5) / gw, (r + 0.5) / gh)`` lies in the
  closed box; when none does (a box smaller than a cell), the one cell holding the box's
  centre ``(min(gw - 1, floor(cx * gw)), min(gh - 1, floor(cy * gh)))``;
- the box token ``m = mean_{p in B} t_p``;
- the similarity map ``s_p = cos(t_p, m) = t_p . m / (|t_p| |m|)`` (NaN for a zero vector);
- the contrast (how distinctive the expert's part is in the model's features):
  ``sim_in = mean_{p in B} s_p``, ``sim_out = mean_{p not in B} s_p`` (NaN when the box
  covers every cell), ``contrast = sim_in - sim_out``.

Catalogued as ``box_similarity_contrast`` (``catalogue.feature_metric_catalogue``). The
SQL macro ``box_patch_similarity`` (``sql/25_patch_tokens.sql``) computes the same map
from the stored float16 tokens in plain DuckDB; ``box_similarity`` holds the contrast
of every box, materialised by the attention job from the same stored tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ssl_wc.metrics.masks import as_boxes


def cells_in_box(grid_h: int, grid_w: int, box: np.ndarray | list[float]) -> np.ndarray:
    """(grid_h, grid_w) bool: the box's cells (see the module docstring)."""
    left, top, width, height = (float(v) for v in as_boxes(np.asarray(box, np.float64))[0])
    x0, x1, y0, y1 = left, left + width, top, top + height
    cx = (np.arange(grid_w) + 0.5) / grid_w
    cy = (np.arange(grid_h) + 0.5) / grid_h
    mask = np.outer((cy >= y0) & (cy <= y1), (cx >= x0) & (cx <= x1))
    if not mask.any():
        c = min(grid_w - 1, math.floor((x0 + x1) / 2 * grid_w))
        r = min(grid_h - 1, math.floor((y0 + y1) / 2 * grid_h))
        mask[max(r, 0), max(c, 0)] = True
    return mask


def _cosine(tokens: np.ndarray, m: np.ndarray) -> np.ndarray:
    num = tokens @ m
    den = np.linalg.norm(tokens, axis=1) * np.linalg.norm(m)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def box_patch_similarity(tokens: np.ndarray, grid: tuple[int, int],
                         box: np.ndarray | list[float]) -> np.ndarray:
    """(gh, gw) cosine similarity of every patch token to the box's mean token.

    ``tokens``: (gh * gw, D) row-major; ``box``: ``(left, top, width, height)`` fractions
    of the map's frame.
    """
    gh, gw = grid
    t = np.asarray(tokens, dtype=np.float64).reshape(gh * gw, -1)
    inside = cells_in_box(gh, gw, box).reshape(-1)
    return _cosine(t, t[inside].mean(axis=0)).reshape(gh, gw)


@dataclass(frozen=True)
class BoxContrast:
    """Per box: mean similarity inside and outside the box, and the cell counts."""

    sim_in: np.ndarray
    sim_out: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray

    @property
    def contrast(self) -> np.ndarray:
        return self.sim_in - self.sim_out


def box_contrast(tokens: np.ndarray, grid: tuple[int, int],
                 boxes: np.ndarray | list[list[float]]) -> BoxContrast:
    """:class:`BoxContrast` of each box (k boxes, ``(left, top, width, height)``)."""
    gh, gw = grid
    t = np.asarray(tokens, dtype=np.float64).reshape(gh * gw, -1)
    b = as_boxes(np.asarray(boxes, dtype=np.float64))
    k = len(b)
    sim_in, sim_out = np.full(k, np.nan), np.full(k, np.nan)
    n_in, n_out = np.zeros(k, np.int32), np.zeros(k, np.int32)
    for i in range(k):
        inside = cells_in_box(gh, gw, b[i]).reshape(-1)
        s = _cosine(t, t[inside].mean(axis=0))
        n_in[i], n_out[i] = int(inside.sum()), int((~inside).sum())
        sim_in[i] = float(s[inside].mean())
        if n_out[i]:
            sim_out[i] = float(s[~inside].mean())
    return BoxContrast(sim_in, sim_out, n_in, n_out)
