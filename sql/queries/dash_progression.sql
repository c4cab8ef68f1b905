-- Dashboards (Leaderboard, Image): per-layer mean and 95 % CI of one metric, for every
-- model, variant and method (fused heads and baselines).
SELECT model, variant, method, layer, head, metric, percentile, n, mean, sd, ci_low, ci_high
FROM layer_progression
WHERE metric = $metric AND percentile IS NOT DISTINCT FROM $percentile
  AND protocol_hash = $protocol AND head = $head
ORDER BY model, variant, method, layer
