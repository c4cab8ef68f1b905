-- Dashboards (Heads): single heads ranked within each image and layer (rank 1 = best
-- under the metric's direction, $lower = true when lower is better), summarised per
-- layer and head: mean score, mean rank, top-1 / top-3 counts. Same definition as the
-- head_ranking view, reading the metric tables directly so that the filters prune.
WITH v AS (
    SELECT layer, head, image_id,
           CASE $metric WHEN 'iou' THEN iou WHEN 'iou_over_max' THEN iou_over_max
                        WHEN 'corloc' THEN corloc END AS value
    FROM _raw_metrics_iou
    WHERE $metric IN ('iou', 'iou_over_max', 'corloc') AND percentile = $percentile
      AND model = $model AND variant = $variant AND method = $method AND head >= 0
      AND target = 'image' AND protocol_hash = $protocol
    UNION ALL
    SELECT layer, head, image_id,
           CASE $metric WHEN 'coverage' THEN coverage WHEN 'pointing_t0' THEN pointing_t0
                WHEN 'pointing_t15' THEN pointing_t15 WHEN 'topk_pointing' THEN topk_pointing
                WHEN 'relevance_rank_acc' THEN relevance_rank_acc WHEN 'mse' THEN mse
                WHEN 'kl' THEN kl WHEN 'emd' THEN emd END
    FROM _raw_metrics_map
    WHERE $metric NOT IN ('iou', 'iou_over_max', 'corloc')
      AND model = $model AND variant = $variant AND method = $method AND head >= 0
      AND target = 'image' AND protocol_hash = $protocol
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
