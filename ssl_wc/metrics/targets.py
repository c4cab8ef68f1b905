"""Per-target precomputation shared by every map scored against the same boxes.

A target is an image's box list (the union target) or a single box (a per-box target).
Everything that depends only on the target and the protocol is computed once here: the
mask, pointing neighbourhoods, the soft target, its KL form and EMD histograms, and its
projections onto each patch grid. A :class:`TargetSet` stacks the targets every map of
a group is scored against (an image's union and each of its boxes), so that one
matrix product scores a chunk of maps against all of them at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from ssl_wc.metrics.emd import to_area_grid, to_distribution, to_grid
from ssl_wc.metrics.heatmap import area_matrix, axis_weights
from ssl_wc.metrics.masks import as_boxes, soft_target, squared_distance_to_union, union_mask
from ssl_wc.metrics.protocol import KL_EPS, MetricProtocol


@dataclass(frozen=True)
class GridOps:
    """Linear operators for one (grid, eval size, EMD grid) triple.

    ``wy`` (H, gh) and ``wx`` (W, gw) are the dense bilinear matrices, so the upsampled
    map is ``wy @ m @ wx.T``. Sums over the heatmap then reduce to the grid:
    ``sum(A * X) = sum(m * (wy.T @ X @ wx))`` and
    ``sum(A**2) = sum((py @ m @ px) * m)`` with ``py = wy.T @ wy``, ``px = wx.T @ wx``.
    ``cy`` (g, gh) and ``cx`` (g, gw) give the area-averaged EMD cells of the upsampled
    map: ``cy @ m @ cx.T`` (area averaging composed with the bilinear matrices).
    """

    grid: tuple[int, int]
    size: tuple[int, int]
    wy: np.ndarray
    wx: np.ndarray
    py: np.ndarray
    px: np.ndarray
    ones: np.ndarray
    cy: np.ndarray
    cx: np.ndarray

    def project(self, image: np.ndarray) -> np.ndarray:
        """(H, W) image -> (gh, gw) weights w with sum(A * image) = sum(m * w)."""
        return np.asarray(self.wy.T @ image @ self.wx)


@lru_cache(maxsize=16)
def grid_ops(grid: tuple[int, int], size: tuple[int, int], emd_grid: int = 8) -> GridOps:
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
        cy=area_matrix(H, emd_grid) @ wy,
        cx=area_matrix(W, emd_grid) @ wx,
    )


@dataclass
class Target:
    """A prepared target at the evaluation size (flat arrays are row-major, n = H*W).

    ``area == 0`` marks an empty target; its arrays are then empty placeholders.
    """

    area: int
    idx: np.ndarray  # (area,) flat indices of G, ascending
    near: np.ndarray  # (tolerances, n) bool: within distance t of G
    s_kl: np.ndarray  # (n,) S normalised for KL: (S + eps) / sum
    s_kl_entropy: float  # sum(s_kl * log(s_kl))
    s_sq: float  # sum(S**2)
    hist_area: np.ndarray  # (g*g,) area-averaged EMD distribution of S
    hist_point: np.ndarray  # (g*g,) point-sampled EMD distribution of S
    soft: np.ndarray = field(repr=False)  # (H, W) soft target S
    _proj: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False
    )

    @property
    def empty(self) -> bool:
        return self.area == 0

    def mask(self, n: int) -> np.ndarray:
        """(n,) bool mask of G."""
        out = np.zeros(n, dtype=bool)
        out[self.idx] = True
        return out

    def projections(self, ops: GridOps) -> tuple[np.ndarray, np.ndarray]:
        """(G, S) projected to the patch grid of ``ops`` (see :class:`GridOps`)."""
        got = self._proj.get(ops.grid)
        if got is None:
            if self.empty:
                zero = np.zeros(ops.grid)
                got = (zero, zero)
            else:
                mask2d = self.mask(ops.size[0] * ops.size[1]).reshape(ops.size)
                got = (ops.project(mask2d.astype(np.float64)), ops.project(self.soft))
            self._proj[ops.grid] = got
        return got


def build_target(boxes: np.ndarray, protocol: MetricProtocol) -> Target:
    """Prepare one target (``boxes`` as (k, 4) fractions; k = 0 is the empty target)."""
    boxes = as_boxes(boxes)
    size = (int(protocol.eval_size[0]), int(protocol.eval_size[1]))
    n = size[0] * size[1]
    cells = int(protocol.emd_grid) ** 2
    n_tol = len(protocol.pointing_tolerances_px)
    if boxes.shape[0] == 0:
        return Target(0, np.zeros(0, np.int64), np.zeros((n_tol, n), bool), np.zeros(n), 0.0,
                      0.0, np.zeros(cells), np.zeros(cells), np.zeros(size))
    dist2 = squared_distance_to_union(boxes, size).ravel()
    near = np.stack([dist2 <= float(t) * float(t) for t in protocol.pointing_tolerances_px])
    soft = soft_target(boxes, size)  # finite and in [0, 1] by construction
    s_kl = soft.ravel() + KL_EPS
    s_kl /= s_kl.sum()
    grid = int(protocol.emd_grid)
    idx = np.flatnonzero(union_mask(boxes, size).ravel())
    return Target(
        area=int(idx.size),
        idx=idx,
        near=near,
        s_kl=s_kl,
        s_kl_entropy=float(np.dot(s_kl, np.log(s_kl))),
        s_sq=float(np.dot(soft.ravel(), soft.ravel())),
        hist_area=to_distribution(to_area_grid(soft[None], grid))[0],
        hist_point=to_distribution(to_grid(soft[None], grid))[0],
        soft=soft,
    )


MAX_SET = 64
"""Targets per :class:`TargetSet` (one bit each in :attr:`TargetSet.tbits`)."""


class TargetSet:
    """The targets one group of maps is scored against, stacked for matrix products.

    Arrays are built on first use: a caller that skips a metric family never pays for it.
    """

    def __init__(self, targets: Sequence[Target], protocol: MetricProtocol) -> None:
        self.targets = tuple(targets)
        self.protocol = protocol
        H, W = (int(v) for v in protocol.eval_size)
        self.n = H * W
        self._grid: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.targets)

    @cached_property
    def area(self) -> np.ndarray:
        return np.array([t.area for t in self.targets], dtype=np.int64)

    @cached_property
    def empty(self) -> np.ndarray:
        return self.area == 0

    @cached_property
    def ks(self) -> np.ndarray:
        """Per target: the top-k counts of the percentiles, topk_pointing's k and |G|."""
        k_p = np.array(self.protocol.topk_counts(), dtype=np.int64)
        k_top = min(int(self.protocol.topk_pointing_k), self.n)
        out = np.empty((len(self.targets), k_p.size + 2), dtype=np.int64)
        out[:, : k_p.size] = k_p
        out[:, -2] = k_top
        out[:, -1] = np.maximum(self.area, 1)
        return out

    @cached_property
    def any_idx(self) -> np.ndarray:
        """Flat indices of the pixels in any target, ascending."""
        return np.flatnonzero(self.tbits).astype(np.int64)

    @cached_property
    def tbits(self) -> np.ndarray:
        """(n,) uint64: bit j set on the pixels of target j (at most 64 targets)."""
        if len(self.targets) > MAX_SET:
            raise ValueError(f"a target set holds at most {MAX_SET} targets")
        out = np.zeros(self.n, dtype=np.uint64)
        for j, t in enumerate(self.targets):
            out[t.idx] |= np.uint64(1) << np.uint64(j)
        return out

    @cached_property
    def near(self) -> np.ndarray:
        """(targets, tolerances, n) bool pointing neighbourhoods."""
        return np.stack([t.near for t in self.targets])

    @cached_property
    def s_kl(self) -> np.ndarray:
        """(targets, n) KL forms of the soft targets (zeros for an empty target)."""
        return np.stack([t.s_kl for t in self.targets])

    @cached_property
    def s_kl_entropy(self) -> np.ndarray:
        return np.array([t.s_kl_entropy for t in self.targets])

    @cached_property
    def s_sq(self) -> np.ndarray:
        return np.array([t.s_sq for t in self.targets])

    @cached_property
    def hist_area(self) -> np.ndarray:
        return np.stack([t.hist_area for t in self.targets])

    @cached_property
    def hist_point(self) -> np.ndarray:
        return np.stack([t.hist_point for t in self.targets])

    @cached_property
    def pixel_mask(self) -> np.ndarray:
        """(targets, n) float G masks, for maps given at the evaluation size."""
        return np.stack([t.mask(self.n).astype(np.float64) for t in self.targets])

    @cached_property
    def pixel_soft(self) -> np.ndarray:
        """(targets, n) soft targets, for maps given at the evaluation size."""
        return np.stack([t.soft.ravel() if not t.empty else np.zeros(self.n)
                         for t in self.targets])

    def grid_projections(self, ops: GridOps) -> tuple[np.ndarray, np.ndarray]:
        """(targets, gh*gw) projections of G and of S onto ``ops``' patch grid."""
        got = self._grid.get(ops.grid)
        if got is None:
            with self._lock:
                got = self._grid.get(ops.grid)
                if got is None:
                    pairs = [t.projections(ops) for t in self.targets]
                    got = (np.stack([g.ravel() for g, _ in pairs]),
                           np.stack([s.ravel() for _, s in pairs]))
                    self._grid[ops.grid] = got
        return got


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
