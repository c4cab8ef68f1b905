"""Image: one image with a model's attention heatmap, the expert boxes and its metrics."""

from __future__ import annotations

import numpy as np
import polars as pl
import streamlit as st

from dashboards import data, faithfulness, figures, heatmap, ui

#: metrics shown as tiles (in order); IoU family at the chosen percentile
TILE_METRICS = ("iou", "coverage", "pointing_t15", "mse", "kl", "emd")
SHORT = {"iou": "IoU@{p}", "coverage": "Coverage", "pointing_t15": "Pointing",
         "mse": "MSE", "kl": "KL", "emd": "EMD"}
CHART_KEY = "image_chart"
VIEWS = ("attention", "similarity")
VIEW_LABELS = {"attention": "attention map", "similarity": "box-to-patch similarity"}


def _on_chart_select() -> None:
    """A click on a box label picks that box as the metrics target."""
    state = st.session_state.get(CHART_KEY)
    try:
        points = state["selection"]["points"]  # type: ignore[index]
    except (KeyError, TypeError):
        return
    for p in points:
        custom = p.get("customdata")
        if custom is not None:
            idx = custom[0] if isinstance(custom, list) else custom
            ui.set_control("box", int(idx))
            return


def render() -> None:
    ui.page("Image", "Where a model looks on one image, against the expert boxes.")
    gal = ui.annotated_gallery()
    if gal is None:
        return
    side = st.sidebar
    ids = gal["image_id"].to_list()
    image_id = ui.select("Image", ids, "image", where=side)
    assert image_id is not None
    row = gal.filter(pl.col("image_id") == image_id).row(0, named=True)
    boxes = data.image_boxes(image_id)
    shapes = figures.box_shapes(boxes)
    pic, has_file = ui.photo_or_placeholder(row)
    styles = ", ".join(row["style_names"] or []) or "no style"
    st.markdown(f"**{image_id}** · {styles} · {boxes.height} expert boxes")
    if not has_file:
        ui.missing(f"No image file for {image_id} (drawn on a grey canvas)",
                   "ssl-wc ingest images <folder of WikiChurches images>")

    idx = data.map_index(image_id)
    if idx.height == 0:
        ui.missing(f"No attention maps for {image_id} yet",
                   "ssl-wc ingest attention --models <model>",
                   "then `ssl-wc metrics` for the scores; `ssl-wc models list` shows the model "
                   "keys")
        st.plotly_chart(figures.overlay_figure(pic, None, cmap="inferno", opacity=0.0,
                                               percentile=None, boxes=shapes, name="overlay"),
                        width="stretch", config=ui.chart_config())
        return

    models = sorted(idx["model"].unique().to_list())
    model = ui.select("Model", models, "model", where=side, format_func=ui.model_label)
    assert model is not None
    mine = idx.filter(pl.col("model") == model)
    variants = sorted(mine["variant"].unique().to_list(), key=lambda v: (v != "frozen", v))
    variant = ui.select("Variant", variants, "variant", where=side, default="frozen",
                        help="frozen = the pretrained backbone; others are fine-tuned")
    assert variant is not None
    frame = data.map_frame(model, variant, image_id)
    view = ui.radio("Show", list(VIEWS), "view", where=side, default="attention",
                    format_func=lambda v: VIEW_LABELS[v],
                    help="attention map: where the model looks; box-to-patch similarity: "
                         "how alike the model's patch tokens are to an expert box's token")
    if view == "similarity":
        _similarity_view(pic, shapes, boxes, model, variant, image_id, frame)
        return
    defaults = data.model_defaults()
    have = set(mine.filter(pl.col("variant") == variant)["method"].unique().to_list())
    srcs = data.map_sources()
    configured = srcs.filter(pl.col("model") == model)["methods"].to_list()
    methods = sorted(set(idx["method"].unique().to_list())
                     | {m for lst in configured for m in (lst or [])})
    method = ui.select("Method", methods, "method", where=side,
                       default=defaults.get(model) if defaults.get(model) in have else None,
                       format_func=lambda m: m if m in have else f"{m} (no maps)",
                       help="cls: CLS-token attention; rollout: attention rollout; "
                            "map: SigLIP's pooling-probe attention; mean: attention received")
    assert method is not None
    sub = mine.filter((pl.col("variant") == variant) & (pl.col("method") == method))
    if sub.height == 0:
        ui.missing(f"No '{method}' maps for {ui.model_label(model, variant)} on this image",
                   f"ssl-wc ingest attention --models {model} --methods {method}")
        st.plotly_chart(figures.overlay_figure(pic, None, cmap="inferno", opacity=0.0,
                                               percentile=None, boxes=shapes, name="overlay"),
                        width="stretch", config=ui.chart_config())
        return
    layers = sorted(sub["layer"].unique().to_list())
    layer = ui.select_slider("Layer", layers, "layer", default=layers[-1], where=side)
    assert layer is not None
    heads = ui.heads_in_order(sub.filter(pl.col("layer") == layer)["head"].to_list())
    head = ui.select("Heads", heads, "head", default=-1 if -1 in heads else heads[0],
                     where=side, format_func=ui.head_label)
    assert head is not None
    pct = ui.select_slider("Percentile (top-k region, IoU)", list(ui.PERCENTILES), "pct",
                           default=90, where=side, format_func=lambda p: f"top {100 - p} %")
    side.divider()
    cmap = ui.select("Colour map", list(heatmap.COLORMAPS), "cmap", default="inferno",
                     where=side)
    opacity = ui.slider("Heatmap opacity", 0.0, 1.0, "opacity", default=0.55, step=0.05,
                        where=side)
    show_boxes = ui.toggle("Expert boxes", "boxes", default=True, where=side)
    show_region = ui.toggle("Top-k region outline", "region", default=True, where=side)
    box_opts = [-1, *[b.index for b in shapes]]
    names = {b.index: b.label for b in shapes}
    box = ui.select("Metrics for", box_opts, "box", default=-1, where=side,
                    format_func=lambda b: "all boxes (union)" if b < 0 else f"box #{b} "
                                                                            f"{names.get(b, '')}",
                    help="Click a box's label on the picture to choose it.")
    box = -1 if box is None else int(box)

    grid = data.attention_grid(model, variant, method, int(layer), int(head), image_id)
    left, right = st.columns([3, 2])
    with left:
        title = (f"{ui.model_label(model, variant)} · {method} · layer {layer} · "
                 f"{ui.head_label(int(head))}")
        fig = figures.overlay_figure(
            pic, grid, cmap=cmap or "inferno", opacity=opacity,
            percentile=float(pct) if show_region and pct is not None else None,
            boxes=shapes if show_boxes else (), selected_box=box if box >= 0 else None,
            title=title, fig_height=figures.image_height(pic, 640),
            frame=None if frame.is_full else frame.as_tuple())
        st.plotly_chart(fig, width="stretch", config=ui.chart_config(), key=CHART_KEY,
                        on_select=_on_chart_select, selection_mode="points")
        if grid is not None:
            gh, gw = grid.shape
            st.caption(f"Patch grid {gh}x{gw}, upsampled bilinearly (half-pixel centres) and "
                       f"min-max normalised. White outline: the top {100 - int(pct or 90)} % "
                       f"pixels at 224x224, the region IoU@{pct} scores; cyan: expert boxes "
                       f"(yellow: the chosen one; click a label to choose).")
            if not frame.is_full:
                st.caption(f"This model sees only its own centre crop (dashed; "
                           f"{100 * frame.area_lost:.0f} % of the image lost): the map covers "
                           f"the crop, boxes are scored where they fall inside it, and a box "
                           f"wholly outside is not scored.")
    with right:
        _metrics_panel(model, variant, method, int(layer), int(head), image_id, box,
                       int(pct or 90), boxes)
    faithfulness.image_section(model, variant, method, int(layer), image_id)


def _similarity_view(pic: np.ndarray, shapes: list[figures.BoxShape], boxes: pl.DataFrame,
                     model: str, variant: str, image_id: str, frame: data.MapFrame) -> None:
    """Cosine similarity of every patch token to one expert box's mean token."""
    side = st.sidebar
    layers = data.token_layers(model, variant, image_id)
    if not layers:
        ui.missing(f"No patch tokens of {ui.model_label(model, variant)} for this image",
                   f"ssl-wc ingest attention --models {model} --patch-tokens last",
                   "(`--patch-tokens all` stores every layer)")
        return
    if not shapes:
        ui.missing("This image has no expert boxes to compare patches with")
        return
    layer = ui.select_slider("Token layer", layers, "tlayer", default=layers[-1], where=side)
    names = {b.index: b.label for b in shapes}
    box = ui.select("Box", [b.index for b in shapes], "box", where=side,
                    format_func=lambda b: f"box #{b} {names.get(b, '')}",
                    help="Click a box's label on the picture to choose it.")
    side.divider()
    cmap = ui.select("Colour map", list(heatmap.COLORMAPS), "cmap", default="viridis",
                     where=side) or "viridis"
    opacity = ui.slider("Heatmap opacity", 0.0, 1.0, "opacity", default=0.6, step=0.05,
                        where=side)
    assert layer is not None and box is not None
    got = data.box_similarity_grid(model, variant, int(layer), image_id, int(box))
    left, right = st.columns([3, 2])
    with left:
        if got is None or np.isnan(got[0]).all():
            ui.missing(f"Box #{box} lies outside what {ui.model_label(model, variant)} saw "
                       "(its centre crop)" if got is not None else
                       f"No patch tokens at layer {layer}")
            return
        sim, _inside = got
        title = (f"{ui.model_label(model, variant)} · layer {layer} · similarity to box "
                 f"#{box} {names.get(int(box), '')}")
        fig = figures.overlay_figure(
            pic, sim, cmap=cmap, opacity=opacity, percentile=None, boxes=shapes,
            selected_box=int(box), title=title, fig_height=figures.image_height(pic, 640),
            frame=None if frame.is_full else frame.as_tuple(), value_label="similarity")
        st.plotly_chart(fig, width="stretch", config=ui.chart_config(), key=CHART_KEY,
                        on_select=_on_chart_select, selection_mode="points")
        gh, gw = sim.shape
        st.caption(f"Patch grid {gh}x{gw}: cosine similarity of each patch token to the mean "
                   f"token of the patches whose centres lie in the box (range "
                   f"{np.nanmin(sim):.2f} to {np.nanmax(sim):.2f}, shown min-max "
                   f"normalised). Dense ViT descriptors: Amir et al. 2022.")
    with right:
        stats = data.box_similarity_stats(model, variant, int(layer), image_id, int(box))
        st.subheader(f"Box #{box} in feature space")
        if stats is None:
            ui.missing("No stored similarity for this box", "ssl-wc ingest attention "
                       f"--models {model} --force")
            return
        tiles = st.columns(3)
        tiles[0].metric("in box", ui.fmt(stats["sim_in"]),
                        help="mean cosine similarity of the box's patches to its token")
        tiles[1].metric("outside", ui.fmt(stats["sim_out"]),
                        help="mean cosine similarity of the other patches to the token")
        tiles[2].metric("contrast", ui.fmt(stats["contrast"]),
                        delta=None if stats["feature_mean_contrast"] is None else
                        f"{stats['contrast'] - stats['feature_mean_contrast']:+.3f} vs "
                        f"{stats['feature_name']} mean",
                        help="in box minus outside: how distinctive the expert's part is "
                             "in this model's features")
        if stats["feature_mean_contrast"] is not None:
            st.caption(f"{stats['feature_name']}: mean contrast "
                       f"{stats['feature_mean_contrast']:.3f} over "
                       f"{stats['feature_n_boxes']} boxes at this layer "
                       f"(view `feature_similarity`).")


def _metrics_panel(model: str, variant: str, method: str, layer: int, head: int,
                   image_id: str, box: int, pct: int, boxes: pl.DataFrame) -> None:
    protocol = ui.metric_protocol()
    if protocol is None:
        return
    ml = data.image_metric_long(model, variant, method, head, image_id, protocol)
    if ml.height == 0:
        ui.missing("No metrics for this map yet", "ssl-wc metrics")
        return
    infos = data.metric_infos(protocol)
    target = "all boxes (union)" if box < 0 else (
        f"box #{box} " + str(boxes.filter(pl.col("box_index") == box)["feature_name"][0])
        if box in boxes["box_index"].to_list() else f"box #{box}")
    st.subheader(f"Metrics · {target}")
    rows = data.target_values(ml, box, layer)
    if rows.height == 0:
        ui.missing(f"No metrics for {target} at layer {layer}", "ssl-wc metrics")
        return
    means = data.layer_means(model, variant, method, head, protocol) if head < 0 else None
    tiles = st.columns(3)
    for i, m in enumerate(TILE_METRICS):
        info = infos.get(m) or data.MetricInfo(m, data.FALLBACK_METRICS.get(
            m, (m, "higher", True))[0], data.FALLBACK_METRICS.get(m, (m, "higher", True))[1],
            True)
        value = data.metric_value(rows, m, pct)
        delta = None
        if means is not None and box < 0 and value is not None:
            ref = means.filter((pl.col("metric") == m) & (pl.col("layer") == layer))
            if m in data.PCT_METRICS:
                ref = ref.filter(pl.col("percentile") == pct)
            if ref.height and ref["mean"][0] is not None:
                delta = f"{value - float(ref['mean'][0]):+.3f} vs mean"
        tiles[i % 3].metric(f"{SHORT[m].format(p=pct)} {info.arrow}", ui.fmt(value),
                            delta=delta,
                            delta_color="inverse" if info.lower_is_better else "normal",
                            help=f"{info.title(pct)}: {info.description}".strip(": ")
                            if info.description else info.title(pct))
    if means is not None and box < 0:
        st.caption("Deltas: this image minus the mean over all images at this layer.")
    _progression(ml, infos, model, variant, method, layer, head, box, pct, means)
    with st.expander("All metrics at this layer"):
        table = rows.with_columns(
            pl.col("metric").replace_strict(
                {k: v.title() for k, v in infos.items()}, default=pl.col("metric"))
            .alias("label"))
        st.dataframe(table.select("label", "percentile", "value"), hide_index=True,
                     width="stretch", column_config={
                         "value": st.column_config.NumberColumn(format="%.4f")})


def _progression(ml: pl.DataFrame, infos: dict[str, data.MetricInfo], model: str,
                 variant: str, method: str, layer: int, head: int, box: int, pct: int,
                 means: pl.DataFrame | None) -> None:
    options = [m for m in infos if m in set(ml["metric"].unique().to_list())]
    if not options:
        return
    metric = ui.select("Layer progression of", options, "metric", default="iou",
                       format_func=lambda m: infos[m].title(pct if m in data.PCT_METRICS
                                                            else None))
    assert metric is not None
    info = infos[metric]
    sel = data.target_values(ml, box).filter(pl.col("metric") == metric)
    if metric in data.PCT_METRICS:
        sel = sel.filter(pl.col("percentile") == pct)
    lines = {"this image": sel.select("layer", pl.col("value").alias("mean"))}
    colors = {"this image": figures.PALETTE[0], "mean over images": figures.BASELINE_COLOR}
    if means is not None and box < 0:
        ref = means.filter(pl.col("metric") == metric)
        if metric in data.PCT_METRICS:
            ref = ref.filter(pl.col("percentile") == pct)
        if ref.height:
            lines["mean over images"] = ref.select("layer", "mean", "ci_low", "ci_high")
    title = info.title(pct if metric in data.PCT_METRICS else None)
    fig = figures.progression_figure(lines, title=f"{title} by layer", y_title=title,
                                     colors=colors, current_layer=layer,
                                     name="image_progression", height=330)
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())


ui.ensure_app()
with ui.guard():
    render()
