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


def _brute(u: np.ndarray, g: np.ndarray, k: int) -> int:
    order = np.argsort(-u, kind="stable")  # value descending, then index ascending
    return int(np.isin(order[:k], g).sum())


def _count(u: np.ndarray, gs: list[np.ndarray], ks: np.ndarray):
    c = u.shape[0]
    lo, hi = u.min(axis=1), u.max(axis=1)
    cmin = 1e-8 * (hi - lo + 1e-8)
    d = np.empty_like(u)
    keys = np.empty(u.shape, np.int16)
    g_off = np.zeros(c + 1, np.int64)
    np.cumsum([g.size for g in gs], out=g_off[1:])
    g_idx = np.concatenate(gs).astype(np.int64)
    inter = np.empty(ks.shape, np.int64)
    compiled.topk_intersections(u, d, keys, lo, hi, cmin, ks, g_idx, g_off, inter)
    return inter, d, lo, cmin


def test_topk_counts_equal_a_full_sort_with_ties_everywhere():
    rng = np.random.default_rng(7)
    n = 40 * 30
    rows = [
        rng.random(n),
        np.round(rng.random(n), 2),  # heavy ties: boundary buckets shared by G and others
        np.round(rng.random(n), 1),
        np.full(n, 3.25),  # a uniform map: the order is the index order
        np.where(np.arange(n) == 77, 1.0, 0.0),  # a single-pixel spike
        resize(rng.random((1, 3, 4)), (40, 30)).ravel(),  # smooth, as real heatmaps are
        -rng.random(n) * 1e6,  # negative values, large range
    ]
    u = np.stack(rows)
    gs = [np.sort(rng.choice(n, size=rng.integers(1, n // 3), replace=False)) for _ in rows]
    gs[3] = np.arange(100, 400)  # G after the first k pixels of the uniform map
    ks = np.stack([np.array([1, 2, 17, 60, 299, 300, 600, 1000, n - 1, n]) for _ in rows])
    inter, d, lo, cmin = _count(u, gs, ks)
    for r in range(len(rows)):
        for j, k in enumerate(ks[r]):
            assert inter[r, j] == _brute(u[r], gs[r], int(k)), (r, int(k))
    assert np.array_equal(d, (u - lo[:, None]) + cmin[:, None])


def test_topk_counts_with_an_empty_target_are_zero():
    u = np.random.default_rng(1).random((1, 64))
    inter, *_ = _count(u, [np.zeros(0, np.int64)], np.array([[1, 10, 64]]))
    assert inter.tolist() == [[0, 0, 0]]


@pytest.mark.parametrize("k", [0, 65])
def test_topk_rejects_a_count_outside_the_map(k):
    u = np.random.default_rng(1).random((1, 64))
    with pytest.raises(ValueError, match=r"\[1, n\]"):
        _count(u, [np.arange(5)], np.array([[k]]))


def test_transport_problems_give_the_same_w1_as_the_single_pair_path():
    from ssl_wc.metrics.emd import grid_cost, solve_transport, wasserstein1

    rng = np.random.default_rng(3)
    cost = grid_cost(4)
    p = rng.random((5, 16))
    q = rng.random((5, 16))
    p[3] = q[3]  # identical histograms: no problem to solve
    q[4] = np.where(np.arange(16) == 0, 1.0, 0.0)  # a point mass
    p /= p.sum(axis=1, keepdims=True)
    q /= q.sum(axis=1, keepdims=True)
    pos, neg, sub = np.empty((5, 16)), np.empty((5, 16)), np.empty((5, 256))
    sizes = np.empty((5, 2), np.int64)
    compiled.transport_problems(p, q, cost, pos, neg, sub, sizes)
    for r in range(5):
        a, b = sizes[r]
        got = (
            0.0
            if a == 0 or b == 0
            else solve_transport(pos[r, :a], neg[r, :b], sub[r, : a * b].reshape(a, b))
        )
        assert got == pytest.approx(wasserstein1(p[r], q[r], cost), abs=1e-15)
    assert sizes[3].tolist() == [0, 0]
