"""Exact 8x8 EMD: point masses, an independent LP solver, and the resize path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import linprog

from ssl_wc.metrics.emd import (
    emd_histograms,
    emd_maps,
    grid_cost,
    to_area_grid,
    to_distribution,
    to_grid,
    wasserstein1,
)
from ssl_wc.metrics.heatmap import area_matrix


def _point(cell: int, g: int = 8) -> np.ndarray:
    p = np.zeros(g * g)
    p[cell] = 1.0
    return p


def test_point_masses_known_distance() -> None:
    cost = grid_cost(8)
    assert wasserstein1(_point(0), _point(63), cost) == pytest.approx(7 * math.sqrt(2) / 8)
    assert wasserstein1(_point(0), _point(3), cost) == pytest.approx(3 / 8)  # along x
    assert wasserstein1(_point(0), _point(24), cost) == pytest.approx(3 / 8)  # along y
    assert wasserstein1(_point(5), _point(5), cost) == 0.0


def test_point_masses_through_the_224_resize() -> None:
    # cell (i, j) of the 8x8 resize samples pixels 28i+13 and 28i+14 with weight 1/2 each
    a = np.zeros((224, 224))
    a[13:15, 13:15] = 1.0  # cell (0, 0)
    b = np.zeros((224, 224))
    b[209:211, 13:15] = 1.0  # cell (7, 0): 7 rows down
    cells = to_grid(a[None], 8)[0]
    assert cells[0, 0] == 1.0 and cells.sum() == 1.0
    assert emd_maps(a[None], b, 8)[0] == pytest.approx(7 / 8)
    # mass between sampled pixels is invisible to a no-antialias resize (documented)
    c = np.zeros((224, 224))
    c[0:13, 0:13] = 1.0
    assert to_grid(c[None], 8).sum() == 0.0


def _lp_w1(p: np.ndarray, q: np.ndarray, cost: np.ndarray) -> float:
    k = p.size
    a_eq = np.zeros((2 * k, k * k))
    for i in range(k):
        a_eq[i, i * k : (i + 1) * k] = 1.0
        a_eq[k + i, i::k] = 1.0
    res = linprog(cost.ravel(), A_eq=a_eq, b_eq=np.concatenate([p, q]), bounds=(0, None))
    assert res.success
    return float(res.fun)


def test_matches_an_independent_lp_solver() -> None:
    rng = np.random.default_rng(0)
    g = 4  # a 16 x 16 transport problem keeps the dense LP quick
    cost = grid_cost(g)
    p = rng.random((6, g * g)) ** 3
    q = rng.random((6, g * g)) ** 3
    p /= p.sum(1, keepdims=True)
    q /= q.sum(1, keepdims=True)
    ours = emd_histograms(p, q, g)
    for i in range(6):
        assert ours[i] == pytest.approx(_lp_w1(p[i], q[i], cost), abs=1e-9)


def test_reduced_problem_equals_full_problem() -> None:
    import ot

    rng = np.random.default_rng(1)
    cost = grid_cost(8)
    for _ in range(20):
        p = rng.random(64) ** 4
        q = rng.random(64) ** 4
        p /= p.sum()
        q /= q.sum()
        assert wasserstein1(p, q, cost) == pytest.approx(ot.emd2(p, q, cost), abs=1e-12)


def test_zero_mass_map_counts_as_uniform() -> None:
    uniform = np.ones((1, 224, 224))
    assert emd_maps(np.zeros((1, 224, 224)), uniform[0], 8)[0] == pytest.approx(0.0, abs=1e-15)


def test_area_cells_count_every_pixel_once() -> None:
    # a point mass between the sampled pixels: invisible to the point-sampled cells,
    # all of the cell's mass in the area-averaged ones
    a = np.zeros((224, 224))
    a[5, 5] = 1.0
    assert to_grid(a[None], 8).sum() == 0.0
    cells = to_area_grid(a[None], 8)[0]
    assert cells[0, 0] == pytest.approx(1 / 784) and cells.sum() == pytest.approx(1 / 784)
    b = np.zeros((224, 224))
    b[5, 5 + 3 * 28] = 1.0  # three cells to the right
    assert emd_maps(a[None], b, 8)[0] == pytest.approx(3 / 8)
    # a uniform map gives uniform cells, whatever the size
    flat = to_distribution(to_area_grid(np.ones((1, 50, 70)), 8))[0]
    np.testing.assert_allclose(flat, 1 / 64, rtol=1e-12)


def test_area_matrix_weights_partial_pixels_by_their_covered_length() -> None:
    m = area_matrix(10, 4)  # cells 2.5 pixels long
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    np.testing.assert_allclose(m[0, :3], [0.4, 0.4, 0.2])  # pixel 2 half in cell 0
    np.testing.assert_allclose(m[1, 2:5], [0.2, 0.4, 0.4])
    assert np.array_equal(area_matrix(224, 8)[0, :28], np.full(28, 1 / 28))


def test_point_sampled_target_of_a_small_box_loses_mass_area_cells_keep_it() -> None:
    from ssl_wc.metrics.masks import soft_target

    box = np.array([[2 / 224, 2 / 224, 8 / 224, 8 / 224]])  # pixels 2..9: inside cell (0, 0)
    s = soft_target(box, (224, 224))
    area = to_area_grid(s[None], 8)[0]
    point = to_grid(s[None], 8)[0]
    assert area[0, 0] / area.sum() > 0.999
    assert point.max() < 1e-3 * area.max()  # the sampled pixels miss the box
