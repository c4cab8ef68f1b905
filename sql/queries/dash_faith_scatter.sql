-- Dashboards (Leaderboard): plausibility ($metric at $percentile under $protocol) against
-- faithfulness ($fmetric under $fprotocol) per model, variant, method and layer (means
-- over images, fused mean maps).
SELECT p.model, p.variant, p.method, p.layer, p.mean AS plausibility,
       p.ci_low AS plausibility_low, p.ci_high AS plausibility_high, f.mean AS faithfulness,
       f.ci_low AS faithfulness_low, f.ci_high AS faithfulness_high, p.n AS n_plausibility,
       f.n AS n_faithfulness
FROM layer_progression p
JOIN layer_progression f
  ON f.model = p.model AND f.variant = p.variant AND f.method = p.method
 AND f.layer = p.layer AND f.head = p.head
WHERE p.metric = $metric AND p.percentile IS NOT DISTINCT FROM $percentile
  AND p.protocol_hash = $protocol AND p.head = -1
  AND f.metric = $fmetric AND f.protocol_hash = $fprotocol AND f.percentile IS NULL
  AND p.variant = $variant
ORDER BY p.model, p.method, p.layer
