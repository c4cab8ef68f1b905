-- Dashboards and `ssl-wc info`: what is synthetic (demo annotations) and which models
-- have random weights.
SELECT (SELECT coalesce(bool_or(synthetic), false) FROM annotation_sources) AS synthetic,
       (SELECT coalesce(list(DISTINCT model ORDER BY model), [])
        FROM map_sources WHERE random_weights) AS random_weight_models
