-- Dashboards (Fine-tuning): fine-tuned minus frozen per model, strategy, method and layer
-- for one metric (fused mean map, image targets), with CI, p-values and Holm.
SELECT model, strategy, method, layer, n, mean_frozen, mean_finetuned, mean_delta, sd_delta,
       d_z, t_stat, direction, gain, ci_low, ci_high, p, p_wilcoxon, p_holm, significant,
       family, family_size, stats_current
FROM variant_deltas
WHERE metric = $metric AND percentile IS NOT DISTINCT FROM $percentile
  AND protocol_hash = $protocol
ORDER BY model, strategy, method, layer
