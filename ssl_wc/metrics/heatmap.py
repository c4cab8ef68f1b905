"""Patch-grid maps -> heatmaps at the evaluation resolution.

Bilinear interpolation with half-pixel centres (``align_corners=False``, the default of
``torch.nn.functional.interpolate``): output index i samples the source coordinate
``src = (i + 0.5) * in/out - 0.5``, clamped to ``[0, in - 1]``; the value is
``(1 - l) * x[floor(src)] + l * x[floor(src) + 1]`` with ``l = src - floor(src)``.
Clamping at both ends replicates the edge values over the outer half patch exactly
(torch clamps only below 0 and reaches the same values up to rounding). With
``in == out`` the weights are exactly (1, 0): the resize is the identity. No
antialiasing is applied when shrinking.

The resize is separable: a horizontal pass on the grid, then a vertical pass. Every
output value is computed with the same elementwise float64 operations whatever the
batch size, so batched and per-map results are bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ssl_wc.metrics.protocol import NORM_EPS


@dataclass(frozen=True)
class Axis:
    """1-D bilinear resampling weights: ``out[i] = w0[i]*x[i0[i]] + w1[i]*x[i1[i]]``."""

    i0: np.ndarray
    i1: np.ndarray
    w0: np.ndarray
    w1: np.ndarray

    @property
    def size(self) -> int:
        return int(self.i0.shape[0])

    def dense(self, in_size: int) -> np.ndarray:
        """The (out, in) interpolation matrix (rows sum to 1)."""
        mat = np.zeros((self.size, in_size))
        rows = np.arange(self.size)
        np.add.at(mat, (rows, self.i0), self.w0)
        np.add.at(mat, (rows, self.i1), self.w1)
        return mat


@lru_cache(maxsize=64)
def axis_weights(in_size: int, out_size: int) -> Axis:
    """Half-pixel bilinear weights from ``in_size`` samples to ``out_size`` samples."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0.0, float(in_size - 1))
    i0 = np.minimum(np.floor(src).astype(np.intp), in_size - 1)
    lam = src - i0
    i1 = np.minimum(i0 + 1, in_size - 1)
    w0, w1 = 1.0 - lam, lam
    for arr in (i0, i1, w0, w1):
        arr.setflags(write=False)
    return Axis(i0, i1, w0, w1)


@lru_cache(maxsize=64)
def area_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) area-averaging weights: output cell i covers ``[i*in/out, (i+1)*in/out)``
    of the input axis and averages the pixels ``[y, y + 1)`` it overlaps, each weighted
    by the overlap length (rows sum to 1). With ``in`` a multiple of ``out`` this is the
    plain block mean (torch's ``interpolate(mode="area")``)."""
    if in_size < 1 or out_size < 1:
        raise ValueError(f"sizes must be positive, got {in_size} -> {out_size}")
    step = in_size / out_size
    mat = np.zeros((out_size, in_size))
    for i in range(out_size):
        a, b = i * step, (i + 1) * step
        for y in range(int(np.floor(a)), min(in_size, int(np.ceil(b)))):
            mat[i, y] = max(0.0, min(y + 1.0, b) - max(float(y), a))
    mat /= mat.sum(axis=1, keepdims=True)
    mat.setflags(write=False)
    return mat


def resize(
    maps: np.ndarray,
    size: tuple[int, int],
    *,
    out: np.ndarray | None = None,
    tmp: np.ndarray | None = None,
) -> np.ndarray:
    """Bilinear half-pixel resize of (N, h, w) maps to (N, H, W), float64.

    ``out`` and ``tmp`` are optional (N, H, W) float64 work buffers (reused by the
    batched kernels to avoid page faults on large allocations).
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3:
        raise ValueError(f"maps must be (N, h, w), got shape {maps.shape}")
    n, h, w = maps.shape
    H, W = int(size[0]), int(size[1])
    if out is None:
        out = np.empty((n, H, W))
    if (h, w) == (H, W):  # weights are exactly (1, 0): the resize is a copy
        np.copyto(out, maps)
        return out
    if tmp is None:
        tmp = np.empty((n, H, W))
    ay, ax = axis_weights(h, H), axis_weights(w, W)
    # horizontal pass on the small grid: (N, h, W)
    rows = maps[:, :, ax.i0] * ax.w0 + maps[:, :, ax.i1] * ax.w1
    # vertical pass: out[:, i] = w0[i] * rows[:, i0[i]] + w1[i] * rows[:, i1[i]]
    np.take(rows, ay.i0, axis=1, out=out, mode="clip")  # "raise" would buffer out
    np.multiply(out, ay.w0[:, None], out=out)
    np.take(rows, ay.i1, axis=1, out=tmp, mode="clip")
    np.multiply(tmp, ay.w1[:, None], out=tmp)
    np.add(out, tmp, out=out)
    return out


def upsample(maps: np.ndarray, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """Patch grids (N, gh, gw) -> (N, H, W) by half-pixel bilinear interpolation."""
    return resize(maps, size)


def minmax_normalise(maps: np.ndarray, eps: float = NORM_EPS) -> np.ndarray:
    """Per map: (u - min) / (max - min + eps), over the last two axes."""
    maps = np.asarray(maps, dtype=np.float64)
    lo = maps.min(axis=(-2, -1), keepdims=True)
    hi = maps.max(axis=(-2, -1), keepdims=True)
    return (maps - lo) / (hi - lo + eps)


def heatmap(maps: np.ndarray, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """The brief's heatmap: upsample (N, gh, gw) grids to ``size``, then min-max normalise."""
    return minmax_normalise(upsample(maps, size))
