-- Report (model comparisons): paired tests of every model pair for one metric,
-- percentile and layer rule, with the corrected p-values, effect size and family.
SELECT model_a, variant_a, method_a, layer_a, model_b, variant_b, method_b, layer_b, n,
       mean_a, mean_b, mean_diff, ci_low, ci_high, d_z, t_stat, p_t, p_wilcoxon, p_holm,
       p_bonferroni, p_bh, family, family_size
FROM model_comparisons
WHERE metric = $metric AND percentile IS NOT DISTINCT FROM $percentile
  AND layer_rule = $layer_rule
ORDER BY p_holm, model_a, model_b
