-- Jobs (metric summaries): every image-level value of the fused-head maps of one map
-- source ($model, $variant, $method), grouped later by layer, head, protocol, metric and
-- percentile.
SELECT model, variant, method, layer, head, protocol_hash, metric, percentile, image_id,
       value
FROM metric_long_where($model, $variant, $method)
WHERE target = 'image' AND head < 0 AND value IS NOT NULL
ORDER BY ALL
