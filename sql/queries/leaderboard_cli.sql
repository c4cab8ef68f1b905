-- Leaderboard for one metric ($metric) at one percentile ($pct, ignored when the metric
-- is threshold-free), best first under the metric's direction.
SELECT rank, model, is_baseline, direction, default_method AS method, best_layer AS layer,
       round(mean, 4) AS mean, round(ci_low, 4) AS ci_low, round(ci_high, 4) AS ci_high, n,
       best_any_method, best_any_layer, round(best_any_mean, 4) AS best_any_mean
FROM leaderboard
WHERE metric = $metric AND (percentile IS NULL OR percentile = $pct) AND variant = 'frozen'
ORDER BY rank, model
