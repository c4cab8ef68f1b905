"""Fine-tuning: does task training move attention toward or away from the experts?

Training curves and validation accuracy of every fine-tuned model (linear probe, LoRA,
full), then the change of an alignment metric from the frozen backbone to each
fine-tuned variant per layer (paired over images, bootstrap CI, Holm-adjusted p), and
the images that gained or lost most. The linear probe leaves the backbone untouched:
its change is exactly 0 (the control).
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import data, figures, ui

STRATEGY_ORDER = ("linear_probe", "lora", "full")
STRATEGY_COLORS = {"linear_probe": "#7f7f7f", "lora": "#1f77b4", "full": "#d62728"}
TRAIN_CMD = "ssl-wc finetune --model dinov2 --strategy lora"


def _strategies(values: list[str]) -> list[str]:
    known = [s for s in STRATEGY_ORDER if s in values]
    return known + sorted(v for v in values if v not in STRATEGY_ORDER)


def _color(strategy: str) -> str:
    return STRATEGY_COLORS.get(strategy, figures.PALETTE[4])


def render() -> None:
    ui.page("Fine-tuning", "Does task training (4 styles) move attention toward or away "
                           "from what the experts boxed? Fine-tuned minus frozen, paired "
                           "over the annotated images, which never enter training.")
    runs = data.query("dash_finetune_runs")
    if runs.height == 0:
        ui.missing("No fine-tuned models in the warehouse yet", TRAIN_CMD)
        return
    # charts show the latest run of each model and strategy; the table lists every run
    latest = runs.sort("started_at", nulls_last=False).group_by(
        ["model", "strategy"], maintain_order=True).last()
    _accuracy(runs, latest)
    # one model choice (sidebar) drives the curves, the deltas and the images
    model = ui.select("Model", sorted(latest["model"].unique().to_list()), "model",
                      where=st.sidebar, format_func=ui.model_label)
    assert model is not None
    _curves(latest, model)
    _deltas(model)


# --------------------------------------------------------------------------- accuracy
def _accuracy(runs: pl.DataFrame, latest: pl.DataFrame) -> None:
    st.subheader("Validation accuracy (best epoch)")
    models = sorted(latest["model"].unique().to_list())
    fig = go.Figure()
    for s in _strategies(latest["strategy"].unique().to_list()):
        part = latest.filter(pl.col("strategy") == s).sort("model")
        fig.add_trace(go.Bar(
            x=[ui.model_label(m) for m in part["model"].to_list()],
            y=part["best_val_acc"].to_list(), name=s, marker={"color": _color(s)},
            text=[ui.fmt(v) for v in part["best_val_acc"].to_list()], textposition="outside",
            hovertemplate=f"{s}<br>%{{x}}<br>val acc %{{y:.3f}}<extra></extra>"))
    fig.update_yaxes(title={"text": "validation accuracy"}, range=[0, 1.08],
                     tickformat=".2f")
    fig.update_xaxes(type="category", categoryorder="array",
                     categoryarray=[ui.model_label(m) for m in models])
    fig.update_layout(barmode="group", height=330, meta={"chart": "finetune_accuracy"},
                      margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      legend={"orientation": "h", "y": 1.15})
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())
    st.dataframe(
        runs.select("model", "strategy", "best_val_acc", "best_epoch", "n_train", "n_val",
                    "n_held_out", "n_trainable", "trainable_share", "seconds", "device",
                    "finetune_id"),
        hide_index=True, width="stretch", column_config={
            "best_val_acc": st.column_config.NumberColumn("val acc", format="%.3f"),
            "best_epoch": "best epoch",
            "n_held_out": st.column_config.NumberColumn(
                "held out", help="annotated images and other photos of their churches"),
            "n_trainable": st.column_config.NumberColumn("trained params", format="%d"),
            "trainable_share": st.column_config.NumberColumn("share", format="%.4f"),
            "seconds": st.column_config.NumberColumn("seconds", format="%.1f")})


# --------------------------------------------------------------------------- curves
def _curves(latest: pl.DataFrame, model: str) -> None:
    mine = data.query("dash_finetune_epochs").filter(
        pl.col("finetune_id").is_in(latest["finetune_id"].to_list())
        & (pl.col("model") == model))
    if mine.height == 0:
        return
    st.subheader(f"Training curves ({ui.model_label(model)})")
    c1, c2 = st.columns(2)
    for where, what, label in ((c1, "loss", "class-weighted cross-entropy"),
                               (c2, "acc", "accuracy")):
        fig = go.Figure()
        for s in _strategies(mine["strategy"].unique().to_list()):
            part = mine.filter(pl.col("strategy") == s).sort("epoch")
            for split, dash in (("train", "solid"), ("val", "dash")):
                fig.add_trace(go.Scatter(
                    x=part["epoch"].to_list(), y=part[f"{split}_{what}"].to_list(),
                    mode="lines+markers", name=f"{s} · {split}",
                    line={"color": _color(s), "dash": dash, "width": 2},
                    hovertemplate=f"{s} {split}<br>epoch %{{x}}<br>%{{y:.4f}}<extra></extra>"))
        fig.update_xaxes(title={"text": "epoch"}, dtick=1)
        fig.update_yaxes(title={"text": label})
        fig.update_layout(height=330, meta={"chart": f"finetune_{what}"},
                          margin={"l": 10, "r": 10, "t": 30, "b": 10},
                          legend={"orientation": "h", "y": -0.25})
        where.plotly_chart(fig, width="stretch", config=ui.chart_config())


# --------------------------------------------------------------------------- deltas
def _deltas(model: str) -> None:
    st.subheader("Change of alignment: fine-tuned minus frozen")
    chosen = ui.metric_summaries()
    if chosen is None:
        return
    protocol, infos = chosen
    side = st.sidebar
    metric, info, pct = ui.metric_and_percentile(infos, metric_where=side, pct_where=side)
    title = info.title(pct)
    mine = data.query("dash_variant_deltas", metric=metric, percentile=pct,
                      protocol=protocol).filter(pl.col("model") == model)
    if mine.height == 0:
        ui.missing(f"No fine-tuned maps of {ui.model_label(model)} paired with frozen ones: "
                   "ingest the variants and score them", "ssl-wc finetune ... --ingest")
        return
    methods = sorted(mine["method"].unique().to_list())
    method = ui.select("Method", methods, "method", where=side)
    assert method is not None
    sel = mine.filter(pl.col("method") == method)
    lines = {s: sel.filter(pl.col("strategy") == s).select(
        "layer", pl.col("mean_delta").alias("mean"), "ci_low", "ci_high")
        for s in _strategies(sel["strategy"].unique().to_list())}
    better = "higher" if not info.lower_is_better else "lower"
    fig = figures.progression_figure(
        lines, title=f"Δ {title} per layer ({ui.model_label(model)}, {method}, mean over "
                     f"heads): fine-tuned − frozen, 95 % bootstrap CI",
        y_title=f"Δ {title}", colors={s: _color(s) for s in lines},
        name="variant_deltas", height=380)
    fig.add_hline(y=0.0, line={"color": "#555", "width": 1})
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())
    st.caption(f"{better.capitalize()} {title} is closer to the experts: a "
               f"{'positive' if better == 'higher' else 'negative'} Δ means fine-tuning "
               f"moved attention toward the boxes. The linear probe leaves the backbone "
               f"bit-identical, so its Δ is exactly 0.")
    table = sel.with_columns(
        pl.when(pl.col("gain") > 0).then(pl.lit("toward experts"))
        .when(pl.col("gain") < 0).then(pl.lit("away"))
        .otherwise(pl.lit("unchanged")).alias("direction of change"),
        *(ui.p_value_text(c) for c in ("p", "p_holm")))
    st.dataframe(
        table.select("strategy", "layer", "n", "mean_frozen", "mean_finetuned", "mean_delta",
                     "ci_low", "ci_high", "d_z", "p", "p_holm", "significant",
                     "direction of change", "family_size"),
        hide_index=True, width="stretch", column_config={
            "mean_frozen": st.column_config.NumberColumn("frozen", format="%.3f"),
            "mean_finetuned": st.column_config.NumberColumn("fine-tuned", format="%.3f"),
            "mean_delta": st.column_config.NumberColumn("Δ mean", format="%+.4f"),
            "ci_low": st.column_config.NumberColumn("CI low", format="%+.4f"),
            "ci_high": st.column_config.NumberColumn("CI high", format="%+.4f"),
            "d_z": st.column_config.NumberColumn("d_z", format="%.2f"),
            "p": st.column_config.TextColumn(
                "p (t)", help="paired t-test; — where every difference is zero (no test)"),
            "p_holm": st.column_config.TextColumn(
                "p Holm", help="Holm-adjusted over the family below; — where untested"),
            "significant": st.column_config.CheckboxColumn("Holm < 0.05"),
            "family_size": st.column_config.NumberColumn("family", format="%d")})
    fams = sel.filter(pl.col("family").is_not_null()).group_by("strategy").agg(
        pl.col("family").first()).sort("strategy")
    for s, fam in fams.iter_rows():
        st.caption(f"Holm family ({s}): {fam}")
    if not all(sel["stats_current"].fill_null(False).to_list()):
        st.caption("CI and p-values predate the latest metrics: rerun `ssl-wc finetune` "
                   "for this model and strategy to refresh them.")
    _images(model, method, sel, metric, pct, protocol, title)


def _images(model: str, method: str, sel: pl.DataFrame, metric: str, pct: int | None,
            protocol: str, title: str) -> None:
    st.subheader("Images that gained or lost most")
    c1, c2, c3 = st.columns(3)
    strategies = _strategies(sel["strategy"].unique().to_list())
    strategy = ui.select("Strategy", strategies, "strategy",
                         default="full" if "full" in strategies else strategies[-1], where=c1)
    layers = sorted(sel["layer"].unique().to_list())
    layer = ui.select("Layer", layers, "layer", default=layers[-1], where=c2)
    k = ui.int_slider("Images shown", 1, 20, "k", default=5, where=c3)
    assert strategy is not None and layer is not None
    per = data.query("dash_variant_image_deltas", model=model, strategy=strategy,
                     method=method, layer=int(layer), metric=metric, percentile=pct,
                     protocol=protocol)
    if per.height == 0:
        st.caption("No paired images for this choice.")
        return
    gained = per.head(k)
    lost = per.sort(["gain", "image_id"]).head(k)
    cols = st.columns(2)
    for where, frame, label in ((cols[0], gained, "gained most"),
                                (cols[1], lost, "lost most")):
        where.markdown(f"**{label}** ({title}, {strategy}, layer {layer})")
        where.dataframe(frame, hide_index=True, width="stretch", column_config={
            "frozen": st.column_config.NumberColumn(format="%.3f"),
            "finetuned": st.column_config.NumberColumn("fine-tuned", format="%.3f"),
            "delta": st.column_config.NumberColumn("Δ", format="%+.4f"),
            "gain": st.column_config.NumberColumn("gain", format="%+.4f")})
        for image_id in frame["image_id"].to_list()[:3]:
            where.page_link("pages/compare.py", label=f"{image_id}: frozen vs {strategy}",
                            icon=":material/compare:", query_params={
                                "image": image_id, "mode": "variant", "model": model,
                                "adapted": strategy, "method": method, "layer": str(layer)})


ui.ensure_app()
with ui.guard():
    render()
