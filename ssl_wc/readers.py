"""Cached read-only connections for long-lived readers (the dashboards).

Opening a reader (:func:`ssl_wc.warehouse.open_reader`) costs tens of milliseconds:
more than most dashboard queries. A :class:`ReaderPool` keeps the connections it opened
and hands them out again, one query at a time each, for as long as the catalog file
keeps its identity (inode, modification time, size: :func:`ssl_wc.warehouse.commit_state`).

Why this never blocks a writer and never serves stale data:

- Writers never open the catalog for writing in place: they build a new file and
  rename it over the old one. A cached reader holds the old file (inode), which stays
  readable and consistent, and takes no lock a writer waits for.
- Every checkout compares the catalog's identity (one ``stat``) with the identity the
  pooled connections were opened on. When a new catalog has been swapped in, the old
  connections are retired: idle ones are closed at once, busy ones when their query
  returns, and the query gets a connection to the new catalog.
- Connections are opened through ``open_reader`` (never ``cursor()`` copies), so each
  one carries whatever that factory sets up; a connection is used by one thread at a
  time; one that raised is closed rather than reused.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ssl_wc.paths import WarehousePaths
from ssl_wc.warehouse import commit_state, open_reader


@dataclass
class _Generation:
    """The connections opened on one catalog identity."""

    identity: str
    idle: list[duckdb.DuckDBPyConnection] = field(default_factory=list)
    busy: int = 0
    retired: bool = False

    def close_idle(self) -> None:
        while self.idle:
            self.idle.pop().close()


class ReaderPool:
    """Read-only connections per warehouse, reused while its catalog is unchanged."""

    def __init__(self, max_idle: int = 4) -> None:
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._gens: dict[str, _Generation] = {}
        self.opened = 0  # connections opened so far (tests and the benchmark read it)

    @staticmethod
    def _key(warehouse: WarehousePaths | str | os.PathLike[str]) -> tuple[str, Path]:
        root = (warehouse.root if isinstance(warehouse, WarehousePaths)
                else WarehousePaths.of(warehouse).root)
        return root.as_posix(), root

    def _checkout(self, key: str, root: Path) -> tuple[_Generation, duckdb.DuckDBPyConnection]:
        with self._lock:
            identity = commit_state(root)
            gen = self._gens.get(key)
            if gen is not None and gen.identity != identity:
                self._retire(key, gen)
                gen = None
            if gen is not None and gen.idle:
                gen.busy += 1
                return gen, gen.idle.pop()
            con = open_reader(root, udfs=False)  # may rebuild a stale catalog first
            self.opened += 1
            identity = commit_state(root)
            gen = self._gens.get(key)
            if gen is None or gen.identity != identity:
                if gen is not None:
                    self._retire(key, gen)
                gen = self._gens[key] = _Generation(identity)
            gen.busy += 1
            return gen, con

    def _retire(self, key: str, gen: _Generation) -> None:
        gen.retired = True
        gen.close_idle()
        if self._gens.get(key) is gen:
            del self._gens[key]

    def _checkin(self, gen: _Generation, con: duckdb.DuckDBPyConnection, ok: bool) -> None:
        with self._lock:
            gen.busy -= 1
            if ok and not gen.retired and len(gen.idle) < self.max_idle:
                gen.idle.append(con)
                return
        con.close()

    @contextmanager
    def connection(self, warehouse: WarehousePaths | str | os.PathLike[str]
                   ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read-only connection to the warehouse's current catalog, for one query
        (or a few) in this thread; returned to the pool afterwards."""
        key, root = self._key(warehouse)
        gen, con = self._checkout(key, root)
        ok = False
        try:
            yield con
            ok = True
        finally:
            self._checkin(gen, con, ok)

    def clear(self) -> None:
        """Close every idle connection and forget every catalog (busy ones close when
        they come back)."""
        with self._lock:
            for key, gen in list(self._gens.items()):
                self._retire(key, gen)
