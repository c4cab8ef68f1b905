-- Dashboards (Leaderboard): one metric per style (first listed style of each image) for
-- one model, variant, method, layer and head. Reads the metric tables through
-- metric_values so that the filters prune Parquet partitions and row groups
-- (style_metrics aggregates every map of every model first: about 0.7 s at full scale).
WITH v AS (
    SELECT image_id, value
    FROM metric_values($metric, $percentile, $model, $variant, $method, 'image',
                       $protocol)
    WHERE layer = $layer AND head = $head
)
SELECT i.primary_style AS style_id, coalesce(s.name, i.primary_style) AS style_name,
       'first listed style' AS style_rule, count(v.value) AS n_images, avg(v.value) AS mean,
       stddev_samp(v.value) AS sd
FROM v
JOIN _raw_ann_images i ON i.image_id = v.image_id
LEFT JOIN _raw_ann_styles s ON s.style_id = i.primary_style
GROUP BY ALL
ORDER BY style_name
