"""Batched alignment metrics for many patch-grid maps at once: :func:`score_maps`.

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
- annotation_area = |G| / n; attention_area@p = k_p / n; random_iou = a*g/(a+g-a*g);
  max_iou = min(a,g)/max(a,g); iou_over_max = IoU / max_iou; corloc@p = [IoU >= 0.5]
  (Deselaers et al. 2012).
- mse = mean((A - S)^2); kl = KL(S || A) after +1e-8 per pixel and normalising
  (Kullback & Leibler 1951); emd = exact W1 on an 8x8 grid (Rubner et al. 2000).

An empty target (no boxes) gives NaN for every target-dependent metric, never a hit and
never a zero. A map with a non-finite value (or |value| > 1e150) gives NaN everywhere.

How it is fast and still exact:

- Ranks use the upsampled values U before min-max normalisation; the normalisation is
  increasing, so the order is the same, and ranking U avoids ties that rounding in the
  division would create. ``reference.py`` ranks the same values.
- The upsampling (with min, max, argmax) and the exact top-k counting run in compiled
  loops (``compiled.py``, numba, GIL released): the upsampled values are bit-identical
  to ``heatmap.resize``. Exact top-k counts come from a radix histogram: the float64
  bits of U - min + c (c > 0, all values positive, so the bits are ordered like the
  values) are bucketed by exponent and 8 mantissa bits. The bucket holding the k-th
  value is found from cumulative counts, G's pixels above it from a histogram of G
  alone; when G pixels and other pixels share the boundary bucket, that bucket's
  members are sorted by (value desc, index asc) and counted exactly.
- Sums over pixels (coverage, MSE) are evaluated on the patch grid through the
  interpolation matrices (``targets.GridOps``), per pixel for maps already at the
  evaluation size; KL needs one log per pixel; EMD reads only the 16 x 16 pixels its
  8x8 resize samples, and the reduced transport problems (positive vs negative part
  of p - q) of a whole chunk are built in one compiled pass before POT solves each.
  Everything a target needs is prepared once per target (``targets.py``); maps are
  processed grouped by target, in chunks.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ssl_wc.metrics.emd import grid_cost, resample_sampled, solve_transport, to_distribution
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
from ssl_wc.metrics.targets import GridOps, Target, TargetCache, grid_ops, target_key

__all__ = [
    "FAMILIES",
    "PERCENTILES",
    "PER_PERCENTILE_COLUMNS",
    "MetricProtocol",
    "score_maps",
    "threshold_free_columns",
]

FAMILIES: tuple[str, ...] = ("topk", "pointing", "coverage", "mse", "kl", "emd")
"""Metric families ``score_maps(families=...)`` can restrict to."""

PER_PERCENTILE_COLUMNS: tuple[str, ...] = (
    "iou",
    "attention_area",
    "random_iou",
    "max_iou",
    "iou_over_max",
    "corloc",
)

_TOPK_TF = ("topk_pointing", "relevance_rank_acc", "annotation_area")
_MAX_ABS = 1e150


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
    cols.extend(f for f in ("mse", "kl", "emd") if f in families)
    return tuple(cols)


@dataclass
class _Workspace:
    """Per-thread buffers, reused across chunks (fresh large arrays cost page faults)."""

    u: np.ndarray
    d: np.ndarray
    keys: np.ndarray

    @classmethod
    def make(cls, chunk: int, n: int) -> _Workspace:
        return cls(np.empty((chunk, n)), np.empty((chunk, n)), np.empty((chunk, n), np.int16))


@dataclass
class _Sums:
    """Per-row sums over the heatmap A: sum(A), sum(A*G), sum(A*S), sum(A^2)."""

    a: np.ndarray
    ag: np.ndarray
    as_: np.ndarray
    aa: np.ndarray


_GRID_ALGEBRA_MAX_CELLS = 1024


def _heatmap_sums(
    maps: np.ndarray,
    u: np.ndarray,
    lo: np.ndarray,
    den: np.ndarray,
    targets: Sequence[Target],
    live: list[int],
    ops: GridOps,
    families: Collection[str],
) -> _Sums:
    """Sums over A = (U - min) / den, on the patch grid when it is small.

    On a small grid (patch maps) the sums go through the interpolation matrices
    (``GridOps``): O(cells) per map instead of O(pixels). A map already at the
    evaluation size (baselines) is summed over its pixels.
    """
    c = maps.shape[0]
    need_g, need_s = "coverage" in families, "mse" in families
    if maps.shape[1] * maps.shape[2] <= _GRID_ALGEBRA_MAX_CELLS:
        grid_a = (maps - lo[:, None, None]) / den[:, None, None]  # A = wy @ grid_a @ wx.T
        sums = _Sums(
            np.einsum("cab,ab->c", grid_a, ops.ones), np.zeros(c), np.zeros(c), np.zeros(c)
        )
        if need_s:
            sums.aa = np.einsum("cab,cab->c", ops.py @ grid_a @ ops.px, grid_a)
        for r in live:
            g_proj, s_proj = targets[r].projections(ops)
            if need_g:
                sums.ag[r] = np.sum(grid_a[r] * g_proj)
            if need_s:
                sums.as_[r] = np.sum(grid_a[r] * s_proj)
        return sums
    a = (u - lo[:, None]) / den[:, None]
    sums = _Sums(a.sum(axis=1), np.zeros(c), np.zeros(c), np.zeros(c))
    if need_s:
        sums.aa = np.einsum("ij,ij->i", a, a)
    for r in live:
        if need_g:
            sums.ag[r] = np.sum(a[r], where=targets[r].mask)
        if need_s:
            sums.as_[r] = np.dot(a[r], targets[r].soft.ravel())
    return sums


def _score_chunk(
    maps: np.ndarray,
    targets: Sequence[Target],
    protocol: MetricProtocol,
    families: Collection[str],
    ops: GridOps,
    ws: _Workspace,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score c maps (c, gh, gw) against their prepared targets."""
    from ssl_wc.metrics import compiled  # numba: imported on first scoring, not at import

    c = maps.shape[0]
    H, W = ops.size
    n = H * W
    u, d = ws.u[:c], ws.d[:c]
    lo, hi, arg = np.empty(c), np.empty(c), np.empty(c, np.int64)
    ay, ax = axis_weights(maps.shape[1], H), axis_weights(maps.shape[2], W)
    compiled.upsample_extrema(
        maps, ay.i0, ay.i1, ay.w0, ay.w1, ax.i0, ax.i1, ax.w0, ax.w1, u, lo, hi, arg
    )
    span = hi - lo
    den = span + NORM_EPS
    empty = np.array([tg.empty for tg in targets])
    live = [r for r in range(c) if not empty[r]]
    sums = _heatmap_sums(maps, u, lo, den, targets, live, ops, families)
    tf: dict[str, np.ndarray] = {}
    pp: dict[str, np.ndarray] = {}
    nan = np.full(c, np.nan)

    if "coverage" in families:
        with np.errstate(divide="ignore", invalid="ignore"):
            cov = np.where(sums.a < COVERAGE_MIN_MASS, 0.0, np.clip(sums.ag / sums.a, 0.0, 1.0))
        tf["coverage"] = np.where(empty, np.nan, cov)

    if "pointing" in families:
        for j, col in enumerate(protocol.pointing_columns()):
            hits = nan.copy()
            for r in live:
                hits[r] = float(targets[r].near[j][arg[r]])
            tf[col] = hits

    if "mse" in families:
        s_sq = np.array([tg.s_sq for tg in targets])
        mse = np.maximum(sums.aa - 2.0 * sums.as_ + s_sq, 0.0) / n
        tf["mse"] = np.where(empty, np.nan, mse)

    cmin = KL_EPS * den
    if "topk" in families:  # also fills d = (U - min) + cmin = (A + 1e-8) * den
        _topk_metrics(u, d, lo, hi, cmin, targets, protocol, ws, tf, pp)
    elif "kl" in families:
        np.subtract(u, lo[:, None], out=d)
        np.add(d, cmin[:, None], out=d)

    if "kl" in families:
        np.log(d, out=d)
        dot = nan.copy()
        for r in live:  # one dot per row: the result must not depend on the chunking
            dot[r] = np.dot(d[r], targets[r].s_kl)
        ent = np.array([tg.s_kl_entropy for tg in targets])
        # sum S' log A' with A' = (A + eps) / Z and A + eps = d / den, Z = sum(A) + n*eps
        tf["kl"] = ent - (dot - np.log(den) - np.log(sums.a + n * KL_EPS))

    if "emd" in families:
        tf["emd"] = _emd_column(u, lo, den, targets, live, protocol, ops)
    return tf, pp


def _topk_metrics(
    u: np.ndarray,
    d: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    cmin: np.ndarray,
    targets: Sequence[Target],
    protocol: MetricProtocol,
    ws: _Workspace,
    tf: dict[str, np.ndarray],
    pp: dict[str, np.ndarray],
) -> None:
    c, n = u.shape
    k_p = np.array(protocol.topk_counts(), dtype=np.int64)
    k_top = min(int(protocol.topk_pointing_k), n)
    areas = np.array([tg.area for tg in targets], dtype=np.int64)
    ks = np.empty((c, k_p.size + 2), dtype=np.int64)
    ks[:, : k_p.size] = k_p
    ks[:, -2] = k_top
    ks[:, -1] = np.maximum(areas, 1)
    from ssl_wc.metrics import compiled

    g_off = np.zeros(c + 1, dtype=np.int64)
    np.cumsum(areas, out=g_off[1:])
    g_idx = np.concatenate([tg.idx for tg in targets]).astype(np.int64, copy=False)
    inter_n = np.empty(ks.shape, dtype=np.int64)
    compiled.topk_intersections(u, d, ws.keys[:c], lo, hi, cmin, ks, g_idx, g_off, inter_n)
    inter = inter_n.astype(np.float64)
    empty = areas == 0
    g_area = np.where(empty, np.nan, areas.astype(np.float64))
    tf["topk_pointing"] = np.where(empty, np.nan, inter[:, -2] / k_top)
    tf["relevance_rank_acc"] = inter[:, -1] / g_area
    tf["annotation_area"] = g_area / n
    inter_p = inter[:, : k_p.size]
    g = g_area[:, None] / n
    a = np.broadcast_to(k_p / n, inter_p.shape)
    iou = inter_p / (k_p + g_area[:, None] - inter_p + IOU_EPS)
    max_iou = np.minimum(a, g) / np.maximum(a, g)
    pp["iou"] = iou
    pp["attention_area"] = a.copy()
    pp["random_iou"] = a * g / (a + g - a * g)
    pp["max_iou"] = max_iou
    pp["iou_over_max"] = iou / max_iou
    pp["corloc"] = np.where(np.isnan(iou), np.nan, (iou >= 0.5).astype(np.float64))


def _emd_column(
    u: np.ndarray,
    lo: np.ndarray,
    den: np.ndarray,
    targets: Sequence[Target],
    live: list[int],
    protocol: MetricProtocol,
    ops: GridOps,
) -> np.ndarray:
    c = u.shape[0]
    H, W = ops.size
    grid = int(protocol.emd_grid)
    ay, ax = axis_weights(H, grid), axis_weights(W, grid)
    rows = np.unique(np.concatenate([ay.i0, ay.i1]))
    cols = np.unique(np.concatenate([ax.i0, ax.i1]))
    sampled = u.reshape(c, H, W)[:, rows][:, :, cols]
    sampled = np.maximum((sampled - lo[:, None, None]) / den[:, None, None], 0.0)
    hists = to_distribution(resample_sampled(sampled, rows, cols, grid, (H, W)))
    from ssl_wc.metrics import compiled

    cost = grid_cost(grid)
    cells = grid * grid
    q = np.zeros((c, cells))
    for r in live:
        q[r] = targets[r].s_hist
    pos, neg = np.empty((c, cells)), np.empty((c, cells))
    sub = np.empty((c, cells * cells))
    sizes = np.empty((c, 2), np.int64)
    compiled.transport_problems(np.ascontiguousarray(hists), q, cost, pos, neg, sub, sizes)
    out = np.full(c, np.nan)
    for r in live:
        a, b = sizes[r]
        if a == 0 or b == 0:
            out[r] = 0.0
        else:
            out[r] = solve_transport(pos[r, :a], neg[r, :b], sub[r, : a * b].reshape(a, b))
    return out


def _as_maps(maps: np.ndarray) -> np.ndarray:
    arr = np.asarray(maps)
    if arr.ndim != 3:
        raise ValueError(f"maps must be (N, grid_h, grid_w), got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"maps must be numeric, got dtype {arr.dtype}")
    return arr


def score_maps(
    maps: np.ndarray,
    targets: Sequence[np.ndarray],
    protocol: MetricProtocol = MetricProtocol(),
    *,
    families: Collection[str] | None = None,
    chunk_size: int = 8,
    workers: int = 1,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Score patch-grid maps against box targets.

    Args:
        maps: (N, gh, gw) patch grids (row = y); a grid equal to ``eval_size`` is used
            as is (the half-pixel resize with scale 1 is the identity).
        targets: N box arrays, each (k_i, 4) as (left, top, width, height) fractions;
            k_i = 0 is an empty target.
        protocol: the :class:`MetricProtocol`.
        families: subset of :data:`FAMILIES` to compute (default: all).
        chunk_size: maps per chunk; memory is O(chunk_size * H * W) per worker.
        workers: threads (results do not depend on it).

    Returns:
        ``(threshold_free, per_percentile)``: column -> (N,) float64 array and column
        -> (N, P) float64 array, P = len(protocol.percentiles). Hits are 1.0/0.0; NaN
        for an empty target (every target-dependent column) or an invalid map.
    """
    fams = frozenset(FAMILIES if families is None else families)
    unknown = fams - set(FAMILIES)
    if unknown:
        raise ValueError(f"unknown metric families {sorted(unknown)}; known: {FAMILIES}")
    arr = _as_maps(maps)
    N = arr.shape[0]
    if len(targets) != N:
        raise ValueError(f"got {N} maps but {len(targets)} targets")
    if chunk_size < 1 or workers < 1:
        raise ValueError("chunk_size and workers must be >= 1")
    H, W = (int(v) for v in protocol.eval_size)
    n_p = len(protocol.percentiles)
    tf_out = {col: np.full(N, np.nan) for col in threshold_free_columns(protocol, fams)}
    pp_out = (
        {col: np.full((N, n_p), np.nan) for col in PER_PERCENTILE_COLUMNS} if "topk" in fams else {}
    )
    if N == 0:
        return tf_out, pp_out

    boxes = [as_boxes(t) for t in targets]
    keys = [target_key(b) for b in boxes]
    groups: dict[bytes, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    order = np.fromiter((i for g in groups.values() for i in g), dtype=np.intp, count=N)
    chunk_size = min(chunk_size, N)
    cache = TargetCache(protocol, capacity=4 * chunk_size * workers + 16)
    ops = grid_ops((int(arr.shape[1]), int(arr.shape[2])), (H, W))
    local = threading.local()

    def run(start: int) -> None:
        idx = order[start : start + chunk_size]
        ws = getattr(local, "ws", None)
        if ws is None:
            ws = local.ws = _Workspace.make(chunk_size, H * W)
        m = np.array(arr[idx], dtype=np.float64)
        valid = np.isfinite(m).all(axis=(1, 2)) & (np.abs(m).max(axis=(1, 2)) <= _MAX_ABS)
        m[~valid] = 0.0
        tgs = [cache.get(keys[i], boxes[i]) for i in idx]
        tf, pp = _score_chunk(m, tgs, protocol, fams, ops, ws)
        for col, vals in tf.items():
            tf_out[col][idx] = np.where(valid, vals, np.nan)
        for col, vals in pp.items():
            pp_out[col][idx] = np.where(valid[:, None], vals, np.nan)

    starts = range(0, N, chunk_size)
    # The BLAS calls here are tiny; BLAS worker threads would only spin beside ours.
    with threadpool_limits(limits=1, user_api="blas"):
        if workers == 1:
            for s in starts:
                run(s)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for _ in pool.map(run, starts):
                    pass
    return tf_out, pp_out
