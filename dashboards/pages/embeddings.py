"""Embeddings: a 2-D map of the stored image features, nearest neighbours, and how much
the models agree on them. A lasso (or box) selection on the map filters the Gallery."""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import data, figures, ui
from ssl_wc.embeddings import PROJECTIONS, project
from ssl_wc.palette import style_colors

KINDS = {"pooled": "pooled output (CLS after the final norm, or the MAP head)",
         "cls": "CLS token after each block", "patch_mean": "mean patch token after each block"}
PROJECTION_NAMES = {"pca": "PCA", "tsne": "t-SNE"}
RULES = {"last_layer": "each source's deepest layer", "same_layer": "the layer chosen above"}
MAP_KEY = "embedding_map"


@st.cache_data(show_spinner="Projecting the features…", max_entries=256)
def _projection(model: str, variant: str, layer: int, kind: str, method: str,
                token: str) -> tuple[list[str], list[str], np.ndarray, str, str]:
    del token  # part of the cache key: a new commit recomputes
    ids, styles, x = data.feature_matrix(model, variant, layer, kind)
    proj = project(x, method) if ids else None
    pts = proj.points if proj is not None else np.zeros((0, 2))
    return ids, styles, pts, proj.x_label if proj else "", proj.y_label if proj else ""


def map_figure(ids: list[str], styles: list[str], pts: np.ndarray, *, title: str,
               x_label: str, y_label: str, highlight: str | None = None) -> go.Figure:
    """Points coloured by style (one trace per style); ``customdata`` is the image id."""
    colors = style_colors(styles)
    fig = go.Figure()
    for style in sorted(set(styles)):
        sel = [i for i, s in enumerate(styles) if s == style]
        fig.add_trace(go.Scatter(
            x=pts[sel, 0], y=pts[sel, 1], mode="markers", name=style,
            marker={"size": 9, "color": colors[style], "line": {"width": 0.5, "color": "#333"}},
            customdata=[ids[i] for i in sel],
            hovertemplate="%{customdata}<br>" + style + "<extra></extra>"))
    if highlight in ids:
        i = ids.index(highlight)
        fig.add_trace(go.Scatter(
            x=[pts[i, 0]], y=[pts[i, 1]], mode="markers", name="query image",
            marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"width": 2.5,
                                                                    "color": "#111"}},
            hoverinfo="skip"))
    fig.update_xaxes(title={"text": x_label}, zeroline=False)
    fig.update_yaxes(title={"text": y_label}, zeroline=False)
    fig.update_layout(title={"text": title, "font": {"size": 14}}, height=520,
                      dragmode="lasso", meta={"chart": "embedding_map"},
                      legend={"title": {"text": "first listed style"}},
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def selected_from_event(event: Any) -> list[str]:
    """Image ids of the points a lasso / box selection holds (empty when none)."""
    try:
        points = event.selection.points  # type: ignore[union-attr]
    except AttributeError:
        return []
    out: list[str] = []
    for p in points or []:
        cd = p.get("customdata") if isinstance(p, dict) else None
        if isinstance(cd, list):
            cd = cd[0] if cd else None
        if isinstance(cd, str) and cd not in out:
            out.append(cd)
    return out


def agreement_matrix(agr: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    """Source labels and a symmetric matrix of mean Jaccard (1 on the diagonal)."""
    def label(model: str, variant: str, layer: int) -> str:
        return f"{model}" + ("" if variant == "frozen" else f" · {variant}") + f" L{layer}"

    pairs = [(label(r["model_a"], r["variant_a"], r["layer_a"]),
              label(r["model_b"], r["variant_b"], r["layer_b"]), r["mean_jaccard"])
             for r in agr.iter_rows(named=True)]
    names = sorted({a for a, _, _ in pairs} | {b for _, b, _ in pairs})
    z = np.eye(len(names))
    for a, b, v in pairs:
        i, j = names.index(a), names.index(b)
        z[i, j] = z[j, i] = np.nan if v is None else float(v)
    return names, z


def render() -> None:
    ui.page("Embeddings", "Where the images sit in each model's feature space, which images "
                          "a model finds most alike, and whether models agree on it.")
    sources = data.feature_sources()
    if sources.height == 0:
        ui.missing("No stored features yet", "ssl-wc ingest attention --models <model>",
                   "features are stored by default")
        return
    c1, c2, c3, c4 = st.columns([1.3, 1, 1.3, 0.9], vertical_alignment="bottom")
    model = ui.select("Model", sorted(set(sources["model"].to_list())), "model", where=c1,
                      format_func=ui.model_label)
    of_model = sources.filter(pl.col("model") == model)
    variants = sorted(set(of_model["variant"].to_list()), key=lambda v: (v != "frozen", v))
    variant = ui.select("Variant", variants, "variant", default="frozen", where=c2)
    kinds = [k for k in KINDS if k in set(of_model.filter(pl.col("variant") == variant)["kind"])]
    kind = ui.select("Feature", kinds, "kind", default="pooled", where=c3,
                     format_func=lambda k: KINDS[k].split(" (")[0])
    proj = ui.radio("Projection", list(PROJECTIONS), "proj", default="pca", where=c4,
                    format_func=PROJECTION_NAMES.__getitem__) or "pca"
    assert model is not None and variant is not None and kind is not None
    row = of_model.filter((pl.col("variant") == variant) & (pl.col("kind") == kind)).row(
        0, named=True)
    layers = [int(v) for v in row["layers"]]
    layer = ui.select_slider("Layer", layers, "layer", default=layers[-1],
                             help="0-based block; -1 is the patch embedding") or layers[-1]
    st.caption(f"{KINDS[kind]} · {row['n_images']} images · {row['dim']} dimensions · rows "
               f"scaled to unit length (the map follows cosine similarity)")
    ids, styles, pts, xl, yl = _projection(model, variant, int(layer), kind, proj,
                                           data.state_token())
    if len(ids) < 3:
        ui.missing("Too few images with features for a map (at least 3)",
                   "ssl-wc ingest attention")
        return
    image = ui.select("Nearest neighbours of", ids, "image", where=st.sidebar)
    title = (f"{PROJECTION_NAMES[proj]} of {ui.model_label(model, variant)}, {kind}, layer "
             f"{layer}: lasso or box-select images to filter the Gallery")
    event = st.plotly_chart(map_figure(ids, styles, pts, title=title, x_label=xl, y_label=yl,
                                       highlight=image),
                            key=MAP_KEY, on_select="rerun", selection_mode=("lasso", "box"),
                            config=ui.chart_config())
    chosen = selected_from_event(event)
    if chosen:
        ui.url_set("ids", ",".join(chosen))
    else:
        raw = ui.url_get("ids")
        chosen = [i for i in (raw.split(",") if raw else []) if i in ids]
    _selection(chosen)
    k = ui.int_slider("Neighbours (k)", 1, max(1, min(20, len(ids) - 1)), "k", default=5,
                      where=st.sidebar)
    _neighbours(model, variant, int(layer), kind, image, k)
    _agreement(kind, k, int(layer))


def _selection(chosen: list[str]) -> None:
    if not chosen:
        st.caption("No images selected: draw a lasso (or a box) around points on the map.")
        return
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    c1.markdown(f"**{len(chosen)} images selected**: "
                + ", ".join(f"`{i}`" for i in chosen[:8]) + (" …" if len(chosen) > 8 else ""))
    c2.page_link("pages/gallery.py", label="Show them in the Gallery",
                 icon=":material/photo_library:", query_params={"ids": ",".join(chosen)})


def _neighbours(model: str, variant: str, layer: int, kind: str, image: str | None,
                k: int) -> None:
    st.subheader("Nearest neighbours")
    if image is None:
        return
    nn = data.neighbors(model, variant, layer, kind, image, k)
    st.caption(f"The {k} images most similar to **{image}** under "
               f"{ui.model_label(model, variant)} ({kind}, layer {layer}; cosine similarity).")
    gal = data.gallery()
    rows = {r["image_id"]: r for r in gal.iter_rows(named=True)}
    cols = st.columns(min(6, k + 1))
    for i, (img, note) in enumerate([(image, "query"), *[
            (r["neighbor_id"], f"#{r['rank']} · cos {r['cosine']:.3f}")
            for r in nn.iter_rows(named=True)]]):
        with cols[i % len(cols)]:
            pic = data.photo(rows.get(img, {}), max_side=240)
            if pic is not None:
                st.image(pic, width="stretch")
            st.caption(f"**{img}**  \n{note}")
    st.dataframe(nn, hide_index=True, width="stretch", column_config={
        "cosine": st.column_config.NumberColumn(format="%.4f")})


def _agreement(kind: str, k: int, layer: int) -> None:
    st.subheader("Do the models agree on neighbours?")
    c1, _ = st.columns([1, 2])
    rule = ui.radio("Compare sources at", list(RULES), "rule", where=c1,
                    format_func=RULES.__getitem__) or "last_layer"
    agr = data.knn_agreement(k, kind, rule)
    if rule == "same_layer":
        agr = agr.filter(pl.col("layer_a") == layer)
    if agr.height == 0:
        st.info("Fewer than two feature sources of this kind to compare.")
        return
    names, z = agreement_matrix(agr)
    chance = float(agr["chance_jaccard"].mean())  # type: ignore[arg-type]
    fig = figures.matrix_figure(
        z, names, names, title=f"Mean Jaccard index of {k}-NN sets ({kind}); chance "
        f"{chance:.3f}", x_title="source", y_title="source", colorbar="mean Jaccard",
        name="knn_agreement")
    st.plotly_chart(fig, width="stretch", config=ui.chart_config())
    st.caption("For every image both sources hold: |A ∩ B| / |A ∪ B| of its k nearest "
               "neighbours under each, averaged over images; chance = random k-sets of the "
               "same candidates. From the `knn_agreement(k, kind)` table macro.")


ui.ensure_app()
with ui.guard():
    render()
