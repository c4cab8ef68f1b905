"""Bilinear half-pixel upsampling and min-max normalisation: known answers."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_wc.metrics.heatmap import axis_weights, heatmap, minmax_normalise, resize, upsample
from ssl_wc.metrics.reference import ref_resize


def test_two_to_four_matches_hand_computation() -> None:
    # in=2, out=4: src = (i + .5) / 2 - .5 = -.25, .25, .75, 1.25 -> clamped 0, .25, .75, 1
    ax = axis_weights(2, 4)
    np.testing.assert_array_equal(ax.w1, [0.0, 0.25, 0.75, 0.0])
    grid = np.array([[[0.0, 4.0], [8.0, 12.0]]])
    out = upsample(grid, (4, 4))[0]
    row0 = [0.0, 1.0, 3.0, 4.0]
    expected = np.array([row0, [2.0, 3.0, 5.0, 6.0], [6.0, 7.0, 9.0, 10.0], [8, 9, 11, 12]])
    np.testing.assert_array_equal(out, expected)


def test_scale_one_is_exact_identity() -> None:
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(3, 7, 5)) * 1e3
    np.testing.assert_array_equal(resize(maps, (7, 5)), maps)
    # the weights themselves are exactly (1, 0), so the formula is the identity too
    ax = axis_weights(7, 7)
    np.testing.assert_array_equal(ax.w0, 1.0)
    np.testing.assert_array_equal(ax.w1, 0.0)
    np.testing.assert_array_equal(ax.i0, np.arange(7))
    np.testing.assert_array_equal(ref_resize(maps[0], (7, 5)), maps[0])


def test_edges_replicated_over_outer_half_patch() -> None:
    rng = np.random.default_rng(1)
    grid = rng.random((1, 14, 14))
    out = upsample(grid, (224, 224))[0]
    # scale 16: the first and last 8 rows/columns copy the edge patch rows exactly
    for i in range(8):
        np.testing.assert_array_equal(out[i], out[0])
        np.testing.assert_array_equal(out[-1 - i], out[-1])
    np.testing.assert_array_equal(out[:8, :8], np.full((8, 8), grid[0, 0, 0]))
    np.testing.assert_array_equal(out[-8:, -8:], np.full((8, 8), grid[0, -1, -1]))
    # half-pixel: output pixel 8 (centre 8.5 -> source 8.5/16 - .5 = 0.03125)
    assert out[8, 0] == pytest.approx(grid[0, 0, 0] * (1 - 0.03125) + grid[0, 1, 0] * 0.03125)


def test_patch_centres_sit_between_pixels() -> None:
    # a single hot patch: its value is reached nowhere (centres fall between pixels) and
    # the 2x2 pixels around the patch centre share the maximum
    grid = np.zeros((1, 14, 14))
    grid[0, 5, 9] = 1.0
    out = upsample(grid, (224, 224))[0]
    peak = out.max()
    assert peak < 1.0
    rows, cols = np.nonzero(out == peak)
    assert set(rows) == {87, 88} and set(cols) == {151, 152}  # centre 88, 152 in pixels


def test_non_square_grid_and_size_match_reference_loops_bitwise() -> None:
    rng = np.random.default_rng(2)
    maps = rng.random((4, 16, 12))
    out = resize(maps, (100, 75))
    for m, o in zip(maps, out, strict=True):
        np.testing.assert_array_equal(ref_resize(m, (100, 75)), o)


def test_minmax_normalise_and_constant_map() -> None:
    m = np.array([[[1.0, 3.0], [2.0, 5.0]], [[7.0, 7.0], [7.0, 7.0]]])
    out = minmax_normalise(m)
    assert out[0].min() == 0.0 and out[0].max() == pytest.approx(1.0, abs=1e-7)
    np.testing.assert_array_equal(out[1], 0.0)
    h = heatmap(np.ones((1, 14, 14)), (224, 224))
    assert h.shape == (1, 224, 224) and (h == 0).all()
