-- Report (linear probe): held-out accuracy and macro F1 per model, variant, layer and
-- feature kind.
SELECT model, variant, layer, feature_kind, label_rule, n_images, n_folds, accuracy,
       accuracy_sd, macro_f1
FROM probe_results
ORDER BY model, variant, feature_kind, layer
