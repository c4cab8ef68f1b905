"""The one connection factory: every project reader opens the warehouse through here.

A reader connection is a short-lived read-only connection to the catalog file, with
the project's Python UDFs registered. Readers never take a lock that writers wait for
(writers swap in a new catalog file instead of writing the open one), so a dashboard
left open never blocks a scheduled ingest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ssl_wc.lake.catalog import catalog_meta, definitions_hash, rebuild_catalog
from ssl_wc.paths import WarehousePaths
from ssl_wc.sqlfiles import named_query

Warehouse = WarehousePaths | str | os.PathLike[str] | None


class WarehouseMissing(FileNotFoundError):
    """No warehouse at the given place."""


_CHECKED: dict[str, tuple[int, int]] = {}


def ensure_catalog(wh: WarehousePaths) -> None:
    """Build the catalog if missing, or rebuild it if the folder was moved or copied or
    the project's SQL / schemas changed since it was built.

    The location check opens the catalog once per catalog version (cached on its inode
    and mtime), so repeated reader connections cost one open, not two.
    """
    try:
        st = wh.catalog.stat()
        if _CHECKED.get(wh.root.as_posix()) == (st.st_ino, st.st_mtime_ns):
            return
    except FileNotFoundError:
        pass
    if not wh.catalog.exists():
        if not wh.manifests.exists():
            raise WarehouseMissing(
                f"no warehouse at {wh.root}: run `ssl-wc demo` or an `ssl-wc ingest` command "
                f"first, or pass --warehouse / set SSL_WC_WAREHOUSE")
        rebuild_catalog(wh)
        return
    meta = catalog_meta(wh.catalog)
    stale = (meta.get("root") != wh.root.as_posix()
             or meta.get("definitions") != definitions_hash())
    if stale and os.access(wh.root, os.W_OK):
        rebuild_catalog(wh)
    st = wh.catalog.stat()
    _CHECKED[wh.root.as_posix()] = (st.st_ino, st.st_mtime_ns)


def register_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Register the metric kernels as Python UDFs (project connections only)."""
    try:
        from ssl_wc.metrics.udf import register_udfs
    except ImportError:
        return
    register_udfs(con)


def _paths(warehouse: Warehouse) -> WarehousePaths:
    return warehouse if isinstance(warehouse, WarehousePaths) else WarehousePaths.of(warehouse)


def open_reader(warehouse: Warehouse = None, *, udfs: bool = True) -> duckdb.DuckDBPyConnection:
    """Read-only connection to the warehouse catalog (UDFs registered unless ``udfs``
    is false: jobs read plain data and skip the import)."""
    wh = _paths(warehouse)
    ensure_catalog(wh)
    con = duckdb.connect(str(wh.catalog), read_only=True)
    if udfs:
        register_functions(con)
    return con


def read_named(warehouse: Warehouse, name: str,
               params: Mapping[str, Any] | None = None) -> pl.DataFrame:
    """Run the named query ``sql/queries/<name>.sql`` on a short-lived reader (no UDFs)."""
    con = open_reader(warehouse, udfs=False)
    try:
        return con.sql(named_query(name), params=dict(params) if params else None).pl()
    finally:
        con.close()


def commit_state(warehouse: str | os.PathLike[str] | Path | None = None) -> str:
    """A cheap token that changes whenever a new catalog is swapped in."""
    wh = WarehousePaths.of(warehouse)
    try:
        st = wh.catalog.stat()
    except FileNotFoundError:
        return "missing"
    return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"
