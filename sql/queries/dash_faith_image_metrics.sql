-- Dashboards (Image): the faithfulness values of one image for one model and variant
-- (every map and control under the protocol).
SELECT method, layer, is_control, deletion_auc, insertion_auc, road_gap, deletion_gain,
       insertion_gain, deletion_auc_prob, insertion_auc_prob
FROM faithfulness_metrics
WHERE model = $model AND variant = $variant AND image_id = $image
  AND protocol_hash = $protocol AND head = -1
ORDER BY is_control, method, layer
