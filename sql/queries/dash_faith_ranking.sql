-- Dashboards (Leaderboard, faithfulness): every model's best layer on one faithfulness
-- metric ($metric) under its default method and the best over all methods, for one
-- variant and protocol.
SELECT model, variant, direction, default_method AS method, best_layer AS layer, mean,
       ci_low, ci_high, n, best_any_method, best_any_layer, best_any_mean, rank
FROM leaderboard
WHERE metric = $metric AND protocol_hash = $protocol AND variant = $variant
ORDER BY rank, model
