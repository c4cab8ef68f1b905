"""Known answers: boxes carried into a map frame, and box-to-patch similarity."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_wc.metrics.feature_similarity import box_contrast, box_patch_similarity, cells_in_box
from ssl_wc.metrics.frames import FULL_FRAME, boxes_in_frame, target_in_frame


def test_full_frame_keeps_boxes_bit_for_bit() -> None:
    boxes = np.array([[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 1.0, 1.0]])
    out = target_in_frame(boxes, FULL_FRAME)
    assert np.array_equal(out, boxes)
    assert np.array_equal(target_in_frame(boxes, None), boxes)


def test_boxes_in_a_crop() -> None:
    frame = (0.25, 0.0, 0.75, 1.0)  # the middle half of a wide image
    boxes = np.array([
        [0.25, 0.0, 0.5, 1.0],  # exactly the crop
        [0.0, 0.1, 0.2, 0.2],  # wholly outside (left)
        [0.125, 0.5, 0.25, 0.25],  # half outside
        [0.75, 0.5, 0.0, 0.1],  # zero width on the right edge
        [0.9, 0.0, 0.3, 0.5],  # outside, and past the image's edge (clamped first)
    ])
    moved, kept = boxes_in_frame(boxes, frame)
    np.testing.assert_allclose(moved[0], [0, 0, 1, 1])
    np.testing.assert_allclose(moved[2], [0.0, 0.5, 0.25, 0.25])
    np.testing.assert_allclose(kept, [1.0, 0.0, 0.5, 0.0, 0.0])
    kept_boxes = target_in_frame(boxes, frame)
    assert len(kept_boxes) == 2
    with pytest.raises(ValueError, match="frame"):
        boxes_in_frame(boxes, (0.5, 0.0, 0.5, 1.0))


def test_y_is_rows_in_a_non_square_frame() -> None:
    # frame: top 40 % of the image, full width; a box in its lower half (y 0.2..0.4)
    moved, kept = boxes_in_frame([[0.1, 0.2, 0.2, 0.2]], (0.0, 0.0, 1.0, 0.4))
    np.testing.assert_allclose(moved[0], [0.1, 0.5, 0.2, 0.5])
    assert kept[0] == pytest.approx(1.0)


def test_cells_in_box_rows_are_y() -> None:
    # 2 x 4 grid; box over the top-right quarter: row 0, columns 2 and 3
    m = cells_in_box(2, 4, [0.5, 0.0, 0.5, 0.5])
    want = np.zeros((2, 4), bool)
    want[0, 2:] = True
    np.testing.assert_array_equal(m, want)


def test_cells_in_box_edges_and_tiny_boxes() -> None:
    # a closed box whose edge passes exactly through cell centres includes them
    m = cells_in_box(4, 4, [0.125, 0.125, 0.25, 0.25])  # centres at 0.125 and 0.375
    assert m.sum() == 4 and m[0, 0] and m[1, 1]
    # smaller than a cell, no centre inside: the cell holding the box centre
    tiny = cells_in_box(4, 4, [0.55, 0.8, 0.05, 0.05])
    assert tiny.sum() == 1 and tiny[3, 2]
    # a box on the right/bottom border whose centre rounds to the last cell
    edge = cells_in_box(3, 3, [0.99, 0.99, 0.01, 0.01])
    assert edge.sum() == 1 and edge[2, 2]


def test_similarity_known_answer() -> None:
    """Two feature clusters: the box holds cluster A; A cells score 1, B cells 0."""
    gh, gw = 2, 3
    a, b = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    tokens = np.array([a, a, b, a, b, b])  # row-major: row 0 = a a b, row 1 = a b b
    sim = box_patch_similarity(tokens, (gh, gw), [0.0, 0.0, 0.6, 0.5])  # cells (0,0), (0,1)
    np.testing.assert_allclose(sim, [[1, 1, 0], [1, 0, 0]], atol=1e-12)
    c = box_contrast(tokens, (gh, gw), [[0.0, 0.0, 0.6, 0.5], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(c.sim_in[0], 1.0)
    np.testing.assert_allclose(c.sim_out[0], 0.25)  # one 'a' among four others
    assert list(c.n_in) == [2, 6] and list(c.n_out) == [4, 0]
    assert np.isnan(c.sim_out[1])  # a box over every cell has no outside
    np.testing.assert_allclose(c.contrast[0], 0.75)


def test_similarity_of_a_zero_token_is_nan() -> None:
    tokens = np.array([[0.0, 0.0], [1.0, 1.0]])
    sim = box_patch_similarity(tokens, (1, 2), [0.5, 0.0, 0.5, 1.0])
    assert np.isnan(sim[0, 0]) and sim[0, 1] == pytest.approx(1.0)
