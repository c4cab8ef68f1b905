"""Runs: the ingest history (status, durations, rows, errors) and what the warehouse holds."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboards import data, ui

STATUS_COLORS = {"committed": "#2ca02c", "partial": "#ff7f0e", "failed": "#d62728",
                 "interrupted": "#8c564b", "running": "#1f77b4", "skipped": "#7f7f7f"}


def row_total(row_counts_json: str | None) -> int:
    """Total rows a run wrote, from its manifest's row counts."""
    try:
        counts = json.loads(row_counts_json or "{}")
    except ValueError:
        return 0
    return int(sum(v for v in counts.values() if isinstance(v, int | float)))


def render() -> None:
    ui.page("Runs", "Every job that wrote to the warehouse: committed runs are visible, "
                    "failed or interrupted ones left nothing visible behind.")
    summary = data.warehouse_summary()
    cols = st.columns(4)
    for i, (item, n) in enumerate(summary.iter_rows()):
        cols[i % 4].metric(str(item), f"{int(n):,}")
    runs = data.runs()
    if runs.height == 0:
        ui.missing("No runs recorded yet", "ssl-wc demo")
        return
    c1, c2 = st.columns(2)
    statuses = sorted(runs["status"].drop_nulls().unique().to_list())
    kinds = sorted(runs["kind"].drop_nulls().unique().to_list())
    chosen_status = ui.multiselect("Status", statuses, "status", default=statuses, where=c1)
    chosen_kind = ui.multiselect("Kind", kinds, "kind", default=kinds, where=c2)
    shown = runs.filter(pl.col("status").is_in(chosen_status or statuses)
                        & pl.col("kind").is_in(chosen_kind or kinds))
    st.plotly_chart(_timeline(shown), width="stretch", config=ui.chart_config())
    table = shown.with_columns(
        pl.col("row_counts_json").map_elements(row_total, return_dtype=pl.Int64)
        .alias("rows written"),
        (pl.col("bytes") / 1e6).alias("MB"))
    st.dataframe(
        table.select("started_at", "kind", "status", "seconds", "engine", "workers",
                     "images_per_s", "worker_images_per_s", "n_files", "rows written", "MB",
                     "n_errors", "error", "run_id"),
        hide_index=True, width="stretch", column_config={
            "started_at": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
            "seconds": st.column_config.NumberColumn(format="%.2f"),
            "MB": st.column_config.NumberColumn(format="%.2f"),
            "engine": st.column_config.TextColumn(
                "engine", help="local (one process) or ray (an actor pool)"),
            "images_per_s": st.column_config.NumberColumn("images/s", format="%.1f"),
            "worker_images_per_s": st.column_config.NumberColumn(
                "images/s per worker", format="%.1f",
                help="per worker: images over the seconds it spent computing them"),
            "n_errors": "item errors", "error": "run error"})
    failed = shown.filter(pl.col("error").is_not_null())
    if failed.height:
        with st.expander(f"{failed.height} run(s) ended with an error", expanded=True):
            for r in failed.iter_rows(named=True):
                st.markdown(f"- `{r['run_id']}` ({r['kind']}, {r['status']}): {r['error']}")
    st.subheader("Per-item ingest errors")
    errors = data.ingest_errors()
    if errors.height == 0:
        st.caption("None: every item of every committed run was ingested.")
    else:
        st.dataframe(errors, hide_index=True, width="stretch")
    with st.expander("Catalog"):
        st.json(data.catalog_info())


def _timeline(runs: pl.DataFrame) -> go.Figure:
    """Run durations in start order, coloured by status (log scale for wide ranges)."""
    runs = runs.sort("started_at").with_columns(
        label=pl.col("started_at").dt.strftime("%m-%d %H:%M:%S") + pl.lit(" · ")
        + pl.col("run_id").str.slice(-6))
    order = runs["label"].to_list()
    fig = go.Figure()
    for status in sorted(runs["status"].drop_nulls().unique().to_list()):
        part = runs.filter(pl.col("status") == status)
        fig.add_trace(go.Bar(
            x=part["label"].to_list(), y=part["seconds"].fill_null(0).to_list(),
            name=status, marker={"color": STATUS_COLORS.get(status, "#17becf")},
            text=part["kind"].to_list(), textposition="outside",
            customdata=part["run_id"].to_list(),
            hovertemplate="%{customdata}<br>%{text}: %{y:.2f} s<extra></extra>"))
    secs = [s for s in runs["seconds"].to_list() if s]
    log = bool(secs) and max(secs) / max(min(secs), 1e-3) > 100
    fig.update_yaxes(title={"text": "duration (s)"}, type="log" if log else "linear",
                     dtick=1 if log else None)
    fig.update_xaxes(title={"text": "run (start time)"}, type="category",
                     categoryorder="array", categoryarray=order)
    fig.update_layout(height=340, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      meta={"chart": "runs"}, legend={"orientation": "h", "y": 1.15},
                      bargap=0.25)
    return fig


ui.ensure_app()
with ui.guard():
    render()
