-- Dashboards (Heads): mean of one metric per single head and feature label (each box
-- scored alone) at one layer, from the materialised feature_metrics (head_feature_matrix).
SELECT head, feature_label, feature_name, n_boxes, mean
FROM feature_metrics
WHERE model = $model AND variant = $variant AND method = $method AND layer = $layer
  AND head >= 0 AND NOT rollup AND metric = $metric
  AND percentile IS NOT DISTINCT FROM $percentile AND protocol_hash = $protocol
ORDER BY feature_name, head
