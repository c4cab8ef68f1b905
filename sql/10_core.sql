-- Run history, files and the annotation / image views.

-- engine (local or ray), workers and per-worker throughput (images per second of a
-- worker's own compute time, averaged over the workers) of the model jobs; NULL for jobs
-- that run no model.
CREATE OR REPLACE VIEW runs AS
SELECT run_id, kind, status, started_at, ended_at, seconds, config_hash, config_json,
       code_version, host, pid, device, row_counts_json, n_files, n_errors, error,
       summary_json,
       json_extract_string(summary_json, '$.engine') AS engine,
       TRY_CAST(json_extract_string(summary_json, '$.workers') AS INTEGER) AS workers,
       TRY_CAST(json_extract_string(summary_json, '$.images_per_s') AS DOUBLE)
           AS images_per_s,
       TRY_CAST(json_extract_string(summary_json, '$.worker_images_per_s') AS DOUBLE)
           AS worker_images_per_s
FROM _runs
ORDER BY started_at;

CREATE OR REPLACE VIEW run_files AS
SELECT run_id, tbl AS table_name, path, rows, bytes, sha256 FROM _manifest_files;

CREATE OR REPLACE VIEW catalog_info AS SELECT key, value FROM _catalog_meta;

-- Per-item failures: those of committed (partial) runs from the lake, and those of runs
-- that failed outright from their run records.
CREATE OR REPLACE VIEW ingest_errors AS
SELECT e.run_id, r.kind, r.status, r.started_at, e.step, e.item, e.error
FROM (SELECT run_id, step, item, error FROM _raw_ingest_errors
      UNION ALL SELECT run_id, step, item, error FROM _run_errors) e
LEFT JOIN _runs r USING (run_id)
ORDER BY r.started_at;

CREATE OR REPLACE VIEW feature_types AS
SELECT f.label, f.name, f.parents,
       coalesce((SELECT list(g.name ORDER BY p.i)
                 FROM unnest(f.parents) WITH ORDINALITY AS p(parent, i)
                 JOIN _raw_ann_feature_types g ON g.label = p.parent), []) AS parent_names,
       len(f.parents) = 0 AS is_root
FROM _raw_ann_feature_types f;

CREATE OR REPLACE VIEW feature_ancestors AS
SELECT a.label, f.name, a.ancestor, g.name AS ancestor_name, a.depth
FROM _raw_ann_feature_ancestors a
JOIN _raw_ann_feature_types f ON f.label = a.label
JOIN _raw_ann_feature_types g ON g.label = a.ancestor;

CREATE OR REPLACE VIEW styles AS SELECT style_id, name FROM _raw_ann_styles;

CREATE OR REPLACE VIEW image_styles AS
SELECT s.image_id, s.style_id, st.name AS style_name, s.style_rank
FROM _raw_ann_image_styles s LEFT JOIN _raw_ann_styles st USING (style_id);

CREATE OR REPLACE VIEW image_files AS
SELECT image_id, path, image_root, width, height, sha256, bytes, mode FROM _raw_image_files;

-- One row per annotated image. primary_style is the FIRST listed style tag; views that
-- count every tag use image_styles instead.
CREATE OR REPLACE VIEW images AS
SELECT a.image_id, a.church_qid, a.styles, a.primary_style,
       st.name AS primary_style_name, a.n_styles, a.n_boxes, a.n_groups,
       f.path, f.image_root, f.width, f.height, f.sha256, f.path IS NOT NULL AS has_file
FROM _raw_ann_images a
LEFT JOIN _raw_ann_styles st ON st.style_id = a.primary_style
LEFT JOIN (SELECT * FROM _raw_image_files
           QUALIFY row_number() OVER (PARTITION BY image_id ORDER BY path) = 1) f
       USING (image_id);

CREATE OR REPLACE VIEW missing_images AS
SELECT image_id, church_qid, primary_style FROM images WHERE NOT has_file;

CREATE OR REPLACE VIEW boxes AS
SELECT b.image_id, b.box_index, b.group_index, b.group_label, g.name AS group_name,
       b.label, f.name AS feature_name, b."left", b.top, b.width, b.height,
       b.left_c, b.top_c, b.width_c, b.height_c, b.was_clamped, b.area_c
FROM _raw_ann_boxes b
LEFT JOIN _raw_ann_feature_types f ON f.label = b.label
LEFT JOIN _raw_ann_feature_types g ON g.label = b.group_label;

CREATE OR REPLACE VIEW churches AS SELECT * EXCLUDE (run_id, unit_key) FROM _raw_ann_churches;

CREATE OR REPLACE VIEW annotation_sources AS
SELECT s.run_id, r.started_at, s.file, s.kind, s.sha256, s.n_items, s.n_clamped, s.synthetic
FROM _raw_ann_sources s LEFT JOIN _runs r USING (run_id);

CREATE OR REPLACE VIEW warehouse_summary AS
SELECT 'annotated images' AS item, count(*)::BIGINT AS n FROM images
UNION ALL SELECT 'annotated images without a file', count(*) FROM missing_images
UNION ALL SELECT 'boxes', count(*) FROM boxes
UNION ALL SELECT 'clamped boxes', count(*) FILTER (WHERE was_clamped) FROM boxes
UNION ALL SELECT 'feature types', count(*) FROM feature_types
UNION ALL SELECT 'image files', count(*) FROM image_files
UNION ALL SELECT 'committed runs', count(*) FILTER (WHERE status IN ('committed', 'partial')) FROM runs
UNION ALL SELECT 'failed or interrupted runs', count(*) FILTER (WHERE status IN ('failed', 'interrupted')) FROM runs;
