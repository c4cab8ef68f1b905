-- Dashboards (Heads): single heads ranked within each image and layer (rank 1 = best
-- under the metric's direction), summarised per layer and head: mean score, mean rank,
-- top-1 / top-3 counts. Reads the materialised head_ranking.
SELECT layer, head, n_images, mean_score, mean_rank, top1, top3
FROM head_ranking
WHERE model = $model AND variant = $variant AND method = $method AND metric = $metric
  AND percentile IS NOT DISTINCT FROM $percentile AND protocol_hash = $protocol
ORDER BY layer, head
