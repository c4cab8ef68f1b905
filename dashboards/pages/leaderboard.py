"""Leaderboard: models ranked on one metric, with baselines, layer progression, styles and
features."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import data, faithfulness, figures, ui

RULES = {"default": "each model's default method", "best": "best available method"}


def rank_models(prog: pl.DataFrame, defaults: dict[str, str], variant: str, rule: str,
                lower_is_better: bool) -> pl.DataFrame:
    """One row per model: the best layer (and method under ``rule``), ranked.

    ``prog`` is layer_progression for one metric (fused mean heads). Under "default" only
    the model's default method counts; under "best" every method does.
    """
    models = prog.filter((pl.col("variant") == variant)
                         & ~pl.col("model").map_elements(data.is_baseline,
                                                         return_dtype=pl.Boolean)
                         & pl.col("mean").is_not_null())
    if rule == "default":
        models = models.filter(pl.col("method") == pl.col("model").replace_strict(
            defaults, default=None))
    if models.height == 0:
        return models.with_columns(pl.lit(0).alias("rank"))
    order = pl.col("mean") if lower_is_better else -pl.col("mean")
    best = (models.sort(order).group_by("model", maintain_order=True).first())
    best = best.sort(order).with_columns(
        (pl.col("mean") if lower_is_better else -pl.col("mean"))
        .rank("min").cast(pl.Int64).alias("rank"))
    return best


def baselines_of(prog: pl.DataFrame) -> pl.DataFrame:
    """Baseline rows (one per baseline; they have a single layer)."""
    base = prog.filter(pl.col("model").map_elements(data.is_baseline, return_dtype=pl.Boolean)
                       & pl.col("mean").is_not_null())
    return base.group_by("model", maintain_order=True).first().sort("model")


def render() -> None:
    ui.page("Leaderboard", "Which model's attention lines up best with the expert boxes, "
                           "with baselines beside the models.")
    chosen = ui.metric_summaries()
    if chosen is None:
        return
    protocol, infos = chosen
    c1, c2, c3, c4 = st.columns([1.4, 1.2, 1.2, 1], vertical_alignment="bottom")
    metric, info, pct = ui.metric_and_percentile(
        infos, metric_where=c1, pct_where=c2, pct_format=lambda p: f"{p} (top {100 - p} %)")
    if pct is None:
        c2.caption("threshold-free metric (no percentile)")
    rule = ui.radio("Rank by", list(RULES), "rank", where=c3, format_func=RULES.__getitem__,
                    horizontal=False) or "default"
    prog = data.progression(metric, pct, protocol)
    if prog.height == 0:
        ui.missing(f"No summaries of {info.title(pct)} yet", "ssl-wc metrics")
        return
    variants = sorted({v for m, v in prog.select("model", "variant").iter_rows()
                       if not data.is_baseline(m)}, key=lambda v: (v != "frozen", v))
    variant = ui.select("Variant", variants, "variant", default="frozen", where=c4)
    show_base = ui.toggle("Show baselines", "baselines", default=True, where=c4)
    direction = {"higher": "higher is better", "lower": "lower is better"}.get(
        info.direction, "for information")
    st.caption(f"**{info.title(pct)}**: {direction}"
               + (f" · {info.description}" if info.description else "")
               + (f" · reference: {info.reference}" if info.reference else ""))
    if variant is None:
        ui.missing("Only baselines have summaries so far; no model is scored yet",
                   "ssl-wc ingest attention --models <model> && ssl-wc metrics")
        return
    defaults = data.model_defaults()
    ranked = rank_models(prog, defaults, variant, rule, info.lower_is_better)
    base = baselines_of(prog) if show_base else prog.clear()
    if ranked.height == 0:
        ui.missing(f"No model has summaries for {info.title(pct)} under its default method",
                   "ssl-wc metrics")
        return
    models = ranked["model"].to_list()
    colors = figures.model_colors(models + base["model"].to_list())
    title = info.title(pct)
    base_lines = {data.display_model(m): float(v) for m, v in base.select("model", "mean")
                  .iter_rows()}

    _ranking(ranked, base, title, colors, rule, info.lower_is_better)
    _progression(prog, ranked, defaults, variant, rule, title, colors, base_lines)
    _styles(ranked, metric, pct, protocol, title, info)
    _features(ranked, metric, pct, protocol, title, info.lower_is_better)
    faithfulness.leaderboard_section(protocol, metric, pct, info, variant)


def _ranking(ranked: pl.DataFrame, base: pl.DataFrame, title: str, colors: dict[str, str],
             rule: str, lower: bool) -> None:
    label = (pl.col("model").map_elements(ui.model_label, return_dtype=pl.String)
             + pl.lit(" (") + pl.col("method") + pl.lit(", layer ")
             + pl.col("layer").cast(pl.String) + pl.lit(")"))
    rows = ranked.with_columns(label=label, kind=pl.lit("model"),
                               rank=pl.col("rank").cast(pl.String))
    best_base: tuple[str, float] | None = None
    if base.height:
        b = base.sort("mean", descending=not lower).row(0, named=True)
        best_base = (data.display_model(b["model"]), float(b["mean"]))
        brows = base.with_columns(
            label=pl.col("model").map_elements(data.display_model, return_dtype=pl.String),
            kind=pl.lit("baseline"), rank=pl.lit("baseline"))
        rows = pl.concat([rows.select(brows.columns), brows], how="vertical_relaxed")
    rows = rows.sort("mean", descending=not lower)
    st.plotly_chart(figures.ranking_figure(
        rows, title=f"{title} at each model's best layer ({RULES[rule]}); baselines in grey",
        x_title=title, colors=colors, best_baseline=best_base, name="ranking"),
        width="stretch", config=ui.chart_config())
    table = rows.select("rank", pl.col("label").alias("model"), "method",
                        pl.col("layer").alias("best layer"), "mean", "ci_low", "ci_high", "n")
    if best_base is not None:
        table = table.with_columns((pl.col("mean") - best_base[1]).alias("minus best baseline"))
    num = st.column_config.NumberColumn(format="%.4f")
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "mean": num, "ci_low": st.column_config.NumberColumn("95 % CI low", format="%.4f"),
        "ci_high": st.column_config.NumberColumn("95 % CI high", format="%.4f"),
        "minus best baseline": num})


def _progression(prog: pl.DataFrame, ranked: pl.DataFrame, defaults: dict[str, str],
                 variant: str, rule: str, title: str, colors: dict[str, str],
                 base_lines: dict[str, float]) -> None:
    st.subheader("Layer progression")
    lines = {}
    line_colors = {}
    for r in ranked.iter_rows(named=True):
        method = r["method"] if rule == "best" else defaults.get(r["model"], r["method"])
        df = prog.filter((pl.col("model") == r["model"]) & (pl.col("variant") == variant)
                         & (pl.col("method") == method))
        label = f"{ui.model_label(r['model'])} ({method})"
        lines[label] = df.select("layer", "mean", "ci_low", "ci_high")
        line_colors[label] = colors[r["model"]]
    fig = figures.progression_figure(lines, title=f"{title} by layer (mean over images, "
                                                  f"95 % bootstrap CI)", y_title=title,
                                     colors=line_colors, baselines=base_lines,
                                     name="leaderboard_progression", height=460)
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())


def _styles(ranked: pl.DataFrame, metric: str, pct: int | None, protocol: str, title: str,
            info: data.MetricInfo) -> None:
    st.subheader("By style")
    frames = []
    for r in ranked.iter_rows(named=True):
        df = data.style_breakdown(r["model"], r["variant"], r["method"], int(r["layer"]), metric,
                                  pct, protocol)
        if df.height:
            frames.append(df.with_columns(model=pl.lit(ui.model_label(r["model"]))))
    if not frames:
        ui.missing("No per-image scores to break down by style", "ssl-wc metrics")
        return
    long = pl.concat(frames)
    wide = long.pivot(on="style_name", index="model", values="mean")
    styles = [c for c in wide.columns if c != "model"]
    counts = long.group_by("style_name").agg(pl.col("n_images").max())
    n_of = dict(counts.iter_rows())
    fig = figures.matrix_figure(
        wide.select(styles).to_numpy(), [f"{s} (n={n_of.get(s, 0)})" for s in styles],
        wide["model"].to_list(), title=f"{title} by style (first listed style of each "
                                       f"image; each model at its ranked layer)",
        x_title="style", y_title="model", colorbar=title, reverse=info.lower_is_better,
        name="styles")
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())


def _features(ranked: pl.DataFrame, metric: str, pct: int | None, protocol: str,
              title: str, lower: bool) -> None:
    st.subheader("By feature type")
    models = ranked["model"].to_list()
    c1, c2, c3, c4 = st.columns([1.2, 1.2, 0.8, 1.2], vertical_alignment="bottom")
    model = ui.select("Model", models, "fmodel", where=c1, format_func=ui.model_label)
    grouping = ui.radio("Group boxes by", ["own label", "with descendants"], "rollup",
                        where=c2, format_func=lambda g: {
                            "own label": "own feature label",
                            "with descendants": "ontology roll-up (with sub-types)"}[g])
    min_boxes = ui.int_slider("Minimum boxes", 1, 20, "min_boxes", default=3, where=c3)
    name = ui.text("Feature name contains", "fq", where=c4)
    r = ranked.filter(pl.col("model") == model).row(0, named=True)
    df = data.feature_breakdown(r["model"], r["variant"], r["method"], int(r["layer"]), metric,
                                pct, protocol)
    if df.height == 0:
        ui.missing("No per-box scores for this model yet", "ssl-wc metrics")
        return
    df = df.filter((pl.col("grouping") == grouping) & (pl.col("n_boxes") >= min_boxes))
    if name:
        df = df.filter(pl.col("feature_name").str.to_lowercase().str.contains(
            name.lower(), literal=True))
    if df.height == 0:
        st.info("No feature type matches these filters.")
        return
    df = df.sort("mean", descending=not lower)
    st.caption(f"{ui.model_label(r['model'])} · {r['method']} · layer {r['layer']} · each box "
               f"scored alone · click a column header to sort")
    top = df.head(25)
    fig = go.Figure(go.Bar(
        x=top["mean"].to_list(), y=top["feature_name"].to_list(), orientation="h",
        text=[f"{v:.3f} (n={n})" for v, n in top.select("mean", "n_boxes").iter_rows()],
        textposition="outside", marker={"color": figures.PALETTE[0]},
        hovertemplate="%{y}<br>%{x:.4f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    figures.metric_axis(fig, title, axis="x")
    top_mean = top["mean"].max()
    fig.update_xaxes(range=[0, float(top_mean) * 1.3 if isinstance(top_mean, int | float)
                            and top_mean > 0 else 1.0])
    fig.update_layout(height=max(260, 60 + 24 * top.height), meta={"chart": "features"},
                      margin={"l": 10, "r": 10, "t": 36, "b": 10})
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())
    st.dataframe(df.select("feature_name", "n_boxes", "n_images", "mean", "sd"),
                 hide_index=True, width="stretch", column_config={
                     "feature_name": "feature", "mean": st.column_config.NumberColumn(
                         title, format="%.4f"),
                     "sd": st.column_config.NumberColumn("sd", format="%.4f")})


ui.ensure_app()
with ui.guard():
    render()
