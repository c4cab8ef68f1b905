-- Dashboards (Leaderboard, faithfulness): per model, variant and method, the layers whose
-- maps survive full randomisation (mean |Spearman| >= the protocol's threshold).
SELECT model, variant, method, any_value(survival_threshold) AS survival_threshold,
       count(*) AS n_layers,
       count(*) FILTER (WHERE survives_randomisation) AS n_surviving,
       list(layer ORDER BY layer) FILTER (WHERE survives_randomisation) AS surviving_layers,
       max(full_spearman_abs) AS max_spearman_abs
FROM sanity_summary
WHERE protocol_hash = $protocol AND fully_random AND head = -1
GROUP BY model, variant, method
ORDER BY model, variant, method
