"""Earth mover's distance between two maps on a coarse grid (Rubner et al., IJCV 2000).

Both maps (clamped at 0) are reduced to ``g x g`` cells, normalised to sum 1, and
compared by the exact 2-D Wasserstein-1 distance with Euclidean ground cost between
cell centres ``((j + .5)/g, (i + .5)/g)`` in the unit square. A map with zero mass
counts as uniform. Two reductions are offered:

- area-averaged (:func:`to_area_grid`, the default ``emd``): each cell is the mean of
  the pixels it covers, so every pixel's mass is counted once;
- point-sampled (:func:`to_grid`, ``emd_point``, as published implementations do):
  half-pixel bilinear resize without antialiasing, so each cell samples the map near its
  centre (``torch.nn.functional.interpolate``'s default). The mass of a small target
  between the sampled pixels is lost, which makes it unreliable for small boxes.

Exactness: W1 with a metric cost equals the optimal transport between the positive and
negative parts of ``p - q`` (mass present in both never has to move, by the triangle
inequality), which shrinks the linear programme from g^2 x g^2 to about a quarter. The
programme is solved exactly by POT's network simplex.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np

from ssl_wc.metrics.heatmap import area_matrix, axis_weights

_MAX_ITER = 1_000_000
_POT_NO_TORCH = "POT_BACKEND_DISABLE_PYTORCH"
#: Serialises the first import of POT and its compiled solver: threads of
#: ``score_maps(workers=...)`` that import them at once hit CPython's import deadlock
#: detection (``_DeadlockError``), and a module half-imported by another thread must
#: never be returned.
_pot_lock = threading.RLock()


def pot() -> ModuleType:
    """The ``ot`` (POT) module, imported on first use.

    POT imports torch at import time whenever torch is installed; the metrics core must
    not load torch (dashboards import it). Unless ``ot`` is already imported, it is
    imported here with POT's documented switch ``POT_BACKEND_DISABLE_PYTORCH`` set for
    the duration of the import only (POT reads it once, at import).
    """
    with _pot_lock:
        if "ot" in sys.modules:
            return sys.modules["ot"]
        saved = os.environ.get(_POT_NO_TORCH)
        os.environ[_POT_NO_TORCH] = "1"
        try:
            return importlib.import_module("ot")
        finally:
            if saved is None:
                del os.environ[_POT_NO_TORCH]
            else:
                os.environ[_POT_NO_TORCH] = saved


@lru_cache(maxsize=1)
def _fast_solver() -> Callable[..., Any] | None:
    """The compiled network simplex behind ``ot.emd2`` without its per-call checks."""
    with _pot_lock:
        pot()
        try:
            from ot.lp.emd_wrap import emd_c
        except ImportError:  # pragma: no cover - depends on the POT version
            return None
    return emd_c  # type: ignore[no-any-return]


@lru_cache(maxsize=8)
def grid_cost(grid: int) -> np.ndarray:
    """(g*g, g*g) Euclidean distances between cell centres in [0, 1]^2, row-major cells."""
    c = (np.arange(grid) + 0.5) / grid
    yy, xx = np.meshgrid(c, c, indexing="ij")
    pts = np.stack([yy.ravel(), xx.ravel()], axis=1)
    cost = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    cost.setflags(write=False)
    return cost


def to_grid(maps: np.ndarray, grid: int) -> np.ndarray:
    """(N, H, W) maps -> (N, g, g): clamp at 0, half-pixel bilinear, no antialias.

    Only the source rows and columns the resize reads are touched.
    """
    maps = np.asarray(maps, dtype=np.float64)
    _, H, W = maps.shape
    ay, ax = axis_weights(H, grid), axis_weights(W, grid)
    rows = np.unique(np.concatenate([ay.i0, ay.i1]))
    cols = np.unique(np.concatenate([ax.i0, ax.i1]))
    sub = np.maximum(maps[:, rows][:, :, cols], 0.0)
    return resample_sampled(sub, rows, cols, grid, (H, W))


def to_area_grid(maps: np.ndarray, grid: int) -> np.ndarray:
    """(N, H, W) maps -> (N, g, g): clamp at 0, then each cell the mean of the pixels it
    covers (:func:`ssl_wc.metrics.heatmap.area_matrix` along each axis)."""
    maps = np.maximum(np.asarray(maps, dtype=np.float64), 0.0)
    _, H, W = maps.shape
    by, bx = area_matrix(H, grid), area_matrix(W, grid)
    return np.asarray(by @ maps @ bx.T)


def resample_sampled(
    sub: np.ndarray, rows: np.ndarray, cols: np.ndarray, grid: int, size: tuple[int, int]
) -> np.ndarray:
    """Finish a grid resize from the sampled rows x cols of (N, H, W) maps (see to_grid)."""
    ay, ax = axis_weights(int(size[0]), grid), axis_weights(int(size[1]), grid)
    ry0, ry1 = np.searchsorted(rows, ay.i0), np.searchsorted(rows, ay.i1)
    cx0, cx1 = np.searchsorted(cols, ax.i0), np.searchsorted(cols, ax.i1)
    horiz = sub[:, :, cx0] * ax.w0 + sub[:, :, cx1] * ax.w1
    return horiz[:, ry0, :] * ay.w0[:, None] + horiz[:, ry1, :] * ay.w1[:, None]


def to_distribution(cells: np.ndarray) -> np.ndarray:
    """(N, g, g) non-negative cells -> (N, g*g) histograms summing to 1 (uniform if empty)."""
    flat = cells.reshape(cells.shape[0], -1)
    mass = flat.sum(axis=1, keepdims=True)
    uniform = np.full_like(flat, 1.0 / flat.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mass > 0, flat / np.where(mass > 0, mass, 1.0), uniform)


def solve_transport(pos: np.ndarray, neg: np.ndarray, cost: np.ndarray) -> float:
    """Exact optimal cost of moving ``pos`` onto ``neg`` (equal totals; C-contiguous)."""
    solver = _fast_solver()
    if solver is not None:
        out = solver(pos, neg, cost, _MAX_ITER, 1)
        if int(out[-1]) != 1:
            raise RuntimeError(f"network simplex did not reach an optimum (code {out[-1]})")
        return float(out[1])
    return float(pot().emd2(pos, neg, cost, numItermax=_MAX_ITER))  # pragma: no cover


def wasserstein1(p: np.ndarray, q: np.ndarray, cost: np.ndarray) -> float:
    """Exact W1 between histograms p and q (same total mass) under a metric ``cost``."""
    d = np.asarray(p, dtype=np.float64).ravel() - np.asarray(q, dtype=np.float64).ravel()
    pos_idx = np.flatnonzero(d > 0)
    neg_idx = np.flatnonzero(d < 0)
    if pos_idx.size == 0 or neg_idx.size == 0:
        return 0.0
    pos = d[pos_idx]
    neg = -d[neg_idx]
    neg *= pos.sum() / neg.sum()  # equal totals up to rounding; make them exact
    sub = np.ascontiguousarray(cost[np.ix_(pos_idx, neg_idx)])
    return solve_transport(np.ascontiguousarray(pos), np.ascontiguousarray(neg), sub)


def emd_histograms(p: np.ndarray, q: np.ndarray, grid: int) -> np.ndarray:
    """Row-wise exact W1 between (N, g*g) histograms p and (N, g*g) or (g*g,) q."""
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    q = np.asarray(q, dtype=np.float64)
    q = np.broadcast_to(q, p.shape) if q.ndim == 1 else q
    cost = grid_cost(grid)
    return np.array([wasserstein1(p[i], q[i], cost) for i in range(p.shape[0])])


def emd_maps(a: np.ndarray, b: np.ndarray, grid: int = 8, *, area: bool = True) -> np.ndarray:
    """EMD between (N, H, W) maps ``a`` and ``b`` (or one (H, W) ``b`` for all), with
    area-averaged cells (``area``, the default) or point-sampled ones."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    reduce = to_area_grid if area else to_grid
    pa = to_distribution(reduce(a, grid))
    pb = to_distribution(reduce(b[None] if b.ndim == 2 else b, grid))
    return emd_histograms(pa, pb[0] if pb.shape[0] == 1 else pb, grid)
