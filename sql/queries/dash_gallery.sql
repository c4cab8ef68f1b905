-- Dashboards (Gallery): every annotated image with its style names, box count, the
-- feature names of its boxes and of their ontology ancestors, and its file.
WITH st AS (
    SELECT image_id, list(coalesce(style_name, style_id) ORDER BY style_rank) AS style_names
    FROM image_styles GROUP BY image_id
), ft AS (
    SELECT b.image_id, list(DISTINCT b.feature_name ORDER BY b.feature_name) AS features,
           list(DISTINCT a.ancestor_name ORDER BY a.ancestor_name) AS features_rollup
    FROM boxes b LEFT JOIN feature_ancestors a ON a.label = b.label
    GROUP BY b.image_id
)
SELECT i.image_id, i.church_qid, i.primary_style, i.primary_style_name,
       coalesce(st.style_names, []) AS style_names, i.n_boxes,
       coalesce(ft.features, []) AS features, coalesce(ft.features_rollup, []) AS features_rollup,
       i.has_file, i.path, i.image_root, i.width, i.height
FROM images i
LEFT JOIN st USING (image_id)
LEFT JOIN ft USING (image_id)
ORDER BY i.image_id
