-- Dashboards (Image, Compare): dataset means with 95 % CI of every metric at every layer
-- for one model, variant, method and fused head (from the per-layer summaries).
SELECT layer, metric, percentile, n, mean, ci_low, ci_high
FROM layer_progression
WHERE model = $model AND variant = $variant AND method = $method AND head = $head
  AND protocol_hash = $protocol
ORDER BY metric, percentile, layer
