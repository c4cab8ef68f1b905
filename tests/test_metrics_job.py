"""The metrics, baselines, summaries and statistics jobs, and the views over them."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from ingest.attention import AttentionJob, ingest_attention
from ingest.metrics import materialise_metrics, score_rows
from ssl_wc.metrics.protocol import MetricProtocol
from tests.conftest import ROOT, SSL_WC, cli_env, query_catalog

_q = query_catalog


def test_empty_target_is_null_not_zero():
    keys = {k: [v] for k, v in dict(model="m", variant="frozen", method="cls", layer=0, head=-1,
                                   image_id="x", source_run_id="r").items()}
    mm, mi, _ = score_rows(keys, np.random.default_rng(0).random((1, 4, 4)),
                           [np.zeros((0, 4))], MetricProtocol(), "p")
    row = mm.to_pylist()[0]
    assert row["pointing_t0"] is None and row["pointing_t15"] is None
    assert row["coverage"] is None and row["kl"] is None
    assert all(r["iou"] is None for r in mi.to_pylist())


def test_baselines_are_models(scored_wh):
    models = {r[0] for r in _q(scored_wh, "SELECT DISTINCT model FROM image_metrics")}
    assert {"baseline:random", "baseline:center_gaussian", "baseline:saliency_prior",
            "baseline:sobel_edges", "dinov2-random", "siglip-random"} <= models
    rows = _q(scored_wh, "SELECT DISTINCT method, layer, head FROM image_metrics WHERE "
                         "is_baseline(model)")
    assert rows == [("baseline", 0, -1)]


@pytest.mark.parametrize("metric, pct", [("iou", 90), ("coverage", None), ("emd", None)])
def test_leaderboard_ranks_models_and_baselines(scored_wh, metric, pct):
    cond = "percentile IS NULL" if pct is None else f"percentile = {pct}"
    rows = _q(scored_wh, f"SELECT model, rank, best_layer, direction, mean FROM leaderboard "
                         f"WHERE metric = '{metric}' AND {cond} ORDER BY rank")
    assert len(rows) == 6
    assert sum(r[0].startswith("baseline:") for r in rows) == 4
    means = [r[4] for r in rows]
    lower = rows[0][3] == "lower"
    assert means == sorted(means, reverse=not lower)


def test_layer_progression_is_numeric_with_cis(scored_wh):
    rows = _q(scored_wh, "SELECT layer, mean, ci_low, ci_high, n FROM layer_progression WHERE "
                         "model = 'dinov2-random' AND method = 'cls' AND metric = 'iou' AND "
                         "percentile = 90 AND head = -1")
    assert [r[0] for r in rows] == list(range(12))
    assert all(r[2] <= r[1] <= r[3] and r[4] == 32 for r in rows)


def test_per_box_and_feature_rollups(scored_wh):
    n_boxes = _q(scored_wh, "SELECT count(*) FROM boxes")[0][0]
    per_map = _q(scored_wh, "SELECT count(*) FROM box_metrics WHERE model = 'dinov2-random' "
                            "AND method = 'cls' AND layer = 0 AND head = -1")[0][0]
    assert per_map == n_boxes
    # a roll-up to an ancestor counts every box of its descendants
    rows = _q(scored_wh, """
        SELECT f.feature_label, f.n_boxes,
               (SELECT count(*) FROM boxes b JOIN feature_ancestors a ON a.label = b.label
                WHERE a.ancestor = f.feature_label) AS expected
        FROM feature_metrics f
        WHERE model = 'dinov2-random' AND method = 'cls' AND layer = 0 AND head = -1
          AND metric = 'coverage' AND rollup""")
    assert rows and all(r[1] == r[2] for r in rows)
    assert any(r[1] > 0 for r in rows)


def test_style_rule_counts_each_image_once(scored_wh):
    rows = _q(scored_wh, "SELECT sum(n_images) FROM style_metrics WHERE model = 'dinov2-random' "
                         "AND method = 'cls' AND layer = 0 AND head = -1 AND metric = 'coverage'")
    assert rows == [(32,)]


@pytest.mark.parametrize(("metric", "column"), [("iou", "iou_90"), ("kl", "kl")])
def test_metric_values_macro_picks_the_named_metric(scored_wh, metric, column):
    proto = _q(scored_wh, "SELECT min(protocol_hash) FROM image_metrics")[0][0]
    got = _q(scored_wh, f"""
        SELECT image_id, value FROM metric_values('{metric}', 90, 'dinov2-random', 'frozen',
                                                  'cls', 'image', '{proto}')
        WHERE layer = 1 AND head = -1 ORDER BY image_id""")
    want = _q(scored_wh, f"""
        SELECT image_id, {column} FROM image_metrics
        WHERE model = 'dinov2-random' AND variant = 'frozen' AND method = 'cls'
          AND layer = 1 AND head = -1 AND protocol_hash = '{proto}' ORDER BY image_id""")
    assert len(got) == 32 and got == want
    n_box = _q(scored_wh, f"""
        SELECT count(*) FROM metric_values('{metric}', 90, 'dinov2-random', 'frozen', 'cls',
                                           'box', '{proto}') WHERE layer = 1 AND head = -1""")
    assert n_box == _q(scored_wh, "SELECT count(*) FROM boxes")


def test_head_ranking_counts(scored_wh):
    rows = _q(scored_wh, "SELECT sum(top1), sum(top3), max(n_images) FROM head_ranking WHERE "
                         "model = 'dinov2-random' AND method = 'cls' AND layer = 3 AND "
                         "metric = 'iou' AND percentile = 90")
    top1, top3, n = rows[0]
    assert n == 32 and top1 >= 32 and top3 >= top1  # ties share a rank


def test_comparisons_family_and_p_values(scored_wh):
    rows = _q(scored_wh, "SELECT family_size, p_t, p_holm, p_bonferroni, p_bh, family FROM "
                         "model_comparisons WHERE metric = 'iou' AND percentile = 90 AND "
                         "layer_rule = 'best_layer'")
    assert len(rows) == 15 and all(r[0] == 15 for r in rows)  # 6 models -> 15 pairs
    for _size, p, holm, bonf, bh, family in rows:
        if p is None:
            continue
        assert 0 < p <= 1 and p <= holm <= bonf and p <= bh <= 1
        assert "15 model pairs" in family


def test_metrics_are_incremental(scored_wh, tiny_models):
    specs, _ = tiny_models
    res = materialise_metrics(scored_wh, random_trials=10)
    assert [r.status for r in res][:2] == ["skipped", "skipped"]
    one = "Q99100003_wd0.jpg"
    ingest_attention(scored_wh, AttentionJob(models=["siglip-random"], specs=specs,
                                             images=[one], force=True, progress=False,
                                             methods=("map", "mean"), device="cpu"))
    res = materialise_metrics(scored_wh, random_trials=10)
    assert res[0].status == "committed"
    n_maps = _q(scored_wh, f"SELECT count(*) FROM attention_maps WHERE model = 'siglip-random' "
                           f"AND image_id = '{one}' AND method IN ('map', 'mean')")[0][0]
    assert res[0].new == n_maps
    # only the two rescored map sources have their summaries recomputed
    assert res[-1].job == "summaries" and res[-1].status == "committed"
    assert res[-1].new == 2 and res[-1].skipped > 2


def test_udf_with_own_percentile(scored_wh):
    out = subprocess.run([*SSL_WC, "-w", str(scored_wh.root), "sql", """
        SELECT count(*) AS n, min(iou97) >= 0 AS ok FROM (
          SELECT iou_at(m."values", m.grid_h, m.grid_w,
                        list([b.left_c, b.top_c, b.width_c, b.height_c]), 97) AS iou97
          FROM attention_maps m JOIN boxes b USING (image_id)
          WHERE m.model = 'dinov2-random' AND m.layer = 11 AND m.method = 'cls' AND m.head = -1
          GROUP BY m.image_id, m."values", m.grid_h, m.grid_w)""", "-f", "csv"],
        cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[1] == "32,true"


def test_probe_results(scored_wh):
    rows = _q(scored_wh, "SELECT model, feature_kind, n_folds, accuracy, macro_f1 FROM "
                         "probe_results")
    assert rows
    assert all(0 <= r[3] <= 1 and r[2] >= 2 for r in rows)
