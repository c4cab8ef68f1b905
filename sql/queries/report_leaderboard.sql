-- Report (leaderboard): every model and baseline of one variant for one metric
-- ($percentile NULL for threshold-free metrics) under one protocol: best layer under the
-- default method with its bootstrap CI, the best over all methods, and the rank.
SELECT model, is_baseline, rank, direction, default_method AS method, best_layer AS layer,
       mean, ci_low, ci_high, n, best_any_method, best_any_layer, best_any_mean
FROM leaderboard
WHERE metric = $metric AND percentile IS NOT DISTINCT FROM $percentile
  AND protocol_hash = $protocol AND variant = $variant
ORDER BY is_baseline, rank, model
