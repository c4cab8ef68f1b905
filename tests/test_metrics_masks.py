"""Box masks (rows = y, columns = x), clamping, and the Gaussian soft target."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_wc.metrics.masks import as_boxes, box_mask, pixel_box, soft_target, union_mask


def test_off_centre_non_square_box_on_non_square_grid() -> None:
    # left .1, top .5, width .6, height .2 on H=50 rows, W=100 columns
    m = box_mask(np.array([0.1, 0.5, 0.6, 0.2]), (50, 100))
    rows, cols = np.nonzero(m)
    assert (rows.min(), rows.max()) == (25, 34)  # floor(.5*50) .. floor(.7*50) - 1
    assert (cols.min(), cols.max()) == (10, 69)  # floor(.1*100) .. floor(.7*100) - 1
    assert m.sum() == 10 * 60


def test_boxes_on_borders_and_outside_are_clamped() -> None:
    size = (40, 60)
    full = box_mask(np.array([0.0, 0.0, 1.0, 1.0]), size)
    assert full.all()
    over = box_mask(np.array([-0.2, -0.5, 2.0, 3.0]), size)
    np.testing.assert_array_equal(over, full)
    right = box_mask(np.array([0.9, 0.95, 0.5, 0.5]), size)
    rows, cols = np.nonzero(right)
    assert rows.min() == 38 and rows.max() == 39 and cols.min() == 54 and cols.max() == 59


def test_degenerate_boxes_keep_one_pixel() -> None:
    size = (20, 30)
    assert box_mask(np.array([0.5, 0.5, 0.0, 0.0]), size).sum() == 1
    at_edge = box_mask(np.array([1.0, 1.0, 0.0, 0.0]), size)
    assert at_edge.sum() == 1 and at_edge[19, 29]
    assert box_mask(np.array([-1.0, -1.0, 0.5, 0.5]), size).sum() == 1  # fully outside


def test_union_mask_and_empty() -> None:
    size = (10, 10)
    u = union_mask(np.array([[0, 0, 0.3, 0.3], [0.2, 0.2, 0.3, 0.3]]), size)
    assert u.sum() == 9 + 9 - 1
    assert not union_mask(np.zeros((0, 4)), size).any()


@pytest.mark.parametrize(
    "bad", [[[0, 0, -0.1, 0.2]], [[0, 0, np.nan, 0.2]], [[0, 0, 1]], [[[0, 0, 1, 1]]]]
)
def test_invalid_boxes_raise(bad: list) -> None:
    with pytest.raises(ValueError):
        as_boxes(np.array(bad, dtype=float))


def test_soft_target_peak_at_box_centre_and_sigma_rule() -> None:
    size = (100, 200)
    box = np.array([0.2, 0.3, 0.4, 0.2])  # 80 px wide, 20 px tall; centre x=80, y=40
    pb = pixel_box(box, size)
    assert (pb.cx, pb.cy, pb.w, pb.h) == pytest.approx((80.0, 40.0, 80.0, 20.0))
    s = soft_target(box[None], size)
    assert s.max() == 1.0
    # pixel centres x + .5: pixels 79 and 80 straddle x = 80 symmetrically
    assert s[39, 79] == pytest.approx(s[40, 80]) and s[39, 79] == s.max()
    # sigma_x = 80/4 = 20 on pixel centres 99.5 and 79.5 around cx = 80
    ratio_x = math.exp(-((99.5 - 80) ** 2 - (79.5 - 80) ** 2) / (2 * 20**2))
    assert s[39, 99] / s[39, 79] == pytest.approx(ratio_x, rel=1e-12)
    # sigma_y = 20/4 = 5 on pixel centres 44.5 and 39.5 around cy = 40
    ratio_y = math.exp(-((44.5 - 40) ** 2 - (39.5 - 40) ** 2) / (2 * 5**2))
    assert s[44, 79] / s[39, 79] == pytest.approx(ratio_y, rel=1e-12)
    # rows are y: the profile is 4x wider along x than along y
    assert s[39, 79 + 12] > s[39 + 12, 79]


def test_soft_target_sigma_floor_and_multiple_boxes() -> None:
    size = (50, 50)
    tiny = np.array([[0.5, 0.5, 0.0, 0.0]])  # 1 px -> sigma = max(1/4, 1) = 1
    s = soft_target(tiny, size)
    y, x = np.unravel_index(s.argmax(), s.shape)
    assert s[y, x + 1] == s[y, x]  # centre 25.0 sits between pixels 24 and 25
    assert s[y, x + 2] / s[y, x] == pytest.approx(math.exp(-(1.5**2 - 0.5**2) / 2))
    two = soft_target(np.array([[0.0, 0.0, 0.2, 0.2], [0.6, 0.6, 0.4, 0.4]]), size)
    assert two[5, 5] == pytest.approx(1.0, abs=0.02) and two[39, 39] == pytest.approx(1.0)
    assert (two >= 0).all() and (two <= 1).all()
    assert not soft_target(np.zeros((0, 4)), size).any()
