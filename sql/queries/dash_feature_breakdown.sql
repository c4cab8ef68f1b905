-- Dashboards (Leaderboard): one metric per feature type, each box scored alone, for one
-- model, variant, method, layer and head: every box under its own label (depth 0) and
-- under each ontology ancestor. Reads the materialised feature_metrics.
SELECT feature_label, feature_name,
       CASE WHEN rollup THEN 'with descendants' ELSE 'own label' END AS grouping,
       n_boxes, n_images, mean, sd
FROM feature_metrics
WHERE model = $model AND variant = $variant AND method = $method AND layer = $layer
  AND head = $head AND metric = $metric AND percentile IS NOT DISTINCT FROM $percentile
  AND protocol_hash = $protocol
ORDER BY feature_name, grouping
