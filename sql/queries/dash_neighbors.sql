-- Dashboards (Embeddings): the $k most similar images to one image in one feature
-- source (cosine of the stored vectors; see feature_neighbors).
SELECT n.rank, n.neighbor_id, n.cosine,
       coalesce(i.primary_style_name, i.primary_style) AS style_name
FROM feature_neighbors($model, $variant, $layer, $kind) n
LEFT JOIN images i ON i.image_id = n.neighbor_id
WHERE n.image_id = $image AND n.rank <= $k
ORDER BY n.rank
