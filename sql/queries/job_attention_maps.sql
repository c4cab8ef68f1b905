-- Jobs (metrics): the stored patch grids of one model, variant and method for a list of
-- images ($ids), in a stable order.
SELECT model, variant, method, layer, head, image_id, grid_h, grid_w, "values", run_id
FROM _raw_attention_maps
WHERE model = $model AND variant = $variant AND method = $method
  AND list_contains($ids, image_id)
ORDER BY image_id, layer, head
