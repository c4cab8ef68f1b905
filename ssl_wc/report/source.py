"""The report's one reader: named queries from ``sql/queries/`` on one read-only connection.

The report asks the same named queries as the dashboards (``dash_*``) plus a few of its
own (``report_*``); it never formats values into SQL. One connection serves the whole
build (the catalog is a consistent snapshot even if an ingest swaps in a new one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from ssl_wc.paths import WarehousePaths
from ssl_wc.sqlfiles import named_query
from ssl_wc.warehouse import open_reader


@dataclass
class Source:
    """A read-only connection to one warehouse with a memo of query results."""

    wh: WarehousePaths
    con: duckdb.DuckDBPyConnection
    _memo: dict[tuple[str, tuple[tuple[str, Any], ...]], pl.DataFrame] = field(
        default_factory=dict)

    @classmethod
    def open(cls, wh: WarehousePaths) -> Source:
        return cls(wh, open_reader(wh, udfs=False))

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def q(self, name: str, params: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """Result of named query ``name`` (memoised on name and parameters)."""
        key = (name, tuple(sorted((params or {}).items(), key=lambda kv: kv[0])))
        key = (name, tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in key[1]))
        if key not in self._memo:
            sql = named_query(name)
            rel = self.con.sql(sql, params=dict(params)) if params else self.con.sql(sql)
            self._memo[key] = rel.pl()
        return self._memo[key]

    def relations(self) -> set[str]:
        """Names of the catalog's user-facing views and tables."""
        return set(self.q("dash_relations")["name"].to_list())
