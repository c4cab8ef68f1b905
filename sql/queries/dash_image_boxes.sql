-- Dashboards (Image): the expert boxes of one image, with their ontology ancestors.
SELECT b.box_index, b.label, b.feature_name, b.group_label, b.group_name,
       b.left_c, b.top_c, b.width_c, b.height_c, b.was_clamped, b.area_c,
       coalesce((SELECT list(a.ancestor_name ORDER BY a.depth, a.ancestor_name)
                 FROM feature_ancestors a WHERE a.label = b.label AND a.depth > 0),
                []) AS ancestors
FROM boxes b
WHERE b.image_id = $image
ORDER BY b.box_index
