-- Dashboards (Embeddings) and report: stored feature sources with their layers, images
-- and dimension.
SELECT model, variant, kind, list(DISTINCT layer ORDER BY layer) AS layers,
       count(DISTINCT image_id) AS n_images, max(dim) AS dim
FROM features
GROUP BY ALL
ORDER BY model, variant, kind
