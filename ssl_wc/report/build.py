"""``ssl-wc report``: a static, self-contained report of what the warehouse holds.

Output folder::

    report.html            one page, opens offline (styles inline, figures as data URIs)
    figures/<name>.png|svg|pdf
    tables/<name>.csv|tex  CSV at full precision, LaTeX booktabs (escaped)
    notebook.html          the exploration notebook, executed on this warehouse
    manifest.json          what was written, options, timings

Every number comes from the named queries the dashboards use (``sql/queries/dash_*``)
or the report's own (``report_*``); the metric's label and direction come from the
metric catalogue. Figures of synthetic annotations or random-weight models carry a
watermark. The folder appears whole or not at all (:mod:`ssl_wc.report.output`).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from PIL import Image

from ssl_wc.embeddings import project
from ssl_wc.palette import is_baseline_key, model_colors, style_colors
from ssl_wc.paths import WarehousePaths
from ssl_wc.report import figures as F
from ssl_wc.report.output import StagedFolder, require_known
from ssl_wc.report.page import Section, esc, figure_html, render
from ssl_wc.report.source import Source
from ssl_wc.report.tables import Table

FORMATS = ("html", "png", "svg", "pdf")
PCT_METRICS = ("iou", "iou_over_max", "corloc")
FAITHFULNESS_VIEWS = ("faithfulness_metrics", "sanity_checks")
SOFTWARE = ("ssl-wc", "duckdb", "polars", "pyarrow", "numpy", "scipy", "scikit-learn",
            "torch", "transformers", "huggingface-hub", "matplotlib", "marimo", "pillow")
PHOTO_SIDE = 360  # longer side of photos in figure grids (pixels)


class ReportError(ValueError):
    """A usage problem (bad option, nothing to report): one line, exit code 2."""


@dataclass(frozen=True)
class ReportOptions:
    """What to build (see ``ssl-wc report --help``)."""

    out: Path
    formats: tuple[str, ...] = FORMATS
    models: tuple[str, ...] = ()
    metric: str = "iou"
    percentile: int | None = 90
    images: tuple[str, ...] = ()
    n_images: int = 4
    notebook: bool = True
    force: bool = False


@dataclass
class ReportResult:
    """What was written."""

    out: Path
    html: Path | None
    figures: list[str]
    tables: list[str]
    sections: list[str]
    skipped: list[str]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        where = self.html or self.out
        return (f"report: {len(self.figures)} figures, {len(self.tables)} tables, "
                f"{len(self.sections)} sections in {self.seconds:.1f} s -> {where}")


def parse_formats(text: str) -> tuple[str, ...]:
    """``html,png`` -> ("html", "png"); unknown names refused with the valid ones."""
    wanted = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise ReportError(f"--format: unknown {', '.join(bad) or repr(text)}; choose from "
                          f"{', '.join(FORMATS)} (comma-separated)")
    return wanted


# --------------------------------------------------------------------------- context
@dataclass
class Context:
    """Everything the sections share: data, choices, and the writers."""

    src: Source
    opts: ReportOptions
    folder: Path
    protocol: str
    metric: str
    percentile: int | None
    label: str
    direction: str
    models: list[str]
    defaults: dict[str, str]
    best_layer: dict[str, int]
    colors: dict[str, str]
    mark: str | None
    figures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)

    @property
    def lower(self) -> bool:
        return self.direction == "lower"

    @property
    def title(self) -> str:
        arrow = {"higher": "↑", "lower": "↓"}.get(self.direction, "")
        text = self.label.replace("@p", f"@{self.percentile}") if self.percentile else self.label
        return f"{text} {arrow}".strip()

    def figure(self, name: str, fig: Any, title: str, caption: str) -> str:
        """Save a matplotlib figure in the chosen formats; its HTML block."""
        if self.mark:
            F.watermark(fig, self.mark)
        wanted = [f for f in self.opts.formats if f in F.FORMATS]
        embed = "svg" if "svg" in wanted else "png"
        stem = self.folder / "figures" / name
        rendered = F.save(fig, stem, [*wanted, *([embed] if embed not in wanted else [])],
                          self.mark)
        if embed not in wanted:
            stem.with_suffix(f".{embed}").unlink()
        self.figures.append(name)
        return figure_html(name, title, caption, rendered[embed], embed, wanted)

    def table(self, table: Table) -> str:
        table.write(self.folder / "tables")
        self.tables.append(table.name)
        cap = f'<p class="note">{esc(table.caption)}</p>' if table.caption else ""
        files = (f'<a href="tables/{esc(table.name)}.csv">CSV</a> · '
                 f'<a href="tables/{esc(table.name)}.tex">LaTeX</a>')
        return (f'<p class="table-title">{esc(table.title)} <span class="meta">({files})'
                f'</span></p>' + table.html() + cap)


def _is_base(column: str) -> pl.Expr:
    """Rows whose model column names a baseline (``baseline:<name>``)."""
    return pl.col(column).str.starts_with("baseline:") | pl.col(column).str.starts_with(
        "baseline_")


def _note(text: str) -> str:
    return f'<p class="skipped">{esc(text)}</p>'


def _model_label(ctx: Context, model: str) -> str:
    if is_baseline_key(model):
        return "baseline: " + model.split(":", 1)[-1].replace("_", " ")
    return model


# --------------------------------------------------------------------------- sections
def section_dataset(ctx: Context) -> Section:
    s = Section("dataset", "Dataset", "The annotated images, their styles and the expert "
                "boxes (each image counts under its first listed style).")
    summary = ctx.src.q("dash_warehouse_summary")
    s.blocks.append(ctx.table(Table("warehouse_summary", "What the warehouse holds", summary)))
    gal = ctx.src.q("dash_gallery")
    boxes = ctx.src.q("report_boxes")
    if gal.height == 0:
        s.blocks.append(_note("No annotated images: run `ssl-wc ingest annotations`."))
        return s
    styles = (gal.with_columns(style=pl.col("primary_style_name").fill_null(
        pl.col("primary_style"))).group_by("style").len().sort(["len", "style"],
                                                                 descending=[True, False]))
    s.blocks.append(ctx.figure("dataset_styles", F.bars(
        styles["style"].to_list(), styles["len"].to_list(), title="Images per style",
        xlabel="annotated images"), "Images per style",
        "First listed style of each annotated image."))
    s.blocks.append(ctx.figure("dataset_boxes", F.histograms([
        ("Boxes per image", gal["n_boxes"].to_numpy(), "boxes", False),
        ("Box area", boxes["area_c"].to_numpy(), "share of the image (log scale)", True)],
        title="Expert boxes"), "Expert boxes",
        "Boxes per annotated image and each box's area as a share of its image (clamped)."))
    feats = boxes.group_by("feature_name").len().sort(["len", "feature_name"],
                                                      descending=[True, False]).head(30)
    s.blocks.append(ctx.figure("dataset_features", F.bars(
        feats["feature_name"].to_list(), feats["len"].to_list(), title="Boxes per feature type",
        xlabel="boxes", color="#59a14f"), "Boxes per feature type",
        "The 30 most frequent feature labels of the ontology."))
    return s


def section_leaderboard(ctx: Context) -> Section:
    s = Section("leaderboard", "Leaderboard",
                f"{ctx.title}: each model at its best layer under its default method (fused "
                f"mean over heads), mean over images with a 95 % percentile-bootstrap CI; "
                f"baselines in grey.")
    lb = _leaderboard(ctx)
    if lb.height == 0:
        s.blocks.append(_note("No summaries for this metric: run `ssl-wc metrics`."))
        return s
    rows = lb.sort("mean", descending=not ctx.lower)
    base = rows.filter(pl.col("is_baseline"))
    best_base = None
    if base.height:
        b = base.sort("mean", descending=not ctx.lower).row(0, named=True)
        best_base = (f"best baseline ({_model_label(ctx, b['model'])})", float(b["mean"]))
    items = [F.Interval(
        f"{_model_label(ctx, r['model'])}" + ("" if r["is_baseline"] else
                                              f" ({r['method']}, L{r['layer']})"),
        float(r["mean"]), r["ci_low"], r["ci_high"], ctx.colors.get(r["model"], "#777"),
        "D" if r["is_baseline"] else "o") for r in rows.iter_rows(named=True)]
    s.blocks.append(ctx.figure("leaderboard", F.intervals(
        items, title=f"{ctx.title} at each model's best layer", xlabel=ctx.title,
        reference=best_base), "Leaderboard", "Dots: mean over images; whiskers: 95 % CI."))
    table = rows.select("rank", "model", "method", "layer", "mean", "ci_low", "ci_high", "n",
                        "best_any_method", "best_any_layer", "best_any_mean")
    if best_base is not None:
        table = table.with_columns((pl.col("mean") - best_base[1]).alias("minus_best_baseline"))
    s.blocks.append(ctx.table(Table("leaderboard", f"Leaderboard, {ctx.title}", table,
                                    "rank among models and baselines of the frozen variant")))
    return s


def _leaderboard(ctx: Context) -> pl.DataFrame:
    lb = ctx.src.q("report_leaderboard", {"metric": ctx.metric, "percentile": ctx.percentile,
                                          "protocol": ctx.protocol, "variant": "frozen"})
    return lb.filter(pl.col("is_baseline") | pl.col("model").is_in(ctx.models))


def section_progression(ctx: Context) -> Section:
    s = Section("progression", "Layer progression",
                f"{ctx.title} at every layer (fused mean over heads, default method), with "
                f"95 % bootstrap bands; dashed: baselines.")
    prog = ctx.src.q("dash_progression", {"metric": ctx.metric, "percentile": ctx.percentile,
                                          "protocol": ctx.protocol, "head": -1})
    series = []
    for model in ctx.models:
        df = prog.filter((pl.col("model") == model) & (pl.col("variant") == "frozen")
                         & (pl.col("method") == ctx.defaults.get(model, ""))).sort("layer")
        if df.height:
            series.append(F.Line(f"{model} ({ctx.defaults[model]})", df["layer"].to_list(),
                                 df["mean"].to_list(), df["ci_low"].to_list(),
                                 df["ci_high"].to_list(), ctx.colors[model]))
    refs = {_model_label(ctx, m): float(v) for m, v in prog.filter(_is_base("model"))
        .group_by("model").agg(pl.col("mean").first()).iter_rows()}
    s.blocks.append(ctx.figure("layer_progression", F.lines(
        series, title=f"{ctx.title} by layer", ylabel=ctx.title, references=refs),
        "Layer progression", "Mean over images at each transformer block (0-based)."))
    methods = prog.filter(pl.col("model").is_in(ctx.models) & (pl.col("variant") == "frozen"))
    if methods.height:
        per_method = []
        for (model, method), df in sorted(methods.group_by(["model", "method"]),
                                          key=lambda kv: (str(kv[0][0]), str(kv[0][1]))):
            per_method.append(F.Line(f"{model} · {method}", df.sort("layer")["layer"].to_list(),
                                     df.sort("layer")["mean"].to_list(),
                                     color=ctx.colors[str(model)]))
        s.blocks.append(ctx.figure("layer_progression_methods", F.lines(
            per_method, title=f"{ctx.title} by layer, every method", ylabel=ctx.title),
            "Layer progression of every method",
            "Each model's methods (CLS attention, rollout, mean attention, MAP probe, Grad-CAM) "
            "in the model's colour."))
    return s


def section_breakdowns(ctx: Context) -> Section:
    s = Section("breakdowns", "By style and by feature type",
                "Each model at its best layer under its default method. Styles: first listed "
                "style of each image. Feature types: each box scored alone under its own label.")
    params = {"metric": ctx.metric, "percentile": ctx.percentile, "protocol": ctx.protocol,
              "head": -1, "variant": "frozen"}
    style_frames, feat_frames = [], []
    for model in ctx.models:
        if model not in ctx.best_layer:
            continue
        p = {**params, "model": model, "method": ctx.defaults[model],
             "layer": ctx.best_layer[model]}
        st = ctx.src.q("dash_style_breakdown", p)
        if st.height:
            style_frames.append(st.with_columns(model=pl.lit(model)))
        ft = ctx.src.q("dash_feature_breakdown", p)
        if ft.height:
            feat_frames.append(ft.filter(pl.col("grouping") == "own label")
                               .with_columns(model=pl.lit(model)))
    if style_frames:
        long = pl.concat(style_frames)
        wide = long.pivot(on="style_name", index="model", values="mean", sort_columns=True)
        cols = [c for c in wide.columns if c != "model"]
        n_of = dict(long.group_by("style_name").agg(pl.col("n_images").max()).iter_rows())
        s.blocks.append(ctx.figure("by_style", F.matrix(
            wide.select(cols).to_numpy(), [f"{c} (n={n_of.get(c, 0)})" for c in cols],
            wide["model"].to_list(), title=f"{ctx.title} by style", xlabel="style",
            ylabel="model", cbar=ctx.title, reverse=ctx.lower), "By style",
            "Mean over the images of each style."))
        s.blocks.append(ctx.table(Table(
            "by_style", f"{ctx.title} by style",
            long.select("model", "style_name", "n_images", "mean", "sd"))))
    else:
        s.blocks.append(_note("No per-image scores to break down by style."))
    if feat_frames:
        long = pl.concat(feat_frames)
        top = (long.group_by("feature_name").agg(pl.col("n_boxes").max())
               .sort(["n_boxes", "feature_name"], descending=[True, False]).head(20))
        wide = long.filter(pl.col("feature_name").is_in(top["feature_name"].to_list())).pivot(
            on="feature_name", index="model", values="mean", sort_columns=True)
        cols = [c for c in wide.columns if c != "model"]
        s.blocks.append(ctx.figure("by_feature", F.matrix(
            wide.select(cols).to_numpy(), cols, wide["model"].to_list(),
            title=f"{ctx.title} by feature type (boxes as targets)", xlabel="feature type",
            ylabel="model", cbar=ctx.title, reverse=ctx.lower), "By feature type",
            "The 20 feature types with most boxes; each box is its own target."))
        s.blocks.append(ctx.table(Table(
            "by_feature", f"{ctx.title} by feature type",
            long.select("model", "feature_name", "n_boxes", "n_images", "mean", "sd")
            .sort(["model", "feature_name"]))))
    else:
        s.blocks.append(_note("No per-box scores to break down by feature type."))
    return s


def section_coverage_iou(ctx: Context) -> Section:
    s = Section("coverage_iou", "Coverage against IoU",
                "Per image, each model at its best layer: energy inside the boxes "
                "(coverage) against IoU of the top pixels.")
    pct = ctx.percentile if ctx.metric in PCT_METRICS and ctx.percentile else 90
    groups: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows = []
    for model in ctx.models:
        if model not in ctx.best_layer:
            continue
        p = {"model": model, "variant": "frozen", "method": ctx.defaults[model],
             "layer": ctx.best_layer[model], "head": -1, "protocol": ctx.protocol}
        cov = ctx.src.q("report_image_scores", {**p, "metric": "coverage", "percentile": None})
        iou = ctx.src.q("report_image_scores", {**p, "metric": "iou", "percentile": pct})
        both = cov.join(iou, on="image_id", suffix="_iou").drop_nulls()
        if both.height == 0:
            continue
        x, y = both["value"].to_numpy(), both["value_iou"].to_numpy()
        groups[model] = (x, y)
        r = float(np.corrcoef(x, y)[0, 1]) if both.height > 2 and x.std() > 0 and y.std() > 0 \
            else float("nan")
        from scipy.stats import spearmanr

        rho = float(spearmanr(x, y).statistic) if both.height > 2 else float("nan")
        rows.append({"model": model, "layer": ctx.best_layer[model], "n_images": both.height,
                     "mean_coverage": float(x.mean()), f"mean_iou_{pct}": float(y.mean()),
                     "pearson_r": r, "spearman_rho": rho})
    if not groups:
        s.blocks.append(_note("No per-image coverage and IoU scores: run `ssl-wc metrics`."))
        return s
    s.blocks.append(ctx.figure("coverage_vs_iou", F.scatter_groups(
        groups, ctx.colors, title=f"Coverage against IoU@{pct}", xlabel="coverage ↑",
        ylabel=f"IoU@{pct} ↑"), "Coverage against IoU", "One point per image and model."))
    s.blocks.append(ctx.table(Table("coverage_vs_iou", f"Coverage and IoU@{pct} per model",
                                    pl.DataFrame(rows))))
    return s


def section_comparisons(ctx: Context) -> Section:
    s = Section("comparisons", "Model comparisons",
                "Paired over images at each model's best layer: mean difference (a − b) with "
                "its bootstrap 95 % CI, Cohen's d_z, paired t and Wilcoxon p-values with "
                "Holm, Bonferroni and Benjamini-Hochberg adjustment over the stated family.")
    cmp_ = ctx.src.q("report_comparisons", {"metric": ctx.metric, "percentile": ctx.percentile,
                                            "layer_rule": "best_layer"})
    keep = list(ctx.models)
    base_a, base_b = _is_base("model_a"), _is_base("model_b")
    cmp_ = cmp_.filter(~(base_a & base_b) & (pl.col("model_a").is_in(keep) | base_a)
                       & (pl.col("model_b").is_in(keep) | base_b))
    if cmp_.height == 0:
        s.blocks.append(_note("No model comparisons: run `ssl-wc stats`."))
        return s
    shown = cmp_.sort("p_holm").head(30)
    items = [F.Interval(f"{_model_label(ctx, r['model_a'])} − {_model_label(ctx, r['model_b'])}",
                        float(r["mean_diff"]), r["ci_low"], r["ci_high"],
                        "#d62728" if (r["p_holm"] or 1) < 0.05 else "#555",
                        note=f"d_z {r['d_z']:+.2f}, p_Holm {r['p_holm']:.2g}"
                        if r["d_z"] is not None and r["p_holm"] is not None else "")
             for r in shown.iter_rows(named=True)]
    s.blocks.append(ctx.figure("model_comparisons", F.intervals(
        items, title=f"Paired differences in {ctx.title} (red: Holm-adjusted p < 0.05)",
        xlabel=f"mean difference, {ctx.title}", zero_line=True), "Model comparisons",
        "The 30 pairs with the smallest Holm-adjusted p-values."))
    s.blocks.append(ctx.table(Table(
        "model_comparisons", f"Paired comparisons, {ctx.title}",
        cmp_.select("model_a", "layer_a", "model_b", "layer_b", "n", "mean_diff", "ci_low",
                    "ci_high", "d_z", "p_t", "p_wilcoxon", "p_holm", "p_bh", "family_size"),
        "p-values adjusted within the family of each row (see model_comparisons.family).")))
    return s


def section_finetune(ctx: Context) -> Section:
    s = Section("finetune", "Frozen against fine-tuned",
                "Fine-tuned minus frozen, paired over images (fused mean map, union of the "
                "boxes); gain > 0 means closer to the experts.")
    deltas = ctx.src.q("dash_variant_deltas", {"metric": ctx.metric,
                                               "percentile": ctx.percentile,
                                               "protocol": ctx.protocol})
    deltas = deltas.filter(pl.col("model").is_in(ctx.models))
    if deltas.height == 0:
        s.blocks.append(_note("No fine-tuned variants: run `ssl-wc finetune` (then `ssl-wc "
                              "stats`)."))
        return s
    runs = ctx.src.q("dash_finetune_runs")
    if runs.height:
        s.blocks.append(ctx.table(Table("finetune_runs", "Fine-tuned models", runs.select(
            "model", "strategy", "best_epoch", "best_val_acc", "n_trainable", "n_params",
            "n_train", "n_val", "n_held_out"))))
    series = []
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    keys = deltas.select("model", "strategy", "method").unique().sort(["model", "strategy",
                                                                       "method"])
    for i, (model, strategy, method) in enumerate(keys.iter_rows()):
        df = deltas.filter((pl.col("model") == model) & (pl.col("strategy") == strategy)
                           & (pl.col("method") == method)).sort("layer")
        series.append(F.Line(f"{model} · {strategy} · {method}", df["layer"].to_list(),
                             df["mean_delta"].to_list(), df["ci_low"].to_list(),
                             df["ci_high"].to_list(), palette[i % len(palette)]))
    s.blocks.append(ctx.figure("finetune_deltas", F.lines(
        series, title=f"Fine-tuned minus frozen, {ctx.title}", ylabel=f"Δ {ctx.title}",
        references={"no change": 0.0}), "Fine-tuning deltas",
        "Mean paired difference per layer with 95 % bootstrap CI."))
    last = deltas.filter(pl.col("layer") == pl.col("layer").max().over("model", "strategy",
                                                                       "method"))
    s.blocks.append(ctx.table(Table(
        "finetune_deltas", f"Fine-tuned minus frozen at the last layer, {ctx.title}",
        last.select("model", "strategy", "method", "layer", "n", "mean_frozen",
                    "mean_finetuned", "mean_delta", "ci_low", "ci_high", "d_z", "p", "p_holm",
                    "family_size"))))
    s.blocks.append(_shift_maps(ctx, deltas))
    return s


def _shift_maps(ctx: Context, deltas: pl.DataFrame) -> str:
    """Fine-tuned minus frozen normalised maps at the last layer, per strategy and image."""
    from ssl_wc.metrics.heatmap import heatmap

    first = deltas.sort(["model", "strategy"]).row(0, named=True)
    model = first["model"]
    method = ctx.defaults.get(model, first["method"])
    if method not in deltas.filter(pl.col("model") == model)["method"].to_list():
        method = first["method"]
    layer = int(deltas.filter(pl.col("model") == model)["layer"].max())  # type: ignore[arg-type]
    strategies = sorted(set(deltas.filter(pl.col("model") == model)["strategy"].to_list()))
    rows: list[list[F.Panel | None]] = []
    for image in _overlay_images(ctx):
        photo, boxes = _photo(ctx, image)
        frozen = _grid(ctx, model, "frozen", method, layer, image)
        if frozen is None:
            continue
        h, w = photo.shape[:2]
        base = heatmap(frozen[None], (h, w))[0]
        row: list[F.Panel | None] = [F.Panel(f"{image}\nfrozen", photo, base, boxes)]
        for strategy in strategies:
            tuned = _grid(ctx, model, strategy, method, layer, image)
            if tuned is None:
                row.append(None)
                continue
            diff = heatmap(tuned[None], (h, w))[0] - base
            row.append(F.Panel(f"{strategy} − frozen", photo, diff, boxes, signed=True))
        rows.append(row)
    if not rows:
        return _note("No maps of the fine-tuned variants for the chosen images.")
    return ctx.figure("shift_maps", F.image_grid(
        rows, title=f"Shift maps: {model}, {method}, layer {layer} (normalised maps)"),
        "Shift maps", "Left: the frozen map; then each strategy's normalised map minus the "
        "frozen one (red: more attention after fine-tuning, blue: less).")


def section_heads(ctx: Context) -> Section:
    s = Section("heads", "Head ranking",
                "Single heads ranked within each image (rank 1 = best), summarised per layer "
                "and head, for the best-ranked model with single-head maps.")
    lb = _leaderboard(ctx).filter(~pl.col("is_baseline"))
    for model in lb.sort("rank")["model"].to_list():
        hr = ctx.src.q("dash_head_ranking", {
            "model": model, "variant": "frozen", "method": ctx.defaults[model],
            "protocol": ctx.protocol, "metric": ctx.metric, "percentile": ctx.percentile})
        if hr.height == 0:
            continue
        layers = sorted(set(hr["layer"].to_list()))
        heads = sorted(set(hr["head"].to_list()))
        z = np.full((len(layers), len(heads)), np.nan)
        for r in hr.iter_rows(named=True):
            z[layers.index(r["layer"]), heads.index(r["head"])] = r["mean_score"]
        s.blocks.append(ctx.figure("head_ranking", F.matrix(
            z, [f"h{h}" for h in heads], [str(v) for v in layers],
            title=f"{model} ({ctx.defaults[model]}): {ctx.title} per layer and head",
            xlabel="head", ylabel="layer", cbar=ctx.title, reverse=ctx.lower),
            "Head ranking", "Mean over images of each single head."))
        top = hr.sort(["mean_rank", "layer", "head"]).head(15)
        s.blocks.append(ctx.table(Table(
            "head_ranking", f"Best heads of {model} by mean rank within images",
            top.select("layer", "head", "n_images", "mean_score", "mean_rank", "top1",
                       "top3"))))
        return s
    s.blocks.append(_note("No single-head metrics: ingest attention with single heads and run "
                          "`ssl-wc metrics`."))
    return s


def section_faithfulness(ctx: Context, present: Sequence[str]) -> Section | None:
    if not present:
        return None
    s = Section("faithfulness", "Faithfulness",
                "Whether the maps depend on the model (randomisation sanity checks) and on "
                "the pixels they point at (deletion / insertion).")
    for view in present:  # views with rows (see build_report)
        df = ctx.src.q(f"report_{view}")
        df = df.drop([c for c, t in df.schema.items() if isinstance(t, pl.List | pl.Array |
                                                                      pl.Struct)])
        num = [c for c, t in df.schema.items() if t.is_float() or isinstance(t, pl.Decimal)]
        df = df.with_columns([pl.col(c).cast(pl.Float64) for c in num])
        keys = [c for c, t in df.schema.items() if c not in num and c not in (
            "run_id", "unit_key", "image_id", "config_hash", "protocol_hash")]
        summary = (df.group_by(keys).agg([pl.col(c).mean() for c in num]).sort(keys)
                   if keys and num and df.height > 60 else df)
        s.blocks.append(ctx.table(Table(view, f"{view} (means over images where the view "
                                              f"has one row per image)", summary.head(500))))
        if "model" in df.columns and num:
            col = num[0]
            means = df.group_by("model").agg(pl.col(col).mean()).sort("model")
            s.blocks.append(ctx.figure(f"{view}", F.bars(
                means["model"].to_list(), means[col].fill_null(float("nan")).to_list(),
                title=f"{view}: mean {col} per model", xlabel=col, fmt="{:.3f}"),
                view, f"Mean of {col} over the view's rows, per model."))
    return s


def section_overlays(ctx: Context) -> Section:
    s = Section("overlays", "Where the models look",
                "Each chosen image with its expert boxes, then every model's map at its best "
                "layer (default method, fused mean over heads), min-max normalised.")
    from ssl_wc.metrics.heatmap import heatmap

    rows: list[list[F.Panel | None]] = []
    for image in _overlay_images(ctx):
        photo, boxes = _photo(ctx, image)
        h, w = photo.shape[:2]
        row: list[F.Panel | None] = [F.Panel(f"{image}\nexpert boxes", photo, None, boxes)]
        for model in ctx.models:
            if model not in ctx.best_layer:
                continue
            grid = _grid(ctx, model, "frozen", ctx.defaults[model], ctx.best_layer[model], image)
            heat = heatmap(grid[None], (h, w))[0] if grid is not None else None
            row.append(F.Panel(f"{model} L{ctx.best_layer[model]}", photo, heat, boxes)
                       if heat is not None else None)
        rows.append(row)
    if not rows:
        s.blocks.append(_note("No images with files and maps: run `ssl-wc ingest images` and "
                              "`ssl-wc ingest attention`."))
        return s
    s.blocks.append(ctx.figure("overlays", F.image_grid(rows, title="Attention overlays"),
                               "Attention overlays", "Boxes in cyan; brighter = more attention."))
    return s


def section_embeddings(ctx: Context) -> Section:
    s = Section("embeddings", "Feature space",
                "Pooled features (CLS / MAP output) of each model's deepest stored layer: a "
                "PCA map of the L2-normalised vectors coloured by style, and how much the "
                "models agree on each image's nearest neighbours (cosine).")
    srcs = ctx.src.q("dash_feature_sources").filter(
        (pl.col("variant") == "frozen") & (pl.col("kind") == "pooled")
        & pl.col("model").is_in(ctx.models))
    if srcs.height == 0:
        s.blocks.append(_note("No stored features: run `ssl-wc ingest attention` (features "
                              "are stored by default)."))
        return s
    panels = []
    all_styles: set[str] = set()
    for r in srcs.iter_rows(named=True):
        layer = int(max(r["layers"]))
        df = ctx.src.q("dash_features", {"model": r["model"], "variant": "frozen",
                                         "layer": layer, "kind": "pooled"})
        if df.height < 3:
            continue
        x = np.asarray(df["values"].to_list(), dtype=np.float64)
        proj = project(x, "pca")
        styles = df["style_name"].to_list()
        all_styles |= set(styles)
        panels.append((f"{r['model']} L{layer}", proj.points, styles))
    if panels:
        s.blocks.append(ctx.figure("embedding_map", F.embedding_maps(
            panels, style_colors(sorted(all_styles)), title="PCA of pooled features"),
            "Embedding map", "PCA of the unit-normalised pooled features; one point per image."))
    k = 5
    agr = ctx.src.q("dash_knn_agreement", {"k": k, "kind": "pooled", "layer_rule": "last_layer"})
    agr = agr.filter((pl.col("variant_a") == "frozen") & (pl.col("variant_b") == "frozen")
                     & pl.col("model_a").is_in(ctx.models) & pl.col("model_b").is_in(ctx.models))
    if agr.height:
        names = sorted(set(agr["model_a"].to_list()) | set(agr["model_b"].to_list()))
        z = np.eye(len(names))
        for r in agr.iter_rows(named=True):
            i, j = names.index(r["model_a"]), names.index(r["model_b"])
            z[i, j] = z[j, i] = r["mean_jaccard"]
        chance = float(agr["chance_jaccard"].mean())  # type: ignore[arg-type]
        s.blocks.append(ctx.figure("neighbor_agreement", F.matrix(
            z, names, names, title=f"Agreement of {k}-NN sets (mean Jaccard; chance "
            f"{chance:.3f})", xlabel="model", ylabel="model", cbar="mean Jaccard",
            limits=(0.0, 1.0)), "Neighbourhood agreement",
            f"For each image, the Jaccard index of its {k} nearest neighbours under two "
            f"models, averaged over images; chance = random {k}-sets."))
        s.blocks.append(ctx.table(Table(
            "neighbor_agreement", f"Agreement of {k}-NN sets between models (last layer)",
            agr.select("model_a", "layer_a", "model_b", "layer_b", "n_images", "mean_jaccard",
                       "sd_jaccard", "chance_jaccard"))))
    return s


def section_probe(ctx: Context) -> Section:
    s = Section("probe", "Linear probe",
                "Held-out accuracy of a logistic regression on stored features (stratified "
                "k-fold, scaler fitted inside each fold), per layer.")
    pr = ctx.src.q("report_probe").filter(pl.col("model").is_in(ctx.models)
                                         & (pl.col("variant") == "frozen"))
    if pr.height == 0:
        s.blocks.append(_note("No probe results: run `ssl-wc probe`."))
        return s
    kind = "pooled" if "pooled" in pr["feature_kind"].to_list() else pr["feature_kind"][0]
    series = []
    for model in ctx.models:
        df = pr.filter((pl.col("model") == model) & (pl.col("feature_kind") == kind)).sort(
            "layer")
        if df.height:
            sd = df["accuracy_sd"].fill_null(0.0)
            series.append(F.Line(model, df["layer"].to_list(), df["accuracy"].to_list(),
                                 (df["accuracy"] - sd).to_list(), (df["accuracy"] + sd).to_list(),
                                 ctx.colors[model]))
    s.blocks.append(ctx.figure("probe_accuracy", F.lines(
        series, title=f"Linear probe accuracy ({kind} features)", ylabel="held-out accuracy"),
        "Linear probe", "Mean held-out accuracy over folds; band: ± one sd over folds."))
    best = pr.sort("accuracy", descending=True).group_by(["model", "feature_kind"],
                                                         maintain_order=True).first()
    s.blocks.append(ctx.table(Table("probe_best", "Best probe layer per model and feature kind",
                                    best.sort(["model", "feature_kind"]).select(
                                        "model", "feature_kind", "layer", "n_images", "n_folds",
                                        "accuracy", "accuracy_sd", "macro_f1"))))
    return s


def section_provenance(ctx: Context, notebook_note: str) -> Section:
    s = Section("provenance", "Provenance",
                "Where every number comes from: runs, model sources, protocol, software.")
    runs = ctx.src.q("dash_runs")
    s.blocks.append(ctx.table(Table("runs", "Runs", runs.select(
        "run_id", "kind", "status", "started_at", "seconds", "code_version", "device", "rows",
        "n_errors").with_columns(pl.col("started_at").cast(pl.String)))))
    models = ctx.src.q("report_models")
    if models.height:
        s.blocks.append(ctx.table(Table("models", "Attention-map sources", models.select(
            "model", "variant", "hub_id", "revision", "architecture", "random_weights",
            "grid_h", "grid_w", "num_layers", "num_heads", "default_method", "dtype",
            "config_hash"))))
    protos = ctx.src.q("dash_protocols").filter(pl.col("protocol_hash") == ctx.protocol)
    s.blocks.append(f"<h3>Metric protocol <code>{esc(ctx.protocol)}</code></h3><pre>"
                    + esc(json.dumps(json.loads(protos["protocol_json"][0]), indent=1)
                          if protos.height else "") + "</pre>")
    s.blocks.append(ctx.table(Table("software", "Software", software_versions())))
    s.blocks.append(f'<p class="note">{notebook_note}</p>')
    return s


def software_versions() -> pl.DataFrame:
    rows = [{"package": "python", "version": platform.python_version()}]
    for name in SOFTWARE:
        try:
            rows.append({"package": name, "version": metadata.version(name)})
        except metadata.PackageNotFoundError:
            rows.append({"package": name, "version": "not installed"})
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------- images
def _overlay_images(ctx: Context) -> list[str]:
    """The chosen images (``--images``), else the ``n_images`` with files and most boxes."""
    gal = ctx.src.q("dash_gallery")
    if ctx.opts.images:
        return list(ctx.opts.images)
    with_files = gal.filter(pl.col("has_file")).sort(["n_boxes", "image_id"],
                                                     descending=[True, False])
    return with_files["image_id"].head(ctx.opts.n_images).to_list()


def _photo(ctx: Context, image: str) -> tuple[np.ndarray, np.ndarray]:
    """The photo (longer side PHOTO_SIDE; grey if the file is missing) and its boxes."""
    gal = ctx.src.q("dash_gallery").filter(pl.col("image_id") == image)
    boxes = ctx.src.q("dash_image_boxes", {"image": image})
    arr = boxes.select("left_c", "top_c", "width_c", "height_c").to_numpy().astype(float)
    photo = None
    if gal.height and gal["has_file"][0]:
        row = gal.row(0, named=True)
        p = Path(row["path"])
        if not p.is_absolute():
            p = Path(row["image_root"] or "") / p
        try:
            with Image.open(p) as im:
                rgb = im.convert("RGB")
                rgb.thumbnail((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.BILINEAR)
                photo = np.asarray(rgb, dtype=np.uint8)
        except OSError:
            photo = None
    if photo is None:
        w = int(gal["width"][0] or 640) if gal.height else 640
        h = int(gal["height"][0] or 480) if gal.height else 480
        scale = PHOTO_SIDE / max(w, h)
        photo = np.full((max(1, round(h * scale)), max(1, round(w * scale)), 3), 128, np.uint8)
    return photo, arr


def _grid(ctx: Context, model: str, variant: str, method: str, layer: int,
          image: str) -> np.ndarray | None:
    df = ctx.src.q("dash_attention_map", {"model": model, "variant": variant, "method": method,
                                          "layer": int(layer), "head": -1, "image": image})
    if df.height == 0:
        return None
    row = df.row(0, named=True)
    return np.asarray(row["values"], dtype=np.float64).reshape(int(row["grid_h"]),
                                                               int(row["grid_w"]))


# --------------------------------------------------------------------------- build
def _choices(src: Source, opts: ReportOptions) -> dict[str, Any]:
    """Validate the options against the warehouse (ReportError names the valid values)."""
    protos = src.q("dash_protocols")
    if protos.height == 0 or int(protos["n"][0]) == 0:
        raise ReportError("the warehouse has no metric summaries yet: run `ssl-wc metrics` "
                          "first (or `ssl-wc demo` for a demo warehouse)")
    protocol = str(protos["protocol_hash"][0])
    avail = src.q("dash_metrics_available", {"protocol": protocol})
    pcts = {r["metric"]: [int(p) for p in r["percentiles"] or []]
            for r in avail.iter_rows(named=True)}
    if opts.metric not in pcts:
        raise ReportError(f"--metric: {opts.metric!r} has no summaries; choose from "
                          f"{', '.join(sorted(pcts))}")
    percentile: int | None = None
    if pcts[opts.metric]:
        percentile = opts.percentile if opts.percentile is not None else 90
        if percentile not in pcts[opts.metric]:
            raise ReportError(f"--percentile: {percentile} is not summarised for "
                              f"{opts.metric}; choose from "
                              f"{', '.join(str(p) for p in pcts[opts.metric])}")
    cat = src.q("dash_metric_catalogue").filter(pl.col("metric") == opts.metric)
    label = str(cat["label"][0]) if cat.height else opts.metric
    direction = str(cat["direction"][0]) if cat.height else "higher"
    sources = src.q("dash_map_sources")
    known = sorted(set(sources["model"].to_list()))
    require_known("--models", opts.models, known, ReportError)
    models = list(opts.models) if opts.models else known
    defaults = {m: str(d) for m, d in sources.select("model", "default_method").iter_rows()
                if d}
    if opts.images:
        ids = set(src.q("dash_gallery")["image_id"].to_list())
        bad = [i for i in opts.images if i not in ids]
        if bad:
            raise ReportError(f"--images: not annotated images: {', '.join(bad[:5])} "
                              f"(see the Gallery or `ssl-wc sql \"SELECT image_id FROM "
                              f"images\"`)")
    return {"protocol": protocol, "percentile": percentile, "label": label,
            "direction": direction, "models": models, "defaults": defaults}


def watermark_text(src: Source, models: Sequence[str]) -> str | None:
    """What to stamp on every figure, or None for real data and real weights."""
    row = src.q("dash_sources")
    synthetic = bool(row["synthetic"][0]) if row.height else False
    listed = row["random_weight_models"].to_list()[0] if row.height else None
    random = sorted(set(listed or []) & set(models))
    parts = (["SYNTHETIC DATA"] if synthetic else []) + (["RANDOM WEIGHTS"] if random else [])
    return " · ".join([*parts, "NOT RESULTS"]) if parts else None


def build_report(wh: WarehousePaths, opts: ReportOptions,
                 echo: Callable[[str], None] = lambda _s: None) -> ReportResult:
    """Build the report into ``opts.out`` (see the module docstring)."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if opts.n_images < 1:
        raise ReportError("--n-images: must be at least 1")
    with Source.open(wh) as src:
        ch = _choices(src, opts)
    stage = StagedFolder(opts.out, opts.force)
    try:
        folder = stage.path
        (folder / "figures").mkdir()
        (folder / "tables").mkdir()
        # first, with no other connection open in this process: a project connection
        # registers UDFs, which fails while another connection holds the same catalog
        t = time.perf_counter()
        note = _notebook(wh, folder, opts)
        timings["notebook"] = time.perf_counter() - t
        echo(f"  {'notebook':14s} {timings['notebook']:5.1f} s")
        with Source.open(wh) as src:
            lb = src.q("report_leaderboard", {"metric": opts.metric,
                                              "percentile": ch["percentile"],
                                              "protocol": ch["protocol"], "variant": "frozen"})
            best = {r["model"]: int(r["layer"]) for r in lb.iter_rows(named=True)
                    if r["layer"] is not None}
            models = [m for m in ch["models"] if m in ch["defaults"]]
            all_keys = models + lb["model"].to_list()
            ctx = Context(src, opts, folder, ch["protocol"], opts.metric, ch["percentile"],
                          ch["label"], ch["direction"], models, ch["defaults"], best,
                          model_colors(all_keys), watermark_text(src, models))
            present = [v for v in FAITHFULNESS_VIEWS if v in src.relations()
                       and src.q(f"report_{v}").height > 0]  # views exist; rows may not
            builders: list[tuple[str, Callable[[], Section | None]]] = [
                ("dataset", lambda: section_dataset(ctx)),
                ("leaderboard", lambda: section_leaderboard(ctx)),
                ("progression", lambda: section_progression(ctx)),
                ("breakdowns", lambda: section_breakdowns(ctx)),
                ("coverage_iou", lambda: section_coverage_iou(ctx)),
                ("comparisons", lambda: section_comparisons(ctx)),
                ("finetune", lambda: section_finetune(ctx)),
                ("heads", lambda: section_heads(ctx)),
                ("faithfulness", lambda: section_faithfulness(ctx, present)),
                ("overlays", lambda: section_overlays(ctx)),
                ("embeddings", lambda: section_embeddings(ctx)),
                ("probe", lambda: section_probe(ctx)),
            ]
            sections: list[Section] = []
            skipped = [v for v in FAITHFULNESS_VIEWS if v not in present]
            for key, fn in builders:
                t = time.perf_counter()
                sec = fn()
                timings[key] = time.perf_counter() - t
                if sec is not None:
                    sections.append(sec)
                echo(f"  {key:14s} {timings[key]:5.1f} s")
            sections.append(section_provenance(ctx, note))
            html_path = None
            now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
            subtitle = (f"warehouse {wh.root} · {now} · metric {ctx.title} · protocol "
                        f"{ctx.protocol[:8]} · models {', '.join(models) or 'none'}")
            banner = (f"Not real results: {ctx.mark.replace(' · NOT RESULTS', '').lower()}. "
                      "Every figure is watermarked." if ctx.mark else None)
            if "html" in opts.formats:
                html_path = folder / "report.html"
                html_path.write_text(render("ssl-wc report: do self-supervised models look "
                                            "where experts look?", subtitle, banner, sections,
                                            f"ssl-wc {_version()} · built in "
                                            f"{time.perf_counter() - t0:.1f} s"),
                                     encoding="utf-8")
            result = ReportResult(opts.out.resolve(), None, ctx.figures, ctx.tables,
                                  [s.key for s in sections], skipped,
                                  time.perf_counter() - t0, timings)
            (folder / "manifest.json").write_text(json.dumps({
                "warehouse": str(wh.root), "built": now, "metric": opts.metric,
                "percentile": ch["percentile"], "protocol": ch["protocol"], "models": models,
                "formats": list(opts.formats), "watermark": ctx.mark,
                "figures": ctx.figures, "tables": ctx.tables, "sections": result.sections,
                "skipped_sections": skipped, "seconds": round(result.seconds, 2),
                "timings": {k: round(v, 3) for k, v in timings.items()}}, indent=1))
        out = stage.commit()
    except BaseException:
        stage.abort()
        raise
    result.out = out
    result.html = out / "report.html" if html_path is not None else None
    return result


def _version() -> str:
    try:
        return metadata.version("ssl-wc")
    except metadata.PackageNotFoundError:
        return "dev"


def _notebook(wh: WarehousePaths, folder: Path, opts: ReportOptions) -> str:
    """Run the exploration notebook on this warehouse and export it (HTML note back)."""
    if not opts.notebook or "html" not in opts.formats:
        return "The exploration notebook was not exported (--no-notebook)."
    from ssl_wc.report.notebook import NotebookUnavailable, export_notebook

    try:
        export_notebook(wh, folder / "notebook.html")
    except NotebookUnavailable as exc:
        return esc(str(exc))
    except Exception as exc:  # a notebook cell failed: the report itself stands
        return esc(f"The exploration notebook failed on this warehouse ({type(exc).__name__}: "
                   f"{exc}); run `marimo edit notebooks/explore.py` to see where.")
    return ('The exploration notebook (<code>notebooks/explore.py</code>, marimo), executed on '
            'this warehouse: <a href="notebook.html">notebook.html</a>.')
