-- Dashboards (Heads): mean of one metric per single head and feature label (each box
-- scored alone) at one layer. Same numbers as the head_feature_matrix view, reading the
-- metric tables through metric_values so that the filters prune.
WITH v AS (
    SELECT head, image_id, box_index, value
    FROM metric_values($metric, $percentile, $model, $variant, $method, 'box',
                       $protocol)
    WHERE layer = $layer AND head >= 0
)
SELECT v.head, b.label AS feature_label, f.name AS feature_name,
       count(v.value) AS n_boxes, avg(v.value) AS mean
FROM v
JOIN _raw_ann_boxes b ON b.image_id = v.image_id AND b.box_index = v.box_index
JOIN _raw_ann_feature_types f ON f.label = b.label
GROUP BY ALL
ORDER BY feature_name, v.head
