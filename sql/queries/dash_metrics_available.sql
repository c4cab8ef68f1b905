-- Dashboards: metrics that have per-layer summaries, with their percentiles.
SELECT metric,
       coalesce(list(DISTINCT percentile ORDER BY percentile)
                FILTER (WHERE percentile IS NOT NULL), []) AS percentiles,
       count(*) AS n
FROM layer_progression
WHERE protocol_hash = $protocol
GROUP BY metric
ORDER BY metric
