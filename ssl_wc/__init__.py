"""ssl-wc: do self-supervised vision models look where human experts look?

Public API (imports stay light; torch is only imported by model code):

- ``ssl_wc.connect(warehouse=None)``: a read-only DuckDB connection to the warehouse
  catalog with the project's macros, views and Python UDFs.
- ``ssl_wc.query(sql, params=None, warehouse=None)``: run a query, get a polars DataFrame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import polars as pl


def connect(warehouse: str | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse read-only through the project's connection factory."""
    from ssl_wc.warehouse import open_reader

    return open_reader(warehouse)


def query(sql: str, params: Any = None, warehouse: str | None = None) -> pl.DataFrame:
    """Run ``sql`` (with ``?``/``$name`` parameters) and return a polars DataFrame."""
    con = connect(warehouse)
    try:
        return con.sql(sql, params=params).pl()
    finally:
        con.close()


__all__ = ["__version__", "connect", "query"]
