-- Attention maps and features written by `ssl-wc ingest attention`.

-- revision: the pinned hub revision ('' when floating on main); commit_hash: the commit
-- the run resolved and loaded (a local folder: sha256 of its config and weights).
CREATE OR REPLACE VIEW map_sources AS
SELECT * EXCLUDE (unit_key),
       json_extract_string(config_json, '$.commit_hash') AS commit_hash,
       coalesce(json_extract_string(config_json, '$.kind'), 'vit') AS kind
FROM _raw_map_sources;

-- One row per patch-grid map. head >= 0: a single head; head < 0: a fusion over heads
-- (-1 mean, -2 max, -3 min; see head_label). values: float32, row-major, row = y,
-- length grid_h * grid_w. Baselines are not maps here: they live at metric level.
CREATE OR REPLACE VIEW attention_maps AS
SELECT run_id, model, variant, method, layer, head, head_label(head) AS head_label, image_id,
       grid_h, grid_w, "values", config_hash
FROM _raw_attention_maps;

-- Per layer: 'cls' (raw CLS token), 'patch_mean' (mean patch token; a CNN stage's global
-- average) and, at the last layer, 'pooled' (the model's own pooled output: CLS after the
-- final norm, the MAP head output, a CNN's global average pool) and, for CLIP,
-- 'pooled_proj' (the 512-d joint image embedding, visual_projection of 'pooled').
CREATE OR REPLACE VIEW features AS
SELECT run_id, model, variant, layer, image_id, kind, len("values") AS dim, "values",
       config_hash
FROM _raw_features;

-- The method each model is ranked by (CLS attention, or the MAP probe for SigLIP).
CREATE OR REPLACE VIEW model_defaults AS
SELECT model, any_value(default_method) AS default_method,
       bool_or(random_weights) AS random_weights
FROM _raw_map_sources GROUP BY model
UNION ALL
SELECT DISTINCT model, 'baseline', false FROM _raw_metrics_map WHERE is_baseline(model);
