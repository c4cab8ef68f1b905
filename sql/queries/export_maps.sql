-- Export: the stored maps of one model, variant and head for a list of images (every
-- method and layer; the export picks one of each).
SELECT method, layer, image_id, grid_h, grid_w, "values"
FROM attention_maps
WHERE model = $model AND variant = $variant AND head = $head
  AND list_contains($images, image_id)
ORDER BY method, layer, image_id
