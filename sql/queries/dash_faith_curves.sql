-- Dashboards (Image): the deletion and insertion curves of one image for one model and
-- variant: the chosen map ($method at $layer) and the controls (method 'baseline:*').
SELECT method, layer, curve, score, step, t, value
FROM faithfulness_curves
WHERE model = $model AND variant = $variant AND image_id = $image
  AND protocol_hash = $protocol AND head = -1
  AND ((method = $method AND layer = $layer) OR starts_with(method, 'baseline:'))
ORDER BY method, curve, score, step
