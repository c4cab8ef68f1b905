"""Compiled inner loops of :func:`ssl_wc.metrics.kernels.score_maps` (numba).

Two per-chunk loops, each over one map at a time, releasing the GIL so that the
threads of ``score_maps(workers=...)`` run them in parallel:

- :func:`upsample_extrema`: the half-pixel bilinear resize of ``heatmap.resize`` with
  the same float64 operations in the same order (``x0*w0 + x1*w1``, horizontal pass
  first; no fused multiply-add), so the values are bit-identical to it and to
  ``reference.py``; plus min, max and the first flat index of the max.
- :func:`topk_intersections`: for every map r and every count k in ``ks[r]``,
  ``|top_k(U_r) AND G_r|`` with top-k ordered by value descending, then flat index
  ascending. One pass writes ``D = (U - min) + c`` (c > 0, so D is positive and its
  float64 bit pattern is ordered like U) and a histogram of the exponent and 8 leading
  mantissa bits of D. The bucket holding the k-th value and the counts above it come
  from one scan of the histogram; G's counts from a histogram of G's pixels. A
  boundary bucket that holds G and non-G pixels, and is only partly selected, has its
  members ranked exactly by (U desc, index asc); that needs one more pass over the
  bucket keys of the map, and happens only for such buckets.

The loops are compiled on first use and cached next to this file (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

MANTISSA_BITS = 8
SHIFT = 52 - MANTISSA_BITS
# D lies in [c, (max - min) + c] with c = 1e-8 * (max - min + 1e-8): a ratio below
# 2**27, so the bucket keys of one map span fewer than 28 exponents of 2**8 buckets.
BUCKETS = 28 << MANTISSA_BITS


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
) -> None:  # pragma: no cover - compiled; covered through score_maps
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
def _bucket_members(keys: np.ndarray, bucket: int, out: np.ndarray) -> None:  # pragma: no cover
    """Flat indices p with ``keys[p] == bucket``, ascending, into ``out`` (sized exactly)."""
    n = keys.shape[0]
    full = n - n % _BLOCK
    key = np.int16(bucket)  # compare in the keys' own type: the scan vectorises
    t = 0
    for s in range(0, full, _BLOCK):
        hits = np.int32(0)
        for q in range(_BLOCK):
            hits += np.int32(keys[s + q] == key)
        if hits:
            for q in range(_BLOCK):
                if keys[s + q] == key:
                    out[t] = s + q
                    t += 1
    for p in range(full, n):
        if keys[p] == key:
            out[t] = p
            t += 1


@njit(cache=True, nogil=True)
def _exact_in_bucket(
    u: np.ndarray, keys: np.ndarray, bucket: int, size: int, take: int, gmask: np.ndarray
) -> int:  # pragma: no cover - compiled
    """G pixels among the first ``take`` members of ``bucket`` by (U desc, index asc)."""
    members = np.empty(size, np.int64)
    _bucket_members(keys, bucket, members)
    vals = np.empty(size)
    for q in range(size):
        vals[q] = -u[members[q]]
    order = np.argsort(vals, kind="mergesort")  # stable: equal values keep index order
    hit = 0
    for q in range(take):
        if gmask[members[order[q]]]:
            hit += 1
    return hit


@njit(cache=True, nogil=True)
def topk_intersections(
    u: np.ndarray,
    d: np.ndarray,
    keys: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    cmin: np.ndarray,
    ks: np.ndarray,
    g_idx: np.ndarray,
    g_off: np.ndarray,
    inter: np.ndarray,
) -> None:  # pragma: no cover - compiled; covered through score_maps
    """``inter[r, j] = |top_{ks[r, j]}(u[r]) AND G_r|``; also fills ``d = (u - lo) + cmin``.

    G_r is ``g_idx[g_off[r]:g_off[r + 1]]`` (flat indices). ``keys`` is an int16 work
    buffer the shape of ``u``. Every k must lie in [1, n].
    """
    c, n = u.shape
    m = ks.shape[1]
    hist = np.zeros(BUCKETS, np.int32)
    ghist = np.zeros(BUCKETS, np.int32)
    gmask = np.zeros(n, np.bool_)
    bucket = np.empty(m, np.int64)
    above = np.empty(m, np.int64)
    g_above = np.empty(m, np.int64)
    ends = np.empty(2)
    end_bits = ends.view(np.int64)
    for r in range(c):
        ur = u[r]
        dr = d[r]
        kr = keys[r]
        low = lo[r]
        eps = cmin[r]
        for p in range(n):
            dr[p] = (ur[p] - low) + eps
        # largest and smallest d (every operation is monotone): (max - min) + c and c
        ends[0] = (hi[r] - low) + eps
        ends[1] = eps
        base = (end_bits[0] >> SHIFT) - (BUCKETS - 1)
        if (end_bits[1] >> SHIFT) < base:  # pragma: no cover - see BUCKETS
            raise AssertionError("value range exceeds the bucket range")
        bits = dr.view(np.int64)
        for p in range(n):
            kr[p] = (bits[p] >> SHIFT) - base
        hist[:] = 0
        quarter = n // 4
        for p in range(quarter):  # four distant pixels at a time: fewer same-bucket stalls
            hist[kr[p]] += 1
            hist[kr[p + quarter]] += 1
            hist[kr[p + 2 * quarter]] += 1
            hist[kr[p + 3 * quarter]] += 1
        for p in range(4 * quarter, n):
            hist[kr[p]] += 1
        g = g_idx[g_off[r] : g_off[r + 1]]
        ghist[:] = 0
        for q in range(g.shape[0]):
            ghist[kr[g[q]]] += 1
            gmask[g[q]] = True

        # one scan from the top bucket: the bucket of every k, counts above it
        for j in range(m):
            if ks[r, j] < 1 or ks[r, j] > n:
                raise ValueError("every k must lie in [1, n]")
        order = np.argsort(ks[r])
        nxt = 0
        cum = 0
        gcum = 0
        b = BUCKETS - 1
        while nxt < m and b >= 0:
            cnt = hist[b]
            while nxt < m and cum + cnt >= ks[r, order[nxt]]:
                j = order[nxt]
                bucket[j] = b
                above[j] = cum
                g_above[j] = gcum
                nxt += 1
            cum += cnt
            gcum += ghist[b]
            b -= 1

        for j in range(m):
            bj = bucket[j]
            size = hist[bj]
            g_in = ghist[bj]
            take = ks[r, j] - above[j]
            if take >= size or g_in == 0:
                hit = min(g_in, take)
            elif g_in == size:
                hit = take
            else:
                hit = -1
                for j2 in range(j):  # same boundary bucket and count already ranked
                    if bucket[j2] == bj and ks[r, j2] == ks[r, j]:
                        hit = inter[r, j2] - g_above[j2]
                        break
                if hit < 0:
                    hit = _exact_in_bucket(ur, kr, bj, size, take, gmask)
            inter[r, j] = g_above[j] + hit
        for q in range(g.shape[0]):
            gmask[g[q]] = False


@njit(cache=True, nogil=True)
def transport_problems(
    p: np.ndarray,
    q: np.ndarray,
    cost: np.ndarray,
    pos: np.ndarray,
    neg: np.ndarray,
    sub: np.ndarray,
    sizes: np.ndarray,
) -> None:  # pragma: no cover - compiled; covered through score_maps
    """The reduced transport problem of every row of (c, m) histograms p and q.

    Row r: ``pos[r, :a]`` the positive part of ``p[r] - q[r]``, ``neg[r, :b]`` the
    negative part rescaled to the same total, ``sub[r, :a*b]`` the (a, b) cost block
    between their cells, row-major; ``sizes[r] = (a, b)``. W1(p, q) is the optimal cost
    of that problem (``emd.wasserstein1`` builds the same one for a single pair).
    """
    c, m = p.shape
    pi = np.empty(m, np.int64)
    ni = np.empty(m, np.int64)
    for r in range(c):
        a = 0
        b = 0
        for i in range(m):
            diff = p[r, i] - q[r, i]
            if diff > 0:
                pos[r, a] = diff
                pi[a] = i
                a += 1
            elif diff < 0:
                neg[r, b] = -diff
                ni[b] = i
                b += 1
        sizes[r, 0] = a
        sizes[r, 1] = b
        if a == 0 or b == 0:
            continue
        tp = 0.0
        for i in range(a):
            tp += pos[r, i]
        tn = 0.0
        for i in range(b):
            tn += neg[r, i]
        scale = tp / tn  # equal totals up to rounding; make them exact
        for i in range(b):
            neg[r, i] *= scale
        for i in range(a):
            for j in range(b):
                sub[r, i * b + j] = cost[pi[i], ni[j]]
