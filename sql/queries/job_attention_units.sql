-- Jobs (metrics): every live attention unit (model, variant, method, image) and the run
-- that wrote it.
SELECT DISTINCT model, variant, method, image_id, run_id FROM _raw_attention_maps
