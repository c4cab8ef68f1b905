-- Dashboards (Leaderboard): one metric per style (first listed style of each image) for
-- one model, variant, method, layer and head. Reads the metric tables directly so that
-- the filters prune Parquet partitions and row groups (style_metrics aggregates every
-- map of every model first: about 0.7 s at full scale).
WITH v AS (
    SELECT image_id,
           CASE $metric WHEN 'iou' THEN iou WHEN 'iou_over_max' THEN iou_over_max
                        WHEN 'corloc' THEN corloc END AS value
    FROM _raw_metrics_iou
    WHERE $metric IN ('iou', 'iou_over_max', 'corloc') AND percentile = $percentile
      AND model = $model AND variant = $variant AND method = $method AND layer = $layer
      AND head = $head AND target = 'image' AND protocol_hash = $protocol
    UNION ALL
    SELECT image_id,
           CASE $metric WHEN 'coverage' THEN coverage WHEN 'pointing_t0' THEN pointing_t0
                WHEN 'pointing_t15' THEN pointing_t15 WHEN 'topk_pointing' THEN topk_pointing
                WHEN 'relevance_rank_acc' THEN relevance_rank_acc WHEN 'mse' THEN mse
                WHEN 'kl' THEN kl WHEN 'emd' THEN emd END
    FROM _raw_metrics_map
    WHERE $metric NOT IN ('iou', 'iou_over_max', 'corloc')
      AND model = $model AND variant = $variant AND method = $method AND layer = $layer
      AND head = $head AND target = 'image' AND protocol_hash = $protocol
)
SELECT i.primary_style AS style_id, coalesce(s.name, i.primary_style) AS style_name,
       'first listed style' AS style_rule, count(v.value) AS n_images, avg(v.value) AS mean,
       stddev_samp(v.value) AS sd
FROM v
JOIN _raw_ann_images i ON i.image_id = v.image_id
LEFT JOIN _raw_ann_styles s ON s.style_id = i.primary_style
GROUP BY ALL
ORDER BY style_name
