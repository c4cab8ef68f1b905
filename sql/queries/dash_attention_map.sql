-- Dashboards (Image, Compare): one patch-grid map (row-major, row = y).
SELECT grid_h, grid_w, "values"
FROM attention_maps
WHERE model = $model AND variant = $variant AND method = $method AND layer = $layer
  AND head = $head AND image_id = $image
LIMIT 1
