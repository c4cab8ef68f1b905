-- The metrics and percentiles the CLI leaderboard can show (frozen variant), in
-- catalogue order: what `ssl-wc leaderboard --metric/--percentile` accept.
SELECT DISTINCT l.metric, l.percentile
FROM leaderboard l
WHERE l.variant = 'frozen'
ORDER BY l.metric, l.percentile NULLS FIRST
