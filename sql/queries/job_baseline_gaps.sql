-- Jobs (summaries): the baseline_gap rows of one map source ($model, $variant, $method):
-- its fused maps minus each baseline, paired over images (same image, same metric):
-- mean difference, sd, n, Cohen's d_z and the paired t statistic.
WITH m AS (
    SELECT * FROM metric_long_where($model, $variant, $method)
    WHERE target = 'image' AND NOT is_baseline(model) AND head < 0
), b AS (
    SELECT model AS baseline, image_id, protocol_hash, metric, percentile, value
    FROM metric_long_where(NULL, NULL, 'baseline')
    WHERE target = 'image' AND is_baseline(model)
)
SELECT m.model, m.variant, m.method, m.layer, m.head, b.baseline, m.protocol_hash, m.metric,
       m.percentile, count(*) AS n, avg(m.value - b.value) AS mean_diff,
       stddev_samp(m.value - b.value) AS sd_diff,
       avg(m.value - b.value) / nullif(stddev_samp(m.value - b.value), 0) AS d_z,
       avg(m.value - b.value) / nullif(stddev_samp(m.value - b.value) / sqrt(count(*)), 0)
           AS t_stat,
       any_value(c.direction) AS direction
FROM m
JOIN b ON b.image_id = m.image_id AND b.metric = m.metric
      AND b.percentile IS NOT DISTINCT FROM m.percentile AND b.protocol_hash = m.protocol_hash
LEFT JOIN metric_catalogue c ON c.metric = m.metric
WHERE m.value IS NOT NULL AND b.value IS NOT NULL
GROUP BY ALL
ORDER BY protocol_hash, metric, percentile NULLS FIRST, layer, head, baseline
