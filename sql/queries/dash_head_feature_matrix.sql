-- Dashboards (Heads): mean of one metric per single head and feature label (each box
-- scored alone) at one layer. Same numbers as the head_feature_matrix view, reading the
-- metric tables directly so that the filters prune.
WITH v AS (
    SELECT head, image_id, box_index,
           CASE $metric WHEN 'iou' THEN iou WHEN 'iou_over_max' THEN iou_over_max
                        WHEN 'corloc' THEN corloc END AS value
    FROM _raw_metrics_iou
    WHERE $metric IN ('iou', 'iou_over_max', 'corloc') AND percentile = $percentile
      AND model = $model AND variant = $variant AND method = $method AND layer = $layer
      AND head >= 0 AND target = 'box' AND protocol_hash = $protocol
    UNION ALL
    SELECT head, image_id, box_index,
           CASE $metric WHEN 'coverage' THEN coverage WHEN 'pointing_t0' THEN pointing_t0
                WHEN 'pointing_t15' THEN pointing_t15 WHEN 'topk_pointing' THEN topk_pointing
                WHEN 'relevance_rank_acc' THEN relevance_rank_acc WHEN 'mse' THEN mse
                WHEN 'kl' THEN kl WHEN 'emd' THEN emd END
    FROM _raw_metrics_map
    WHERE $metric NOT IN ('iou', 'iou_over_max', 'corloc')
      AND model = $model AND variant = $variant AND method = $method AND layer = $layer
      AND head >= 0 AND target = 'box' AND protocol_hash = $protocol
)
SELECT v.head, b.label AS feature_label, f.name AS feature_name,
       count(v.value) AS n_boxes, avg(v.value) AS mean
FROM v
JOIN _raw_ann_boxes b ON b.image_id = v.image_id AND b.box_index = v.box_index
JOIN _raw_ann_feature_types f ON f.label = b.label
GROUP BY ALL
ORDER BY feature_name, v.head
