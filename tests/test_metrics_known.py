"""Known-answer tests for score_maps (maps given at the evaluation size are used as is)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ssl_wc.metrics.kernels import (
    MAP_COLUMNS,
    PER_PERCENTILE_COLUMNS,
    MetricProtocol,
    score_map_targets,
    score_maps,
)
from ssl_wc.metrics.masks import soft_target, union_mask
from ssl_wc.metrics.protocol import topk_count

P = MetricProtocol()
N_PIX = 224 * 224
BOX = np.array([[0.25, 0.25, 0.5, 0.5]])  # rows/cols 56..167: 112 x 112 = 12544 pixels
G = union_mask(BOX, (224, 224))


def score_one(m: np.ndarray, boxes: np.ndarray, protocol: MetricProtocol = P):
    tf, pp = score_maps(m[None], [boxes], protocol)
    return {k: v[0] for k, v in tf.items()}, {k: v[0] for k, v in pp.items()}


def pct(p: int) -> int:
    return P.percentiles.index(p)


def test_all_attention_inside_the_box() -> None:
    tf, pp = score_one(G.astype(float), BOX)
    assert tf["coverage"] == 1.0
    assert tf["pointing_t0"] == 1.0 and tf["pointing_t15"] == 1.0
    assert tf["topk_pointing"] == 1.0 and tf["relevance_rank_acc"] == 1.0
    assert tf["annotation_area"] == 12544 / N_PIX
    assert pp["iou"][pct(75)] == pytest.approx(1.0)  # k = 12544 = |G|
    assert pp["iou"][pct(90)] == pytest.approx(topk_count(N_PIX, 90) / 12544)
    assert pp["iou"][pct(50)] == pytest.approx(0.5)  # k = 25088: G plus 12544 zeros
    assert pp["corloc"][pct(75)] == 1.0 and pp["corloc"][pct(90)] == 0.0


def test_all_attention_outside_the_box() -> None:
    tf, pp = score_one((~G).astype(float), BOX)
    assert tf["coverage"] == 0.0
    assert tf["pointing_t0"] == 0.0 and tf["pointing_t15"] == 0.0  # argmax (0, 0)
    assert tf["topk_pointing"] == 0.0 and tf["relevance_rank_acc"] == 0.0
    np.testing.assert_array_equal(pp["iou"][pct(70) :], 0.0)
    assert (pp["corloc"] == 0.0).all()


def test_half_the_attention_inside() -> None:
    m = np.zeros((224, 224))
    m[56:168, 56:112] = 1.0  # left half of G: 6272 pixels
    m[0:28, 0:224] = 1.0  # 6272 pixels outside
    tf, pp = score_one(m, BOX)
    assert tf["coverage"] == pytest.approx(0.5, abs=1e-12)
    # k at p=75 is 12544: exactly the 12544 hot pixels, half of them in G
    assert pp["iou"][pct(75)] == pytest.approx(6272 / (12544 + 12544 - 6272))
    assert tf["relevance_rank_acc"] == pytest.approx(0.5)


def test_uniform_map_selects_exactly_k_pixels_by_index_order() -> None:
    box = np.array([[0.0, 0.0, 0.5, 0.25]])  # rows 0..55, cols 0..111
    g = union_mask(box, (224, 224)).ravel()
    tf, pp = score_one(np.full((224, 224), 3.0), box)
    for j, p in enumerate(P.percentiles):
        k = topk_count(N_PIX, p)
        inter = int(g[:k].sum())  # ties: the first k flat indices
        assert pp["iou"][j] == pytest.approx(inter / (k + g.sum() - inter + 1e-8), abs=1e-12)
        assert pp["attention_area"][j] == k / N_PIX
    assert tf["coverage"] == 0.0  # the normalised map is all zero: sum(A) < 1e-8
    assert tf["pointing_t0"] == 1.0  # argmax of a constant map is index 0 = (0, 0)
    assert tf["topk_pointing"] == 1.0  # first 10 pixels of row 0


def test_single_pixel_spike() -> None:
    m = np.zeros((224, 224))
    m[100, 30] = 5.0
    box = np.array([[20 / 224, 90 / 224, 20 / 224, 20 / 224]])  # rows 90..109, cols 20..39
    g = union_mask(box, (224, 224)).ravel()
    tf, pp = score_one(m, box)
    assert tf["pointing_t0"] == 1.0
    assert tf["topk_pointing"] == pytest.approx(0.1)  # spike + 9 zeros from row 0
    k = topk_count(N_PIX, 95)
    spike = 100 * 224 + 30
    order = [spike, *[i for i in range(k) if i != spike][: k - 1]]
    inter = int(g[order].sum())
    assert inter == 1
    assert pp["iou"][pct(95)] == pytest.approx(1 / (k + 400 - 1 + 1e-8))
    assert tf["relevance_rank_acc"] == pytest.approx(1 / 400)


def test_non_square_eval_size_and_off_centre_box_catch_xy_swaps() -> None:
    proto = MetricProtocol(eval_size=(60, 100))
    box = np.array([[0.6, 0.1, 0.2, 0.1]])  # cols 60..79 (x), rows 6..11 (y)
    hit = np.zeros((60, 100))
    hit[10, 70] = 1.0  # row 10 (y), column 70 (x)
    swapped = np.zeros((60, 100))
    swapped[42, 6] = 1.0  # where an x/y swap would put the box centre
    tf, _ = score_maps(np.stack([hit, swapped]), [box, box], proto)
    np.testing.assert_array_equal(tf["pointing_t0"], [1.0, 0.0])
    assert tf["annotation_area"][0] == pytest.approx(20 * 6 / 6000)


def test_empty_target_is_nan_never_a_hit() -> None:
    m = np.random.default_rng(0).random((14, 14))
    tf, pp = score_one(m, np.zeros((0, 4)))
    for col, v in tf.items():
        if col in MAP_COLUMNS:  # they describe the map alone
            assert math.isfinite(v), col
        else:
            assert math.isnan(v), col
    for col in PER_PERCENTILE_COLUMNS:
        if col == "attention_area":
            assert not np.isnan(pp[col]).any()
        else:
            assert np.isnan(pp[col]).all(), col


def test_pointing_tolerance_is_euclidean_and_inclusive() -> None:
    proto = MetricProtocol(pointing_tolerances_px=(0, 15))
    box = np.array([[100.5 / 224, 100.5 / 224, 0.0, 0.0]])  # the single pixel (100, 100)
    maps = np.zeros((3, 224, 224))
    maps[0, 109, 112] = 1.0  # dy 9, dx 12: distance exactly 15 -> hit
    maps[1, 111, 111] = 1.0  # dy = dx = 11: distance 15.56 -> miss (a square window hits)
    maps[2, 100, 100] = 1.0
    tf, _ = score_maps(maps, [box] * 3, proto)
    np.testing.assert_array_equal(tf["pointing_t15"], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(tf["pointing_t0"], [0.0, 0.0, 1.0])


def test_identical_maps_give_zero_kl_mse_and_emd() -> None:
    box = np.array([[0.3, 0.2, 0.1, 0.15]])
    s = soft_target(box, (224, 224))
    assert s.min() < 1e-200 and s.max() == 1.0  # so the heatmap of s is s / (1 + 1e-8)
    tf, _ = score_one(s, box)
    assert abs(tf["kl"]) < 1e-12
    assert tf["mse"] < 1e-12
    assert tf["emd"] < 1e-9


def test_kl_of_a_flat_map_against_a_box() -> None:
    box = np.array([[0.3, 0.2, 0.1, 0.15]])
    s = soft_target(box, (224, 224)).ravel() + 1e-8
    s /= s.sum()
    tf, _ = score_one(np.ones((14, 14)), box)
    # A = 0 everywhere -> A' uniform: KL = sum s log(s n)
    assert tf["kl"] == pytest.approx(float(np.sum(s * np.log(s * N_PIX))), rel=1e-12)


def test_non_finite_map_gives_nan_row_and_others_unaffected() -> None:
    m = np.random.default_rng(3).random((3, 14, 14))
    m[1, 2, 2] = np.nan
    tf, pp = score_maps(m, [BOX] * 3)
    tf_ok, _ = score_maps(m[[0, 2]], [BOX] * 2)
    for col in tf:
        assert np.isnan(tf[col][1])
        np.testing.assert_array_equal(tf[col][[0, 2]], tf_ok[col])
    assert np.isnan(pp["attention_area"][1]).all()


def test_families_restrict_columns() -> None:
    m = np.random.default_rng(4).random((2, 14, 14))
    tf, pp = score_maps(m, [BOX] * 2, families=["coverage", "kl"])
    assert set(tf) == {"coverage", "kl"} and pp == {}
    with pytest.raises(ValueError, match="unknown metric families"):
        score_maps(m, [BOX] * 2, families=["iou"])


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="maps must be"):
        score_maps(np.zeros((14, 14)), [BOX])
    with pytest.raises(ValueError, match="targets"):
        score_maps(np.zeros((2, 14, 14)), [BOX])
    tf, pp = score_maps(np.zeros((0, 14, 14)), [])
    assert all(v.shape == (0,) for v in tf.values())
    assert all(v.shape == (0, 8) for v in pp.values())


def test_topk_count_rounds_half_up_exactly() -> None:
    assert topk_count(50176, 90) == 5018  # 5017.6
    assert topk_count(50176, 95) == 2509  # 2508.8
    assert topk_count(10, 75) == 3  # 2.5 -> 3 (np.round would give 2)
    assert topk_count(10, 85) == 2  # 1.5 -> 2
    assert topk_count(10, 99.9) == 1  # never below one pixel
    assert P.topk_counts() == (25088, 20070, 15053, 12544, 10035, 7526, 5018, 2509)


def test_protocol_hash_is_stable_and_validated() -> None:
    assert MetricProtocol().hash() == MetricProtocol().hash()
    assert MetricProtocol().hash() != MetricProtocol(pointing_tolerances_px=(0, 10)).hash()
    d = MetricProtocol().as_dict()
    assert d["eval_size"] == [224, 224] and d["percentiles"][0] == 50
    assert "topk_ties" in d["conventions"]
    assert len(MetricProtocol().hash()) == 16
    for bad in (
        {"percentiles": (100,)},
        {"eval_size": (0, 224)},
        {"pointing_tolerances_px": (-1,)},
        {"topk_pointing_k": 0},
        {"emd_grid": 0},
    ):
        with pytest.raises(ValueError):
            MetricProtocol(**bad)  # type: ignore[arg-type]
    assert MetricProtocol(pointing_tolerances_px=(2.5,)).pointing_columns() == ("pointing_t2p5",)


# ----------------------------------------------------------------- ROC-AUC, Gini, entropy
def test_roc_auc_of_the_mask_itself_and_its_inverse() -> None:
    tf, _ = score_one(G.astype(float), BOX)
    assert tf["roc_auc"] == 1.0
    tf, _ = score_one((~G).astype(float), BOX)
    assert tf["roc_auc"] == 0.0


def test_roc_auc_of_a_constant_map_is_one_half() -> None:
    for m in (np.full((224, 224), 2.5), np.full((14, 14), -1.0)):
        tf, _ = score_one(m, BOX)
        assert tf["roc_auc"] == 0.5


def test_roc_auc_counts_ties_as_one_half() -> None:
    # hot left half (cols < 112); G = rows 56..167, cols 56..167 straddles it
    m = np.zeros((224, 224))
    m[:, :112] = 1.0
    g_hot, g_cold = 112 * 56, 112 * 56  # G pixels in the hot and the cold half
    o_hot, o_cold = 224 * 112 - g_hot, 224 * 112 - g_cold
    wins = g_hot * o_cold + 0.5 * (g_hot * o_hot + g_cold * o_cold)
    tf, _ = score_one(m, BOX)
    assert tf["roc_auc"] == pytest.approx(wins / (12544 * (N_PIX - 12544)), abs=1e-15)


def test_roc_auc_is_null_for_an_empty_or_full_mask() -> None:
    m = np.random.default_rng(5).random((14, 14))
    assert math.isnan(score_one(m, np.zeros((0, 4)))[0]["roc_auc"])
    assert math.isnan(score_one(m, np.array([[0.0, 0.0, 1.0, 1.0]]))[0]["roc_auc"])


def test_gini_and_entropy_of_uniform_one_hot_and_two_level_maps() -> None:
    one_hot = np.zeros((224, 224))
    one_hot[100, 30] = 7.0
    half = np.zeros((224, 224))
    half[:112] = 1.0
    cases = {
        "uniform": (np.full((224, 224), 3.0), 0.0, math.log(N_PIX)),
        "uniform grid": (np.ones((14, 14)), 0.0, math.log(N_PIX)),
        "one hot": (one_hot, (N_PIX - 1) / N_PIX, 0.0),
        "two levels": (half, 0.5, math.log(N_PIX / 2)),
    }
    for name, (m, gini, entropy) in cases.items():
        tf, _ = score_one(m, BOX)
        assert tf["gini"] == pytest.approx(gini, abs=1e-12), name
        assert tf["entropy"] == pytest.approx(entropy, abs=1e-12), name


def test_map_columns_are_the_same_for_every_target_of_a_map() -> None:
    m = np.random.default_rng(6).random((3, 16, 16))
    targets = [BOX, np.array([[0.1, 0.1, 0.05, 0.05]]), np.zeros((0, 4))]
    tf, _ = score_map_targets(m, [targets] * 3)
    for col in MAP_COLUMNS:
        per_map = tf[col].reshape(3, 3)
        assert (per_map == per_map[:, :1]).all()
        assert np.isfinite(per_map).all()


def test_one_target_list_scores_like_separate_maps() -> None:
    rng = np.random.default_rng(8)
    m = rng.random((4, 14, 14))
    targets = [BOX, np.array([[0.6, 0.1, 0.2, 0.3]]), np.zeros((0, 4))]
    tf, pp = score_map_targets(m, [targets] * 4)
    flat_tf, flat_pp = score_maps(np.repeat(m, 3, axis=0), targets * 4)
    for col in tf:
        np.testing.assert_array_equal(tf[col], flat_tf[col], err_msg=col)
    for col in pp:
        np.testing.assert_array_equal(pp[col], flat_pp[col], err_msg=col)
