-- Dashboards (Image, Compare): the part of one image a model's maps cover (fractions;
-- no row: the whole image) and the share of the image lost to a crop.
SELECT frame_left, frame_top, frame_right, frame_bottom, area_lost, resize_mode,
       input_h, input_w
FROM map_frames
WHERE model = $model AND variant = $variant AND image_id = $image
LIMIT 1
