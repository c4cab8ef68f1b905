-- Dashboards (Image, Compare): every metric of one image for one model, variant, method
-- and head, at every layer, for the union target and each box (percentile NULL when the
-- metric is threshold-free): metric_long_where, filtered at the scans.
SELECT layer, target, box_index, metric, percentile, value
FROM metric_long_where($model, $variant, $method)
WHERE head = $head AND image_id = $image AND protocol_hash = $protocol
ORDER BY target, box_index, metric, percentile, layer
