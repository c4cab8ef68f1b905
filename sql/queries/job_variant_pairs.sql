-- Jobs (variant deltas): fine-tuned and frozen values paired on image.
SELECT model, strategy, method, layer, protocol_hash, metric,
       coalesce(percentile, -1) AS percentile, image_id, finetuned, frozen
FROM variant_image_deltas
