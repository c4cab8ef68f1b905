"""Batched alignment metrics for many patch-grid maps, each against one or more targets.

Entry points: :func:`score_map_targets` (each map against a list of targets: the job
scores every map against its image's union of boxes and each box alone) and
:func:`score_maps` (one target per map).

Definitions (``/work/shared/brief/metrics.md``; A the heatmap, G the target mask,
S the soft target, n = H*W pixels, k_p = max(1, round_half_up(n*(100-p)/100))):

- IoU@p = |A_k AND G| / (|A_k OR G| + 1e-8), A_k exactly k_p pixels: value descending,
  then lowest flat (row-major) index; never a quantile threshold (Jaccard 1912).
- coverage (energy pointing game, Wang et al. 2020) = sum(A*G) / sum(A); 0 if
  sum(A) < 1e-8.
- pointing_t{t} (Zhang et al., ECCV 2016): 1 if a G pixel lies within Euclidean
  distance t of the argmax (first flat index on ties), else 0.
- topk_pointing = |A_k AND G| / k with k = ``protocol.topk_pointing_k`` pixels.
- relevance_rank_acc (Arras et al. 2022) = |A_K AND G| / K with K = |G|.
- roc_auc (localisation ROC-AUC; Hanley & McNeil 1982) = P(A_g > A_o) + P(A_g = A_o)/2
  for a random pixel g of G and o outside G: (R_G - |G|(|G|+1)/2) / (|G| (n - |G|)),
  R_G the sum of G's ascending mid-ranks; NaN when G is empty or the whole image.
- annotation_area = |G| / n; attention_area@p = k_p / n; random_iou = a*g/(a+g-a*g);
  max_iou = min(a,g)/max(a,g); iou_over_max = IoU / max_iou; corloc@p = [IoU >= 0.5]
  (Deselaers et al. 2012).
- mse = mean((A - S)^2); kl = KL(S || A) after +1e-8 per pixel and normalising
  (Kullback & Leibler 1951); emd = exact W1 between area-averaged 8x8 cells, emd_point
  the same between point-sampled cells (Rubner et al. 2000; see ``emd.py``).
- gini (Hurley & Rickard 2009) = 2 sum_k k a_(k) / (n sum a) - (n + 1)/n over A in
  ascending order; entropy (Shannon 1948, nats) = -sum p log p with p = A / sum(A).
  Both describe the map alone (the same for every target); a constant map (A = 0)
  counts as uniform: gini 0, entropy log n.

An empty target (no boxes) gives NaN for every target-dependent metric, never a hit and
never a zero. A map with a non-finite value (or |value| > 1e150) gives NaN everywhere.

How it is fast and still exact:

- Per map, once for all its targets (``compiled.py``, numba, GIL released): the
  upsampling (bit-identical to ``heatmap.resize``), min, max, argmax, and the exact
  order of all pixels by (U desc, index asc), U the upsampled values before min-max
  normalisation (the normalisation is increasing, so the order is the same, and ranking
  U avoids ties that rounding in the division would create; ``reference.py`` ranks the
  same values). The order is a bucket sort on the float64 bits. From it: each pixel's
  position (top-k membership), its mid-rank (ROC-AUC) and the Gini sum.
- Per target, in one compiled pass over G's pixels: the top-k counts for all eight
  percentiles, top-k pointing and |G|, and the rank sum.
- Sums over pixels that are linear in A (coverage, MSE, the area-averaged EMD cells)
  are evaluated on the patch grid through the interpolation matrices
  (``targets.GridOps``); KL is one matrix product of the chunk's log(A + eps) with the
  targets' soft targets; the entropy needs one more logarithm per pixel.
- EMD: the reduced transport problems of all (map, target) pairs of a chunk are built in
  one compiled pass; those with one source or sink cell are solved in closed form, the
  rest by POT's network simplex.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ssl_wc.metrics.emd import grid_cost, resample_sampled, solve_transport
from ssl_wc.metrics.heatmap import axis_weights
from ssl_wc.metrics.masks import as_boxes
from ssl_wc.metrics.protocol import (
    COVERAGE_MIN_MASS,
    IOU_EPS,
    KL_EPS,
    NORM_EPS,
    PERCENTILES,
    MetricProtocol,
)
from ssl_wc.metrics.targets import GridOps, TargetCache, TargetSet, grid_ops, target_key

__all__ = [
    "FAMILIES",
    "MAP_COLUMNS",
    "PERCENTILES",
    "PER_PERCENTILE_COLUMNS",
    "MetricProtocol",
    "TargetSets",
    "score_map_targets",
    "score_maps",
    "threshold_free_columns",
    "warm_up",
]

FAMILIES: tuple[str, ...] = (
    "topk", "pointing", "coverage", "roc_auc", "mse", "kl", "emd", "sparsity",
)
"""Metric families ``score_maps(families=...)`` can restrict to."""

PER_PERCENTILE_COLUMNS: tuple[str, ...] = (
    "iou",
    "attention_area",
    "random_iou",
    "max_iou",
    "iou_over_max",
    "corloc",
)

MAP_COLUMNS: tuple[str, ...] = ("gini", "entropy")
"""Columns that describe the map alone (the same for every target, defined for an
empty target too)."""

_TOPK_TF = ("topk_pointing", "relevance_rank_acc", "annotation_area")
_MAX_ABS = 1e150
_GRID_ALGEBRA_MAX_CELLS = 1024


def threshold_free_columns(
    protocol: MetricProtocol, families: Collection[str] = FAMILIES
) -> tuple[str, ...]:
    """Names of the threshold-free columns ``score_maps`` returns, in order."""
    cols: list[str] = []
    if "coverage" in families:
        cols.append("coverage")
    if "pointing" in families:
        cols.extend(protocol.pointing_columns())
    if "topk" in families:
        cols.extend(_TOPK_TF)
    if "roc_auc" in families:
        cols.append("roc_auc")
    cols.extend(f for f in ("mse", "kl") if f in families)
    if "emd" in families:
        cols.extend(("emd", "emd_point"))
    if "sparsity" in families:
        cols.extend(MAP_COLUMNS)
    return tuple(cols)


@dataclass
class _Workspace:
    """Per-thread buffers, reused across chunks (fresh large arrays cost page faults)."""

    u: np.ndarray
    d: np.ndarray
    xl: np.ndarray

    @classmethod
    def make(cls, chunk: int, n: int) -> _Workspace:
        return cls(np.empty((chunk, n)), np.empty((chunk, n)), np.empty((chunk, n)))


@dataclass
class _Chunk:
    """A chunk's per-map quantities (c maps)."""

    maps: np.ndarray  # (c, gh, gw) float64
    lo: np.ndarray
    den: np.ndarray  # max - min + NORM_EPS
    arg: np.ndarray  # first flat index of the maximum
    sum_x: np.ndarray  # sum(U - min) = den * sum(A)
    weighted: np.ndarray  # sum(asc_rank * (U - min))


def _linear_sums(
    ck: _Chunk, u: np.ndarray, ts: TargetSet, ops: GridOps, need_g: bool, need_s: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(c,) sum(A), (c, t) sum(A*G), (c, t) sum(A*S), (c,) sum(A^2).

    On a small grid (patch maps) through the interpolation matrices (O(cells) per map
    and target); a map already at the evaluation size (baselines) over its pixels, with
    sum(A*G) summed like sum(A) (so a map inside G has coverage exactly 1).
    """
    from ssl_wc.metrics import compiled

    c, t = ck.maps.shape[0], len(ts)
    ag, as_, aa = np.zeros((c, t)), np.zeros((c, t)), np.zeros(c)
    cells = ck.maps.shape[1] * ck.maps.shape[2]
    if cells <= _GRID_ALGEBRA_MAX_CELLS:
        grid_a = (ck.maps - ck.lo[:, None, None]) / ck.den[:, None, None]  # A = wy @ . @ wx.T
        flat = np.ascontiguousarray(grid_a.reshape(c, cells))
        sum_a = np.empty((c, 1))
        compiled.row_dots(flat, ops.ones.reshape(1, cells), sum_a)
        g_proj, s_proj = ts.grid_projections(ops)
        if need_g:
            compiled.row_dots(flat, g_proj, ag)
        if need_s:
            compiled.row_dots(flat, s_proj, as_)
            compiled.paired_dots(np.ascontiguousarray((ops.py @ grid_a @ ops.px).reshape(c, cells)),
                                 flat, aa)
        return sum_a[:, 0], ag, as_, aa
    a = (u - ck.lo[:, None]) / ck.den[:, None]
    sum_a = a.sum(axis=1)
    if need_g:
        for j in range(t):
            ag[:, j] = (a * ts.pixel_mask[j]).sum(axis=1)
    if need_s:
        compiled.row_dots(a, ts.pixel_soft, as_)
        compiled.paired_dots(a, a, aa)
    return sum_a, ag, as_, aa


def _emd_columns(
    ck: _Chunk, u: np.ndarray, ts: TargetSet, protocol: MetricProtocol, ops: GridOps
) -> tuple[np.ndarray, np.ndarray]:
    """(c, t) area-averaged and point-sampled EMD of every map against every target."""
    c = ck.maps.shape[0]
    H, W = ops.size
    grid = int(protocol.emd_grid)
    # area-averaged cells of U - min (linear in the grid; den cancels in the normalising)
    area = ops.cy @ (ck.maps - ck.lo[:, None, None]) @ ops.cx.T
    p_area = np.maximum(area, 0.0).reshape(c, grid * grid)
    ay, ax = axis_weights(H, grid), axis_weights(W, grid)
    rows = np.unique(np.concatenate([ay.i0, ay.i1]))
    cols = np.unique(np.concatenate([ax.i0, ax.i1]))
    sampled = u.reshape(c, H, W)[:, rows][:, :, cols]
    sampled = np.maximum((sampled - ck.lo[:, None, None]) / ck.den[:, None, None], 0.0)
    p_point = resample_sampled(sampled, rows, cols, grid, (H, W)).reshape(c, grid * grid)
    cost = grid_cost(grid)
    return _transport(p_area, ts.hist_area, cost), _transport(p_point, ts.hist_point, cost)


def _transport(p: np.ndarray, q: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """(c, t) exact W1 between every row of p (c, cells; normalised inside) and every row
    of q (t, cells; distributions)."""
    from ssl_wc.metrics import compiled

    p, q = np.ascontiguousarray(p), np.ascontiguousarray(q)
    c, t, cells = p.shape[0], q.shape[0], p.shape[1]
    pos, neg = np.empty((c, t, cells)), np.empty((c, t, cells))
    sub = np.empty((c, t, cells * cells))
    sizes = np.empty((c, t, 2), np.int64)
    closed = np.empty((c, t))
    compiled.transport_pairs(p, q, cost, pos, neg, sub, sizes, closed)
    for r, j in zip(*np.nonzero(np.isnan(closed)), strict=True):
        a, b = sizes[r, j]
        closed[r, j] = solve_transport(pos[r, j, :a], neg[r, j, :b],
                                       sub[r, j, : a * b].reshape(a, b))
    return closed


def _score_chunk(
    maps: np.ndarray,
    ts: TargetSet,
    protocol: MetricProtocol,
    families: Collection[str],
    ops: GridOps,
    ws: _Workspace,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score c maps (c, gh, gw) against every target of ``ts``: (c, t) and (c, t, P)."""
    from ssl_wc.metrics import compiled  # numba: imported on first scoring, not at import

    c = maps.shape[0]
    t = len(ts)
    H, W = ops.size
    n = H * W
    u, d, xl = ws.u[:c], ws.d[:c], ws.xl[:c]
    lo, hi, arg = np.empty(c), np.empty(c), np.empty(c, np.int64)
    ay, ax = axis_weights(maps.shape[1], H), axis_weights(maps.shape[2], W)
    compiled.upsample_extrema(
        maps, ay.i0, ay.i1, ay.w0, ay.w1, ax.i0, ax.i1, ax.w0, ax.w1, u, lo, hi, arg
    )
    den = (hi - lo) + NORM_EPS
    cmin = KL_EPS * den
    sums = np.zeros((c, 2))
    need_order = bool({"topk", "roc_auc", "sparsity"} & set(families))
    hits = np.zeros((c, t, ts.ks.shape[1]), np.int64)
    rank_sum = np.zeros((c, t))
    if need_order:
        compiled.rank_maps(u, lo, cmin, d, xl, sums, ts.any_idx, ts.tbits, ts.ks, hits,
                           rank_sum, True)
    else:
        compiled.rank_maps(u, lo, cmin, d, xl, sums, np.zeros(0, np.int64),
                           np.zeros(n, np.uint64), ts.ks, hits, rank_sum, False)
    ck = _Chunk(maps, lo, den, arg, sums[:, 0], sums[:, 1])
    empty = np.broadcast_to(ts.empty[None, :], (c, t))
    tf: dict[str, np.ndarray] = {}
    pp: dict[str, np.ndarray] = {}

    def target_col(values: np.ndarray) -> np.ndarray:
        return np.where(empty, np.nan, values)

    need_g, need_s = "coverage" in families, "mse" in families
    sum_a, ag, as_, aa = _linear_sums(ck, u, ts, ops, need_g, need_s)
    if need_g or need_s:
        if need_g:
            with np.errstate(divide="ignore", invalid="ignore"):
                cov = np.clip(ag / sum_a[:, None], 0.0, 1.0)
            tf["coverage"] = target_col(np.where(sum_a[:, None] < COVERAGE_MIN_MASS, 0.0, cov))
        if need_s:
            mse = np.maximum(aa[:, None] - 2.0 * as_ + ts.s_sq[None, :], 0.0) / n
            tf["mse"] = target_col(mse)

    if "pointing" in families:
        near = ts.near[:, :, arg].astype(np.float64)  # (t, tolerances, c)
        for j, col in enumerate(protocol.pointing_columns()):
            tf[col] = target_col(near[:, j, :].T)

    if "topk" in families or "roc_auc" in families:
        _rank_metrics(hits, rank_sum, ts, protocol, n, families, target_col, tf, pp)

    if "kl" in families:
        np.log(d, out=d)
        dot = np.empty((c, t))  # sum S' log(d), d = (A + 1e-8) * den
        compiled.row_dots(d, ts.s_kl, dot)
        # sum S' log A' with A' = (A + eps) / Z and A + eps = d / den, Z = sum(A) + n*eps
        norm = np.log(den) + np.log(sum_a + n * KL_EPS)
        tf["kl"] = target_col(ts.s_kl_entropy[None, :] - (dot - norm[:, None]))

    if "emd" in families:
        emd, emd_point = _emd_columns(ck, u, ts, protocol, ops)
        tf["emd"] = target_col(emd)
        tf["emd_point"] = target_col(emd_point)

    if "sparsity" in families:
        flat = ck.sum_x <= 0.0
        safe = np.where(flat, 1.0, ck.sum_x)
        gini = np.where(flat, 0.0, 2.0 * ck.weighted / (n * safe) - (n + 1.0) / n)
        np.log(xl, out=d)  # d is free again (KL is done)
        xlogx = np.empty(c)
        compiled.paired_dots(xl, d, xlogx)
        entropy = np.where(flat, np.log(n), np.log(safe) - xlogx / safe)
        tf["gini"] = np.broadcast_to(gini[:, None], (c, t)).copy()
        tf["entropy"] = np.broadcast_to(entropy[:, None], (c, t)).copy()
    return tf, pp


def _rank_metrics(
    hits: np.ndarray,
    rank_sum: np.ndarray,
    ts: TargetSet,
    protocol: MetricProtocol,
    n: int,
    families: Collection[str],
    target_col: Callable[[np.ndarray], np.ndarray],
    tf: dict[str, np.ndarray],
    pp: dict[str, np.ndarray],
) -> None:
    """Top-k families and ROC-AUC from the counts (c, t, len(ks)) of G_j's pixels among
    the top ks[j, m] and the mid-rank sums (c, t)."""
    c, t = rank_sum.shape
    ks = ts.ks
    inter_n = hits
    g_area = np.where(ts.empty, np.nan, ts.area.astype(np.float64))[None, :]  # (1, t)
    if "roc_auc" in families:
        g = ts.area.astype(np.float64)[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = (rank_sum - g * (g + 1.0) / 2.0) / (g * (n - g))
        tf["roc_auc"] = np.where((ts.area == 0) | (ts.area == n), np.nan, auc)
    if "topk" not in families:
        return
    inter = inter_n.astype(np.float64)
    k_top = float(ks[0, -2])
    tf["topk_pointing"] = target_col(inter[:, :, -2] / k_top)
    tf["relevance_rank_acc"] = inter[:, :, -1] / g_area
    tf["annotation_area"] = np.broadcast_to(g_area / n, (c, t)).copy()
    k_p = np.array(protocol.topk_counts(), dtype=np.float64)
    inter_p = inter[:, :, : k_p.size]
    g = g_area[:, :, None] / n  # (1, t, 1)
    a = np.broadcast_to(k_p / n, inter_p.shape)
    iou = inter_p / (k_p + g_area[:, :, None] - inter_p + IOU_EPS)
    max_iou = np.minimum(a, g) / np.maximum(a, g)
    pp["iou"] = iou
    pp["attention_area"] = a.copy()
    pp["random_iou"] = a * g / (a + g - a * g)
    pp["max_iou"] = max_iou
    pp["iou_over_max"] = iou / max_iou
    pp["corloc"] = np.where(np.isnan(iou), np.nan, (iou >= 0.5).astype(np.float64))


def _as_maps(maps: np.ndarray) -> np.ndarray:
    arr = np.asarray(maps)
    if arr.ndim != 3:
        raise ValueError(f"maps must be (N, grid_h, grid_w), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"maps must be numeric, got dtype {arr.dtype}")
    return arr


def _check_families(families: Collection[str] | None) -> frozenset[str]:
    fams = frozenset(FAMILIES if families is None else families)
    unknown = fams - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown metric families {sorted(unknown)}; known: {FAMILIES}")
    return fams


class TargetSets:
    """Prepared target sets by their targets' keys (one per image in the job), with the
    targets from a shared cache so that a box used in several sets is prepared once.

    Pass one to several :func:`score_map_targets` calls (the job: every map source of a
    chunk of images) to prepare each image's targets once for all of them; it holds
    what it prepared until it is dropped.
    """

    def __init__(self, protocol: MetricProtocol, capacity: int = 64) -> None:
        self.targets = TargetCache(protocol, capacity=capacity)
        self.protocol = protocol
        self._sets: dict[tuple[bytes, ...], TargetSet] = {}
        self._lock = threading.Lock()

    def get(self, keys: tuple[bytes, ...], boxes: Sequence[np.ndarray]) -> TargetSet:
        with self._lock:
            got = self._sets.get(keys)
            if got is None:
                got = TargetSet([self.targets.get(k, b)
                                 for k, b in zip(keys, boxes, strict=True)], self.protocol)
                self._sets[keys] = got
            return got


def score_map_targets(
    maps: np.ndarray,
    targets: Sequence[Sequence[np.ndarray]],
    protocol: MetricProtocol = MetricProtocol(),
    *,
    families: Collection[str] | None = None,
    chunk_size: int = 8,
    workers: int = 1,
    target_sets: TargetSets | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score each patch-grid map against each of its targets.

    Args:
        maps: (N, gh, gw) patch grids (row = y); a grid equal to ``eval_size`` is used
            as is (the half-pixel resize with scale 1 is the identity).
        targets: per map, a list of targets, each a (k, 4) array of (left, top, width,
            height) fractions; k = 0 is an empty target. Maps with the same list (the
            maps of one image) share all per-target work.
        protocol: the :class:`MetricProtocol`.
        families: subset of :data:`FAMILIES` to compute (default: all).
        chunk_size: maps per chunk; memory is O(chunk_size * H * W) per worker.
        workers: threads (results do not depend on it).
        target_sets: prepared targets to reuse (and extend) across calls with the same
            protocol; by default a fresh :class:`TargetSets` for this call.

    Returns:
        ``(threshold_free, per_percentile)``: column -> (R,) float64 array and column
        -> (R, P) float64 array, one row per (map, target) pair, map-major (map 0's
        targets in order, then map 1's, ...), P = len(protocol.percentiles). Hits are
        1.0/0.0; NaN for an empty target (every target-dependent column) or an
        invalid map (every column).
    """
    fams = _check_families(families)
    arr = _as_maps(maps)
    N = arr.shape[0]
    if len(targets) != N:
        raise ValueError(f"got {N} maps but {len(targets)} targets")
    if chunk_size < 1 or workers < 1:
        raise ValueError("chunk_size and workers must be >= 1")
    H, W = (int(v) for v in protocol.eval_size)
    n_p = len(protocol.percentiles)
    counts = np.fromiter((len(t) for t in targets), dtype=np.int64, count=N)
    offsets = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    R = int(offsets[-1])
    tf_out = {col: np.full(R, np.nan) for col in threshold_free_columns(protocol, fams)}
    pp_out = (
        {col: np.full((R, n_p), np.nan) for col in PER_PERCENTILE_COLUMNS} if "topk" in fams else {}
    )
    if R == 0:
        return tf_out, pp_out

    # group maps by their target list (identical lists are usually the same object)
    groups: dict[tuple[bytes, ...], list[int]] = {}
    by_id: dict[int, tuple[bytes, ...]] = {}
    boxes_of: dict[tuple[bytes, ...], list[np.ndarray]] = {}
    for i, tl in enumerate(targets):
        key = by_id.get(id(tl))
        if key is None:
            boxes = [as_boxes(b) for b in tl]
            key = tuple(target_key(b) for b in boxes)
            by_id[id(tl)] = key
            boxes_of.setdefault(key, boxes)
        if counts[i]:
            groups.setdefault(key, []).append(i)
    chunk_size = min(chunk_size, N)
    n_targets = sum(len(k) for k in groups)
    if target_sets is not None and target_sets.protocol != protocol:
        raise ValueError("target_sets were prepared for another protocol")
    cache = target_sets or TargetSets(protocol, capacity=max(64, n_targets))
    ops = grid_ops((int(arr.shape[1]), int(arr.shape[2])), (H, W), int(protocol.emd_grid))
    local = threading.local()
    work = [(key, np.asarray(idx[s : s + chunk_size], dtype=np.intp))
            for key, idx in groups.items() for s in range(0, len(idx), chunk_size)]

    def run(item: tuple[tuple[bytes, ...], np.ndarray]) -> None:
        key, idx = item
        ws = getattr(local, "ws", None)
        if ws is None:
            ws = local.ws = _Workspace.make(chunk_size, H * W)
        m = np.array(arr[idx], dtype=np.float64)
        valid = np.isfinite(m).all(axis=(1, 2)) & (np.abs(m).max(axis=(1, 2)) <= _MAX_ABS)
        m[~valid] = 0.0
        ts = cache.get(key, boxes_of[key])
        tf, pp = _score_chunk(m, ts, protocol, fams, ops, ws)
        rows = offsets[idx][:, None] + np.arange(len(ts))[None, :]  # (c, t)
        ok = valid[:, None]
        for col, vals in tf.items():
            tf_out[col][rows] = np.where(ok, vals, np.nan)
        for col, vals in pp.items():
            pp_out[col][rows] = np.where(ok[:, :, None], vals, np.nan)

    # The BLAS calls here are small; BLAS worker threads would only spin beside ours.
    with threadpool_limits(limits=1, user_api="blas"):
        if workers == 1:
            for item in work:
                run(item)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(run, work):
                    pass
    return tf_out, pp_out


def warm_up() -> None:
    """Compile (or load from numba's cache) every compiled loop of the kernels, on a few
    tiny maps that take every branch; jobs may run this in a background thread while
    they do other work, so that the first real chunk does not wait for the compiler."""
    protocol = MetricProtocol(eval_size=(64, 48))
    maps = np.stack([np.full((4, 4), 2.0), np.random.default_rng(0).random((4, 4))])
    targets = [np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 0.3, 0.3]]),
               np.array([[0.5, 0.5, 0.3, 0.3]]), np.zeros((0, 4))]
    score_map_targets(maps, [targets, targets], protocol)


def score_maps(
    maps: np.ndarray,
    targets: Sequence[np.ndarray],
    protocol: MetricProtocol = MetricProtocol(),
    *,
    families: Collection[str] | None = None,
    chunk_size: int = 8,
    workers: int = 1,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score each patch-grid map against one target (``targets[i]``, a (k, 4) box
    array); the layout of :func:`score_map_targets` with one row per map."""
    arr = _as_maps(maps)
    if len(targets) != arr.shape[0]:
        raise ValueError(f"got {arr.shape[0]} maps but {len(targets)} targets")
    # maps with the same boxes share one list object, hence one group
    lists: dict[bytes, list[np.ndarray]] = {}
    per_map = []
    for t in targets:
        b = as_boxes(t)
        per_map.append(lists.setdefault(target_key(b), [b]))
    return score_map_targets(arr, per_map, protocol, families=families,
                             chunk_size=chunk_size, workers=workers)
