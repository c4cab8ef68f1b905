-- Statistics materialised by `ssl-wc stats` / `ssl-wc probe`.

-- Paired comparisons of every model pair (baselines included) per metric, percentile
-- and layer rule; `family` states the set of tests each correction ran over.
CREATE OR REPLACE VIEW model_comparisons AS
SELECT * EXCLUDE (unit_key) FROM _raw_model_comparisons;

-- Linear probes on stored features (held-out accuracy only; folds stated).
CREATE OR REPLACE VIEW probe_results AS
SELECT * EXCLUDE (unit_key) FROM _raw_probe_results;
