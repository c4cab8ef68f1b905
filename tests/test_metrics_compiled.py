"""The compiled loops of the metric kernels against plain numpy, bit for bit and count for count."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_wc.metrics import compiled
from ssl_wc.metrics.heatmap import axis_weights, resize

SHAPES = [
    ((14, 14), (224, 224)),
    ((16, 16), (224, 224)),
    ((7, 11), (50, 90)),  # non-square, different scale per axis
    ((30, 40), (12, 9)),  # shrinking
    ((20, 30), (20, 30)),  # same size: a copy
    ((20, 10), (20, 30)),  # same height only
]


def _upsample(maps: np.ndarray, size: tuple[int, int]):
    c = maps.shape[0]
    H, W = size
    ay, ax = axis_weights(maps.shape[1], H), axis_weights(maps.shape[2], W)
    u = np.empty((c, H * W))
    lo, hi, arg = np.empty(c), np.empty(c), np.empty(c, np.int64)
    compiled.upsample_extrema(
        np.ascontiguousarray(maps, dtype=np.float64),
        ay.i0, ay.i1, ay.w0, ay.w1, ax.i0, ax.i1, ax.w0, ax.w1,
        u, lo, hi, arg,
    )  # fmt: skip
    return u, lo, hi, arg


@pytest.mark.parametrize(("grid", "size"), SHAPES)
def test_upsample_is_bit_identical_to_numpy_resize(grid, size):
    rng = np.random.default_rng(sum(grid) + sum(size))
    maps = np.concatenate(
        [
            rng.normal(size=(3, *grid)),
            np.round(rng.random((2, *grid)), 1),  # many ties
            np.zeros((1, *grid)),
            -np.abs(rng.normal(size=(1, *grid))) * 1e-300,  # tiny negative values
        ]
    )
    u, lo, hi, arg = _upsample(maps, size)
    want = resize(maps, size).reshape(len(maps), -1)
    assert np.array_equal(u.view(np.int64), want.view(np.int64))
    assert np.array_equal(lo, want.min(axis=1))
    assert np.array_equal(hi, want.max(axis=1))
    assert np.array_equal(arg, want.argmax(axis=1))  # first index of the maximum


def test_argmax_takes_the_lowest_flat_index_on_ties():
    m = np.zeros((1, 4, 6))
    m[0, 3, 1] = m[0, 1, 4] = 5.0  # (row 1, col 4) comes first in row-major order
    _, _, hi, arg = _upsample(m, (4, 6))
    assert hi[0] == 5.0
    assert arg[0] == 1 * 6 + 4


def _rank_facts(u: np.ndarray, gs: list[np.ndarray], ks: np.ndarray):
    """rank_maps on (c, n) values: hits (c, t, m), rank sums (c, t), sums (c, 2)."""
    c, n = u.shape
    t = len(gs)
    lo = u.min(axis=1)
    cmin = 1e-8 * (u.max(axis=1) - lo + 1e-8)
    d, xl = np.empty_like(u), np.empty_like(u)
    sums = np.zeros((c, 2))
    tbits = np.zeros(n, np.uint64)
    for j, g in enumerate(gs):
        tbits[g] |= np.uint64(1) << np.uint64(j)
    any_idx = np.flatnonzero(tbits).astype(np.int64)
    hits = np.zeros((c, t, ks.shape[1]), np.int64)
    rank_sum = np.zeros((c, t))
    compiled.rank_maps(u, lo, cmin, d, xl, sums, any_idx, tbits, ks, hits, rank_sum, True)
    return hits, rank_sum, sums, d, lo, cmin


def _brute(u: np.ndarray, g: np.ndarray, k: int) -> int:
    order = np.argsort(-u, kind="stable")  # value descending, then index ascending
    return int(np.isin(order[:k], g).sum())


def _brute_mid_ranks(u: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(u, method="average")  # ascending, ties share the mean rank


def test_rank_facts_equal_a_full_sort_with_ties_everywhere():
    rng = np.random.default_rng(7)
    n = 40 * 30
    rows = [
        rng.random(n),
        np.round(rng.random(n), 2),  # heavy ties
        np.round(rng.random(n), 1),  # ties in buckets larger than SMALL (sorted once)
        np.full(n, 3.25),  # a uniform map: the order is the index order
        np.where(np.arange(n) == 77, 1.0, 0.0),  # a single-pixel spike
        resize(rng.random((1, 3, 4)), (40, 30)).ravel(),  # smooth, as real heatmaps are
        -rng.random(n) * 1e6,  # negative values, large range
        np.exp(rng.normal(size=n) * 20),  # a dynamic range of many octaves
    ]
    u = np.stack(rows)
    gs = [np.sort(rng.choice(n, size=int(rng.integers(1, n // 3)), replace=False))
          for _ in range(4)]
    gs[3] = np.arange(100, 400)  # G after the first k pixels of the uniform map
    ks = np.stack([np.array([1, 2, 17, 60, 299, 300, 600, 1000, n - 1, n])] * len(gs))
    hits, rank_sum, sums, d, lo, cmin = _rank_facts(u, gs, ks)
    for r in range(len(rows)):
        mid = _brute_mid_ranks(u[r])
        x = np.sort(u[r] - lo[r])
        assert sums[r, 1] == pytest.approx(float(np.sum(np.arange(1, n + 1) * x)), rel=1e-12)
        for j, g in enumerate(gs):
            assert rank_sum[r, j] == pytest.approx(float(mid[g].sum()), rel=1e-13), (r, j)
            for m, k in enumerate(ks[j]):
                assert hits[r, j, m] == _brute(u[r], g, int(k)), (r, j, int(k))
    assert np.array_equal(d, (u - lo[:, None]) + cmin[:, None])


def test_rank_facts_with_no_target_pixels_are_zero():
    u = np.random.default_rng(1).random((1, 64))
    hits, rank_sum, *_ = _rank_facts(u, [np.zeros(0, np.int64)], np.array([[1, 10, 64]]))
    assert hits.tolist() == [[[0, 0, 0]]] and rank_sum.tolist() == [[0.0]]


def test_row_dots_do_not_depend_on_the_other_rows():
    rng = np.random.default_rng(2)
    a, b = rng.random((5, 1000)), rng.random((3, 1000))
    full = np.empty((5, 3))
    compiled.row_dots(a, b, full)
    for r in range(5):
        one = np.empty((1, 3))
        compiled.row_dots(a[r : r + 1].copy(), b, one)
        assert np.array_equal(one[0], full[r])
    np.testing.assert_allclose(full, a @ b.T, rtol=1e-12)
    paired = np.empty(3)
    compiled.paired_dots(a[:3], b, paired)
    np.testing.assert_allclose(paired, np.einsum("ij,ij->i", a[:3], b), rtol=1e-12)


def test_transport_pairs_give_the_same_w1_as_the_single_pair_path():
    from ssl_wc.metrics.emd import grid_cost, solve_transport, wasserstein1

    rng = np.random.default_rng(3)
    cost = grid_cost(4)
    p = rng.random((5, 16))
    q = rng.random((6, 16))
    p[3] = q[3] * 7.0  # the same histogram once normalised: nothing to move
    q[4] = np.where(np.arange(16) == 0, 1.0, 0.0)  # a point mass: one sink (closed form)
    q[5] = np.where(np.arange(16) < 2, 0.5, 0.0)  # two sinks (closed form)
    p[4] = 0.0  # an all-zero map counts as uniform
    q /= q.sum(axis=1, keepdims=True)
    pos, neg = np.empty((5, 6, 16)), np.empty((5, 6, 16))
    sub = np.empty((5, 6, 256))
    sizes = np.empty((5, 6, 2), np.int64)
    closed = np.empty((5, 6))
    compiled.transport_pairs(p, q, cost, pos, neg, sub, sizes, closed)
    pn = np.where(p.sum(axis=1, keepdims=True) > 0, p / np.maximum(p.sum(1, keepdims=True),
                                                                    1e-300), 1 / 16)
    for r in range(5):
        for j in range(6):
            a, b = sizes[r, j]
            got = closed[r, j]
            if np.isnan(got):
                assert a > 2 and b > 2
                got = solve_transport(pos[r, j, :a], neg[r, j, :b],
                                      sub[r, j, : a * b].reshape(a, b))
            assert got == pytest.approx(wasserstein1(pn[r], q[j], cost), abs=1e-15)
            if j in (4, 5):
                assert not np.isnan(closed[r, j])  # one or two sink cells: closed form
    assert closed[3, 3] == pytest.approx(0.0, abs=1e-15)  # nothing to move
