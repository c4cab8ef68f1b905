"""Where a warehouse keeps its files.

Layout of a warehouse folder::

    <wh>/ssl_wc.duckdb          catalog: macros, views and small metadata tables
    <wh>/lake/<table>/[k=v/]    Parquet facts, one file per run, table and partition
    <wh>/manifests/<run>.json   commit records: a run is visible once its manifest exists
    <wh>/runs/<run>.json        run history (running, committed, failed, ...)
    <wh>/artifacts/             checkpoints, splits and other non-tabular outputs
    <wh>/.locks/                advisory locks (released by the OS when a holder dies)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "SSL_WC_WAREHOUSE"
CATALOG_NAME = "ssl_wc.duckdb"


def resolve_warehouse(warehouse: str | os.PathLike[str] | None = None) -> Path:
    """Warehouse folder: the argument, else ``$SSL_WC_WAREHOUSE``, else ``./warehouse``."""
    chosen = warehouse if warehouse is not None else os.environ.get(ENV_VAR) or "warehouse"
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class WarehousePaths:
    """All paths of one warehouse folder."""

    root: Path

    @classmethod
    def of(cls, warehouse: str | os.PathLike[str] | None = None) -> WarehousePaths:
        return cls(resolve_warehouse(warehouse))

    @property
    def catalog(self) -> Path:
        return self.root / CATALOG_NAME

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def locks(self) -> Path:
        return self.root / ".locks"

    @property
    def tmp(self) -> Path:
        return self.root / ".tmp"

    def ensure(self) -> WarehousePaths:
        for p in (self.root, self.lake, self.manifests, self.runs, self.artifacts, self.locks,
                  self.tmp):
            p.mkdir(parents=True, exist_ok=True)
        return self

    def exists(self) -> bool:
        return self.catalog.exists() or self.manifests.exists()
