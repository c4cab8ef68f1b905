"""Materialised summaries: equal to the views they replace, per map source, crash-safe.

The feature, style, head-ranking and baseline-gap views used to aggregate the generic
unpivot ``metric_long`` at read time; ``ssl-wc metrics`` now writes them as lake tables
per map source. ``OLD_VIEWS`` holds the former view definitions, verbatim, as the
reference they must equal row for row.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, cli_env, plain_connect, query_catalog

OLD_VIEWS: dict[str, tuple[str, list[str]]] = {
    "feature_metrics": ("""
WITH scored AS (
    SELECT l.*, b.label FROM metric_long l
    JOIN _raw_ann_boxes b ON b.image_id = l.image_id AND b.box_index = l.box_index
    WHERE l.target = 'box'
), grouped AS (
    SELECT s.*, a.ancestor AS feature_label, false AS rollup
    FROM scored s JOIN _raw_ann_feature_ancestors a ON a.label = s.label AND a.depth = 0
    UNION ALL
    SELECT s.*, a.ancestor AS feature_label, true AS rollup
    FROM scored s JOIN _raw_ann_feature_ancestors a ON a.label = s.label
)
SELECT g.model, g.variant, g.method, g.layer, g.head, g.feature_label, f.name AS feature_name,
       g.rollup, g.protocol_hash, g.metric, g.percentile, count(g.value) AS n_boxes,
       count(DISTINCT g.image_id) AS n_images, avg(g.value) AS mean,
       stddev_samp(g.value) AS sd
FROM grouped g JOIN _raw_ann_feature_types f ON f.label = g.feature_label
GROUP BY ALL""", ["model", "variant", "method", "layer", "head", "feature_label", "rollup",
                  "protocol_hash", "metric", "percentile"]),
    "style_metrics": ("""
SELECT l.model, l.variant, l.method, l.layer, l.head, i.primary_style AS style_id,
       s.name AS style_name, 'first listed style' AS style_rule, l.protocol_hash, l.metric,
       l.percentile, count(l.value) AS n_images, avg(l.value) AS mean,
       stddev_samp(l.value) AS sd
FROM metric_long l
JOIN _raw_ann_images i ON i.image_id = l.image_id
LEFT JOIN _raw_ann_styles s ON s.style_id = i.primary_style
WHERE l.target = 'image'
GROUP BY ALL""", ["model", "variant", "method", "layer", "head", "style_id", "protocol_hash",
                  "metric", "percentile"]),
    "head_ranking": ("""
WITH r AS (
    SELECT l.*, rank() OVER (
               PARTITION BY l.model, l.variant, l.method, l.layer, l.image_id, l.protocol_hash,
                            l.metric, l.percentile
               ORDER BY CASE WHEN c.direction = 'lower' THEN l.value ELSE -l.value END) AS r
    FROM metric_long l LEFT JOIN metric_catalogue c USING (metric)
    WHERE l.target = 'image' AND l.head >= 0 AND l.value IS NOT NULL
)
SELECT model, variant, method, layer, head, protocol_hash, metric, percentile,
       count(*) AS n_images, avg(value) AS mean_score, avg(r) AS mean_rank,
       count(*) FILTER (WHERE r = 1) AS top1, count(*) FILTER (WHERE r <= 3) AS top3
FROM r GROUP BY ALL""", ["model", "variant", "method", "layer", "head", "protocol_hash",
                         "metric", "percentile"]),
    "baseline_gap": ("""
WITH m AS (
    SELECT * FROM metric_long WHERE target = 'image' AND NOT is_baseline(model) AND head < 0
), b AS (
    SELECT model AS baseline, image_id, protocol_hash, metric, percentile, value
    FROM metric_long WHERE target = 'image' AND is_baseline(model)
)
SELECT m.model, m.variant, m.method, m.layer, m.head, b.baseline, m.protocol_hash, m.metric,
       m.percentile, count(*) AS n, avg(m.value - b.value) AS mean_diff,
       stddev_samp(m.value - b.value) AS sd_diff,
       avg(m.value - b.value) / nullif(stddev_samp(m.value - b.value), 0) AS d_z,
       avg(m.value - b.value) / nullif(stddev_samp(m.value - b.value) / sqrt(count(*)), 0)
           AS t_stat,
       any_value(c.direction) AS direction
FROM m
JOIN b ON b.image_id = m.image_id AND b.metric = m.metric
      AND b.percentile IS NOT DISTINCT FROM m.percentile AND b.protocol_hash = m.protocol_hash
LEFT JOIN metric_catalogue c ON c.metric = m.metric
WHERE m.value IS NOT NULL AND b.value IS NOT NULL
GROUP BY ALL""", ["model", "variant", "method", "layer", "head", "baseline", "protocol_hash",
                  "metric", "percentile"]),
}


def _sorted_rows(wh, sql: str, keys: list[str]) -> tuple[list[str], list[tuple]]:
    con = plain_connect(wh.catalog)
    try:
        rel = con.sql(sql)
        cols = rel.columns
        order = ", ".join(f'"{k}" NULLS FIRST' for k in keys)
        rows = con.sql(f"SELECT * FROM ({sql}) ORDER BY {order}").fetchall()
        return cols, rows
    finally:
        con.close()


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def assert_equal_to_old_views(wh, where: str = "true") -> dict[str, int]:
    """Every materialised summary view equals its former definition row for row (counts
    exactly, means and sds to 1e-12: the aggregation order may differ)."""
    sizes = {}
    for view, (old_sql, keys) in OLD_VIEWS.items():
        cols_new, new = _sorted_rows(wh, f"SELECT * FROM {view} WHERE {where}", keys)
        cols_old, old = _sorted_rows(wh, f"SELECT * FROM ({old_sql}) WHERE {where}", keys)
        assert cols_new == cols_old, view
        assert len(new) == len(old), (view, len(new), len(old))
        for r_new, r_old in zip(new, old, strict=True):
            assert all(_same(a, b) for a, b in zip(r_new, r_old, strict=True)), \
                (view, r_new, r_old)
        sizes[view] = len(new)
    return sizes


def test_materialised_summaries_equal_the_old_views(scored_wh):
    sizes = assert_equal_to_old_views(scored_wh)
    assert all(n > 0 for n in sizes.values()), sizes
    # the views keep their column types (a plain duckdb session reads them the same way)
    types = dict((r[0], r[1]) for r in query_catalog(scored_wh, "DESCRIBE feature_metrics"))
    assert types["n_boxes"] == "BIGINT" and types["percentile"] == "SMALLINT"
    assert types["rollup"] == "BOOLEAN" and types["mean"] == "DOUBLE"


@pytest.mark.slow
def test_materialised_summaries_equal_the_old_views_at_full_scale(tmp_path_factory):
    """The full-scale synthetic warehouse (139 images, 7 models x 12 layers x 13 heads x
    3 methods): every row of two models, and every view's row count."""
    from tests.dashboard_fixture import FixtureSpec, build_warehouse

    root = tmp_path_factory.mktemp("full") / "wh"
    built = build_warehouse(root, FixtureSpec.full_scale())
    from ssl_wc.paths import WarehousePaths

    wh = WarehousePaths.of(built.root)
    for model in ("dinov2", "siglip2"):
        sizes = assert_equal_to_old_views(wh, f"model = '{model}'")
        assert sizes["feature_metrics"] > 100_000
    for view, (old_sql, _) in OLD_VIEWS.items():
        if view != "feature_metrics":  # the slowest of the old views; sampled above
            n_old = query_catalog(wh, f"SELECT count(*) FROM ({old_sql})")[0][0]
            assert query_catalog(wh, f"SELECT count(*) FROM {view}")[0][0] == n_old


def test_a_kill_during_the_summaries_leaves_the_old_ones_visible(scored_wh):
    """SIGKILL the summaries job at random points: every view shows exactly the
    summaries of the last committed run, then a rerun completes."""
    views = ["layer_progression", *OLD_VIEWS]
    keys = {v: k for v, (_, k) in OLD_VIEWS.items()}
    keys["layer_progression"] = ["model", "variant", "method", "layer", "head",
                                 "protocol_hash", "metric", "percentile"]

    def state() -> dict[str, list[tuple]]:
        return {v: _sorted_rows(scored_wh, f"SELECT * FROM {v}", keys[v])[1] for v in views}

    reference = state()
    script = ("from ingest.metrics import materialise_summaries; "
              "from ssl_wc.paths import WarehousePaths; "
              f"materialise_summaries(WarehousePaths.of({str(scored_wh.root)!r}), "
              "resamples=500, force=True)")
    rng = random.Random(18)
    kills = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                                env=cli_env(SSL_WC_FAULT_SLEEP="0.05"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        time.sleep(rng.uniform(1.0, 6.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        assert state() == reference
    assert kills > 0
    done = subprocess.run([sys.executable, "-c", script.replace("resamples=500", "resamples="
                                                                "10000")],
                          cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_equal_to_old_views(scored_wh)
