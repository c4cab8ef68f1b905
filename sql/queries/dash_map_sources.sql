-- Dashboards: the attention-map sources (model, variant) and how they were made.
SELECT model, variant, hub_id, architecture, random_weights, grid_h, grid_w, num_layers,
       num_heads, default_method, methods, device, dtype, config_hash
FROM map_sources
ORDER BY model, variant
