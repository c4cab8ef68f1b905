-- Alignment metrics (materialised by `ssl-wc metrics`), as views for every question.
-- Keys everywhere: model (baselines: 'baseline:<name>'), variant, method, layer, head.
-- Empty targets give NULL metrics, never a hit or a zero.

CREATE OR REPLACE VIEW metric_protocols AS
SELECT DISTINCT protocol_hash, protocol_json FROM _raw_metric_protocols;

-- One row per map and image (target = union of the image's boxes). IoU at every
-- percentile as columns; threshold-free metrics stored once per map.
CREATE OR REPLACE VIEW image_metrics AS
WITH iou AS (
    SELECT model, variant, method, layer, head, image_id, protocol_hash,
           max(iou) FILTER (WHERE percentile = 50) AS iou_50,
           max(iou) FILTER (WHERE percentile = 60) AS iou_60,
           max(iou) FILTER (WHERE percentile = 70) AS iou_70,
           max(iou) FILTER (WHERE percentile = 75) AS iou_75,
           max(iou) FILTER (WHERE percentile = 80) AS iou_80,
           max(iou) FILTER (WHERE percentile = 85) AS iou_85,
           max(iou) FILTER (WHERE percentile = 90) AS iou_90,
           max(iou) FILTER (WHERE percentile = 95) AS iou_95,
           max(iou_over_max) FILTER (WHERE percentile = 90) AS iou_over_max_90,
           max(corloc) FILTER (WHERE percentile = 90) AS corloc_90
    FROM _raw_metrics_iou WHERE target = 'image'
    GROUP BY ALL
)
SELECT m.model, m.variant, m.method, m.layer, m.head, head_label(m.head) AS head_label,
       m.image_id, m.protocol_hash, iou.* EXCLUDE (model, variant, method, layer, head,
       image_id, protocol_hash),
       m.coverage, m.pointing_t0, m.pointing_t15, m.topk_pointing, m.relevance_rank_acc,
       m.annotation_area, m.mse, m.kl, m.emd, m.roc_auc, m.emd_point, m.gini, m.entropy,
       m.source_run_id
FROM _raw_metrics_map m
LEFT JOIN iou USING (model, variant, method, layer, head, image_id, protocol_hash)
WHERE m.target = 'image';

-- Long form of the percentile metrics of each image: one row per map, image, percentile.
CREATE OR REPLACE VIEW image_iou AS
SELECT model, variant, method, layer, head, image_id, protocol_hash, percentile, iou,
       attention_area, random_iou, max_iou, iou_over_max, corloc
FROM _raw_metrics_iou WHERE target = 'image';

-- One row per map and box (the box alone is the target), with its feature type.
CREATE OR REPLACE VIEW box_metrics AS
WITH iou AS (
    SELECT model, variant, method, layer, head, image_id, box_index, protocol_hash,
           max(iou) FILTER (WHERE percentile = 50) AS iou_50,
           max(iou) FILTER (WHERE percentile = 60) AS iou_60,
           max(iou) FILTER (WHERE percentile = 70) AS iou_70,
           max(iou) FILTER (WHERE percentile = 75) AS iou_75,
           max(iou) FILTER (WHERE percentile = 80) AS iou_80,
           max(iou) FILTER (WHERE percentile = 85) AS iou_85,
           max(iou) FILTER (WHERE percentile = 90) AS iou_90,
           max(iou) FILTER (WHERE percentile = 95) AS iou_95,
           max(iou_over_max) FILTER (WHERE percentile = 90) AS iou_over_max_90
    FROM _raw_metrics_iou WHERE target = 'box'
    GROUP BY ALL
)
SELECT m.model, m.variant, m.method, m.layer, m.head, m.image_id, m.box_index, b.label,
       f.name AS feature_name, b.area_c AS box_area, m.protocol_hash,
       iou.iou_50, iou.iou_60, iou.iou_70, iou.iou_75, iou.iou_80, iou.iou_85, iou.iou_90,
       iou.iou_95, iou.iou_over_max_90,
       m.coverage, m.pointing_t0, m.pointing_t15, m.topk_pointing, m.relevance_rank_acc,
       m.mse, m.kl, m.emd, m.roc_auc, m.emd_point, m.gini, m.entropy
FROM _raw_metrics_map m
LEFT JOIN iou USING (model, variant, method, layer, head, image_id, box_index, protocol_hash)
LEFT JOIN _raw_ann_boxes b ON b.image_id = m.image_id AND b.box_index = m.box_index
LEFT JOIN _raw_ann_feature_types f ON f.label = b.label
WHERE m.target = 'box';

-- Every metric of one map source in long form (percentile NULL when threshold-free): the
-- one unpivot of the metric tables, faithfulness values included (their own protocol
-- hash; sql/25_faithfulness.sql). A NULL key matches every value; the filters sit at
-- the scans, so Parquet partitions and row groups are pruned, e.g.
-- SELECT * FROM metric_long_where('dinov2', 'frozen', 'cls') WHERE image_id = '...'.
CREATE OR REPLACE MACRO metric_long_where(model_key, variant_key, method_key) AS TABLE
SELECT model, variant, method, layer, head, image_id, target, box_index, protocol_hash,
       metric, CAST(NULL AS SMALLINT) AS percentile, value
FROM (UNPIVOT (SELECT model, variant, method, layer, head, image_id, target, box_index,
                      protocol_hash, coverage, pointing_t0, pointing_t15, topk_pointing,
                      relevance_rank_acc, mse, kl, emd, roc_auc, emd_point, gini, entropy
               FROM _raw_metrics_map
               WHERE (model_key IS NULL OR model = model_key)
                 AND (variant_key IS NULL OR variant = variant_key)
                 AND (method_key IS NULL OR method = method_key))
      ON coverage, pointing_t0, pointing_t15, topk_pointing, relevance_rank_acc, mse, kl, emd,
         roc_auc, emd_point, gini, entropy
      INTO NAME metric VALUE value)
UNION ALL
SELECT model, variant, method, layer, head, image_id, target, box_index, protocol_hash,
       metric, percentile, value
FROM (UNPIVOT (SELECT model, variant, method, layer, head, image_id, target, box_index,
                      protocol_hash, percentile, iou, iou_over_max, corloc
               FROM _raw_metrics_iou
               WHERE (model_key IS NULL OR model = model_key)
                 AND (variant_key IS NULL OR variant = variant_key)
                 AND (method_key IS NULL OR method = method_key))
      ON iou, iou_over_max, corloc INTO NAME metric VALUE value)
UNION ALL
SELECT model, variant, method, layer, head, image_id, target, box_index, protocol_hash,
       metric, percentile, value
FROM faithfulness_metric_long
WHERE (model_key IS NULL OR model = model_key)
  AND (variant_key IS NULL OR variant = variant_key)
  AND (method_key IS NULL OR method = method_key);

-- Every metric of every map and target in long form (percentile NULL when threshold-free).
CREATE OR REPLACE VIEW metric_long AS
SELECT * FROM metric_long_where(NULL, NULL, NULL);

-- The summaries below are materialised by `ssl-wc metrics` (per map source, from the
-- definitions in sql/queries/job_*_summaries.sql over metric_long_where) and read here
-- as tables: the same columns the views always had, without unpivoting at read time.

-- Per feature type, boxes as targets. rollup = false: boxes of the label itself;
-- rollup = true: boxes of the label and of every descendant in the ontology (a DAG, so a
-- box counts under each of its ancestors), e.g. "all Window kinds".
CREATE OR REPLACE VIEW feature_metrics AS
SELECT model, variant, method, layer, head, feature_label, feature_name, rollup,
       protocol_hash, metric, percentile, n_boxes, n_images, mean, sd
FROM _raw_feature_summaries;

-- Per style. Rule: each image counts under its FIRST listed style (primary_style), so
-- every image counts once; per-tag counts are available from image_styles.
CREATE OR REPLACE VIEW style_metrics AS
SELECT model, variant, method, layer, head, style_id, style_name, style_rule,
       protocol_hash, metric, percentile, n_images, mean, sd
FROM _raw_style_summaries;

-- Mean, sd, n and a percentile-bootstrap 95 % CI (10,000 resamples, seed 0) per model,
-- method, layer and metric, for fused maps (head < 0) and baselines; materialised by
-- `ssl-wc metrics`. Layers are integers and sort numerically.
CREATE OR REPLACE VIEW layer_progression AS
SELECT model, variant, method, layer, head, head_label(head) AS head_label, protocol_hash,
       metric, percentile, n, mean, sd, ci_low, ci_high, c.direction
FROM _raw_metric_summaries
LEFT JOIN metric_catalogue c USING (metric)
ORDER BY model, variant, method, head, metric, percentile, layer;

-- Per model and metric: the best layer under the model's default method (fused mean
-- heads), and the best over all methods; baselines appear as rows of their own.
CREATE OR REPLACE VIEW leaderboard AS
WITH s AS (
    SELECT p.*, d.default_method, c.direction,
           CASE WHEN c.direction = 'lower' THEN -p.mean ELSE p.mean END AS score
    FROM _raw_metric_summaries p
    JOIN model_defaults d USING (model)
    LEFT JOIN metric_catalogue c USING (metric)
    WHERE p.head = -1
),
best_default AS (
    -- ties go to the lowest layer: the key [score, -layer] orders them
    SELECT model, variant, protocol_hash, metric, percentile,
           arg_max(layer, [score, -layer]) AS best_layer, max(score) AS best_score,
           arg_max(mean, [score, -layer]) AS mean, arg_max(ci_low, [score, -layer]) AS ci_low,
           arg_max(ci_high, [score, -layer]) AS ci_high, arg_max(n, [score, -layer]) AS n,
           any_value(default_method) AS default_method, any_value(direction) AS direction
    FROM s WHERE method = default_method
    GROUP BY ALL
),
best_any AS (
    SELECT model, variant, protocol_hash, metric, percentile,
           arg_max(method, [score, -layer]) AS best_any_method,
           arg_max(layer, [score, -layer]) AS best_any_layer,
           arg_max(mean, [score, -layer]) AS best_any_mean
    FROM s GROUP BY ALL
)
SELECT d.model, d.variant, is_baseline(d.model) AS is_baseline, d.protocol_hash, d.metric,
       d.percentile, d.direction, d.default_method, d.best_layer, d.mean, d.ci_low,
       d.ci_high, d.n, a.best_any_method, a.best_any_layer, a.best_any_mean,
       rank() OVER (PARTITION BY d.variant, d.protocol_hash, d.metric, d.percentile
                    ORDER BY d.best_score DESC) AS rank
FROM best_default d
JOIN best_any a ON a.model = d.model AND a.variant = d.variant
               AND a.protocol_hash = d.protocol_hash AND a.metric = d.metric
               AND a.percentile IS NOT DISTINCT FROM d.percentile;

-- Model minus each baseline, paired over images (same image, same metric): mean
-- difference, sd, n, Cohen's d_z and the paired t statistic. p-values come from
-- model_comparisons (computed in Python with survival functions).
CREATE OR REPLACE VIEW baseline_gap AS
SELECT model, variant, method, layer, head, baseline, protocol_hash, metric, percentile, n,
       mean_diff, sd_diff, d_z, t_stat, direction
FROM _raw_baseline_gaps;

-- Single heads ranked within each image (rank 1 = best under the metric's direction),
-- then summarised per model, layer and head: mean score, mean rank, top-1 / top-3 counts.
CREATE OR REPLACE VIEW head_ranking AS
SELECT model, variant, method, layer, head, protocol_hash, metric, percentile, n_images,
       mean_score, mean_rank, top1, top3
FROM _raw_head_rankings;

-- Head x feature matrix: mean per single head and feature label (boxes as targets).
CREATE OR REPLACE VIEW head_feature_matrix AS
SELECT model, variant, method, layer, head, feature_label, feature_name, protocol_hash,
       metric, percentile, n_boxes, mean
FROM feature_metrics WHERE head >= 0 AND NOT rollup;

-- One metric chosen by name (metric_name; pct applies to the percentile metrics iou,
-- iou_over_max and corloc) as `value`, with layer, head, image_id and box_index, for one
-- model, variant, method, target ('image' or 'box') and protocol. The filters sit next
-- to the scans, so Parquet partitions and row groups are pruned; callers add layer and
-- head filters. The dashboards' breakdown queries read metrics through it, e.g.
-- SELECT avg(value) FROM metric_values('iou', 90, 'dinov2', 'frozen', 'cls', 'image', h)
-- WHERE layer = 11 AND head = -1.
CREATE OR REPLACE MACRO metric_values(metric_name, pct, model_key, variant_key, method_key,
                                      target_kind, protocol) AS TABLE
SELECT layer, head, image_id, box_index,
       CASE metric_name WHEN 'iou' THEN iou WHEN 'iou_over_max' THEN iou_over_max
                        WHEN 'corloc' THEN corloc END AS value
FROM _raw_metrics_iou
WHERE metric_name IN ('iou', 'iou_over_max', 'corloc') AND percentile = pct
  AND model = model_key AND variant = variant_key AND method = method_key
  AND target = target_kind AND protocol_hash = protocol
UNION ALL
SELECT layer, head, image_id, box_index,
       CASE metric_name WHEN 'coverage' THEN coverage WHEN 'pointing_t0' THEN pointing_t0
            WHEN 'pointing_t15' THEN pointing_t15 WHEN 'topk_pointing' THEN topk_pointing
            WHEN 'relevance_rank_acc' THEN relevance_rank_acc WHEN 'mse' THEN mse
            WHEN 'kl' THEN kl WHEN 'emd' THEN emd END
FROM _raw_metrics_map
WHERE metric_name NOT IN ('iou', 'iou_over_max', 'corloc')
  AND model = model_key AND variant = variant_key AND method = method_key
  AND target = target_kind AND protocol_hash = protocol;
