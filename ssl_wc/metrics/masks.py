"""Ground-truth masks and the soft (Gaussian) target from expert boxes.

Boxes are ``(left, top, width, height)`` fractions of the original image. Rows are y
and columns are x: a box paints ``mask[rows, cols]`` with rows from top/height and
columns from left/width (public code has shipped with the two swapped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def as_boxes(boxes: np.ndarray | list[list[float]] | None) -> np.ndarray:
    """Validate boxes into a float64 (k, 4) array; k may be 0 (an empty target).

    Raises ``ValueError`` for a wrong shape, non-finite values or negative sizes.
    """
    if boxes is None:
        return np.zeros((0, 4))
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim == 1 and arr.shape[0] == 4:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must be (k, 4) (left, top, width, height), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("boxes contain NaN or infinite coordinates")
    if (arr[:, 2:] < 0).any():
        raise ValueError("boxes have a negative width or height")
    return arr


@dataclass(frozen=True)
class PixelBox:
    """A box clamped to the image, in pixels of an (H, W) grid.

    ``r0:r1`` and ``c0:c1`` are the mask's row and column ranges; ``cx, cy, w, h`` the
    clamped box's continuous centre and size in pixels (``w, h >= 1``).
    """

    r0: int
    r1: int
    c0: int
    c1: int
    cx: float
    cy: float
    w: float
    h: float


def _clamp01(v: float) -> float:
    return min(max(v, 0.0), 1.0)


def pixel_box(box: np.ndarray, size: tuple[int, int]) -> PixelBox:
    """Clamp ``(left, top, width, height)`` to [0, 1] and convert to pixel ranges.

    Rows ``floor(top*H)`` .. ``floor(bottom*H)`` (exclusive), columns likewise with W,
    with at least one pixel in each direction.
    """
    H, W = int(size[0]), int(size[1])
    left, top, width, height = (float(v) for v in box)
    x0, x1 = _clamp01(left), _clamp01(left + width)
    y0, y1 = _clamp01(top), _clamp01(top + height)
    r0 = min(math.floor(y0 * H), H - 1)
    r1 = max(math.floor(y1 * H), r0 + 1)
    c0 = min(math.floor(x0 * W), W - 1)
    c1 = max(math.floor(x1 * W), c0 + 1)
    return PixelBox(
        r0=r0,
        r1=r1,
        c0=c0,
        c1=c1,
        cx=(x0 + x1) / 2.0 * W,
        cy=(y0 + y1) / 2.0 * H,
        w=max((x1 - x0) * W, 1.0),
        h=max((y1 - y0) * H, 1.0),
    )


def box_mask(box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) mask of one box."""
    pb = pixel_box(box, size)
    mask = np.zeros((int(size[0]), int(size[1])), dtype=bool)
    mask[pb.r0 : pb.r1, pb.c0 : pb.c1] = True
    return mask


def union_mask(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Boolean (H, W) OR of the boxes' masks; all False for zero boxes."""
    mask = np.zeros((int(size[0]), int(size[1])), dtype=bool)
    for box in as_boxes(boxes):
        pb = pixel_box(box, size)
        mask[pb.r0 : pb.r1, pb.c0 : pb.c1] = True
    return mask


def box_gaussian(box: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One box's anisotropic Gaussian on pixel centres, divided by its grid maximum.

    ``g(x, y) = exp(-(x + .5 - cx)^2 / (2 sx^2) - (y + .5 - cy)^2 / (2 sy^2))`` with
    ``sx = max(w_px / 4, 1)``, ``sy = max(h_px / 4, 1)`` (clamped box, pixels).
    """
    pb = pixel_box(box, size)
    H, W = int(size[0]), int(size[1])
    sx, sy = max(pb.w / 4.0, 1.0), max(pb.h / 4.0, 1.0)
    gx = np.exp(-((np.arange(W) + 0.5 - pb.cx) ** 2) / (2.0 * sx * sx))
    gy = np.exp(-((np.arange(H) + 0.5 - pb.cy) ** 2) / (2.0 * sy * sy))
    # separable: the grid maximum of the outer product is max(gy) * max(gx)
    return np.outer(gy / gy.max(), gx / gx.max())


def soft_target(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Soft target S: pixelwise max of the boxes' Gaussians, / max, clipped to [0, 1].

    All zeros for zero boxes.
    """
    H, W = int(size[0]), int(size[1])
    out = np.zeros((H, W))
    for box in as_boxes(boxes):
        np.maximum(out, box_gaussian(box, size), out=out)
    peak = out.max()
    if peak > 0:
        out /= peak
    return np.clip(out, 0.0, 1.0)


def squared_distance_to_union(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W) int64: squared Euclidean distance (in pixels) from each pixel to the nearest
    pixel of the union mask; 0 inside. Exact: per box, dy and dx are integer gaps to the
    box's pixel ranges. Empty boxes give an all -1 array."""
    H, W = int(size[0]), int(size[1])
    boxes = as_boxes(boxes)
    if boxes.shape[0] == 0:
        return np.full((H, W), -1, dtype=np.int64)
    ys = np.arange(H, dtype=np.int64)
    xs = np.arange(W, dtype=np.int64)
    best = np.full((H, W), np.iinfo(np.int64).max, dtype=np.int64)
    for box in boxes:
        pb = pixel_box(box, size)
        dy = np.maximum(np.maximum(pb.r0 - ys, ys - (pb.r1 - 1)), 0)
        dx = np.maximum(np.maximum(pb.c0 - xs, xs - (pb.c1 - 1)), 0)
        np.minimum(best, (dy * dy)[:, None] + (dx * dx)[None, :], out=best)
    return best
