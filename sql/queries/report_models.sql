-- Report (provenance): every attention-map source: weights, revision, layout,
-- preprocessing, device and configuration hash.
SELECT model, variant, hub_id, revision, architecture, random_weights, grid_h, grid_w,
       num_layers, num_heads, default_method, device, dtype, config_hash, transform_json,
       run_id
FROM map_sources
ORDER BY model, variant
