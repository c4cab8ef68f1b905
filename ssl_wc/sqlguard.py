"""Read-only, sandboxed SQL for people: the ``ssl-wc sql`` command and the SQL page.

Two fences: only ``SELECT``/``EXPLAIN``/``DESCRIBE``-like statements pass the statement
check, and the connection is locked down so that it can read the lake and nothing
else (``enable_external_access = false`` with the lake as the only allowed folder,
configuration locked). ``allow_files=True`` lifts the file fence only.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from ssl_wc.paths import WarehousePaths
from ssl_wc.warehouse import open_reader

ALLOWED = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


class QueryRefused(ValueError):
    """A statement that the read-only SQL door does not run."""


def check_statements(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but read-only queries (writes, DDL, ATTACH, COPY, SET, INSTALL...)."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"could not parse the query: {exc}") from exc
    if not statements:
        raise QueryRefused("empty query")
    for st in statements:
        if st.type not in ALLOWED:
            name = str(st.type).split(".")[-1]
            raise QueryRefused(f"only read-only queries are allowed here; refused a {name} "
                               f"statement")
        text = st.query.strip().lower()
        if text.startswith(("pragma", "call")):
            raise QueryRefused("PRAGMA/CALL statements are not allowed here")


def open_sandboxed(warehouse: str | os.PathLike[str] | Path | None = None,
                   *, allow_files: bool = False) -> duckdb.DuckDBPyConnection:
    """A reader connection that can read the lake and nothing else."""
    wh = WarehousePaths.of(warehouse)
    con = open_reader(wh.root)
    if not allow_files:
        lake = wh.lake.as_posix().replace("'", "''")
        con.execute(f"SET allowed_directories = ['{lake}/']")
        con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_readonly(sql: str, warehouse: str | os.PathLike[str] | Path | None = None,
                 params: object = None, *, allow_files: bool = False,
                 limit: int | None = None) -> duckdb.DuckDBPyRelation | None:
    """Check then run ``sql``; returns the relation of the last statement."""
    con = open_sandboxed(warehouse, allow_files=allow_files)
    check_statements(con, sql)
    statements = con.extract_statements(sql)
    rel = None
    for st in statements:
        rel = con.sql(st.query, params=params) if params is not None else con.sql(st.query)
    if rel is not None and limit is not None:
        rel = rel.limit(limit)
    return rel
