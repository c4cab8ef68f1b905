-- Jobs (faithfulness): how each live (model, variant) was extracted: the newest attention
-- run's configuration (spec identity, fine-tuning id) and its layer count.
SELECT s.model, s.variant, arg_max(s.config_json, r.started_at) AS config_json,
       arg_max(s.num_layers, r.started_at) AS num_layers
FROM map_sources s
LEFT JOIN runs r USING (run_id)
GROUP BY s.model, s.variant
ORDER BY s.model, s.variant
