"""Runs: every job writes through a :class:`Run`, which makes its output all-or-nothing.

Protocol (each step crash-safe):

1. ``runs/<id>.json`` records the run as ``running`` (pid, host, config).
2. Facts stream into ``lake/<table>/[k=v/].<id>-<n>.parquet.<pid>.tmp`` files, one per
   table and partition, appended batch by batch (bounded memory).
3. On commit each file is closed, fsynced and renamed to ``<id>-<n>.parquet``, then
   ``manifests/<id>.json`` (files, sizes, sha256, row counts, units) is published
   atomically. That rename is the commit point: views list only files named by a
   manifest, so a run killed before it leaves nothing visible (``ssl-wc gc`` removes
   the leftovers) and the next run redoes its units.
4. The run record is updated and the catalog is rebuilt. A kill between the commit
   point and this rebuild loses nothing: every later connection finds the catalog
   older than the manifests and rebuilds it first (``ssl_wc.warehouse.ensure_catalog``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import socket
import subprocess
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ssl_wc.lake.atomic import fsync_dir, publish, sha256_file, tmp_path_for, write_json_atomic
from ssl_wc.lake.faults import fault_point
from ssl_wc.lake.schemas import TableSpec, spec
from ssl_wc.paths import WarehousePaths

LOG = logging.getLogger("ssl_wc")

PARQUET_OPTS: dict[str, Any] = {"compression": "zstd", "compression_level": 3,
                                "write_statistics": True, "use_dictionary": True}


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable short hash of a JSON-able config (sorted keys)."""
    blob = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_CODE_VERSION: str | None = None


def code_version() -> str:
    """Package version plus the git commit of the checkout when there is one."""
    global _CODE_VERSION
    if _CODE_VERSION is None:
        from ssl_wc import __version__

        here = Path(__file__).resolve().parents[2]
        rev = ""
        if (here / ".git").exists():
            with contextlib.suppress(Exception):
                rev = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True, timeout=5).stdout.strip()
        _CODE_VERSION = f"{__version__}+{rev}" if rev else __version__
    return _CODE_VERSION


class _PartWriter:
    """One open Parquet file of a run: a table and one partition."""

    def __init__(self, final: Path, schema: pa.Schema) -> None:
        self.final = final
        self.tmp = tmp_path_for(final)
        for attempt in range(3):
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.writer = pq.ParquetWriter(self.tmp, schema, **PARQUET_OPTS)
                break
            except FileNotFoundError:  # `gc` removed the empty folder in between
                if attempt == 2:
                    raise
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        fault_point("write")
        self.writer.write_table(table)
        self.rows += table.num_rows

    def finish(self) -> None:
        self.writer.close()
        fault_point("publish")
        publish(self.tmp, self.final)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        for p in (self.tmp, self.final):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


class RunFailed(RuntimeError):
    """A run ended without committing; nothing it wrote is visible."""


class Run:
    """One job execution that writes facts atomically (see module docstring)."""

    def __init__(self, warehouse: WarehousePaths, kind: str, config: Mapping[str, Any],
                 *, device: str = "cpu", rebuild_catalog: bool = True) -> None:
        self.wh = warehouse.ensure()
        self.kind = kind
        self.config = dict(config)
        self.config_hash = config_hash(self.config)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        self.run_id = f"{stamp}-{kind.replace(' ', '_')}-{uuid.uuid4().hex[:6]}"
        self.device = device
        self.rebuild = rebuild_catalog
        self.started_at = utc_now()
        self._t0 = time.monotonic()
        self._parts: dict[tuple[str, tuple[tuple[str, str], ...]], _PartWriter] = {}
        self._units: dict[str, set[str]] = {}
        self._seq = 0
        self.status = "new"
        self.summary: dict[str, Any] = {}
        self.errors: list[dict[str, str]] = []

    # ----------------------------------------------------------------- lifecycle
    @property
    def record_path(self) -> Path:
        return self.wh.runs / f"{self.run_id}.json"

    @property
    def manifest_path(self) -> Path:
        return self.wh.manifests / f"{self.run_id}.json"

    def record(self, **extra: Any) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "kind": self.kind, "status": self.status,
            "started_at": self.started_at, "ended_at": extra.pop("ended_at", None),
            "config": self.config, "config_hash": self.config_hash,
            "code_version": code_version(), "host": socket.gethostname(), "pid": os.getpid(),
            "device": self.device, "python": platform.python_version(),
            "summary": self.summary, "n_errors": len(self.errors), **extra,
        }

    def start(self) -> Run:
        self.status = "running"
        write_json_atomic(self.record_path, self.record())
        try:
            fault_point("start")
            if self.rebuild:
                self._refresh_catalog()
        except BaseException as exc:
            self.fail(exc)
            raise
        return self

    def __enter__(self) -> Run:
        return self.start() if self.status == "new" else self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        if e is None:
            if self.status == "running":
                self.commit()
        elif self.status == "running":
            self.fail(e)

    # ----------------------------------------------------------------- writing
    def write(self, table_name: str, data: pa.Table | Mapping[str, Any],
              unit_key: str | Iterable[str], partition: Mapping[str, str] | None = None) -> int:
        """Append rows to ``table_name``; ``unit_key`` is one key or one per row."""
        if self.status != "running":
            raise RunFailed(f"run {self.run_id} is {self.status}, cannot write")
        ts = spec(table_name)
        table = data if isinstance(data, pa.Table) else pa.table(dict(data))
        n = table.num_rows
        if isinstance(unit_key, str):
            keys = pa.array([unit_key] * n, pa.string())
            self._units.setdefault(table_name, set()).add(unit_key)
        else:
            keys = pa.array(list(unit_key), pa.string())
            self._units.setdefault(table_name, set()).update(keys.to_pylist())
        part = dict(partition or {})
        missing = [c for c in ts.partition_by if c not in part]
        if missing:
            raise ValueError(f"{table_name}: partition value(s) {missing} not given")
        cols: dict[str, Any] = {"run_id": pa.array([self.run_id] * n, pa.string()),
                                "unit_key": keys}
        for f in ts.file_schema:
            if f.name in cols:
                continue
            if f.name not in table.column_names:
                raise ValueError(f"{table_name}: column {f.name!r} missing from written data")
            cols[f.name] = table.column(f.name).cast(f.type)
        out = pa.table(cols, schema=ts.file_schema)
        if n:
            self._part(ts, part).write(out)
        return n

    def add_units(self, table_name: str, keys: Iterable[str]) -> None:
        """Declare units done without rows (e.g. an image that yields nothing)."""
        spec(table_name)
        self._units.setdefault(table_name, set()).update(keys)

    def log_error(self, step: str, item: str, error: BaseException | str) -> None:
        """Record a per-item failure (written to ``ingest_errors`` on commit)."""
        self.errors.append({"step": step, "item": item, "error": str(error)})

    def _part(self, ts: TableSpec, part: dict[str, str]) -> _PartWriter:
        key = (ts.name, tuple((c, str(part[c])) for c in ts.partition_by))
        if key not in self._parts:
            folder = self.wh.lake / ts.name
            for c, v in key[1]:
                folder = folder / f"{c}={_safe_part(v)}"
            self._seq += 1
            self._parts[key] = _PartWriter(folder / f"{self.run_id}-{self._seq:04d}.parquet",
                                           ts.file_schema)
        return self._parts[key]

    # ----------------------------------------------------------------- ending
    def commit(self, status: str = "committed", **summary: Any) -> dict[str, Any]:
        """Publish every file, then the manifest (the commit point)."""
        if self.status != "running":
            raise RunFailed(f"run {self.run_id} is {self.status}, cannot commit")
        if self.errors:
            self.write("ingest_errors", pa.table({
                "step": [e["step"] for e in self.errors], "item": [e["item"] for e in self.errors],
                "error": [e["error"] for e in self.errors]}), unit_key=self.run_id)
            if status == "committed":
                status = "partial"
        self.summary.update(summary)
        files: list[dict[str, Any]] = []
        try:
            for (table_name, _), pw in sorted(self._parts.items()):
                pw.finish()
                rel = pw.final.relative_to(self.wh.root).as_posix()
                files.append({"table": table_name, "path": rel, "rows": pw.rows,
                              "bytes": pw.final.stat().st_size,
                              "sha256": sha256_file(pw.final)})
            rows: dict[str, int] = {}
            for f in files:
                rows[f["table"]] = rows.get(f["table"], 0) + f["rows"]
            self.status = status
            ended = utc_now()
            manifest = self.record(ended_at=ended, committed_at=ended, files=files,
                                   row_counts=rows, seconds=time.monotonic() - self._t0,
                                   units={t: sorted(k) for t, k in self._units.items()})
            fault_point("manifest")
            write_json_atomic(self.manifest_path, manifest)
        except BaseException as exc:
            self.status = "running"
            self.fail(exc)
            raise
        manifest.pop("units")
        # Past the commit point: the run is committed whatever happens next. A failure
        # to update the run record or the catalog is reported, not raised; the manifest
        # holds the status, and the next connection rebuilds a stale catalog.
        try:
            fault_point("record")
            write_json_atomic(self.record_path, manifest | {"files": len(files)})
            if self.rebuild:
                fault_point("catalog")
                # not forced: a reader that saw the new manifest may have rebuilt it
                self._refresh_catalog(force=False)
        except Exception as exc:
            LOG.warning("run %s is committed, but updating its record or the catalog "
                        "failed (%s); the next ssl-wc command or reader catches up",
                        self.run_id, exc)
        return manifest

    def fail(self, error: BaseException | str) -> None:
        """End without committing: remove this run's files, record the error."""
        for pw in self._parts.values():
            pw.abort()
        for folder in {pw.final.parent for pw in self._parts.values()}:
            fsync_dir(folder)
        self.status = "failed"
        if isinstance(error, BaseException):
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
        else:
            text = error
        with contextlib.suppress(Exception):
            errors = self.errors or [{"step": self.kind, "item": "", "error": text}]
            write_json_atomic(self.record_path, self.record(
                ended_at=utc_now(), error=text, errors=errors,
                seconds=time.monotonic() - self._t0))
            if self.rebuild:
                self._refresh_catalog()

    def skip(self, reason: str) -> None:
        """End a run that had nothing to do (recorded in history, no manifest)."""
        for pw in self._parts.values():
            pw.abort()
        self.status = "skipped"
        self.summary["skipped"] = reason
        write_json_atomic(self.record_path, self.record(ended_at=utc_now(),
                                                        seconds=time.monotonic() - self._t0))
        if self.rebuild:
            self._refresh_catalog()

    def _refresh_catalog(self, *, force: bool = True) -> None:
        from ssl_wc.lake.catalog import rebuild_catalog

        rebuild_catalog(self.wh, force=force)


def _safe_part(v: str) -> str:
    """Percent-encode a hive partition value (DuckDB decodes it back when reading)."""
    from urllib.parse import quote

    return quote(v, safe="-_.")
