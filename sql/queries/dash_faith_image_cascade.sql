-- Dashboards (Image): the randomisation cascade of one map source on one image, every
-- layer and step.
SELECT layer, cascade_step, randomised_from, randomised, spearman, spearman_abs, ssim,
       unchanged, depends
FROM sanity_checks
WHERE model = $model AND variant = $variant AND method = $method AND image_id = $image
  AND protocol_hash = $protocol AND head = -1
ORDER BY layer, cascade_step
