"""Faithfulness sections of the Leaderboard and Image pages (``ssl-wc faithfulness``).

Leaderboard: models ranked on a faithfulness metric, plausibility against faithfulness
per model and layer (the question: do the maps that agree with the experts also drive
the model?), the randomisation cascade as small multiples (one panel per method, one
line per layer) and the methods whose maps survive randomisation. Image: the deletion
and insertion curves of the chosen map beside the random and baseline controls, and the
image's randomisation cascade. Queries go through ``data.query`` (cached, read-only).
"""

from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import polars as pl
import streamlit as st
from plotly.subplots import make_subplots

from dashboards import data, figures, ui

#: faithfulness metrics in the order offered (the catalogue gives labels and directions)
METRICS = ("deletion_gain", "insertion_gain", "road_gap", "deletion_auc", "insertion_auc",
           "deletion_auc_prob", "insertion_auc_prob", "mprt_spearman_abs", "mprt_ssim",
           "emprt")
MPRT_METRICS = ("mprt_spearman_abs", "mprt_ssim", "emprt")
HINT = "ssl-wc faithfulness"
CONTROL_STYLE = {"baseline:random": ("random order", "dash"),
                 "baseline:center_gaussian": ("centre Gaussian", "dot"),
                 "baseline:saliency_prior": ("saliency prior", "dashdot"),
                 "baseline:sobel_edges": ("Sobel edges", "longdash")}


# --------------------------------------------------------------------------- data
def protocols() -> dict[str, str | None]:
    """The protocol shown per check (``deletion``, ``mprt``): the one with most rows, or a
    sidebar choice when there are several."""
    df = data.query("dash_faith_protocols")
    out: dict[str, str | None] = {"deletion": None, "mprt": None}
    for kind in out:
        sub = df.filter(pl.col("kind") == kind)
        hashes = sub["protocol_hash"].to_list()
        if len(hashes) == 1:
            out[kind] = str(hashes[0])
        elif hashes:
            desc = {str(h): describe(j) for h, j in
                    zip(hashes, sub["protocol_json"].to_list(), strict=True)}

            def label(h: str, d: dict[str, str] = desc) -> str:
                return f"{h[:8]} ({d[h]})"

            out[kind] = ui.select(f"Faithfulness protocol ({kind})", hashes, f"{kind}_prot",
                                  where=st.sidebar, format_func=label)
    return out


def describe(protocol_json: str | None) -> str:
    """A short summary of a faithfulness protocol's JSON."""
    try:
        p = json.loads(protocol_json or "{}")
    except ValueError:
        return ""
    if p.get("kind") == "deletion":
        return f"{p.get('steps')} steps, {p.get('imputation')} removal"
    if p.get("kind") == "mprt":
        return f"seed {p.get('seed')}, survival |rho| >= {p.get('survival_threshold')}"
    return ""


def metric_infos() -> dict[str, data.MetricInfo]:
    """Labels, directions and references of the faithfulness metrics (catalogue)."""
    cat = {r["metric"]: r for r in data.query("dash_metric_catalogue").iter_rows(named=True)}
    out = {}
    for m in METRICS:
        row = cat.get(m)
        if row is not None:
            out[m] = data.MetricInfo(m, row["label"], row["direction"], True,
                                     row["reference"] or "", row["description"] or "")
    return out


def _protocol_of(metric: str, prots: dict[str, str | None]) -> str | None:
    return prots["mprt"] if metric in MPRT_METRICS else prots["deletion"]


# --------------------------------------------------------------------------- leaderboard
def leaderboard_section(protocol: str, metric: str, pct: int | None,
                        plaus: data.MetricInfo, variant: str) -> None:
    """The Leaderboard page's faithfulness section (see the module docstring)."""
    st.header("Faithfulness: do the maps drive the model?")
    prots = protocols()
    if prots["deletion"] is None and prots["mprt"] is None:
        ui.missing("No faithfulness checks yet", HINT,
                   "deletion / insertion AUC and the model-parameter randomisation test")
        return
    infos = metric_infos()
    have = set()
    for p in {v for v in prots.values() if v}:
        have |= set(data.query("dash_metrics_available", protocol=p)["metric"].to_list())
    options = [m for m in infos if m in have]
    if not options:
        ui.missing("No per-layer summaries of the faithfulness checks yet", HINT)
        return
    c1, c2 = st.columns([1.4, 2])
    fmetric = ui.select("Faithfulness metric", options, "fmetric", default="deletion_gain",
                        where=c1, format_func=lambda m: infos[m].title())
    assert fmetric is not None
    finfo = infos[fmetric]
    fprot = _protocol_of(fmetric, prots)
    assert fprot is not None
    c2.caption(f"**{finfo.title()}**: {finfo.description} Reference: {finfo.reference}")
    _faith_ranking(fmetric, finfo, fprot, variant)
    _scatter(protocol, metric, pct, plaus, fmetric, finfo, fprot, variant)
    if prots["mprt"] is not None:
        _cascade(prots["mprt"], variant)


def _faith_ranking(fmetric: str, finfo: data.MetricInfo, fprot: str, variant: str) -> None:
    df = data.query("dash_faith_ranking", metric=fmetric, protocol=fprot, variant=variant)
    if df.height == 0:
        ui.missing(f"No model has {finfo.title()} for variant {variant}", HINT)
        return
    label = (pl.col("model").map_elements(ui.model_label, return_dtype=pl.String)
             + pl.lit(" (") + pl.col("method") + pl.lit(", layer ")
             + pl.col("layer").cast(pl.String) + pl.lit(")"))
    rows = df.with_columns(label=label).sort("mean", descending=not finfo.lower_is_better)
    colors = figures.model_colors(rows["model"].to_list())
    st.plotly_chart(figures.ranking_figure(
        rows, title=f"{finfo.title()} at each model's best layer (default method; 95 % CI)",
        x_title=finfo.title(), colors=colors, name="faith_ranking"),
        width="stretch", config=ui.chart_config())


def _scatter(protocol: str, metric: str, pct: int | None, plaus: data.MetricInfo,
             fmetric: str, finfo: data.MetricInfo, fprot: str, variant: str) -> None:
    st.subheader("Plausibility against faithfulness")
    df = data.query("dash_faith_scatter", metric=metric,
                    percentile=pct if metric in data.PCT_METRICS else None,
                    protocol=protocol, fmetric=fmetric, fprotocol=fprot, variant=variant)
    if df.height == 0:
        ui.missing(f"No map has both {plaus.title(pct)} and {finfo.title()}",
                   "ssl-wc metrics && ssl-wc faithfulness")
        return
    st.plotly_chart(scatter_figure(df, plaus.title(pct), finfo.title()), width="stretch",
                    config=ui.chart_config())
    lines = []
    for (model, method), g in df.group_by(["model", "method"], maintain_order=True):
        rho = rank_correlation(g["plausibility"].to_numpy(), g["faithfulness"].to_numpy())
        if rho is not None:
            lines.append(f"{ui.model_label(str(model))} {method}: {rho:+.2f} "
                         f"({g.height} layers)")
    st.caption("One point per model, method and layer (means over images). Spearman "
               "correlation across layers: " + ("; ".join(lines) if lines else
                                                "needs 3 or more layers per method") + ".")


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman's rho of two columns (None for fewer than 3 finite pairs or no spread)."""
    from ssl_wc.faithfulness.similarity import spearman_rows

    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3:
        return None
    rho = float(spearman_rows(x[ok][None], y[ok][None])[0])
    return None if rho != rho else rho


def scatter_figure(df: pl.DataFrame, x_title: str, y_title: str) -> go.Figure:
    """Per model and method, the layers as points joined in layer order."""
    colors = figures.model_colors(df["model"].to_list())
    symbols = ("circle", "square", "diamond", "triangle-up", "x", "star")
    methods = sorted(set(df["method"].to_list()))
    fig = go.Figure()
    for (model, method), g in df.group_by(["model", "method"], maintain_order=True):
        g = g.sort("layer")
        fig.add_trace(go.Scatter(
            x=g["plausibility"].to_list(), y=g["faithfulness"].to_list(),
            mode="lines+markers+text", text=[str(v) for v in g["layer"].to_list()],
            textposition="top center", textfont={"size": 9},
            name=f"{ui.model_label(str(model))} · {method}",
            line={"color": colors[str(model)], "width": 1},
            marker={"symbol": symbols[methods.index(str(method)) % len(symbols)], "size": 9,
                    "color": colors[str(model)]},
            hovertemplate=f"{model} · {method}<br>layer %{{text}}<br>{x_title} %{{x:.3f}}"
                          f"<br>{y_title} %{{y:.3f}}<extra></extra>"))
    figures.metric_axis(fig, x_title, axis="x")
    figures.metric_axis(fig, y_title)
    fig.update_layout(title={"text": f"{y_title} against {x_title} (labels: layer)",
                             "font": {"size": 14}}, height=480, meta={"chart": "faith_scatter"},
                      margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.18})
    return fig


def _cascade(mprt: str, variant: str) -> None:
    st.subheader("Model-parameter randomisation, cascading from the top block")
    models = sorted(set(data.query("dash_faith_flags", protocol=mprt)
                        .filter(pl.col("variant") == variant)["model"].to_list()))
    if not models:
        ui.missing(f"No randomisation cascade for variant {variant}",
                   f"{HINT} --checks mprt")
        return
    c1, c2 = st.columns([1.4, 1])
    model = ui.select("Model", models, "cmodel", where=c1, format_func=ui.model_label)
    sim = ui.radio("Similarity", ["spearman_abs", "ssim"], "sim", where=c2,
                   format_func=lambda s: {"spearman_abs": "|Spearman| of the patch grids",
                                          "ssim": "SSIM of the heatmaps"}[s])
    assert model is not None and sim is not None
    df = data.query("dash_faith_cascade", model=model, variant=variant, protocol=mprt)
    if df.height == 0:
        ui.missing(f"No randomisation cascade for {model}", f"{HINT} --models {model}")
        return
    st.plotly_chart(cascade_figure(df, sim), width="stretch", config=ui.chart_config())
    flags = data.query("dash_faith_flags", protocol=mprt).filter(
        (pl.col("variant") == variant) & (pl.col("n_surviving") > 0))
    thr = df["survival_threshold"].drop_nulls()
    threshold = float(thr[0]) if thr.len() else 0.5
    st.caption(f"x: blocks re-initialised from the top (the modules after the last block "
               f"first), then every parameter ('all'). A map at layer l taken from the "
               f"attention in block l (cls, mean, rollout) cannot change before the cascade "
               f"reaches block l. A map whose mean |Spearman| with the fully random model's "
               f"stays >= {threshold:g} survives randomisation: it hardly depends on the "
               f"model (like the Sobel edge baseline, similarity 1 by construction).")
    if flags.height:
        items = [f"{ui.model_label(r['model'])} · {r['method']} (layers "
                 f"{', '.join(str(v) for v in r['surviving_layers'] or [])})"
                 for r in flags.iter_rows(named=True)]
        st.warning("Survives randomisation (fails the sanity check): " + "; ".join(items),
                   icon=":material/warning:")
    else:
        st.success("No method's map survives full randomisation at any layer.",
                   icon=":material/check_circle:")


def cascade_figure(df: pl.DataFrame, sim: str) -> go.Figure:
    """Small multiples: one panel per method, one line per layer, x = cascade step."""
    methods = sorted(set(df["method"].to_list()))
    steps = sorted(set(df["cascade_step"].to_list()))
    n_blocks = len(steps) - 1
    ticks = [("all" if s > n_blocks else str(s)) for s in steps]
    layers = sorted(set(df["layer"].to_list()))
    fig = make_subplots(rows=1, cols=len(methods), shared_yaxes=True,
                        subplot_titles=[_panel_title(df, m) for m in methods],
                        horizontal_spacing=0.03)
    for j, method in enumerate(methods, start=1):
        sub = df.filter(pl.col("method") == method)
        for i, layer in enumerate(layers):
            g = sub.filter(pl.col("layer") == layer).sort("cascade_step")
            if g.height == 0:
                continue
            shade = 0.25 + 0.75 * (i / max(len(layers) - 1, 1))
            fig.add_trace(go.Scatter(
                x=[ticks[steps.index(s)] for s in g["cascade_step"].to_list()],
                y=g[sim].to_list(), mode="lines+markers", name=f"layer {layer}",
                legendgroup=f"layer {layer}", showlegend=j == 1,
                line={"color": figures.rgba(figures.PALETTE[0], shade), "width": 1.5},
                marker={"size": 5},
                hovertemplate=f"{method} · layer {layer}<br>blocks randomised %{{x}}<br>"
                              f"%{{y:.3f}}<extra></extra>"), row=1, col=j)
        thr = sub["survival_threshold"].drop_nulls()
        if sim == "spearman_abs" and thr.len():
            fig.add_hline(y=float(thr[0]), line={"color": figures.BASELINE_COLOR,
                                                 "dash": "dash", "width": 1}, row=1, col=j)
        fig.update_xaxes(type="category", title={"text": "blocks randomised"}, row=1, col=j)
    fig.update_yaxes(range=[-0.05 if sim == "spearman_abs" else -1.0, 1.05], row=1, col=1,
                     title={"text": "|Spearman|" if sim == "spearman_abs" else "SSIM"})
    fig.update_layout(height=380, meta={"chart": "faith_cascade"},
                      margin={"l": 10, "r": 10, "t": 50, "b": 10},
                      legend={"orientation": "h", "y": -0.3})
    return fig


def _panel_title(df: pl.DataFrame, method: str) -> str:
    sub = df.filter((pl.col("method") == method) & pl.col("fully_random"))
    bad = sub.filter(pl.col("survives_randomisation").fill_null(False))["layer"].to_list()
    return f"{method} ⚠ survives at layer {', '.join(map(str, bad))}" if bad else method


# --------------------------------------------------------------------------- image page
def image_section(model: str, variant: str, method: str, layer: int, image_id: str) -> None:
    """The Image page's faithfulness section for the chosen map (fused mean heads)."""
    st.subheader(f"Faithfulness of the mean-fused {method} map at layer {layer}")
    prots = protocols()
    if prots["deletion"] is None and prots["mprt"] is None:
        ui.missing("No faithfulness checks yet", HINT)
        return
    left, right = st.columns([3, 2])
    with left:
        if prots["deletion"] is not None:
            _image_curves(model, variant, method, layer, image_id, prots["deletion"])
    with right:
        if prots["mprt"] is not None:
            _image_cascade(model, variant, method, layer, image_id, prots["mprt"])


def _image_curves(model: str, variant: str, method: str, layer: int, image_id: str,
                  protocol: str) -> None:
    curves = data.query("dash_faith_curves", model=model, variant=variant, image=image_id,
                        protocol=protocol, method=method, layer=int(layer))
    mine = curves.filter(pl.col("method") == method)
    if mine.height == 0:
        ui.missing(f"No deletion / insertion curves for {method} at layer {layer} on this "
                   "image", f"{HINT} --models {model} --methods {method} --images {image_id}")
        return
    scores = sorted(set(mine["score"].to_list()))
    score = ui.radio("Score", scores, "fscore", default="cosine",
                     format_func=lambda s: {"cosine": "cosine to the intact embedding",
                                            "class_prob": "predicted class probability"}[s])
    assert score is not None
    st.plotly_chart(curves_figure(curves.filter(pl.col("score") == score), method, layer),
                    width="stretch", config=ui.chart_config())
    vals = data.query("dash_faith_image_metrics", model=model, variant=variant,
                      image=image_id, protocol=protocol)
    row = vals.filter((pl.col("method") == method) & (pl.col("layer") == layer))
    if row.height:
        r = row.row(0, named=True)
        prob = score == "class_prob"
        tiles = st.columns(3)
        tiles[0].metric("Deletion AUC ↓", ui.fmt(r["deletion_auc_prob" if prob else
                                                  "deletion_auc"]))
        tiles[1].metric("Insertion AUC ↑", ui.fmt(r["insertion_auc_prob" if prob else
                                                   "insertion_auc"]))
        tiles[2].metric("Deletion gain over random ↑", ui.fmt(r["deletion_gain"]),
                        help="random-order deletion AUC minus this map's (cosine score)")
    st.caption("Cells removed (deletion) or kept (insertion) in the order the map ranks "
               "them; removal by the protocol's imputation. Grey: the image's controls.")


def curves_figure(df: pl.DataFrame, method: str, layer: int) -> go.Figure:
    """Deletion and insertion panels: the map's curve and the controls."""
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=["deletion: top cells removed",
                                        "insertion: only top cells kept"])
    for col, curve in enumerate(("deletion", "insertion"), start=1):
        sub = df.filter(pl.col("curve") == curve)
        for (m,), g in sub.group_by(["method"], maintain_order=True):
            g = g.sort("t")
            if m == method:
                name, dash, color, width = f"{method} · layer {layer}", "solid", \
                    figures.PALETTE[0], 2.5
            else:
                name, dash = CONTROL_STYLE.get(str(m), (str(m), "dot"))
                color, width = figures.BASELINE_COLOR, 1.5
            fig.add_trace(go.Scatter(
                x=g["t"].to_list(), y=g["value"].to_list(), mode="lines+markers",
                name=name, legendgroup=name, showlegend=col == 1,
                line={"color": color, "dash": dash, "width": width}, marker={"size": 4},
                hovertemplate=f"{name}<br>t %{{x:.2f}}<br>%{{y:.3f}}<extra></extra>"),
                row=1, col=col)
        fig.update_xaxes(title={"text": "share of cells removed" if curve == "deletion"
                                else "share of cells kept"}, range=[0, 1], row=1, col=col)
    figures.metric_axis(fig, "score")
    fig.update_layout(height=360, meta={"chart": "faith_curves"},
                      margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def _image_cascade(model: str, variant: str, method: str, layer: int, image_id: str,
                   protocol: str) -> None:
    df = data.query("dash_faith_image_cascade", model=model, variant=variant, method=method,
                    image=image_id, protocol=protocol)
    if df.height == 0:
        ui.missing(f"No randomisation cascade for {method} on this image",
                   f"{HINT} --checks mprt --models {model} --images {image_id}")
        return
    g = df.with_columns(method=pl.lit(method), fully_random=pl.col("randomised_from") < 0,
                        survival_threshold=pl.lit(None, dtype=pl.Float64),
                        survives_randomisation=pl.lit(None, dtype=pl.Boolean))
    fig = cascade_figure(g, "spearman_abs")
    for tr in fig.data:
        if tr.name != f"layer {layer}":
            tr.line.color = figures.rgba(figures.BASELINE_COLOR, 0.35)
    fig.update_layout(height=330, title={"text": f"this image: |Spearman| to the trained map "
                                                 f"(layer {layer} in blue)",
                                         "font": {"size": 13}}, showlegend=False)
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())
