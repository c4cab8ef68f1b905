-- Jobs (summaries): the style_metrics rows of one map source ($model, $variant, $method).
-- Rule: each image counts under its FIRST listed style (primary_style), so every image
-- counts once.
SELECT l.model, l.variant, l.method, l.layer, l.head, i.primary_style AS style_id,
       s.name AS style_name, 'first listed style' AS style_rule, l.protocol_hash, l.metric,
       l.percentile, count(l.value) AS n_images, avg(l.value) AS mean,
       stddev_samp(l.value) AS sd
FROM metric_long_where($model, $variant, $method) l
JOIN _raw_ann_images i ON i.image_id = l.image_id
LEFT JOIN _raw_ann_styles s ON s.style_id = i.primary_style
WHERE l.target = 'image'
GROUP BY ALL
ORDER BY protocol_hash, metric, percentile NULLS FIRST, layer, head, style_id
