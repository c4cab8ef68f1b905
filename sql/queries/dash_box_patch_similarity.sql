-- Dashboards (Image): cosine similarity of every patch token to one box's mean token
-- (the box_patch_similarity macro, plain SQL), with its grid.
SELECT "row", col, grid_h, grid_w, in_box, similarity
FROM box_patch_similarity($model, $variant, $layer, $image, $box)
ORDER BY "row", col
