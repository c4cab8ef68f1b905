"""Heads: which single attention heads align best, per layer, and on which features."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import data, figures, ui


def render() -> None:
    ui.page("Heads", "Single heads ranked within each image (rank 1 = the head closest to "
                     "the experts on that image), then summarised per layer.")
    chosen = ui.metric_summaries()
    if chosen is None:
        return
    protocol, infos = chosen
    srcs = data.map_sources()
    if srcs.height == 0:
        ui.missing("No attention maps in the warehouse yet",
                   "ssl-wc ingest attention --models <model>",
                   "`ssl-wc models list` shows the model keys")
        return
    side = st.sidebar
    models = sorted(srcs["model"].unique().to_list())
    model = ui.select("Model", models, "model", where=side, format_func=ui.model_label)
    mine = srcs.filter(pl.col("model") == model)
    variants = sorted(mine["variant"].to_list(), key=lambda v: (v != "frozen", v))
    variant = ui.select("Variant", variants, "variant", default="frozen", where=side)
    row = mine.filter(pl.col("variant") == variant).row(0, named=True)
    methods = list(row["methods"] or []) or [row["default_method"]]
    method = ui.select("Method", methods, "method", default=row["default_method"], where=side)
    metric, info, pct = ui.metric_and_percentile(infos, metric_where=side, pct_where=side)
    assert model is not None and variant is not None and method is not None
    title = info.title(pct)
    rank = data.head_ranking(model, variant, method, metric, pct, protocol)
    if rank.height == 0:
        ui.missing(f"No single-head scores for {ui.model_label(model, variant)} ({method}): "
                   f"single heads are scored when their maps are stored",
                   f"ssl-wc ingest attention --models {model} --methods {method} "
                   f"&& ssl-wc metrics")
        return
    layers = sorted(rank["layer"].unique().to_list())
    heads = sorted(rank["head"].unique().to_list())
    st.subheader(f"{title} of every head ({ui.model_label(model, variant)}, {method})")
    z = np.full((len(layers), len(heads)), np.nan)
    top1 = np.zeros_like(z)
    li, hi = {v: i for i, v in enumerate(layers)}, {v: i for i, v in enumerate(heads)}
    for r in rank.iter_rows(named=True):
        z[li[r["layer"]], hi[r["head"]]] = r["mean_score"]
        top1[li[r["layer"]], hi[r["head"]]] = r["top1"]
    fig = figures.matrix_figure(z, [f"h{h}" for h in heads], layers,
                                title=f"mean {title} per layer and head (over images)",
                                x_title="head", y_title="layer", colorbar=title,
                                reverse=info.lower_is_better, name="head_layer",
                                height=max(320, 90 + 30 * len(layers)))
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())

    layer = ui.select_slider("Layer", layers, "layer", default=layers[-1])
    assert layer is not None
    at = rank.filter(pl.col("layer") == layer).sort("mean_rank")
    med = float(np.median(at["mean_score"].to_numpy())) if at.height else float("nan")
    best = at.row(0, named=True)
    ratio = (best["mean_score"] / med) if med and not info.lower_is_better else None
    st.markdown(
        f"Layer {layer}: best head **h{best['head']}** (mean rank {best['mean_rank']:.2f}, "
        f"{title} {best['mean_score']:.3f}, best on {best['top1']} and in the top 3 on "
        f"{best['top3']} of {best['n_images']} images)"
        + (f"; {ratio:.1f}x the median head." if ratio else "."))
    c1, c2 = st.columns([3, 2])
    with c1:
        bars = go.Figure(go.Bar(
            x=[f"h{h}" for h in at["head"].to_list()], y=at["mean_score"].to_list(),
            text=[f"top-1: {t}" for t in at["top1"].to_list()], textposition="outside",
            marker={"color": figures.PALETTE[0]},
            hovertemplate="%{x}<br>%{y:.4f}<extra></extra>"))
        bars.add_hline(y=med, line={"dash": "dash", "color": figures.BASELINE_COLOR},
                       annotation_text="median head")
        figures.metric_axis(bars, title)
        bars.update_xaxes(type="category", title={"text": "head (best mean rank first)"})
        bars.update_layout(height=360, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                           meta={"chart": "head_scores"})
        st.plotly_chart(bars, width="stretch", config=ui.chart_config())
    with c2:
        st.dataframe(at.select(pl.format("h{}", "head").alias("head"), "mean_score",
                               "mean_rank", "top1", "top3", "n_images"),
                     hide_index=True, width="stretch", column_config={
                         "mean_score": st.column_config.NumberColumn(title, format="%.4f"),
                         "mean_rank": st.column_config.NumberColumn(format="%.2f")})
    _feature_matrix(model, variant, method, int(layer), metric, pct, protocol, title,
                    info.lower_is_better)


def _feature_matrix(model: str, variant: str, method: str, layer: int, metric: str,
                    pct: int | None, protocol: str, title: str, lower: bool) -> None:
    st.subheader(f"Heads x feature types at layer {layer}")
    mat = data.head_feature_matrix(model, variant, method, layer, metric, pct, protocol)
    if mat.height == 0:
        ui.missing("No per-box scores of single heads yet", "ssl-wc metrics")
        return
    n_feat = mat.group_by("feature_name").agg(pl.col("n_boxes").max()).sort(
        "n_boxes", descending=True)
    min_boxes = ui.int_slider("Minimum boxes per feature", 1, 20, "min_boxes", default=3)
    keep = n_feat.filter(pl.col("n_boxes") >= min_boxes)
    if keep.height == 0:
        st.info("No feature type has that many boxes.")
        return
    feats = keep["feature_name"].to_list()
    heads = sorted(mat["head"].unique().to_list())
    z = np.full((len(feats), len(heads)), np.nan)
    fi, hi = {v: i for i, v in enumerate(feats)}, {v: i for i, v in enumerate(heads)}
    for r in mat.filter(pl.col("feature_name").is_in(feats)).iter_rows(named=True):
        z[fi[r["feature_name"]], hi[r["head"]]] = r["mean"]
    n_of = dict(keep.iter_rows())
    fig = figures.matrix_figure(z, [f"h{h}" for h in heads],
                                [f"{f} (n={n_of[f]})" for f in feats],
                                title=f"mean {title} per head and feature type (each box "
                                      f"scored alone)",
                                x_title="head", y_title="feature", colorbar=title,
                                reverse=lower, name="head_feature")
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())


ui.ensure_app()
with ui.guard():
    render()
