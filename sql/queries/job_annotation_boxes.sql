-- Jobs (metrics): every expert box, clamped to the image, in box order per image.
SELECT image_id, box_index, left_c, top_c, width_c, height_c
FROM _raw_ann_boxes
ORDER BY image_id, box_index
