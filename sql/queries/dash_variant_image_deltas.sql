-- Dashboards (Fine-tuning): per-image change of one metric for one model, strategy,
-- method and layer; gain > 0 = closer to the experts after fine-tuning.
SELECT image_id, frozen, finetuned, delta, gain
FROM variant_image_deltas
WHERE model = $model AND strategy = $strategy AND method = $method AND layer = $layer
  AND metric = $metric AND percentile IS NOT DISTINCT FROM $percentile
  AND protocol_hash = $protocol
ORDER BY gain DESC, image_id
