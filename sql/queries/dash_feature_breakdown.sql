-- Dashboards (Leaderboard): one metric per feature type, each box scored alone, for one
-- model, variant, method, layer and head. Every box counts under its own label
-- (depth 0) and under each ontology ancestor (depth > 0); the page picks own labels or
-- the roll-up. Reads the metric tables through metric_values (feature_metrics unpivots
-- every metric of every map first).
WITH v AS (
    SELECT image_id, box_index, value
    FROM metric_values($metric, $percentile, $model, $variant, $method, 'box',
                       $protocol)
    WHERE layer = $layer AND head = $head
), scored AS (
    SELECT v.image_id, v.box_index, v.value, b.label
    FROM v JOIN _raw_ann_boxes b ON b.image_id = v.image_id AND b.box_index = v.box_index
)
SELECT a.ancestor AS feature_label, f.name AS feature_name, 'own label' AS grouping,
       count(s.value) AS n_boxes, count(DISTINCT s.image_id) AS n_images,
       avg(s.value) AS mean, stddev_samp(s.value) AS sd
FROM scored s
JOIN _raw_ann_feature_ancestors a ON a.label = s.label AND a.depth = 0
JOIN _raw_ann_feature_types f ON f.label = a.ancestor
GROUP BY ALL
UNION ALL
SELECT a.ancestor, f.name, 'with descendants', count(s.value), count(DISTINCT s.image_id),
       avg(s.value), stddev_samp(s.value)
FROM scored s
JOIN _raw_ann_feature_ancestors a ON a.label = s.label
JOIN _raw_ann_feature_types f ON f.label = a.ancestor
GROUP BY ALL
ORDER BY feature_name, grouping
