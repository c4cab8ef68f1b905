-- Report (coverage vs IoU): one metric per image for one map source, layer and head
-- (union of the image's boxes as the target), read through metric_values.
SELECT image_id, value
FROM metric_values($metric, $percentile, $model, $variant, $method, 'image', $protocol)
WHERE layer = $layer AND head = $head
ORDER BY image_id
