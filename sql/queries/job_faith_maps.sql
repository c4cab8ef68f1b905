-- Jobs (faithfulness): the mean-fused maps (head -1) of one model, variant and method for
-- a list of images ($ids), with the attention run that wrote them, in a stable order.
SELECT image_id, layer, grid_h, grid_w, "values", run_id
FROM _raw_attention_maps
WHERE model = $model AND variant = $variant AND method = $method AND head = -1
  AND list_contains($ids, image_id)
ORDER BY image_id, layer
