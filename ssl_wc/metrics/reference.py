"""Straightforward per-map implementation of every metric, for tests and benchmarks.

Each metric is written as directly from its definition as possible (full sort for
top-k, brute-force distances for pointing, pixel sums, SciPy's Mann-Whitney U for the
ROC-AUC, a sorted map for the Gini index, SciPy's entropy, explicit pixel blocks and the
full 64 x 64 transport problem for EMD), sharing no code with ``kernels.py`` beyond the
box validation and the EMD cost matrix. The interpolation weights are recomputed here
with a Python loop; they use the same float64 operations as ``heatmap.py``, so upsampled
values (and so ties) are bit-identical and the two implementations must agree to
rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ssl_wc.metrics.emd import grid_cost, pot
from ssl_wc.metrics.masks import as_boxes
from ssl_wc.metrics.protocol import (
    COVERAGE_MIN_MASS,
    IOU_EPS,
    KL_EPS,
    NORM_EPS,
    MetricProtocol,
    topk_count,
)


def ref_weights(in_size: int, out_size: int) -> list[tuple[int, int, float, float]]:
    """Per output index: (i0, i1, w0, w1) of half-pixel bilinear interpolation."""
    out = []
    scale = in_size / out_size
    for i in range(out_size):
        src = (i + 0.5) * scale - 0.5
        src = min(max(src, 0.0), float(in_size - 1))
        i0 = min(math.floor(src), in_size - 1)
        lam = src - i0
        out.append((i0, min(i0 + 1, in_size - 1), 1.0 - lam, lam))
    return out


def ref_resize(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize one (h, w) map: rows first (along x), then columns (along y)."""
    m = np.asarray(m, dtype=np.float64)
    h, w = m.shape
    H, W = size
    rows = np.empty((h, W))
    for j, (i0, i1, w0, w1) in enumerate(ref_weights(w, W)):
        rows[:, j] = m[:, i0] * w0 + m[:, i1] * w1
    out = np.empty((H, W))
    for i, (i0, i1, w0, w1) in enumerate(ref_weights(h, H)):
        out[i, :] = rows[i0, :] * w0 + rows[i1, :] * w1
    return out


def ref_mask(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    H, W = size
    mask = np.zeros((H, W), dtype=bool)
    for left, top, width, height in as_boxes(boxes):
        x0, x1 = min(max(left, 0.0), 1.0), min(max(left + width, 0.0), 1.0)
        y0, y1 = min(max(top, 0.0), 1.0), min(max(top + height, 0.0), 1.0)
        r0 = min(math.floor(y0 * H), H - 1)
        c0 = min(math.floor(x0 * W), W - 1)
        r1 = max(math.floor(y1 * H), r0 + 1)
        c1 = max(math.floor(x1 * W), c0 + 1)
        for r in range(r0, r1):
            for c in range(c0, c1):
                mask[r, c] = True
    return mask


def ref_soft_target(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    H, W = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    out = np.zeros((H, W))
    for left, top, width, height in as_boxes(boxes):
        x0, x1 = min(max(left, 0.0), 1.0), min(max(left + width, 0.0), 1.0)
        y0, y1 = min(max(top, 0.0), 1.0), min(max(top + height, 0.0), 1.0)
        cx, cy = (x0 + x1) / 2 * W, (y0 + y1) / 2 * H
        sx = max(max((x1 - x0) * W, 1.0) / 4, 1.0)
        sy = max(max((y1 - y0) * H, 1.0) / 4, 1.0)
        g = np.exp(-((xx + 0.5 - cx) ** 2 / (2 * sx**2) + (yy + 0.5 - cy) ** 2 / (2 * sy**2)))
        out = np.maximum(out, g / g.max())
    if out.max() > 0:
        out = out / out.max()
    return np.clip(out, 0.0, 1.0)


def ref_area_cells(m: np.ndarray, grid: int) -> np.ndarray:
    """(g, g) cells, each the mean of the pixels it covers (pixels cut by a cell border
    count with the covered fraction of their area)."""
    H, W = m.shape
    out = np.zeros((grid, grid))
    for i in range(grid):
        y0, y1 = i * H / grid, (i + 1) * H / grid
        for j in range(grid):
            x0, x1 = j * W / grid, (j + 1) * W / grid
            total = 0.0
            for y in range(math.floor(y0), min(H, math.ceil(y1))):
                wy = min(y + 1.0, y1) - max(float(y), y0)
                for x in range(math.floor(x0), min(W, math.ceil(x1))):
                    wx = min(x + 1.0, x1) - max(float(x), x0)
                    total += wy * wx * m[y, x]
            out[i, j] = total / ((y1 - y0) * (x1 - x0))
    return out


def ref_emd(a: np.ndarray, s: np.ndarray, grid: int, *, area: bool) -> float:
    """Full g^2 x g^2 transport problem with ``ot.emd2``, area-averaged or
    point-sampled (half-pixel bilinear, no antialias) cells."""

    def dist(m: np.ndarray) -> np.ndarray:
        m = np.maximum(m, 0.0)
        cells = (ref_area_cells(m, grid) if area else ref_resize(m, (grid, grid))).ravel()
        total = cells.sum()
        return cells / total if total > 0 else np.full(cells.size, 1.0 / cells.size)

    return float(pot().emd2(dist(a), dist(s), np.array(grid_cost(grid))))


def ref_roc_auc(u: np.ndarray, g: np.ndarray) -> float:
    """P(u_in > u_out) + P(u_in = u_out) / 2 over pixels inside / outside G (SciPy's
    Mann-Whitney U divided by the number of pairs); NaN when either side is empty."""
    from scipy.stats import mannwhitneyu

    inside, outside = u[g], u[~g]
    if inside.size == 0 or outside.size == 0:
        return math.nan
    res = mannwhitneyu(inside, outside, alternative="two-sided", method="asymptotic")
    return float(res.statistic) / (inside.size * outside.size)


def ref_gini(a: np.ndarray) -> float:
    """Hurley & Rickard's Gini index of a non-negative map: sort ascending,
    1 - 2 sum_k (a_k / |a|_1) (n - k + 1/2) / n; 0 for an all-zero map."""
    x = np.sort(a.ravel())
    n = x.size
    total = x.sum()
    if total <= 0:
        return 0.0
    k = np.arange(1, n + 1)
    return float(1.0 - 2.0 * np.sum((x / total) * (n - k + 0.5) / n))


def ref_entropy(a: np.ndarray) -> float:
    """Shannon entropy (nats) of a / sum(a); an all-zero map counts as uniform."""
    from scipy.stats import entropy

    x = a.ravel()
    if x.sum() <= 0:
        return math.log(x.size)
    return float(entropy(x))


def reference_scores(
    grid_map: np.ndarray, boxes: np.ndarray, protocol: MetricProtocol = MetricProtocol()
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """All metrics of one (gh, gw) map against one target, from the definitions."""
    H, W = (int(v) for v in protocol.eval_size)
    n = H * W
    P = len(protocol.percentiles)
    boxes = as_boxes(boxes)
    m = np.asarray(grid_map, dtype=np.float64)
    nan_tf = dict.fromkeys(
        [
            "coverage",
            *protocol.pointing_columns(),
            "topk_pointing",
            "relevance_rank_acc",
            "annotation_area",
            "roc_auc",
            "mse",
            "kl",
            "emd",
            "emd_point",
            "gini",
            "entropy",
        ],
        math.nan,
    )
    nan_pp = {
        c: np.full(P, np.nan)
        for c in ("iou", "random_iou", "max_iou", "iou_over_max", "corloc", "attention_area")
    }
    if not np.isfinite(m).all() or np.abs(m).max() > 1e150:
        return nan_tf, nan_pp

    u = ref_resize(m, (H, W))
    a = (u - u.min()) / (u.max() - u.min() + NORM_EPS)
    order = np.argsort(-u.ravel(), kind="stable")  # value desc, then index asc
    ks = [topk_count(n, p) for p in protocol.percentiles]
    nan_pp["attention_area"] = np.array([k / n for k in ks])
    nan_tf["gini"] = ref_gini(a)
    nan_tf["entropy"] = ref_entropy(a)
    if boxes.shape[0] == 0:
        return nan_tf, nan_pp

    g = ref_mask(boxes, (H, W))
    gf = g.ravel()
    area = int(gf.sum())
    tf: dict[str, float] = {"gini": nan_tf["gini"], "entropy": nan_tf["entropy"]}
    pp: dict[str, np.ndarray] = {"attention_area": nan_pp["attention_area"]}

    total = a.sum()
    tf["coverage"] = 0.0 if total < COVERAGE_MIN_MASS else float((a * g).sum() / total)

    arg = int(np.argmax(u.ravel()))
    ay, ax = divmod(arg, W)
    gy, gx = np.nonzero(g)
    nearest = math.sqrt(float(((gy - ay) ** 2 + (gx - ax) ** 2).min()))
    for t, col in zip(protocol.pointing_tolerances_px, protocol.pointing_columns(), strict=True):
        tf[col] = 1.0 if nearest <= t else 0.0

    def hits(k: int) -> int:
        return int(gf[order[:k]].sum())

    k_top = min(int(protocol.topk_pointing_k), n)
    tf["topk_pointing"] = hits(k_top) / k_top
    tf["relevance_rank_acc"] = hits(area) / area
    tf["annotation_area"] = area / n
    tf["roc_auc"] = ref_roc_auc(u.ravel(), gf)

    iou, rnd, mx = [], [], []
    for k in ks:
        inter = hits(k)
        iou.append(inter / (k + area - inter + IOU_EPS))
        fa, fg = k / n, area / n
        rnd.append(fa * fg / (fa + fg - fa * fg))
        mx.append(min(fa, fg) / max(fa, fg))
    pp["iou"] = np.array(iou)
    pp["random_iou"] = np.array(rnd)
    pp["max_iou"] = np.array(mx)
    pp["iou_over_max"] = pp["iou"] / pp["max_iou"]
    pp["corloc"] = (pp["iou"] >= 0.5).astype(np.float64)

    s = ref_soft_target(boxes, (H, W))
    tf["mse"] = float(np.mean((np.clip(a, 0, 1) - np.clip(s, 0, 1)) ** 2))
    sp = np.maximum(np.nan_to_num(s), 0.0) + KL_EPS
    ap = np.maximum(np.nan_to_num(a), 0.0) + KL_EPS
    sp, ap = sp / sp.sum(), ap / ap.sum()
    tf["kl"] = float(np.sum(sp * np.log(sp / ap)))
    tf["emd"] = ref_emd(a, s, int(protocol.emd_grid), area=True)
    tf["emd_point"] = ref_emd(a, s, int(protocol.emd_grid), area=False)
    return tf, pp


def reference_score_maps(
    maps: np.ndarray,
    targets: Sequence[np.ndarray],
    protocol: MetricProtocol = MetricProtocol(),
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`reference_scores` over a batch, in the layout of ``score_maps``."""
    tfs, pps = [], []
    for m, t in zip(maps, targets, strict=True):
        tf, pp = reference_scores(m, t, protocol)
        tfs.append(tf)
        pps.append(pp)
    if not tfs:
        return {}, {}
    tf_out = {k: np.array([d[k] for d in tfs]) for k in tfs[0]}
    pp_out = {k: np.stack([d[k] for d in pps]) for k in pps[0]}
    return tf_out, pp_out
