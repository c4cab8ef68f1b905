-- Dashboards (Image, Compare): every metric of one image for one model, variant, method
-- and head, at every layer, for the union target and each box (percentile NULL when the
-- metric is threshold-free). Same rows as metric_long, but the filters run on the
-- metric tables before the unpivot (about 40 % faster than filtering metric_long).
WITH m AS (
    SELECT layer, target, box_index, coverage, pointing_t0, pointing_t15, topk_pointing,
           relevance_rank_acc, mse, kl, emd
    FROM _raw_metrics_map
    WHERE model = $model AND variant = $variant AND method = $method AND head = $head
      AND image_id = $image AND protocol_hash = $protocol
), i AS (
    SELECT layer, target, box_index, percentile, iou, iou_over_max, corloc
    FROM _raw_metrics_iou
    WHERE model = $model AND variant = $variant AND method = $method AND head = $head
      AND image_id = $image AND protocol_hash = $protocol
)
SELECT layer, target, box_index, metric, CAST(NULL AS SMALLINT) AS percentile, value
FROM (UNPIVOT m ON coverage, pointing_t0, pointing_t15, topk_pointing, relevance_rank_acc,
                  mse, kl, emd INTO NAME metric VALUE value)
UNION ALL
SELECT layer, target, box_index, metric, percentile, value
FROM (UNPIVOT i ON iou, iou_over_max, corloc INTO NAME metric VALUE value)
ORDER BY target, box_index, metric, percentile, layer
