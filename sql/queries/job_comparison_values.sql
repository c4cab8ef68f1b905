-- Jobs (stats): image-level values of the compared metrics ($metrics) under each model's
-- default method with the mean-fused map, with the metric's direction.
SELECT l.model, l.variant, l.method, l.layer, l.protocol_hash, l.metric,
       coalesce(l.percentile, -1) AS percentile, l.image_id, l.value, c.direction
FROM metric_long l
JOIN model_defaults d ON d.model = l.model AND d.default_method = l.method
LEFT JOIN metric_catalogue c ON c.metric = l.metric
WHERE l.target = 'image' AND l.head = -1 AND list_contains($metrics, l.metric)
