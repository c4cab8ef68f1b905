-- What makes the numbers not real results: synthetic annotations, random-weight models
-- (the dashboards flag the same on every page).
SELECT coalesce((SELECT bool_or(synthetic) FROM annotation_sources), false) AS synthetic,
       coalesce((SELECT list(model ORDER BY model) FROM model_defaults WHERE random_weights),
                []) AS random_models
