-- Fine-tuning (written by `ssl-wc finetune`): runs, training curves, splits, and how far
-- fine-tuning moved each model's attention relative to the frozen backbone.
-- A fine-tuned variant keeps its base model key (model 'dinov2', variant 'lora'); its
-- strategy is its variant (linear_probe | lora | full).

-- Split rows: train / val (used for fine-tuning), annotated (benchmark images) and
-- annotated_church (other photos of an annotated church): the last two are never used.
-- Label rule: the church's FIRST listed style, among the 4 study styles.
CREATE OR REPLACE VIEW finetune_splits AS
SELECT s.split_id, s.image_id, s.style_id, st.name AS style_name, s.split,
       s.split IN ('train', 'val') AS used_for_training, s.run_id
FROM _raw_finetune_splits s
LEFT JOIN _raw_ann_styles st USING (style_id);

-- Images per split, split part and style.
CREATE OR REPLACE VIEW finetune_split_counts AS
SELECT split_id, split, style_id, any_value(style_name) AS style_name, count(*) AS n_images
FROM finetune_splits
GROUP BY ALL
ORDER BY split_id, split, style_id;

-- One row per fine-tuned model (latest committed run of each finetune id), with its run.
CREATE OR REPLACE VIEW finetune_runs AS
SELECT m.finetune_id, m.model, m.strategy, m.split_id, m.best_epoch, m.best_val_acc,
       m.n_trainable, m.n_params,
       m.n_trainable::DOUBLE / nullif(m.n_params, 0) AS trainable_share,
       s.n_train, s.n_val, s.n_held_out, m.checkpoint, m.config_json,
       m.run_id, r.status, r.started_at, r.ended_at, r.seconds, r.device, r.code_version
FROM _raw_finetune_models m
LEFT JOIN (SELECT split_id,
                  count(*) FILTER (WHERE split = 'train') AS n_train,
                  count(*) FILTER (WHERE split = 'val') AS n_val,
                  count(*) FILTER (WHERE split IN ('annotated', 'annotated_church'))
                      AS n_held_out
           FROM _raw_finetune_splits GROUP BY split_id) s USING (split_id)
LEFT JOIN _runs r USING (run_id);

-- Training curves: losses are class-weighted means over samples, accuracies plain.
CREATE OR REPLACE VIEW finetune_epochs AS
SELECT finetune_id, model, strategy, epoch, train_loss, val_loss, train_acc, val_acc, lr_head,
       seconds, run_id
FROM _raw_finetune_epochs
ORDER BY model, strategy, finetune_id, epoch;

-- Fine-tuned minus frozen per image: same model, method, layer, image, protocol, metric
-- and percentile; fused mean map (head = -1), the union of the image's boxes as target.
-- gain > 0 means the fine-tuned map is closer to the experts (the metric's direction).
CREATE OR REPLACE VIEW variant_image_deltas AS
WITH f AS (
    SELECT model, variant, method, layer, image_id, protocol_hash, metric, percentile, value
    FROM metric_long
    WHERE target = 'image' AND head = -1 AND variant <> 'frozen' AND NOT is_baseline(model)
), z AS (
    SELECT model, method, layer, image_id, protocol_hash, metric, percentile, value
    FROM metric_long
    WHERE target = 'image' AND head = -1 AND variant = 'frozen' AND NOT is_baseline(model)
)
SELECT f.model, f.variant AS strategy, f.method, f.layer, f.image_id, f.protocol_hash,
       f.metric, f.percentile, f.value AS finetuned, z.value AS frozen,
       f.value - z.value AS delta, c.direction,
       CASE WHEN c.direction = 'lower' THEN z.value - f.value ELSE f.value - z.value END
           AS gain
FROM f
JOIN z ON z.model = f.model AND z.method = f.method AND z.layer = f.layer
      AND z.image_id = f.image_id AND z.protocol_hash = f.protocol_hash
      AND z.metric = f.metric AND z.percentile IS NOT DISTINCT FROM f.percentile
LEFT JOIN metric_catalogue c ON c.metric = f.metric
WHERE f.value IS NOT NULL AND z.value IS NOT NULL;

-- Per model, strategy, method, layer and metric: mean delta, sd, n, Cohen's d_z and the
-- paired t statistic in SQL; CI, p-values and Holm's adjustment (family stated per row)
-- from `variant_delta_stats` (materialised in Python; stats_current = false when the
-- metrics changed since: rerun `ssl-wc finetune ...`, which skips what is done and
-- refreshes the statistics).
CREATE OR REPLACE VIEW variant_deltas AS
WITH d AS (
    SELECT model, strategy, method, layer, protocol_hash, metric, percentile,
           count(*) AS n, avg(finetuned) AS mean_finetuned, avg(frozen) AS mean_frozen,
           avg(delta) AS mean_delta, stddev_samp(delta) AS sd_delta,
           any_value(direction) AS direction
    FROM variant_image_deltas
    GROUP BY ALL
)
SELECT d.model, d.strategy, d.method, d.layer, d.protocol_hash, d.metric, d.percentile, d.n,
       d.mean_frozen, d.mean_finetuned, d.mean_delta, d.sd_delta,
       d.mean_delta / nullif(d.sd_delta, 0) AS d_z,
       d.mean_delta / nullif(d.sd_delta / sqrt(d.n), 0) AS t_stat,
       d.direction,
       CASE WHEN d.direction = 'lower' THEN -d.mean_delta ELSE d.mean_delta END AS gain,
       s.ci_low, s.ci_high, s.p_t AS p, s.p_wilcoxon, s.p_holm,
       coalesce(s.p_holm < 0.05, false) AS significant, s.family, s.family_size,
       s.n IS NOT NULL AND s.n = d.n
           AND abs(coalesce(s.mean_delta, 0) - d.mean_delta) <= 1e-12 AS stats_current
FROM d
LEFT JOIN _raw_variant_delta_stats s
       ON s.model = d.model AND s.strategy = d.strategy AND s.method = d.method
      AND s.layer = d.layer AND s.protocol_hash = d.protocol_hash AND s.metric = d.metric
      AND s.percentile IS NOT DISTINCT FROM d.percentile;

-- Deltas per style. Rule: each image counts under its FIRST listed style (primary_style).
CREATE OR REPLACE VIEW variant_deltas_by_style AS
SELECT d.model, d.strategy, d.method, d.layer, i.primary_style AS style_id,
       any_value(st.name) AS style_name, 'first listed style' AS style_rule, d.protocol_hash,
       d.metric, d.percentile, count(*) AS n_images, avg(d.delta) AS mean_delta,
       stddev_samp(d.delta) AS sd_delta,
       avg(d.delta) / nullif(stddev_samp(d.delta), 0) AS d_z,
       avg(d.delta) / nullif(stddev_samp(d.delta) / sqrt(count(*)), 0) AS t_stat,
       any_value(d.direction) AS direction
FROM variant_image_deltas d
JOIN _raw_ann_images i ON i.image_id = d.image_id
LEFT JOIN _raw_ann_styles st ON st.style_id = i.primary_style
GROUP BY d.model, d.strategy, d.method, d.layer, i.primary_style, d.protocol_hash, d.metric,
         d.percentile;

-- Deltas per feature type with each box alone as the target (fused mean map), by the
-- box's own label and rolled up to every ancestor (rollup = true). Boxes of one image are
-- not independent: t_stat treats boxes as units and is descriptive only.
CREATE OR REPLACE VIEW variant_deltas_by_feature AS
WITH f AS (
    SELECT model, variant, method, layer, image_id, box_index, protocol_hash, metric,
           percentile, value
    FROM metric_long
    WHERE target = 'box' AND head = -1 AND variant <> 'frozen' AND NOT is_baseline(model)
), z AS (
    SELECT model, method, layer, image_id, box_index, protocol_hash, metric, percentile, value
    FROM metric_long
    WHERE target = 'box' AND head = -1 AND variant = 'frozen' AND NOT is_baseline(model)
), d AS (
    SELECT f.model, f.variant AS strategy, f.method, f.layer, f.image_id, f.box_index,
           f.protocol_hash, f.metric, f.percentile, f.value - z.value AS delta
    FROM f
    JOIN z ON z.model = f.model AND z.method = f.method AND z.layer = f.layer
          AND z.image_id = f.image_id AND z.box_index = f.box_index
          AND z.protocol_hash = f.protocol_hash AND z.metric = f.metric
          AND z.percentile IS NOT DISTINCT FROM f.percentile
    WHERE f.value IS NOT NULL AND z.value IS NOT NULL
)
-- rollup = false: boxes of the label itself; true: the label and all its descendants
, g AS (
    SELECT d.*, a.ancestor AS feature_label, false AS rollup
    FROM d JOIN _raw_ann_boxes b ON b.image_id = d.image_id AND b.box_index = d.box_index
    JOIN _raw_ann_feature_ancestors a ON a.label = b.label AND a.depth = 0
    UNION ALL
    SELECT d.*, a.ancestor AS feature_label, true AS rollup
    FROM d JOIN _raw_ann_boxes b ON b.image_id = d.image_id AND b.box_index = d.box_index
    JOIN _raw_ann_feature_ancestors a ON a.label = b.label
)
SELECT g.model, g.strategy, g.method, g.layer, g.feature_label, ft.name AS feature_name,
       g.rollup, g.protocol_hash, g.metric, g.percentile, count(*) AS n_boxes,
       count(DISTINCT g.image_id) AS n_images, avg(g.delta) AS mean_delta,
       stddev_samp(g.delta) AS sd_delta,
       avg(g.delta) / nullif(stddev_samp(g.delta), 0) AS d_z,
       avg(g.delta) / nullif(stddev_samp(g.delta) / sqrt(count(*)), 0) AS t_stat,
       any_value(c.direction) AS direction
FROM g
JOIN _raw_ann_feature_types ft ON ft.label = g.feature_label
LEFT JOIN metric_catalogue c ON c.metric = g.metric
GROUP BY g.model, g.strategy, g.method, g.layer, g.feature_label, ft.name, g.rollup,
         g.protocol_hash, g.metric, g.percentile;
