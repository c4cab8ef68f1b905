"""Compare: several models (or a fine-tuned variant and its frozen model) on one image."""

from __future__ import annotations

import numpy as np
import polars as pl
import streamlit as st

from dashboards import data, figures, heatmap, ui

REFERENCE_VARIANT = "frozen"
MAX_MODELS = 4


def source_key(model: str, variant: str) -> str:
    return f"{model}@{variant}"


def split_key(key: str) -> tuple[str, str]:
    model, _, variant = key.partition("@")
    return model, variant or REFERENCE_VARIANT


def difference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, str]:
    """normalised(a) - normalised(b) at 224x224, and a note on how it was computed."""
    size = heatmap.EVAL_SIZE
    diff = (heatmap.normalise(heatmap.upsample(a, *size))
            - heatmap.normalise(heatmap.upsample(b, *size)))
    if a.shape == b.shape:
        note = (f"Both maps are on the same {a.shape[0]}x{a.shape[1]} grid; each was "
                f"upsampled to 224x224 and min-max normalised before subtracting.")
    else:
        note = (f"The grids differ ({a.shape[0]}x{a.shape[1]} vs {b.shape[0]}x{b.shape[1]}): "
                f"both were upsampled to 224x224 and min-max normalised before subtracting, "
                f"so the difference is only as sharp as the coarser grid.")
    return diff, note


def render() -> None:
    ui.page("Compare", "Several models, or a fine-tuned model and its frozen backbone, on "
                       "the same image with shared controls.")
    gal = ui.annotated_gallery()
    if gal is None:
        return
    side = st.sidebar
    image_id = ui.select("Image", gal["image_id"].to_list(), "image", where=side)
    assert image_id is not None
    row = gal.filter(pl.col("image_id") == image_id).row(0, named=True)
    idx = data.map_index(image_id)
    if idx.height == 0:
        ui.missing(f"No attention maps for {image_id} yet",
                   "ssl-wc ingest attention --models <model>",
                   "`ssl-wc models list` shows the model keys")
        return
    srcs = idx.select("model", "variant").unique().sort("model", "variant")
    multi = srcs.group_by("model").agg(pl.col("variant")).filter(
        pl.col("variant").list.len() > 1)
    mode = ui.radio("Compare", ["models", "variant"], "mode", where=side,
                    format_func=lambda m: {"models": "models side by side",
                                           "variant": "fine-tuned vs frozen"}[m])
    if mode == "variant":
        if multi.height == 0:
            ui.missing("No model has a fine-tuned variant with maps for this image (fine-tune "
                       "a model, then ingest its attention maps under the variant name)",
                       "ssl-wc ingest attention --models <model> --variant <name>")
            return
        model = ui.select("Model", sorted(multi["model"].to_list()), "model", where=side,
                          format_func=ui.model_label)
        assert model is not None
        adapted_opts = [v for v in multi.filter(pl.col("model") == model)["variant"][0]
                        if v != REFERENCE_VARIANT]
        adapted = ui.select("Fine-tuned variant", adapted_opts, "adapted", where=side)
        assert adapted is not None
        keys = [source_key(model, REFERENCE_VARIANT), source_key(model, adapted)]
    else:
        options = [source_key(m, v) for m, v in srcs.iter_rows()]
        first = srcs.filter(pl.col("variant") == REFERENCE_VARIANT)["model"].to_list()[:2]
        keys = ui.multiselect("Models", options, "models", where=side, max_selections=MAX_MODELS,
                              default=[source_key(m, REFERENCE_VARIANT) for m in first],
                              format_func=lambda k: ui.model_label(*split_key(k)))
        if not keys:
            st.info("Choose at least one model in the sidebar.")
            return
    chosen = [split_key(k) for k in keys]
    sel = idx.filter(pl.struct("model", "variant").is_in(
        [{"model": m, "variant": v} for m, v in chosen]))
    defaults = data.model_defaults()
    methods = sorted(sel["method"].unique().to_list())
    method_opts = ["default", *methods]
    method = ui.select("Method", method_opts, "method", where=side,
                       format_func=lambda m: "each model's default" if m == "default" else m)
    layers = sorted(sel["layer"].unique().to_list())
    layer = ui.select_slider("Layer", layers, "layer", default=layers[-1], where=side)
    heads = ui.heads_in_order(sel["head"].to_list())
    head = ui.select("Heads", heads, "head", default=-1 if -1 in heads else heads[0],
                     where=side, format_func=ui.head_label)
    pct = ui.select_slider("Percentile (top-k region, IoU)", list(ui.PERCENTILES), "pct",
                           default=90, where=side, format_func=lambda p: f"top {100 - p} %")
    side.divider()
    cmap = ui.select("Colour map", list(heatmap.COLORMAPS), "cmap", default="inferno",
                     where=side) or "inferno"
    opacity = ui.slider("Heatmap opacity", 0.0, 1.0, "opacity", default=0.55, step=0.05,
                        where=side)
    show_boxes = ui.toggle("Expert boxes", "boxes", default=True, where=side)
    assert layer is not None and head is not None and pct is not None

    pic, has_file = ui.photo_or_placeholder(row, max_side=640)
    if not has_file:
        ui.missing(f"No image file for {image_id} (drawn on a grey canvas)",
                   "ssl-wc ingest images <folder>")
    shapes = figures.box_shapes(data.image_boxes(image_id)) if show_boxes else []
    protocol = ui.protocol_choice()
    st.markdown(f"**{image_id}** · layer {layer} · {ui.head_label(int(head))} · "
                f"region = top {100 - int(pct)} %")
    grids: list[tuple[str, str, str, np.ndarray | None]] = []
    frames: list[data.MapFrame] = []
    cols = st.columns(len(chosen))
    for col, (model, variant) in zip(cols, chosen, strict=True):
        m = defaults.get(model, methods[0]) if method == "default" else method
        assert m is not None
        grid = data.attention_grid(model, variant, m, int(layer), int(head), image_id)
        frame = data.map_frame(model, variant, image_id)
        grids.append((model, variant, m, grid))
        frames.append(frame)
        with col:
            label = ui.model_label(model, variant)
            if grid is None:
                ui.missing(f"No '{m}' map for {label} at layer {layer} "
                           f"({ui.head_label(int(head))})",
                           f"ssl-wc ingest attention --models {model} --methods {m}")
                continue
            fig = figures.overlay_figure(pic, grid, cmap=cmap, opacity=opacity,
                                         percentile=float(pct), boxes=shapes,
                                         title=f"{label} · {m}", name=f"overlay:{model}@{variant}",
                                         fig_height=figures.image_height(
                                             pic, 1000 // max(len(chosen), 1)),
                                         frame=None if frame.is_full else frame.as_tuple())
            st.plotly_chart(fig, width="stretch", config=ui.chart_config())
            st.caption(_score_line(model, variant, m, int(layer), int(head), image_id,
                                   int(pct), protocol))
            if not frame.is_full:
                st.caption(f"Centre crop (dashed): {100 * frame.area_lost:.0f} % of the image "
                           "is outside what this model saw.")
    present = [f for (_m, _v, _me, g), f in zip(grids, frames, strict=True) if g is not None]
    if len({f.as_tuple() for f in present}) > 1:
        st.caption("No difference map: the maps cover different parts of the image (one "
                   "model sees only a centre crop).")
        return
    _difference_section(pic, grids, shapes, mode or "models")


def _score_line(model: str, variant: str, method: str, layer: int, head: int, image_id: str,
                pct: int, protocol: str | None) -> str:
    if protocol is None:
        return "no metrics yet (run `ssl-wc metrics`)"
    ml = data.image_metric_long(model, variant, method, head, image_id, protocol)
    rows = data.target_values(ml, -1, layer)
    if rows.height == 0:
        return "no metrics for this map yet (run `ssl-wc metrics`)"
    return (f"IoU@{pct} {ui.fmt(data.metric_value(rows, 'iou', pct))} · coverage "
            f"{ui.fmt(data.metric_value(rows, 'coverage', None))} · pointing (15 px) "
            f"{ui.fmt(data.metric_value(rows, 'pointing_t15', None), 0)}")


def _difference_section(pic: np.ndarray, grids: list[tuple[str, str, str, np.ndarray | None]],
                        shapes: list[figures.BoxShape], mode: str) -> None:
    present = [g for g in grids if g[3] is not None]
    if len(present) != 2:
        if mode == "models" and len(grids) > 2:
            st.caption("Choose exactly two models to see their difference map.")
        return
    if mode == "variant":
        (ma, va, mea, ga), (mb, vb, meb, gb) = present[1], present[0]
        title = f"{ui.model_label(ma, va)} minus {ui.model_label(mb, vb)}"
        gain, loss = "gained by fine-tuning", "lost by fine-tuning"
    else:
        (ma, va, mea, ga), (mb, vb, meb, gb) = present
        title = f"{ui.model_label(ma, va)} ({mea}) minus {ui.model_label(mb, vb)} ({meb})"
        gain, loss = f"more on {data.display_model(ma)}", f"more on {data.display_model(mb)}"
    assert ga is not None and gb is not None
    diff, note = difference(ga, gb)
    st.subheader("Difference map")
    st.markdown(f":red[**red**]: {gain} · :blue[**blue**]: {loss}")
    fig = figures.difference_figure(pic, diff, title=title, gain_label=gain, loss_label=loss,
                                    boxes=shapes, name="difference",
                                    fig_height=figures.image_height(pic, 640))
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())
    st.caption(note)


ui.ensure_app()
with ui.guard():
    render()
