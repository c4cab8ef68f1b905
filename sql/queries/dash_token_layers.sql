-- Dashboards (Image): the layers with stored patch tokens for one model, variant and
-- image (no token values read).
SELECT DISTINCT layer FROM patch_tokens
WHERE model = $model AND variant = $variant AND image_id = $image
ORDER BY layer
