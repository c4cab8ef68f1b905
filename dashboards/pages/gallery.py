"""Gallery: the annotated images with styles and box counts; filter, then open one."""

from __future__ import annotations

import math
from typing import Any

import polars as pl
import streamlit as st

from dashboards import data, ui

PER_PAGE = 24
COLUMNS = 4


def filter_images(df: pl.DataFrame, style: str, feature: str, name: str,
                  files_only: bool) -> pl.DataFrame:
    """Rows matching a style tag, a feature type (or any sub-type) and a name fragment."""
    out = df
    if style != "all":
        out = out.filter(pl.col("style_names").list.contains(style))
    if feature != "all":
        out = out.filter(pl.col("features_rollup").list.contains(feature))
    if name:
        out = out.filter(pl.col("image_id").str.to_lowercase().str.contains(name.lower(),
                                                                           literal=True))
    if files_only:
        out = out.filter(pl.col("has_file"))
    return out


def selected_ids() -> list[str]:
    """Image ids selected on the Embeddings map (URL key ``ids``, comma-separated)."""
    raw = ui.url_get("ids")
    return [i for i in raw.split(",") if i] if raw else []


def render() -> None:
    ui.page("Gallery", "The annotated WikiChurches images: expert boxes drawn on facades. "
                       "Filter, then open an image to see where each model looks.")
    df = ui.annotated_gallery()
    if df is None:
        return
    n_files = int(df["has_file"].sum())
    if n_files == 0:
        ui.missing("No image files are recorded, so only metadata can be shown",
                   "ssl-wc ingest images <folder of WikiChurches images>")
    styles = sorted({s for lst in df["style_names"].to_list() for s in lst or []})
    features = sorted({f for lst in df["features_rollup"].to_list() for f in lst or []})
    c1, c2, c3, c4 = st.columns([1, 1.3, 1.2, 0.8], vertical_alignment="bottom")
    style = ui.select("Style", ["all", *styles], "style", where=c1) or "all"
    feature = ui.select("Feature type (with its sub-types)", ["all", *features], "feature",
                        where=c2) or "all"
    name = ui.text("File name contains", "q", where=c3, placeholder="e.g. Q2034923")
    files_only = ui.toggle("Only with a file", "files", default=False, where=c4)
    shown = filter_images(df, style, feature, name, files_only)
    chosen = selected_ids()
    if chosen:
        shown = shown.filter(pl.col("image_id").is_in(chosen))
        c5, c6 = st.columns([4, 1], vertical_alignment="center")
        c5.info(f"Showing the {len(chosen)} images selected on the Embeddings map.",
                icon=":material/scatter_plot:")
        if c6.button("Show all images", icon=":material/clear:"):
            ui.url_drop("ids")
            st.rerun()
    missing_files = df.height - n_files
    st.caption(f"{shown.height} of {df.height} annotated images"
               + (f" · {missing_files} without an image file" if missing_files else ""))
    if shown.height == 0:
        st.info("No image matches these filters.")
        return
    pages = max(1, math.ceil(shown.height / PER_PAGE))
    page_no = 1
    if pages > 1:
        page_no = ui.select("Page", list(range(1, pages + 1)), "pg", default=1,
                            format_func=lambda p: f"{p} of {pages}") or 1
    else:
        ui.url_drop("pg")
    rows = shown.slice((page_no - 1) * PER_PAGE, PER_PAGE).iter_rows(named=True)
    cols = st.columns(COLUMNS)
    for i, row in enumerate(rows):
        with cols[i % COLUMNS], st.container(border=True):
            _card(row)


def _card(row: dict[str, Any]) -> None:
    image_id = str(row["image_id"])
    pic = data.photo(row, max_side=320)
    if pic is not None:
        st.image(pic, width="stretch")
    else:
        st.markdown(":gray-background[no image file]")
    styles = ", ".join(str(s) for s in row["style_names"] or []) or "no style"
    st.markdown(f"**{image_id}**  \n{styles} · {row['n_boxes']} boxes")
    st.page_link("pages/image.py", label="Open", icon=":material/arrow_forward:",
                 query_params={"image": image_id})


ui.ensure_app()
with ui.guard():
    render()
