-- Dashboards (Leaderboard): one metric per style (first listed style of each image) for
-- one model, variant, method, layer and head, from the materialised style_metrics.
SELECT style_id, coalesce(style_name, style_id) AS style_name, style_rule, n_images, mean, sd
FROM style_metrics
WHERE model = $model AND variant = $variant AND method = $method AND layer = $layer
  AND head = $head AND metric = $metric AND percentile IS NOT DISTINCT FROM $percentile
  AND protocol_hash = $protocol
ORDER BY style_name
