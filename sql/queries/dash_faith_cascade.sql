-- Dashboards (Leaderboard, faithfulness): the randomisation cascade of one model and
-- variant, per method, layer and step (means over images), with the survival flag.
SELECT method, layer, cascade_step, randomised_from, randomised, fully_random, n_images,
       spearman, spearman_abs, ssim, entropy_rise, share_unchanged, depends,
       survival_threshold, survives_randomisation
FROM sanity_summary
WHERE model = $model AND variant = $variant AND protocol_hash = $protocol AND head = -1
ORDER BY method, layer, cascade_step
