-- Dashboards (Embeddings) and report: mean Jaccard index of the k-NN sets of every two
-- feature sources of one kind under one layer rule (see knn_agreement).
SELECT model_a, variant_a, layer_a, model_b, variant_b, layer_b, n_images, mean_jaccard,
       sd_jaccard, chance_jaccard
FROM knn_agreement($k, $kind)
WHERE layer_rule = $layer_rule
ORDER BY model_a, variant_a, layer_a, model_b, variant_b, layer_b
