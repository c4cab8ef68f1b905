-- Jobs (faithfulness): the layers with a mean-fused map (head -1) per model, variant and
-- method.
SELECT model, variant, method, list(DISTINCT layer ORDER BY layer) AS layers
FROM _raw_attention_maps
WHERE head = -1
GROUP BY ALL
