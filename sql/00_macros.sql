-- Macros stored in the catalog file: they work from the plain duckdb CLI.

-- Head encoding of attention_maps.head: >= 0 is a single head, negative values are
-- fusions over heads: -1 mean, -2 max, -3 min.
CREATE OR REPLACE MACRO head_label(h) AS
    CASE WHEN h >= 0 THEN 'h' || CAST(h AS VARCHAR)
         WHEN h = -1 THEN 'mean'
         WHEN h = -2 THEN 'max'
         WHEN h = -3 THEN 'min'
         ELSE 'head' || CAST(h AS VARCHAR) END;

CREATE OR REPLACE MACRO is_fused(h) AS h < 0;

-- Model keys of baselines start with 'baseline:'.
CREATE OR REPLACE MACRO is_baseline(m) AS starts_with(m, 'baseline:');

-- Wilson score interval bounds for a proportion (for pointing-game hit rates).
CREATE OR REPLACE MACRO wilson_low(p, n) AS
    CASE WHEN n > 0 THEN (p + 1.96^2 / (2 * n) - 1.96 * sqrt(p * (1 - p) / n + 1.96^2 / (4 * n^2)))
                         / (1 + 1.96^2 / n) END;
CREATE OR REPLACE MACRO wilson_high(p, n) AS
    CASE WHEN n > 0 THEN (p + 1.96^2 / (2 * n) + 1.96 * sqrt(p * (1 - p) / n + 1.96^2 / (4 * n^2)))
                         / (1 + 1.96^2 / n) END;
