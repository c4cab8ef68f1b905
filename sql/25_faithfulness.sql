-- Faithfulness and sanity checks (materialised by `ssl-wc faithfulness`): does a map
-- reflect the model? Same map keys as the metric views: model, variant, method, layer,
-- head (-1: the mean-fused map), image_id. Controls of the deletion check are rows of
-- the model they were scored with: method 'baseline:<name>' (random, center_gaussian,
-- saliency_prior, sobel_edges), layer -1. Pure SQL (no Python UDFs).

-- Every protocol the checks ran under (kind 'deletion' or 'mprt'), as JSON.
CREATE OR REPLACE VIEW faithfulness_protocols AS
SELECT DISTINCT protocol_hash, kind, protocol_json FROM _raw_faithfulness_protocols;

-- One row per map (or control) and image: deletion and insertion AUC (RISE, Petsiuk et
-- al. 2018; removal per the protocol, ROAD by default) of the cosine similarity of the
-- pooled embedding, and of the predicted class's probability for fine-tuned variants.
-- road_gap = insertion - deletion AUC (= ROAD's LeRF - MoRF: the step counts are
-- symmetric). The image's random-order control sits beside each row: deletion_gain =
-- random - map deletion AUC, insertion_gain = map - random insertion AUC (higher: the map
-- finds what the model relies on better than chance).
CREATE OR REPLACE VIEW faithfulness_metrics AS
WITH r AS (
    SELECT model, variant, image_id, protocol_hash, deletion_auc AS random_deletion_auc,
           insertion_auc AS random_insertion_auc,
           deletion_auc_prob AS random_deletion_auc_prob,
           insertion_auc_prob AS random_insertion_auc_prob
    FROM _raw_faithfulness_curves WHERE method = 'baseline:random'
)
SELECT c.model, c.variant, c.method, c.layer, c.head, head_label(c.head) AS head_label,
       c.image_id, c.protocol_hash, starts_with(c.method, 'baseline:') AS is_control,
       c.n_cells, len(c.deletion) - 1 AS steps, c.deletion_auc, c.insertion_auc,
       c.insertion_auc - c.deletion_auc AS road_gap, r.random_deletion_auc,
       r.random_insertion_auc, r.random_deletion_auc - c.deletion_auc AS deletion_gain,
       c.insertion_auc - r.random_insertion_auc AS insertion_gain, c.deletion_auc_prob,
       c.insertion_auc_prob, c.insertion_auc_prob - c.deletion_auc_prob AS road_gap_prob,
       r.random_deletion_auc_prob - c.deletion_auc_prob AS deletion_gain_prob,
       c.insertion_auc_prob - r.random_insertion_auc_prob AS insertion_gain_prob,
       c.source_run_id
FROM _raw_faithfulness_curves c
LEFT JOIN r USING (model, variant, image_id, protocol_hash);

-- The curves in long form: one row per map, image, curve (deletion | insertion), score
-- (cosine | class_prob) and step; t = step / steps is the share of cells removed
-- (deletion) or kept (insertion).
CREATE OR REPLACE VIEW faithfulness_curves AS
WITH c AS (
    SELECT model, variant, method, layer, head, image_id, protocol_hash,
           len(deletion) - 1 AS steps, deletion, insertion, deletion_prob, insertion_prob
    FROM _raw_faithfulness_curves
), l AS (
    SELECT * EXCLUDE (deletion, insertion, deletion_prob, insertion_prob),
           unnest([{'curve': 'deletion', 'score': 'cosine', 'v': deletion},
                   {'curve': 'insertion', 'score': 'cosine', 'v': insertion},
                   {'curve': 'deletion', 'score': 'class_prob', 'v': deletion_prob},
                   {'curve': 'insertion', 'score': 'class_prob', 'v': insertion_prob}],
                  recursive := true)
    FROM c
)
SELECT model, variant, method, layer, head, image_id, protocol_hash, curve, score,
       generate_subscripts(v, 1) - 1 AS step, steps,
       (generate_subscripts(v, 1) - 1) / steps AS t, unnest(v) AS value
FROM l WHERE v IS NOT NULL;

-- Model-parameter randomisation (Adebayo et al. 2018), cascading from the top: one row
-- per map, image and cascade step (1..L: the top k blocks and the modules after them
-- re-initialised; L + 1: every parameter). randomised_from: first re-initialised block
-- (-1: all weights). depends: whether the map can change at this step (a cls / mean /
-- rollout map at layer l depends only on blocks <= l); unchanged: bit-identical to the
-- trained map. spearman: rank correlation of the patch grids; ssim: Wang et al. 2004 on
-- the heatmaps; hist_entropy: 100-bin histogram entropy (eMPRT).
CREATE OR REPLACE VIEW sanity_checks AS
SELECT model, variant, method, layer, head, head_label(head) AS head_label, image_id,
       protocol_hash, cascade_step, randomised_from,
       CASE WHEN randomised_from < 0 THEN 'all weights'
            ELSE 'blocks ' || randomised_from || '+ and top' END AS randomised,
       randomised_from < 0 AS fully_random, depends, unchanged, spearman,
       abs(spearman) AS spearman_abs, ssim, hist_entropy_trained, hist_entropy,
       (hist_entropy - hist_entropy_trained) / nullif(hist_entropy_trained, 0)
           AS entropy_rise,
       source_run_id
FROM _raw_mprt_similarity;

-- Per map source, layer and cascade step: means over images; survives_randomisation is
-- true when the mean |Spearman| between the trained and the fully random maps is at
-- least the protocol's survival_threshold (default 0.5): such a map hardly depends on the
-- model (like the Sobel edge baseline, whose similarity is 1 by construction) and fails
-- the sanity check. Stated per layer and on every step row of that layer.
CREATE OR REPLACE VIEW sanity_summary AS
WITH s AS (
    SELECT model, variant, method, layer, head, protocol_hash, cascade_step,
           any_value(randomised_from) AS randomised_from, any_value(randomised) AS randomised,
           any_value(fully_random) AS fully_random, bool_and(depends) AS depends,
           count(*) AS n_images, avg(spearman) AS spearman, avg(spearman_abs) AS spearman_abs,
           stddev_samp(spearman_abs) AS spearman_abs_sd, avg(ssim) AS ssim,
           stddev_samp(ssim) AS ssim_sd, avg(entropy_rise) AS entropy_rise,
           avg(CAST(unchanged AS DOUBLE)) AS share_unchanged
    FROM sanity_checks GROUP BY model, variant, method, layer, head, protocol_hash,
                                cascade_step
), last_step AS (
    SELECT s.model, s.variant, s.method, s.layer, s.head, s.protocol_hash,
           s.spearman_abs AS full_spearman_abs,
           CAST(json_extract(p.protocol_json, '$.survival_threshold') AS DOUBLE)
               AS survival_threshold
    FROM s JOIN faithfulness_protocols p USING (protocol_hash)
    WHERE s.fully_random
)
SELECT s.*, f.full_spearman_abs, f.survival_threshold,
       f.full_spearman_abs >= f.survival_threshold AS survives_randomisation
FROM s LEFT JOIN last_step f USING (model, variant, method, layer, head, protocol_hash)
ORDER BY model, variant, method, layer, cascade_step;

-- Change of every plausibility metric under randomisation (union of the image's boxes as
-- target): trained, randomised and their difference, with the metric's direction.
CREATE OR REPLACE VIEW sanity_metric_deltas AS
SELECT d.model, d.variant, d.method, d.layer, d.head, d.image_id, d.protocol_hash,
       d.cascade_step, s.randomised_from, d.metric, d.percentile, d.trained, d.randomised,
       d.randomised - d.trained AS delta, c.direction
FROM _raw_mprt_metric_deltas d
LEFT JOIN _raw_mprt_similarity s USING (model, variant, method, layer, head, image_id,
                                        protocol_hash, cascade_step)
LEFT JOIN metric_catalogue c USING (metric);

-- The per-image faithfulness values that join metric_long (and so layer_progression,
-- leaderboard, style_metrics, variant deltas and the paired model comparisons): target
-- 'image', box_index -1, the faithfulness protocol's hash. Controls are left out (their
-- values enter through the gains). MPRT values are those at full randomisation.
CREATE OR REPLACE VIEW faithfulness_metric_long AS
SELECT model, variant, method, layer, head, image_id, 'image' AS target,
       CAST(-1 AS INTEGER) AS box_index, protocol_hash, metric,
       CAST(NULL AS SMALLINT) AS percentile, value
FROM (UNPIVOT (SELECT model, variant, method, layer, head, image_id, protocol_hash,
                      deletion_auc, insertion_auc, road_gap, deletion_gain, insertion_gain,
                      deletion_auc_prob, insertion_auc_prob
               FROM faithfulness_metrics WHERE NOT is_control)
      ON deletion_auc, insertion_auc, road_gap, deletion_gain, insertion_gain,
         deletion_auc_prob, insertion_auc_prob
      INTO NAME metric VALUE value)
UNION ALL
SELECT model, variant, method, layer, head, image_id, 'image', CAST(-1 AS INTEGER),
       protocol_hash, metric, CAST(NULL AS SMALLINT), value
FROM (UNPIVOT (SELECT model, variant, method, layer, head, image_id, protocol_hash,
                      spearman_abs AS mprt_spearman_abs, ssim AS mprt_ssim,
                      entropy_rise AS emprt
               FROM sanity_checks WHERE fully_random)
      ON mprt_spearman_abs, mprt_ssim, emprt INTO NAME metric VALUE value);
