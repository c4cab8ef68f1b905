-- Image similarity in the stored features (pure SQL: works from the plain duckdb CLI).
-- A feature source is (model, variant, layer, kind); kind 'pooled' is the model's pooled
-- output (CLS after the final norm, or the MAP head; last layer), 'cls' the CLS token and
-- 'patch_mean' the mean patch token after each block. Similarity is the cosine of the
-- stored vectors, computed in double precision.

-- Neighbours of every image within one feature source: cosine similarity and rank
-- (1 = most similar; ties go to the smaller neighbour id). NULL arguments mean "every":
-- feature_neighbors('dinov2', 'frozen', 11, 'pooled') ranks one source,
-- feature_neighbors(NULL, NULL, NULL, 'pooled') every pooled source.
CREATE OR REPLACE MACRO feature_neighbors(model_key, variant_key, layer_no, kind_key) AS TABLE
WITH f AS (
    SELECT model, variant, layer, kind, image_id, CAST("values" AS DOUBLE[]) AS v
    FROM _raw_features
    WHERE (model_key IS NULL OR model = model_key)
      AND (variant_key IS NULL OR variant = variant_key)
      AND (layer_no IS NULL OR layer = layer_no)
      AND (kind_key IS NULL OR kind = kind_key)
), pairs AS (
    SELECT a.model, a.variant, a.layer, a.kind, a.image_id, b.image_id AS neighbor_id,
           list_cosine_similarity(a.v, b.v) AS cosine
    FROM f a
    JOIN f b ON b.model = a.model AND b.variant = a.variant AND b.layer = a.layer
            AND b.kind = a.kind AND b.image_id <> a.image_id
)
SELECT model, variant, layer, kind, image_id, neighbor_id, cosine,
       row_number() OVER (PARTITION BY model, variant, layer, kind, image_id
                          ORDER BY cosine DESC NULLS LAST, neighbor_id) AS rank
FROM pairs;

-- Every image's neighbours in every feature source (filter on model, variant, layer and
-- kind; add `rank <= k` for the k nearest).
CREATE OR REPLACE VIEW image_neighbors AS
SELECT * FROM feature_neighbors(NULL, NULL, NULL, NULL);

-- Expected Jaccard index of two independent, uniformly random k-subsets of n items:
-- the overlap i is hypergeometric, P(i) = C(k,i) C(n-k,k-i) / C(n,k), and the Jaccard
-- index of a pair with overlap i is i / (2k - i). The chance level for knn_agreement.
CREATE OR REPLACE MACRO chance_jaccard(k, n) AS
    CASE WHEN k <= 0 OR n <= 0 THEN NULL WHEN k >= n THEN 1.0 ELSE
    list_sum(list_transform(
        range(greatest(0, 2 * k - n), k + 1),
        lambda i: exp(lgamma(k + 1) - lgamma(i + 1) - lgamma(k - i + 1)
                      + lgamma(n - k + 1) - lgamma(k - i + 1) - lgamma(n - 2 * k + i + 1)
                      - lgamma(n + 1) + lgamma(k + 1) + lgamma(n - k + 1))
                  * CASE WHEN i = 0 THEN 0.0 ELSE i / (2 * k - i) END)) END;

-- Agreement between two feature sources' neighbourhoods: for every image both sources
-- hold, the Jaccard index |A ∩ B| / |A ∪ B| of its k nearest neighbours in each (each
-- searched among that source's own images), averaged over images. Sources are paired
-- per kind at the same layer index ('same_layer') and at each source's deepest stored
-- layer ('last_layer'); variants count as sources of their own (fine-tuned vs frozen).
-- chance_jaccard is the mean Jaccard index of random k-sets of the same candidates.
CREATE OR REPLACE MACRO knn_agreement(k_nn, kind_key) AS TABLE
WITH nn AS (
    SELECT model, variant, layer, kind, image_id, list(neighbor_id ORDER BY rank) AS ids
    FROM feature_neighbors(NULL, NULL, NULL, kind_key)
    WHERE rank <= k_nn
    GROUP BY ALL
), sizes AS (
    SELECT model, variant, layer, kind, count(*) AS n_images
    FROM _raw_features
    WHERE kind_key IS NULL OR kind = kind_key
    GROUP BY ALL
), deepest AS (
    SELECT model, variant, kind, max(layer) AS layer FROM sizes GROUP BY ALL
), src AS (
    SELECT nn.*, s.n_images, 'same_layer' AS layer_rule, nn.layer AS pair_key
    FROM nn JOIN sizes s USING (model, variant, layer, kind)
    UNION ALL
    SELECT nn.*, s.n_images, 'last_layer', -1
    FROM nn JOIN sizes s USING (model, variant, layer, kind)
    JOIN deepest d USING (model, variant, layer, kind)
), scored AS (
    SELECT a.kind, a.layer_rule, a.model AS model_a, a.variant AS variant_a,
           a.layer AS layer_a, b.model AS model_b, b.variant AS variant_b,
           b.layer AS layer_b, a.image_id,
           len(list_intersect(a.ids, b.ids)) / len(list_distinct(list_concat(a.ids, b.ids)))
               AS jaccard,
           (chance_jaccard(len(a.ids), a.n_images - 1)
            + chance_jaccard(len(b.ids), b.n_images - 1)) / 2 AS chance
    FROM src a
    JOIN src b ON b.kind = a.kind AND b.layer_rule = a.layer_rule
              AND b.pair_key = a.pair_key AND b.image_id = a.image_id
              AND (a.model < b.model OR (a.model = b.model AND a.variant < b.variant))
)
SELECT kind, CAST(k_nn AS INTEGER) AS k, layer_rule, model_a, variant_a, layer_a, model_b,
       variant_b, layer_b, count(*) AS n_images, avg(jaccard) AS mean_jaccard,
       stddev_samp(jaccard) AS sd_jaccard, avg(chance) AS chance_jaccard
FROM scored
GROUP BY ALL;

-- knn_agreement at k = 5 and k = 10 for both feature kinds (knn_agreement(k, kind) for
-- any other k).
CREATE OR REPLACE VIEW neighbor_agreement AS
SELECT * FROM knn_agreement(5, NULL)
UNION ALL
SELECT * FROM knn_agreement(10, NULL);
