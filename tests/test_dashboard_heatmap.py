"""Known-answer tests of the dashboards' heatmap drawing (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from dashboards import heatmap


def test_upsample_same_size_is_identity() -> None:
    g = np.arange(12, dtype=float).reshape(3, 4)
    assert np.allclose(heatmap.upsample(g, 3, 4), g)


def test_upsample_half_pixel_centres() -> None:
    # 1x2 -> 1x4: output x = 0..3 samples source (x + 0.5) / 2 - 0.5 = -0.25, .25, .75, 1.25
    g = np.array([[0.0, 1.0]])
    out = heatmap.upsample(g, 1, 4)
    assert np.allclose(out, [[0.0, 0.25, 0.75, 1.0]])  # edges replicated (clamped)


def test_upsample_keeps_rows_as_y() -> None:
    g = np.zeros((2, 3))
    g[0, 2] = 1.0  # top right patch
    out = heatmap.upsample(g, 20, 30)
    r, c = np.unravel_index(np.argmax(out), out.shape)
    assert r < 10 and c >= 20


def test_topk_exact_count_and_index_order_ties() -> None:
    heat = np.zeros((10, 10))
    mask = heatmap.topk_mask(heat, 90)
    assert mask.sum() == 10
    assert mask.ravel()[:10].all()  # all tied: lowest flat indices win
    heat[9, 9] = 1.0
    assert heatmap.topk_mask(heat, 99).ravel()[99]
    # round half up: n * 5 / 100 = 2.5 -> 3
    assert heatmap.topk_mask(np.zeros((5, 10)), 95).sum() == 3


def test_box_mask_off_centre_non_square() -> None:
    m = heatmap.box_mask(np.array([[0.5, 0.1, 0.25, 0.2]]), 10, 20)
    rows, cols = np.nonzero(m)
    assert (rows.min(), rows.max() + 1) == (1, 3)
    assert (cols.min(), cols.max() + 1) == (10, 15)
    tiny = heatmap.box_mask(np.array([[0.99, 0.99, 0.001, 0.001]]), 10, 10)
    assert tiny.sum() == 1


def test_region_iou_of_a_perfect_map() -> None:
    g = np.zeros((14, 14))
    g[2:9, 7:14] = 1.0  # the top-right quarter-ish
    region = heatmap.eval_region(g, 75)
    assert region.sum() == 224 * 224 // 4


def test_overlay_and_outline() -> None:
    photo = np.full((40, 60, 3), 100, dtype=np.uint8)
    heat = np.zeros((40, 60))
    heat[10:20, 10:30] = 1.0
    out = heatmap.overlay(photo, heat, cmap="viridis", opacity=1.0, floor=0.0)
    assert (out[0, 0] == 100).all()  # no attention: photo unchanged
    assert not (out[15, 15] == 100).all()
    region = np.zeros((40, 60), dtype=bool)
    region[10:20, 10:30] = True
    out = heatmap.overlay(photo, None, region=region)
    assert (out[10, 15] == 255).all() and (out[15, 15] == 100).all()
    with pytest.raises(ValueError):
        heatmap.overlay(photo, np.zeros((4, 4)))


def test_data_uri_and_colour_maps() -> None:
    uri = heatmap.to_data_uri(np.zeros((4, 4, 3), dtype=np.uint8), fmt="PNG")
    assert uri.startswith("data:image/png;base64,")
    for name in heatmap.COLORMAPS:
        rgb = heatmap.colorize(np.linspace(0, 1, 5)[None, :], name)
        assert rgb.shape == (1, 5, 3) and rgb.dtype == np.uint8
        assert heatmap.plotly_colorscale(name)[-1][0] == 1.0


def test_matches_the_metric_kernels_when_available() -> None:
    ref = pytest.importorskip("ssl_wc.metrics.heatmap")
    masks = pytest.importorskip("ssl_wc.metrics.masks")
    rng = np.random.default_rng(0)
    for gh, gw in ((14, 14), (16, 16), (7, 11)):
        g = rng.random((gh, gw))
        ours = heatmap.normalise(heatmap.upsample(g, 224, 224))
        theirs = ref.heatmap(g[None], (224, 224))[0]
        assert np.allclose(ours, theirs, atol=1e-12)
    box = np.array([[0.31, 0.62, 0.17, 0.05]])
    assert (heatmap.box_mask(box, 224, 224) == masks.union_mask(box, (224, 224))).all()
