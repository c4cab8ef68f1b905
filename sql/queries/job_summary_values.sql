-- Jobs (metric summaries): every image-level value of the fused-head maps, grouped later
-- by model, variant, method, layer, head, protocol, metric and percentile.
SELECT model, variant, method, layer, head, protocol_hash, metric, percentile, image_id,
       value
FROM metric_long
WHERE target = 'image' AND head < 0 AND value IS NOT NULL
ORDER BY ALL
