-- Dashboards (Embeddings) and report: the stored feature vectors of one source, with
-- each image's first listed style.
SELECT f.image_id, coalesce(i.primary_style_name, i.primary_style, 'unknown') AS style_name,
       f."values"
FROM features f
LEFT JOIN images i USING (image_id)
WHERE f.model = $model AND f.variant = $variant AND f.layer = $layer AND f.kind = $kind
ORDER BY f.image_id
