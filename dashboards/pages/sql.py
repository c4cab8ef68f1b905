"""SQL: read-only queries over the warehouse views, results as a table and CSV."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboards import data, ui
from ssl_wc.sqlguard import QueryRefused

EXAMPLE = """SELECT model, method, layer, round(mean, 4) AS mean_iou_90, n
FROM layer_progression
WHERE metric = 'iou' AND percentile = 90 AND head = -1 AND variant = 'frozen'
ORDER BY mean DESC
LIMIT 20"""
ROW_LIMIT = 10_000


def render() -> None:
    ui.page("SQL", "Read-only SQL over the warehouse views (DuckDB dialect): one SELECT (or "
                   "EXPLAIN of one) at a time, on a connection that cannot write anything and "
                   "reads only the lake; queries stop after 60 s.")
    if not data.warehouse_exists():
        raise data.NoWarehouse(f"no warehouse at {data.warehouse_root()}: {data.DEMO_HINT}")
    left, right = st.columns([3, 1.2])
    with right:
        st.markdown("**Views and tables**")
        rel = data.relations()
        st.dataframe(
            rel.select("name", "kind", pl.col("columns").list.join(", ").alias("columns")),
            hide_index=True, width="stretch", height=460,
            column_config={"columns": st.column_config.TextColumn(width="large")})
        st.caption(f"{rel.height} relations; hover a row's columns cell to read it all.")
    with left:
        wkey = "qp_q"
        if wkey not in st.session_state:
            st.session_state[wkey] = ui.url_get("q") or EXAMPLE
        sql = st.text_area("Query", key=wkey, height=200,
                           help="Ctrl+Enter runs the query: one SELECT statement, or EXPLAIN "
                                "of one.")
        ui.url_set("q", sql)
        if not sql.strip():
            st.info("Type a query.")
            return
        try:
            res = _run(sql)
        except QueryRefused as exc:
            st.error(f"Refused: {exc}", icon=":material/block:")
            return
        except data.NoWarehouse:
            raise
        except data.DataUnavailable as exc:
            st.warning(f"The query failed: {exc}", icon=":material/warning:")
            return
        st.caption(f"{res.frame.height:,} rows · {res.seconds * 1000:.0f} ms"
                   + (f" · only the first {ROW_LIMIT:,} rows are shown" if res.truncated
                      else ""))
        st.dataframe(res.frame, hide_index=True, width="stretch")
        st.download_button("Download CSV", res.frame.write_csv(), file_name="ssl_wc_query.csv",
                           mime="text/csv", on_click="ignore", icon=":material/download:")


def _run(sql: str) -> data.QueryResult:
    """Run once per query text and warehouse state (reruns reuse the result)."""
    key = (sql, data.state_token())
    cache = st.session_state.setdefault("_sql_results", {})
    if key not in cache:
        cache.clear()
        cache[key] = data.run_user_sql(sql, limit=ROW_LIMIT)
    return cache[key]  # type: ignore[no-any-return]


ui.ensure_app()
with ui.guard():
    render()
