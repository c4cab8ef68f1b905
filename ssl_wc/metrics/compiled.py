"""Compiled inner loops of :func:`ssl_wc.metrics.kernels.score_map_targets` (numba).

Every loop runs over one map (or one map and target pair) at a time and releases the
GIL, so the threads of ``score_map_targets(workers=...)`` run them in parallel:

- :func:`upsample_extrema`: the half-pixel bilinear resize of ``heatmap.resize`` with
  the same float64 operations in the same order (``x0*w0 + x1*w1``, horizontal pass
  first; no fused multiply-add), so the values are bit-identical to it and to
  ``reference.py``; plus min, max and the first flat index of the max.
- :func:`rank_maps`: per map, ``x = U - min``, ``D = x + c`` (c > 0) and, when asked,
  facts of the exact order of the pixels by (U descending, flat index ascending)
  without sorting them: for every target of the map (a bit per target on each pixel)
  how many of its pixels lie in the top k for each requested k, the sum of their
  ascending mid-ranks (ties share the mean of their ranks: the Mann-Whitney U), and the
  rank-weighted sum of the map that gives the Gini index. Pixels are bucketed by the
  float64 bits of U - min (ordered like U); a pixel's position is the count of higher
  buckets' pixels plus the members of its own bucket above it, found by scanning that
  (small) bucket, or by binary search in a large one sorted once.
- :func:`transport_pairs`: the reduced Wasserstein-1 problem of every (map, target)
  pair of histograms; pairs with a single source or sink cell are solved in closed form.

The loops are compiled on first use and cached next to this file (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

BUCKETS = 1 << 16
"""Buckets of :func:`rank_maps` (keys are uint16)."""
SMALL = 16
"""A bucket with more members is sorted once (stably) and searched, not scanned."""
INSERTION = 64
"""Buckets up to this size are sorted by insertion (linear when nearly sorted, as the
tie groups of upsampled edge strips are), larger ones by merge sort."""
TINY = 1e-300
"""``x`` is stored as max(x, TINY) so that its logarithm is finite (TINY * log(TINY)
is -7e-298: nothing next to any non-zero map)."""

_BLOCK = 64


@njit(cache=True, nogil=True)
def first_equal(values: np.ndarray, target: float) -> int:  # pragma: no cover - compiled
    """Lowest index p with ``values[p] == target`` (-1 if none); tests 64 at a time."""
    n = values.shape[0]
    full = n - n % _BLOCK
    for s in range(0, full, _BLOCK):
        hits = np.int32(0)  # a count, not a flag: this loop vectorises
        for q in range(_BLOCK):
            hits += np.int32(values[s + q] == target)
        if hits:
            for q in range(_BLOCK):
                if values[s + q] == target:
                    return s + q
    for p in range(full, n):
        if values[p] == target:
            return p
    return -1


@njit(cache=True, nogil=True)
def upsample_extrema(
    maps: np.ndarray,
    yi0: np.ndarray,
    yi1: np.ndarray,
    yw0: np.ndarray,
    yw1: np.ndarray,
    xi0: np.ndarray,
    xi1: np.ndarray,
    xw0: np.ndarray,
    xw1: np.ndarray,
    u: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    arg: np.ndarray,
) -> None:  # pragma: no cover - compiled; covered through score_map_targets
    """Resize (c, h, w) maps into ``u`` (c, H*W); min, max and first argmax per map.

    ``out[i, j] = row[i0y[i]][j]*w0y[i] + row[i1y[i]][j]*w1y[i]`` with
    ``row[y][j] = m[y, i0x[j]]*w0x[j] + m[y, i1x[j]]*w1x[j]``: value times weight,
    then the sum, exactly as numpy evaluates ``heatmap.resize``. Extrema are kept per
    column while the rows are written, then reduced.
    """
    c, h, w = maps.shape
    H = yi0.shape[0]
    W = xi0.shape[0]
    rows = np.empty((h, W))
    cmax = np.empty(W)
    cmin = np.empty(W)
    same = h == H and w == W  # weights (1, 0) both ways: a copy, as in heatmap.resize
    for r in range(c):
        m = maps[r]
        out = u[r]
        for y in range(h):
            for j in range(W):
                if same:
                    rows[y, j] = m[y, j]
                else:
                    rows[y, j] = m[y, xi0[j]] * xw0[j] + m[y, xi1[j]] * xw1[j]
        cmax[:] = -np.inf
        cmin[:] = np.inf
        for i in range(H):
            a = rows[yi0[i]]
            b = rows[yi1[i]]
            wa = yw0[i]
            wb = yw1[i]
            base = i * W
            for j in range(W):
                v = a[j] if same else a[j] * wa + b[j] * wb
                out[base + j] = v
                cmax[j] = v if v > cmax[j] else cmax[j]
                cmin[j] = v if v < cmin[j] else cmin[j]
        best = cmax.max()
        lo[r] = cmin.min()
        hi[r] = best
        at = first_equal(out, best)
        if at < 0:
            raise ValueError("maps must be finite")
        arg[r] = at


@njit(cache=True, nogil=True)
def _sort_segment(vals: np.ndarray, perm: np.ndarray, s: int, e: int) -> None:  # pragma: no cover
    """Sort ``vals[s:e]`` descending, stably (equal values keep their order), ``perm``
    moved along."""
    if e - s <= INSERTION:
        for i in range(s + 1, e):
            v = vals[i]
            if v <= vals[i - 1]:
                continue
            p = perm[i]
            j = i - 1
            while j >= s and vals[j] < v:
                vals[j + 1] = vals[j]
                perm[j + 1] = perm[j]
                j -= 1
            vals[j + 1] = v
            perm[j + 1] = p
        return
    seg_v = vals[s:e].copy()
    seg_p = perm[s:e].copy()
    order = np.argsort(-seg_v, kind="mergesort")
    for q in range(e - s):
        vals[s + q] = seg_v[order[q]]
        perm[s + q] = seg_p[order[q]]


@njit(cache=True, nogil=True)
def _first_at_most(vals: np.ndarray, s: int, e: int, v: float) -> int:  # pragma: no cover
    """First index in [s, e) of descending ``vals`` with ``vals[i] <= v`` (e if none)."""
    while s < e:
        mid = (s + e) >> 1
        if vals[mid] > v:
            s = mid + 1
        else:
            e = mid
    return s


@njit(cache=True, nogil=True)
def _first_below(vals: np.ndarray, s: int, e: int, v: float) -> int:  # pragma: no cover
    """First index in [s, e) of descending ``vals`` with ``vals[i] < v`` (e if none)."""
    while s < e:
        mid = (s + e) >> 1
        if vals[mid] >= v:
            s = mid + 1
        else:
            e = mid
    return s


@njit(cache=True, nogil=True)
def _count_below(perm: np.ndarray, s: int, e: int, p: int) -> int:  # pragma: no cover
    """How many of the ascending ``perm[s:e]`` are below ``p``."""
    lo = s
    while s < e:
        mid = (s + e) >> 1
        if perm[mid] < p:
            s = mid + 1
        else:
            e = mid
    return s - lo


@njit(cache=True, nogil=True)
def rank_maps(
    u: np.ndarray,
    lo: np.ndarray,
    cmin: np.ndarray,
    d: np.ndarray,
    xl: np.ndarray,
    sums: np.ndarray,
    any_idx: np.ndarray,
    tbits: np.ndarray,
    ks: np.ndarray,
    hits: np.ndarray,
    rank_sum: np.ndarray,
    with_order: bool,
) -> None:  # pragma: no cover - compiled; covered through score_map_targets
    """Per map r of ``u`` (c, n): ``d = (u - lo) + cmin``, ``xl = max(u - lo, TINY)``,
    ``sums[r, 0] = sum(u - lo)`` and, with ``with_order``, from the exact order by
    (u descending, index ascending), for the targets j whose pixels carry bit j of
    ``tbits`` (n,) uint64 (``any_idx``: the pixels with any bit set; at most 64
    targets):

    - ``hits[r, j, m]``: G_j's pixels among the first ``ks[j, m]`` of the order (the
      counts ``ks[:, :-1]`` are the same for every target, the last one is per target);
    - ``rank_sum[r, j]``: the sum of G_j's ascending mid-ranks (tied values share the
      mean of their 1-based ranks);
    - ``sums[r, 1] = sum_k k * x_(k)`` over x = u - lo in ascending order (Gini).

    The order is never materialised. Pixels are bucketed by the float64 bits of
    x = u - lo (non-negative, so its bits are ordered like u; equal u give equal x,
    hence the same bucket; x = 0 has a bucket of its own), with a shift that spreads
    the map's own range of positive x over the buckets, and scattered into their
    buckets in index order with their values beside them. A pixel's position is the
    count of pixels in higher buckets plus the members of its bucket above it (and the
    equal ones before it in index order); its mid-rank likewise. Small buckets are
    scanned; a bucket of more than ``SMALL`` members is sorted once (stably) and
    searched. For the Gini sum, a bucket with ascending values y_1..y_m above
    ``below`` pixels contributes sum_i (below + i) y_i =
    (below + (m + 1)/2) sum y + (1/2) sum_{i<j} |y_i - y_j|: the first part pixel by
    pixel while scattering, the second for the buckets with several members only.
    """
    c, n = u.shape
    t = rank_sum.shape[1]
    nk = ks.shape[1]
    hist = np.zeros(BUCKETS, np.int32)
    start = np.empty(BUCKETS + 1, np.int32)
    multi = np.empty(BUCKETS, np.int32)
    keys = np.empty(n, np.uint16)
    perm = np.empty(n, np.int32)
    vals = np.empty(n)
    # the counts shared by every target (ks[:, :-1]), ascending, and where each goes
    n_shared = nk - 1
    order = np.argsort(ks[0, :n_shared]) if t > 0 else np.zeros(0, np.int64)
    shared = ks[0, :n_shared][order] if t > 0 else np.zeros(0, np.int64)
    slots = np.zeros((max(t, 1), n_shared + 1), np.int64)
    below_g = np.zeros(max(t, 1), np.int64)
    rsum = np.zeros(max(t, 1))
    one = np.empty(1)
    one_bits = one.view(np.int64)
    for r in range(c):
        ur = u[r]
        dr = d[r]
        xr = xl[r]
        low = lo[r]
        eps = cmin[r]
        total = 0.0
        pmin = np.inf
        pmax = 0.0
        for p in range(n):
            x = ur[p] - low
            total += x
            xr[p] = x if x > TINY else TINY
            dr[p] = x + eps
            if x > 0.0:
                pmin = x if x < pmin else pmin
                pmax = x if x > pmax else pmax
        sums[r, 0] = total
        if not with_order:
            continue
        xbits = xr.view(np.int64)  # bits of max(x, TINY): ordered like x for x > 0
        if pmax > 0.0:
            one[0] = pmin
            base = one_bits[0]
            one[0] = pmax
            span = one_bits[0] - base
            shift = 0
            while (span >> shift) >= BUCKETS - 2:
                shift += 1
        else:
            base = 0
            shift = 0
        for p in range(n):
            k = 0
            if ur[p] - low > 0.0:
                k = ((xbits[p] - base) >> shift) + 1
            keys[p] = k
            hist[k] += 1
        kmax = ((span >> shift) + 1) if pmax > 0.0 else 0
        # bucket b holds positions [start[b + 1], start[b]) of the order (start[0] = n)
        pos = 0
        n_multi = 0
        for b in range(kmax, -1, -1):  # largest values first
            m = hist[b]
            start[b + 1] = pos
            hist[b] = pos  # the next free slot of bucket b
            pos += m
            if m > 1:
                multi[n_multi] = b
                n_multi += 1
        start[0] = n
        weighted = 0.0
        for p in range(n):  # index order: equal values stay in index order
            k = keys[p]
            q = hist[k]
            perm[q] = p
            v = ur[p]
            vals[q] = v
            hist[k] = q + 1
            s = start[k + 1]
            e = start[k]
            # ascending ranks of bucket k are n - e + 1 .. n - s: their mean, times x
            weighted += (v - low) * (n - 0.5 * (s + e - 1))
        spread = 0.0
        for i in range(n_multi):
            b = multi[i]
            s = start[b + 1]
            e = start[b]
            m = e - s
            if m > SMALL:
                _sort_segment(vals, perm, s, e)
                for q in range(m):
                    spread += (m - 2 * q - 1) * (vals[s + q] - low)
            else:
                for a in range(s, e):
                    va = vals[a]
                    for q in range(a + 1, e):
                        spread += abs(va - vals[q])
        sums[r, 1] = weighted + 0.5 * spread
        slots[:, :] = 0
        below_g[:] = 0
        rsum[:] = 0.0
        for i in range(any_idx.shape[0]):
            p = any_idx[i]
            k = keys[p]
            s = start[k + 1]
            e = start[k]
            m = e - s
            if m == 1:
                mid = n - s
                at = s
            elif m > SMALL:  # sorted: binary searches
                v = ur[p]
                i0 = _first_at_most(vals, s, e, v)
                i1 = _first_below(vals, i0, e, v)
                mid = (n - e) + (e - i1) + 0.5 * (i1 - i0 + 1)
                at = i0 + _count_below(perm, i0, i1, p)
            else:
                v = ur[p]
                lt = 0
                eq = 0
                before = 0
                for a in range(s, e):
                    w = vals[a]
                    lt += w < v
                    same = w == v
                    eq += same
                    before += same & (perm[a] < p)
                mid = (n - e) + lt + 0.5 * (eq + 1)
                at = s + (m - lt - eq) + before  # 0-based position in the order
            slot = 0  # how many of the shared counts are <= at
            while slot < n_shared and shared[slot] <= at:
                slot += 1
            w_bits = tbits[p]
            for j in range(t):
                if (w_bits >> np.uint64(j)) & np.uint64(1):
                    rsum[j] += mid
                    slots[j, slot] += 1
                    below_g[j] += at < ks[j, nk - 1]
        for j in range(t):
            rank_sum[r, j] = rsum[j]
            acc = 0
            for q in range(n_shared):  # G_j's pixels at positions below shared[q]
                acc += slots[j, q]
                hits[r, j, order[q]] = acc
            hits[r, j, nk - 1] = below_g[j]
        hist[: kmax + 1] = 0


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def row_dots(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """``out[r, j] = sum_k a[r, k] * b[j, k]`` for (c, m) ``a`` and (t, m) ``b``.

    Each value depends only on its two rows (a matrix product would vary with the
    chunk's shape in the last bit), so results never depend on how maps are chunked.
    """
    c, m = a.shape
    t = b.shape[0]
    for r in range(c):
        ar = a[r]
        for j in range(t):
            br = b[j]
            acc = 0.0
            for k in range(m):
                acc += ar[k] * br[k]
            out[r, j] = acc


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def paired_dots(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """``out[r] = sum_k a[r, k] * b[r, k]`` (row by row, like :func:`row_dots`)."""
    c, m = a.shape
    for r in range(c):
        ar = a[r]
        br = b[r]
        acc = 0.0
        for k in range(m):
            acc += ar[k] * br[k]
        out[r] = acc


@njit(cache=True, nogil=True)
def _two_ends(
    mass: np.ndarray,
    cells: np.ndarray,
    end0: int,
    end1: int,
    need0: float,
    cost: np.ndarray,
    sources: bool,
    delta: np.ndarray,
    order: np.ndarray,
) -> float:  # pragma: no cover - compiled; covered through score_map_targets
    """Exact optimum of moving ``mass`` (on ``cells``) to two cells, ``need0`` of it to
    ``end0`` and the rest to ``end1`` (or, with ``sources`` false, from two cells onto
    ``mass``): the cost is sum_i mass_i c(i, end1) + sum_i f_i (c(i, end0) - c(i, end1))
    with sum f_i = need0 and 0 <= f_i <= mass_i, a fractional knapsack whose optimum
    fills ``end0`` from the cells with the smallest cost difference first."""
    k = mass.shape[0]
    base = 0.0
    for i in range(k):
        c0 = cost[cells[i], end0] if sources else cost[end0, cells[i]]
        c1 = cost[cells[i], end1] if sources else cost[end1, cells[i]]
        base += mass[i] * c1
        delta[i] = c0 - c1
        order[i] = i
    for i in range(1, k):  # insertion sort of order by delta (k <= cells)
        o = order[i]
        v = delta[o]
        j = i - 1
        while j >= 0 and delta[order[j]] > v:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = o
    left = need0
    total = base
    for i in range(k):
        if left <= 0.0:
            break
        o = order[i]
        f = mass[o] if mass[o] < left else left
        total += f * delta[o]
        left -= f
    return total


@njit(cache=True, nogil=True)
def transport_pairs(
    p: np.ndarray,
    q: np.ndarray,
    cost: np.ndarray,
    pos: np.ndarray,
    neg: np.ndarray,
    sub: np.ndarray,
    sizes: np.ndarray,
    closed: np.ndarray,
) -> None:  # pragma: no cover - compiled; covered through score_map_targets
    """The reduced transport problem of every pair of (c, m) cells p and (t, m) histograms q.

    Each row of p (non-negative) is first normalised to sum 1 here, row by row, so
    that a value never depends on the other rows of the chunk (an all-zero row counts
    as uniform); q's rows must already sum to 1.

    W1 with a metric cost moves only the positive part of ``p - q`` onto its negative
    part (mass present in both stays, by the triangle inequality). For pair (r, j):
    ``pos[r, j, :a]`` the positive part, ``neg[r, j, :b]`` the negative part rescaled to
    the same total, ``sub[r, j, :a*b]`` their (a, b) cost block, row-major,
    ``sizes[r, j] = (a, b)``. When the optimum has a closed form (nothing to move, one
    or two source or sink cells) it is written to ``closed[r, j]``; otherwise
    ``closed`` is NaN and the problem is left for the network simplex.
    """
    c, m = p.shape
    t = q.shape[0]
    pi = np.empty(m, np.int64)
    ni = np.empty(m, np.int64)
    delta = np.empty(m)
    order = np.empty(m, np.int64)
    row = np.empty(m)
    for r in range(c):
        mass = 0.0
        for i in range(m):
            mass += p[r, i]
        for i in range(m):
            row[i] = p[r, i] / mass if mass > 0.0 else 1.0 / m
        for j in range(t):
            a = 0
            b = 0
            for i in range(m):
                diff = row[i] - q[j, i]
                if diff > 0:
                    pos[r, j, a] = diff
                    pi[a] = i
                    a += 1
                elif diff < 0:
                    neg[r, j, b] = -diff
                    ni[b] = i
                    b += 1
            sizes[r, j, 0] = a
            sizes[r, j, 1] = b
            if a == 0 or b == 0:
                closed[r, j] = 0.0
                continue
            tp = 0.0
            for i in range(a):
                tp += pos[r, j, i]
            tn = 0.0
            for i in range(b):
                tn += neg[r, j, i]
            scale = tp / tn  # equal totals up to rounding; make them exact
            for i in range(b):
                neg[r, j, i] *= scale
            if a == 1:
                w = 0.0
                for i in range(b):
                    w += neg[r, j, i] * cost[pi[0], ni[i]]
                closed[r, j] = w
            elif b == 1:
                w = 0.0
                for i in range(a):
                    w += pos[r, j, i] * cost[pi[i], ni[0]]
                closed[r, j] = w
            elif b == 2:
                closed[r, j] = _two_ends(pos[r, j, :a], pi[:a], ni[0], ni[1], neg[r, j, 0],
                                         cost, True, delta, order)
            elif a == 2:
                closed[r, j] = _two_ends(neg[r, j, :b], ni[:b], pi[0], pi[1], pos[r, j, 0],
                                         cost, False, delta, order)
            else:
                closed[r, j] = np.nan
                for i in range(a):
                    for k in range(b):
                        sub[r, j, i * b + k] = cost[pi[i], ni[k]]
