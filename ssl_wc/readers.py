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
- DuckDB shares one database instance among the connections of a process to the same
  file path, and that instance lives while any of them is open. So a new catalog is
  only opened as a new instance once every connection to the old one is closed: while a
  retired connection is still busy, queries get a one-off connection (closed after the
  query) instead of a pooled one. Each generation also keeps one *anchor* connection
  that registered the project's Python UDFs: they belong to the instance and stop
  working when the connection that registered them closes, and other readers of the
  same file in this process use them.
- A connection that changes instance-wide settings (the SQL page's sandbox locks the
  configuration and fences file access) must not share the pool's instance:
  :meth:`ReaderPool.exclusive` closes the pool's connections, holds new checkouts back
  while such a connection is open, and lets the pool open a fresh instance afterwards.
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

#: Instance-wide settings made once per generation (on its anchor connection): Parquet
#: footers and other metadata are cached in memory, so a query for one image does not
#: parse the footer of every file of a table again (binding a view reads them all).
INSTANCE_SETTINGS = ("SET GLOBAL parquet_metadata_cache = true",
                     "SET GLOBAL enable_object_cache = true")


@dataclass
class _Generation:
    """The connections opened on one catalog identity."""

    identity: str
    anchor: duckdb.DuckDBPyConnection | None = None
    idle: list[duckdb.DuckDBPyConnection] = field(default_factory=list)
    busy: int = 0
    retired: bool = False
    transient: bool = False  # opened while an older generation was busy: not pooled

    def close_idle(self) -> None:
        while self.idle:
            self.idle.pop().close()
        if self.anchor is not None and self.busy == 0:
            self.anchor.close()
            self.anchor = None


class ReaderPool:
    """Read-only connections per warehouse, reused while its catalog is unchanged."""

    def __init__(self, max_idle: int = 4) -> None:
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._gens: dict[str, _Generation] = {}
        self._draining: dict[str, list[_Generation]] = {}  # retired, still busy
        self._gate = threading.Condition(self._lock)
        self._exclusive: set[str] = set()  # warehouses held by exclusive()
        self.opened = 0  # query connections opened so far (tests and the benchmark)

    @staticmethod
    def _key(warehouse: WarehousePaths | str | os.PathLike[str]) -> tuple[str, Path]:
        root = (warehouse.root if isinstance(warehouse, WarehousePaths)
                else WarehousePaths.of(warehouse).root)
        return root.as_posix(), root

    def _checkout(self, key: str, root: Path) -> tuple[_Generation, duckdb.DuckDBPyConnection]:
        with self._lock:
            self._gate.wait_for(lambda: key not in self._exclusive)
            identity = commit_state(root)
            gen = self._gens.get(key)
            if gen is not None and gen.identity != identity:
                self._retire(key, gen)
                gen = None
            if gen is not None and gen.idle:
                gen.busy += 1
                return gen, gen.idle.pop()
            self._draining[key] = [g for g in self._draining.get(key, []) if g.busy]
            if self._draining[key]:  # the old instance is still open: a one-off reader
                once = _Generation(identity, transient=True, busy=1)
                self.opened += 1
                return once, open_reader(root, udfs=False)
            if gen is None:
                anchor = open_reader(root, udfs=True)  # may rebuild a stale catalog first
                for setting in INSTANCE_SETTINGS:
                    anchor.execute(setting)
                gen = self._gens[key] = _Generation(commit_state(root), anchor=anchor)
            con = open_reader(root, udfs=False)
            self.opened += 1
            gen.busy += 1
            return gen, con

    def _retire(self, key: str, gen: _Generation) -> None:
        gen.retired = True
        gen.close_idle()
        if self._gens.get(key) is gen:
            del self._gens[key]
        if gen.busy:
            self._draining.setdefault(key, []).append(gen)

    def _checkin(self, gen: _Generation, con: duckdb.DuckDBPyConnection, ok: bool) -> None:
        with self._lock:
            gen.busy -= 1
            if ok and not gen.retired and not gen.transient and len(gen.idle) < self.max_idle:
                gen.idle.append(con)
                return
            con.close()
            if gen.retired:
                gen.close_idle()  # the anchor too, once nothing of it is busy
            self._gate.notify_all()

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

    @contextmanager
    def exclusive(self, warehouse: WarehousePaths | str | os.PathLike[str]) -> Iterator[None]:
        """While inside, the pool holds no connection to the warehouse's catalog and hands
        none out (checkouts wait): for a connection of its own instance, e.g. one that
        changes instance-wide settings."""
        key, _ = self._key(warehouse)
        with self._lock:
            self._gate.wait_for(lambda: key not in self._exclusive)
            self._exclusive.add(key)
            gen = self._gens.get(key)
            if gen is not None:
                self._retire(key, gen)
            self._gate.wait_for(lambda: not any(g.busy for g in self._draining.get(key, [])))
            self._draining.pop(key, None)
        try:
            yield
        finally:
            with self._lock:
                self._exclusive.discard(key)
                self._gate.notify_all()

    def clear(self) -> None:
        """Close every idle connection and forget every catalog (busy ones close when
        they come back)."""
        with self._lock:
            for key, gen in list(self._gens.items()):
                self._retire(key, gen)
