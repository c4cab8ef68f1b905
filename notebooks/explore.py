"""Exploration notebook (marimo): the dataset, per-model distributions and a custom metric.

Open it with ``marimo edit notebooks/explore.py`` (interactive) or run it as a script
(``python notebooks/explore.py``); the warehouse is ``$SSL_WC_WAREHOUSE`` (default
``./warehouse``) or ``-- --warehouse DIR`` after the marimo command. Every table comes
from ``ssl_wc.query`` as a polars DataFrame; the transformations are polars.
"""

import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="ssl-wc exploration")


@app.cell
def _():
    import os

    # the metric UDFs use POT; keep it from importing torch, jax, tensorflow and cupy
    for _backend in ("PYTORCH", "JAX", "TENSORFLOW", "CUPY"):
        os.environ.setdefault(f"POT_BACKEND_DISABLE_{_backend}", "1")

    import marimo as mo
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import polars as pl

    import ssl_wc

    return mo, np, os, pl, plt, ssl_wc


@app.cell
def _(mo, os, pl, ssl_wc):
    WAREHOUSE = mo.cli_args().get("warehouse") or os.environ.get("SSL_WC_WAREHOUSE",
                                                                 "warehouse")

    def q(sql, params=None):
        """A query on the warehouse, as a polars DataFrame."""
        return ssl_wc.query(sql, params, warehouse=str(WAREHOUSE))

    sources = q("SELECT * FROM annotation_sources")
    synthetic = bool(sources["synthetic"].any()) if sources.height else False
    random_models = q("SELECT model FROM model_defaults WHERE random_weights")["model"]
    warning = ("**Not real results**: synthetic annotations"
               + (f"; random-weight models {', '.join(random_models)}"
                  if random_models.len() else "") + ".") if synthetic else ""
    mo.md(f"""# Exploring the warehouse at `{WAREHOUSE}`

    {warning}

    Tables come from `ssl_wc.query(...)` (a polars DataFrame per query); everything after
    the query is the polars API.""")
    return WAREHOUSE, q


@app.cell
def _(mo):
    mo.md("""## Styles""")
    return


@app.cell
def _(pl, q):
    images = q("SELECT * FROM images")
    image_styles = q("SELECT * FROM image_styles")
    styles = (
        images.group_by(pl.col("primary_style_name").fill_null(pl.col("primary_style"))
                        .alias("style"))
        .agg(pl.len().alias("images"), pl.col("n_boxes").sum().alias("boxes"),
             pl.col("n_boxes").mean().round(2).alias("boxes_per_image"))
        .join(image_styles.group_by(pl.col("style_name").alias("style"))
              .agg(pl.len().alias("tagged_images")), on="style", how="left")
        .sort("images", descending=True)
    )
    styles
    return images, styles


@app.cell
def _(plt, styles):
    _fig, _ax = plt.subplots(figsize=(6, 2.6), layout="constrained")
    _ax.barh(styles["style"].to_list(), styles["images"].to_list(), color="#4e79a7")
    _ax.invert_yaxis()
    _ax.set_xlabel("images (first listed style)")
    _ax
    return


@app.cell
def _(mo):
    mo.md("""## Boxes per image and box areas""")
    return


@app.cell
def _(images, np, pl, plt, q):
    boxes = q("SELECT * FROM boxes")
    per_image = images.select(
        pl.col("n_boxes").min().alias("min"), pl.col("n_boxes").median().alias("median"),
        pl.col("n_boxes").mean().round(2).alias("mean"), pl.col("n_boxes").max().alias("max"))
    _fig, (_a, _b) = plt.subplots(1, 2, figsize=(8, 2.8), layout="constrained")
    _a.hist(images["n_boxes"].to_numpy(),
            bins=np.arange(0.5, images["n_boxes"].max() + 1.5), color="#4e79a7")
    _a.set_xlabel("boxes per image")
    _areas = boxes["area_c"].filter(boxes["area_c"] > 0).to_numpy()
    _b.hist(_areas, bins=np.geomspace(_areas.min(), _areas.max() * 1.001, 20), color="#59a14f")
    _b.set_xscale("log")
    _b.set_xlabel("box area (share of the image)")
    per_image, _a
    return boxes, per_image


@app.cell
def _(boxes, pl):
    area_by_feature = (
        boxes.group_by("feature_name")
        .agg(pl.len().alias("boxes"), pl.col("area_c").median().alias("median_area"),
             pl.col("was_clamped").sum().alias("clamped"))
        .sort("boxes", descending=True)
    )
    area_by_feature
    return


@app.cell
def _(mo):
    mo.md("""## The feature ontology

    A DAG: a feature may have several parents. `boxes_rolled_up` counts the boxes of the
    feature and of every descendant (how `feature_metrics` rolls up).""")
    return


@app.cell
def _(boxes, pl, q):
    types = q("SELECT * FROM feature_types")
    ancestors = q("SELECT * FROM feature_ancestors")
    own = boxes.group_by("label").agg(pl.len().alias("boxes_own"))
    rolled = (boxes.join(ancestors, on="label").group_by("ancestor")
              .agg(pl.len().alias("boxes_rolled_up")).rename({"ancestor": "label"}))
    depth = ancestors.group_by("label").agg(pl.col("depth").max().alias("depth"))
    ontology = (
        types.join(own, on="label", how="left").join(rolled, on="label", how="left")
        .join(depth, on="label", how="left")
        .with_columns(pl.col("boxes_own", "boxes_rolled_up").fill_null(0),
                      pl.col("parent_names").list.join(", ").alias("parents"))
        .select("label", "name", "parents", "depth", "is_root", "boxes_own", "boxes_rolled_up")
        .sort(["depth", "name"])
    )
    ontology
    return


@app.cell
def _(mo, q):
    catalogue = q("SELECT metric, label, direction FROM metric_catalogue "
                  "WHERE metric IN (SELECT DISTINCT metric FROM layer_progression)")
    metric_choice = mo.ui.dropdown(
        {f"{r['label']} ({r['direction']})": r["metric"]
         for r in catalogue.iter_rows(named=True)},
        value=next((f"{r['label']} ({r['direction']})" for r in catalogue.iter_rows(named=True)
                    if r["metric"] == "iou"), None),
        label="Metric")
    mo.vstack([mo.md("## Per-model distributions"), metric_choice])
    return (metric_choice,)


@app.cell
def _(metric_choice, pl, q):
    metric = metric_choice.value or "iou"
    column = "iou_90" if metric == "iou" else metric
    best = q("SELECT model, default_method, best_layer FROM leaderboard "
             "WHERE metric = $m AND (percentile IS NULL OR percentile = 90) "
             "AND variant = 'frozen' AND NOT is_baseline", {"m": metric})
    image_scores = q("SELECT * FROM image_metrics WHERE variant = 'frozen' AND head = -1")
    if column not in image_scores.columns:
        column = "iou_90"
    at_best = image_scores.join(
        best, left_on=["model", "method", "layer"],
        right_on=["model", "default_method", "best_layer"])
    distributions = (
        at_best.group_by("model", "method", "layer")
        .agg(pl.len().alias("images"), pl.col(column).mean().alias("mean"),
             pl.col(column).quantile(0.25).alias("q25"),
             pl.col(column).median().alias("median"),
             pl.col(column).quantile(0.75).alias("q75"))
        .sort("mean", descending=True)
    )
    distributions
    return at_best, column


@app.cell
def _(at_best, column, plt):
    _models = sorted(at_best["model"].unique().to_list())
    _fig, _ax = plt.subplots(figsize=(7, 3), layout="constrained")
    if _models:
        _ax.boxplot([at_best.filter(at_best["model"] == m)[column].drop_nulls().to_numpy()
                     for m in _models], tick_labels=_models, showmeans=True)
    _ax.set_ylabel(f"{column} per image (best layer)")
    _ax.tick_params(axis="x", rotation=30)
    _ax
    return


@app.cell
def _(mo):
    mo.md(r"""## A custom metric through a UDF

    **Centre-of-mass offset**: the distance between the attention map's centre of mass
    and the centre of the nearest expert box, in units of the image diagonal (0 = on a
    box centre; lower is better). It is registered as a DuckDB Python function on a
    project connection (`ssl_wc.connect`) and used in SQL like the built-in metric UDFs
    (`iou_at`, `coverage`, ...).""")
    return


@app.cell
def _(np):
    def com_offset(values, grid_h, grid_w, boxes):
        """Centre of mass of a row-major patch grid to the nearest box centre / diagonal."""
        if values is None or not boxes:
            return None
        a = np.asarray(values, dtype=np.float64).reshape(grid_h, grid_w)
        a = a - a.min()
        if a.sum() <= 0:
            return None
        ys = (np.arange(grid_h) + 0.5) / grid_h
        xs = (np.arange(grid_w) + 0.5) / grid_w
        cy = float((a.sum(axis=1) * ys).sum() / a.sum())
        cx = float((a.sum(axis=0) * xs).sum() / a.sum())
        centres = np.asarray([[b[0] + b[2] / 2, b[1] + b[3] / 2] for b in boxes])
        return float(np.min(np.hypot(centres[:, 0] - cx, centres[:, 1] - cy)) / np.sqrt(2))

    return (com_offset,)


@app.cell
def _(WAREHOUSE, com_offset, pl, ssl_wc):
    from duckdb.func import FunctionNullHandling
    from duckdb.sqltypes import DOUBLE, INTEGER

    _con = ssl_wc.connect(str(WAREHOUSE))
    try:
        _con.create_function("com_offset", com_offset,
                             ["FLOAT[]", INTEGER, INTEGER, "DOUBLE[][]"], DOUBLE,
                             null_handling=FunctionNullHandling.SPECIAL)
        offsets = _con.sql("""
            WITH b AS (
                SELECT image_id, list([left_c, top_c, width_c, height_c]) AS boxes
                FROM boxes GROUP BY image_id)
            SELECT m.model, m.method, m.layer, m.image_id,
                   com_offset(m."values", m.grid_h, m.grid_w, b.boxes) AS offset,
                   iou_at(m."values", m.grid_h, m.grid_w, b.boxes, 90) AS iou90_udf
            FROM attention_maps m
            JOIN model_defaults d ON d.model = m.model AND d.default_method = m.method
            JOIN b USING (image_id)
            WHERE m.variant = 'frozen' AND m.head = -1
        """).pl()
    finally:
        _con.close()
    com_summary = (
        offsets.group_by("model", "method", "layer")
        .agg(pl.col("offset").mean().alias("mean_offset"),
             pl.col("iou90_udf").mean().alias("mean_iou90"), pl.len().alias("images"))
        .sort(["model", "method", "layer"])
    )
    com_summary
    return (offsets,)


@app.cell
def _(offsets, pl, q):
    stored = q("SELECT model, method, layer, image_id, iou_90 FROM image_metrics "
               "WHERE variant = 'frozen' AND head = -1")
    check = offsets.join(stored, on=["model", "method", "layer", "image_id"])
    agreement = check.select(
        pl.len().alias("maps"),
        (pl.col("iou90_udf") - pl.col("iou_90")).abs().max().alias("max_abs_difference"),
        pl.corr("offset", "iou_90", method="spearman").alias("spearman_offset_vs_iou90"))
    agreement
    return


if __name__ == "__main__":
    app.run()
