-- Map frames, patch tokens and box-to-patch similarity (written by `ssl-wc ingest attention`).

-- The part of each image a model's maps cover, as fractions of the image (left, top,
-- right, bottom): the whole image (0, 0, 1, 1) unless the checkpoint's own processor
-- centre-crops (ResNet-50: short side 256, crop 224), with the share of the image lost.
-- Boxes are carried into the frame before scoring (a box wholly outside is not scored).
CREATE OR REPLACE VIEW map_frames AS
SELECT run_id, model, variant, image_id, resize_mode, orig_h, orig_w, input_h, input_w,
       frame_left, frame_top, frame_right, frame_bottom, area_lost
FROM _raw_map_frames;

-- One float16 token per patch (stored as FLOAT[] here), row-major (row = y), at the layers
-- chosen at ingest (default the last block; a CNN's cells of its last stage).
CREATE OR REPLACE VIEW patch_tokens AS
SELECT run_id, model, variant, layer, image_id, patch, "row", col, grid_h, grid_w,
       len("values") AS dim, "values", config_hash
FROM _raw_patch_tokens;

-- Cosine similarity of every patch token to the mean token inside one expert box (Amir
-- et al. 2022, dense ViT descriptors), for one model, variant, layer, image and box:
--   the box (clamped to the image) is carried into the map's frame (map_frames; the
--   whole image when absent): x' = (x - left) / (right - left), clipped to [0, 1];
--   cells in the box: cell centres ((col + 0.5) / grid_w, (row + 0.5) / grid_h) inside the
--   closed box; when none is, the one cell holding the box centre;
--   similarity = cos(token, mean token of the box's cells); NULL for a box wholly outside
--   the frame. The same rule as ssl_wc.metrics.feature_similarity. E.g.
-- SELECT "row", col, similarity FROM box_patch_similarity('dinov2', 'frozen', 11,
--        'Q1_wd0.jpg', 3) ORDER BY "row", col;
CREATE OR REPLACE MACRO box_patch_similarity(model_key, variant_key, layer_idx, image,
                                             box) AS TABLE
WITH tok AS (
    SELECT patch, "row", col, grid_h, grid_w, "values"::DOUBLE[] AS v
    FROM _raw_patch_tokens
    WHERE model = model_key AND variant = variant_key AND layer = layer_idx
      AND image_id = image
), frame_row AS (
    SELECT coalesce(max(frame_left), 0.0) AS f_l, coalesce(max(frame_top), 0.0) AS f_t,
           coalesce(max(frame_right), 1.0) AS f_r, coalesce(max(frame_bottom), 1.0) AS f_b
    FROM _raw_map_frames
    WHERE model = model_key AND variant = variant_key AND image_id = image
), box_row AS (
    SELECT least(greatest(left_c, 0.0), 1.0) AS x0, least(greatest(top_c, 0.0), 1.0) AS y0,
           least(greatest(left_c + width_c, 0.0), 1.0) AS x1,
           least(greatest(top_c + height_c, 0.0), 1.0) AS y1
    FROM _raw_ann_boxes WHERE image_id = image AND box_index = box
), moved AS (
    SELECT x1 > x0 AND y1 > y0 AS has_area,
           greatest(0.0, least(1.0, (x0 - f_l) / (f_r - f_l))) AS nx0,
           greatest(0.0, least(1.0, (x1 - f_l) / (f_r - f_l))) AS nx1,
           greatest(0.0, least(1.0, (y0 - f_t) / (f_b - f_t))) AS ny0,
           greatest(0.0, least(1.0, (y1 - f_t) / (f_b - f_t))) AS ny1
    FROM box_row, frame_row
), geo AS (  -- right/bottom as left + width, the arithmetic of the Python helper
    SELECT nx0 AS bx0, ny0 AS by0, nx0 + (nx1 - nx0) AS bx1, ny0 + (ny1 - ny0) AS by1,
           has_area AND nx1 > nx0 AND ny1 > ny0 AS valid
    FROM moved
), cells AS (
    SELECT t.*, g.valid,
           (t.col + 0.5) / t.grid_w BETWEEN g.bx0 AND g.bx1
           AND (t."row" + 0.5) / t.grid_h BETWEEN g.by0 AND g.by1 AS centre_in,
           t.col = least(t.grid_w - 1, floor((g.bx0 + g.bx1) / 2 * t.grid_w))
           AND t."row" = least(t.grid_h - 1, floor((g.by0 + g.by1) / 2 * t.grid_h))
               AS holds_centre
    FROM tok t, geo g
), marked AS (
    SELECT *, CASE WHEN bool_or(centre_in) OVER () THEN centre_in ELSE holds_centre END
                  AS in_box
    FROM cells
), box_token AS (
    SELECT list(m ORDER BY i) AS mv FROM (
        SELECT u.i, avg(u.x) AS m
        FROM marked, unnest(marked.v) WITH ORDINALITY AS u(x, i)
        WHERE in_box GROUP BY u.i)
)
SELECT model_key AS model, variant_key AS variant, layer_idx AS layer, image AS image_id,
       box AS box_index, c.patch, c."row", c.col, c.grid_h, c.grid_w, c.in_box,
       CASE WHEN c.valid THEN list_cosine_similarity(c.v, bt.mv) END AS similarity
FROM marked c, box_token bt
ORDER BY c.patch;

-- Per expert box and token layer: mean similarity of the patch tokens to the box token
-- inside the box (sim_in) and outside it (sim_out), and their difference (contrast: how
-- distinctive the expert's part is in the model's features). Materialised by the
-- attention job from the stored tokens with the rule of box_patch_similarity.
CREATE OR REPLACE VIEW box_similarity AS
SELECT s.model, s.variant, s.layer, s.image_id, s.box_index, b.label,
       f.name AS feature_name, s.n_in, s.n_out, s.sim_in, s.sim_out,
       s.sim_in - s.sim_out AS contrast
FROM _raw_box_similarity s
LEFT JOIN _raw_ann_boxes b ON b.image_id = s.image_id AND b.box_index = s.box_index
LEFT JOIN _raw_ann_feature_types f ON f.label = b.label;

-- The feature-space metric per feature type: mean in-box vs out-of-box similarity over
-- the boxes of a label (rollup = false) or of the label and its descendants (true).
CREATE OR REPLACE VIEW feature_similarity AS
WITH grouped AS (
    SELECT s.*, a.ancestor AS feature_label, a.depth > 0 AS via_descendant
    FROM box_similarity s JOIN _raw_ann_feature_ancestors a ON a.label = s.label
)
SELECT g.model, g.variant, g.layer, g.feature_label, f.name AS feature_name, r.rollup,
       count(g.contrast) AS n_boxes, count(DISTINCT g.image_id) AS n_images,
       avg(g.sim_in) AS mean_in, avg(g.sim_out) AS mean_out, avg(g.contrast) AS mean_contrast,
       stddev_samp(g.contrast) AS sd_contrast
FROM grouped g
JOIN (VALUES (false), (true)) r(rollup) ON r.rollup OR NOT g.via_descendant
JOIN _raw_ann_feature_types f ON f.label = g.feature_label
GROUP BY ALL;
