-- Dashboards (Heads): single heads ranked within each image and layer (rank 1 = best
-- under the metric's direction, $lower = true when lower is better), summarised per
-- layer and head: mean score, mean rank, top-1 / top-3 counts. Same definition as the
-- head_ranking view, reading the metric tables through metric_values so that the
-- filters prune.
WITH v AS (
    SELECT layer, head, image_id, value
    FROM metric_values($metric, $percentile, $model, $variant, $method, 'image',
                       $protocol)
    WHERE head >= 0
), r AS (
    SELECT *, rank() OVER (PARTITION BY layer, image_id
                           ORDER BY CASE WHEN $lower THEN value ELSE -value END) AS r
    FROM v WHERE value IS NOT NULL
)
SELECT layer, head, count(*) AS n_images, avg(value) AS mean_score, avg(r) AS mean_rank,
       count(*) FILTER (WHERE r = 1) AS top1, count(*) FILTER (WHERE r <= 3) AS top3
FROM r
GROUP BY ALL
ORDER BY layer, head
