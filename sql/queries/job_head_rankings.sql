-- Jobs (summaries): the head_ranking rows of one map source ($model, $variant, $method).
-- Single heads ranked within each image and layer (rank 1 = best under the metric's
-- direction; ties share a rank), summarised per layer and head: mean score, mean rank,
-- top-1 / top-3 counts.
WITH r AS (
    SELECT l.*, rank() OVER (
               PARTITION BY l.model, l.variant, l.method, l.layer, l.image_id, l.protocol_hash,
                            l.metric, l.percentile
               ORDER BY CASE WHEN c.direction = 'lower' THEN l.value ELSE -l.value END) AS r
    FROM metric_long_where($model, $variant, $method) l
    LEFT JOIN metric_catalogue c USING (metric)
    WHERE l.target = 'image' AND l.head >= 0 AND l.value IS NOT NULL
)
SELECT model, variant, method, layer, head, protocol_hash, metric, percentile,
       count(*) AS n_images, avg(value) AS mean_score, avg(r) AS mean_rank,
       count(*) FILTER (WHERE r = 1) AS top1, count(*) FILTER (WHERE r <= 3) AS top3
FROM r GROUP BY ALL
ORDER BY protocol_hash, metric, percentile NULLS FIRST, layer, head
