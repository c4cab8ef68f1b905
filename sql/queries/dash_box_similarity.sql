-- Dashboards (Image): the stored contrast of one box (in-box vs out-of-box similarity)
-- and the mean contrast of its feature type over every image at the same layer.
SELECT s.sim_in, s.sim_out, s.contrast, s.n_in, s.n_out, s.feature_name,
       f.mean_contrast AS feature_mean_contrast, f.n_boxes AS feature_n_boxes
FROM box_similarity s
LEFT JOIN feature_similarity f
       ON f.model = s.model AND f.variant = s.variant AND f.layer = s.layer
      AND f.feature_label = s.label AND NOT f.rollup
WHERE s.model = $model AND s.variant = $variant AND s.layer = $layer
  AND s.image_id = $image AND s.box_index = $box
