"""Per-target precomputation shared by every map scored against the same boxes.

A target is an image's box list (the union target) or a single box (a per-box target).
Everything that depends only on the target and the protocol is computed once here:
the mask, pointing neighbourhoods, the soft target and its projections.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ssl_wc.metrics.emd import to_distribution, to_grid
from ssl_wc.metrics.heatmap import axis_weights
from ssl_wc.metrics.masks import as_boxes, soft_target, squared_distance_to_union, union_mask
from ssl_wc.metrics.protocol import KL_EPS, MetricProtocol


@dataclass(frozen=True)
class GridOps:
    """Interpolation operators for one (grid, eval size) pair.

    ``wy`` (H, gh) and ``wx`` (W, gw) are the dense bilinear matrices, so the upsampled
    map is ``wy @ m @ wx.T``. Sums over the heatmap then reduce to the grid:
    ``sum(A * X) = sum(m * (wy.T @ X @ wx))`` and
    ``sum(A**2) = sum((py @ m @ px) * m)`` with ``py = wy.T @ wy``, ``px = wx.T @ wx``.
    """

    grid: tuple[int, int]
    size: tuple[int, int]
    wy: np.ndarray
    wx: np.ndarray
    py: np.ndarray
    px: np.ndarray
    ones: np.ndarray

    def project(self, image: np.ndarray) -> np.ndarray:
        """(H, W) image -> (gh, gw) weights w with sum(A * image) = sum(m * w)."""
        return self.wy.T @ image @ self.wx


@lru_cache(maxsize=16)
def grid_ops(grid: tuple[int, int], size: tuple[int, int]) -> GridOps:
    gh, gw = grid
    H, W = size
    wy = axis_weights(gh, H).dense(gh)
    wx = axis_weights(gw, W).dense(gw)
    return GridOps(
        grid=grid,
        size=size,
        wy=wy,
        wx=wx,
        py=wy.T @ wy,
        px=wx.T @ wx,
        ones=np.outer(wy.sum(axis=0), wx.sum(axis=0)),
    )


@dataclass
class Target:
    """A prepared target at the evaluation size (flat arrays are row-major, n = H*W).

    ``area == 0`` marks an empty target; its arrays are then empty placeholders.
    """

    area: int
    mask: np.ndarray  # (n,) bool, G
    idx: np.ndarray  # (area,) flat indices of G
    near: tuple[np.ndarray, ...]  # per tolerance t: (n,) bool, within distance t of G
    s_kl: np.ndarray  # (n,) S normalised for KL: (S + eps) / sum
    s_kl_entropy: float  # sum(s_kl * log(s_kl))
    s_sq: float  # sum(S**2)
    s_hist: np.ndarray  # (g*g,) EMD distribution of S
    soft: np.ndarray = field(repr=False)  # (H, W) soft target S
    _proj: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False
    )

    @property
    def empty(self) -> bool:
        return self.area == 0

    def projections(self, ops: GridOps) -> tuple[np.ndarray, np.ndarray]:
        """(G, S) projected to the patch grid of ``ops`` (see :class:`GridOps`)."""
        got = self._proj.get(ops.grid)
        if got is None:
            mask2d = self.mask.reshape(ops.size).astype(np.float64)
            got = (ops.project(mask2d), ops.project(self.soft))
            self._proj[ops.grid] = got
        return got


_EMPTY = np.zeros(0)


def build_target(boxes: np.ndarray, protocol: MetricProtocol) -> Target:
    """Prepare one target (``boxes`` as (k, 4) fractions; k = 0 is the empty target)."""
    boxes = as_boxes(boxes)
    size = (int(protocol.eval_size[0]), int(protocol.eval_size[1]))
    if boxes.shape[0] == 0:
        return Target(
            0, np.zeros(0, bool), np.zeros(0, np.intp), (), _EMPTY, 0.0, 0.0, _EMPTY, _EMPTY
        )
    mask2d = union_mask(boxes, size)
    dist2 = squared_distance_to_union(boxes, size).ravel()
    near = tuple(dist2 <= float(t) * float(t) for t in protocol.pointing_tolerances_px)
    soft = soft_target(boxes, size)  # finite and in [0, 1] by construction
    s_kl = soft.ravel() + KL_EPS
    s_kl /= s_kl.sum()
    s_hist = to_distribution(to_grid(soft[None], int(protocol.emd_grid)))[0]
    mask = mask2d.ravel()
    idx = np.flatnonzero(mask)
    return Target(
        area=int(idx.size),
        mask=mask,
        idx=idx,
        near=near,
        s_kl=s_kl,
        s_kl_entropy=float(np.dot(s_kl, np.log(s_kl))),
        s_sq=float(np.dot(soft.ravel(), soft.ravel())),
        s_hist=s_hist,
        soft=soft,
    )


class TargetCache:
    """Thread-safe LRU of prepared targets keyed by the boxes' bytes."""

    def __init__(self, protocol: MetricProtocol, capacity: int = 64) -> None:
        self.protocol = protocol
        self.capacity = max(1, capacity)
        self._items: OrderedDict[bytes, Target] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes, boxes: np.ndarray) -> Target:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
                return hit
            target = build_target(boxes, self.protocol)
            self._items[key] = target
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
            return target


def target_key(boxes: np.ndarray) -> bytes:
    """Cache key of a validated (k, 4) float64 box array."""
    return np.ascontiguousarray(boxes, dtype=np.float64).tobytes()
