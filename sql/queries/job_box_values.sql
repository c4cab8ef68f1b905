-- Jobs (summaries): every metric value of the map sources $model, $variant, $method
-- (NULL: all) with a single box as the target, long form, for the feature summaries;
-- box and image numbered as in job_box_labels.
WITH boxes AS (
    SELECT image_id, box_index, row_number() OVER (ORDER BY image_id, box_index) - 1 AS box,
           dense_rank() OVER (ORDER BY image_id) - 1 AS image
    FROM _raw_ann_boxes
)
SELECT l.model, l.variant, l.method, l.layer, l.head, l.protocol_hash, l.metric,
       l.percentile, b.box, b.image, l.value
FROM metric_long_where($model, $variant, $method) l
JOIN boxes b ON b.image_id = l.image_id AND b.box_index = l.box_index
WHERE l.target = 'box' AND l.value IS NOT NULL
