-- Report and notebook (dataset): every expert box with its image's first listed style.
SELECT b.image_id, b.box_index, b.label, b.feature_name, b.area_c, b.was_clamped,
       coalesce(i.primary_style_name, i.primary_style) AS style_name
FROM boxes b
JOIN images i USING (image_id)
ORDER BY b.image_id, b.box_index
