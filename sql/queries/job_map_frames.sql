-- Jobs (metrics): the frame (part of the image, as fractions) that one model and
-- variant's maps of the listed images ($ids) cover.
SELECT image_id, frame_left, frame_top, frame_right, frame_bottom
FROM _raw_map_frames
WHERE model = $model AND variant = $variant AND list_contains($ids, image_id)
