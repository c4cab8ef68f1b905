-- Jobs (summaries): each expert box (numbered as in job_box_values) with its feature
-- label and every ontology ancestor of it (depth 0 = the label itself), named.
WITH boxes AS (
    SELECT image_id, box_index, label,
           row_number() OVER (ORDER BY image_id, box_index) - 1 AS box
    FROM _raw_ann_boxes
)
SELECT b.box, b.label, a.ancestor, a.depth, f.name AS ancestor_name
FROM boxes b
JOIN _raw_ann_feature_ancestors a ON a.label = b.label
JOIN _raw_ann_feature_types f ON f.label = a.ancestor
