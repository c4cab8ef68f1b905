"""The one connection factory: every project reader opens the warehouse through here.

A reader connection is a short-lived read-only connection to the catalog file, with
the project's Python UDFs registered and the lake root set (``ssl_wc_root``). Readers
never hold a lock while they read (writers swap in a new catalog file instead of
writing the open one), so a dashboard left open never blocks a scheduled ingest. A
reader that finds the catalog stale rebuilds it first, under the same short lock the
writers take for their rebuilds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ssl_wc.lake.catalog import (
    CatalogStamp,
    history_token,
    read_stamp,
    rebuild_catalog,
    set_root,
    stale_reason,
)
from ssl_wc.paths import WarehousePaths
from ssl_wc.sqlfiles import named_query

LOG = logging.getLogger("ssl_wc")

Warehouse = WarehousePaths | str | os.PathLike[str] | None


class WarehouseMissing(FileNotFoundError):
    """No warehouse at the given place."""


@dataclass
class _Seen:
    """What this process last learned about one warehouse's catalog."""

    catalog: tuple[int, int] = (0, 0)          # inode, mtime of the catalog file
    stamp: CatalogStamp | None = None          # what that catalog reflects
    folders: tuple[int, int] = (-1, -1)        # mtimes of manifests/ and runs/ when listed
    token: str = ""                            # history token of that listing


_SEEN: dict[str, _Seen] = {}


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


def ensure_catalog(wh: WarehousePaths) -> None:
    """Make sure the catalog shows the warehouse as it is before anyone reads it.

    Builds a missing catalog and rebuilds a stale one (:func:`stale_reason`: runs
    started or committed since it was built, a run it shows as running whose process
    is gone, other SQL or schemas). Cheap when nothing changed: a ``stat`` of the
    catalog and of the manifests and runs folders, a pid check per running run; the
    catalog's stamp is read once per catalog version and the folders are listed only
    when they changed.
    A warehouse that this process cannot write is read as it is.
    """
    key = wh.root.as_posix()
    seen = _SEEN.setdefault(key, _Seen())
    try:
        st = wh.catalog.stat()
    except FileNotFoundError:
        if not wh.manifests.exists():
            raise WarehouseMissing(
                f"no warehouse at {wh.root}: run `ssl-wc demo` or an `ssl-wc ingest` command "
                f"first, or pass --warehouse / set SSL_WC_WAREHOUSE") from None
        rebuild_catalog(wh)
        return
    if seen.catalog != (st.st_ino, st.st_mtime_ns):
        seen.catalog, seen.stamp = (st.st_ino, st.st_mtime_ns), read_stamp(wh.catalog)
    folders = (_mtime(wh.manifests), _mtime(wh.runs))
    if folders != seen.folders:
        seen.folders, seen.token = folders, history_token(wh)
    reason = stale_reason(wh, seen.stamp, seen.token)
    if reason is None:
        return
    if not os.access(wh.root, os.W_OK):
        LOG.warning("%s: %s, and this process cannot rebuild it (no write access); "
                    "reading it as it is", wh.catalog, reason)
        return
    try:
        rebuild_catalog(wh, force=False)
    except (OSError, duckdb.Error, RuntimeError) as exc:  # disk full, lock timeout, ...
        LOG.warning("%s: %s, and rebuilding it failed (%s); reading it as it is",
                    wh.catalog, reason, exc)


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
    set_root(con, wh.root)
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
