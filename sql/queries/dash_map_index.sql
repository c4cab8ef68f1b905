-- Dashboards (Image, Compare): which maps exist for one image (no map values read).
SELECT model, variant, method, layer, head, grid_h, grid_w
FROM attention_maps
WHERE image_id = $image
ORDER BY model, variant, method, layer, head
