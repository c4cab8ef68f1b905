"""The catalog file ``<wh>/ssl_wc.duckdb``: rebuilt whole, then swapped in atomically.

DuckDB allows one writer or many readers of a database file, never both. The catalog
is therefore never opened for writing in place: :func:`rebuild_catalog` builds a new
file under a temporary name from the committed manifests and the SQL in ``sql/``, then
renames it over the old one. Readers holding the old file keep reading its (still
valid) file list; new readers get the new one. The only lock is a short ``flock``
around the rebuild (a fraction of a second), never held while a query runs.

Views read Parquet through explicit lists of committed files, so no file outside a
manifest (a killed run's leftovers, a temporary file) is ever read. The lists hold
paths relative to the warehouse folder, resolved by the ``ssl_wc_files`` macro against
the session variable ``ssl_wc_root`` (set by every ssl-wc connection) or the current
directory: a moved or copied warehouse opens unchanged, also from a plain ``duckdb``
session started in its folder.

Commit visibility is an invariant, not a hope: the catalog records which manifests it
reflects (:class:`CatalogStamp`); :func:`stale_reason` compares that with the
manifests on disk and with the liveness of the runs it shows as running, and every
connection (:func:`ssl_wc.warehouse.ensure_catalog`) rebuilds a stale catalog first.
A job killed after its commit point but before its catalog rebuild is therefore
visible to the next reader or command.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ssl_wc.lake.atomic import fsync_dir, fsync_file
from ssl_wc.lake.faults import fault_point
from ssl_wc.lake.locks import FileLock
from ssl_wc.lake.schemas import TABLES, TableSpec, duckdb_type
from ssl_wc.paths import WarehousePaths

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

#: Storage format of the catalog file: the newest one that the DuckDB command line on
#: the package index (``duckdb-cli`` 1.5.x) can open, so the plain ``duckdb`` door works.
STORAGE_COMPATIBILITY = "v1.5.0"

#: Session variable holding the warehouse folder (see ``sql/lake/paths.sql``).
ROOT_VARIABLE = "ssl_wc_root"


def lake_sql_files() -> list[Path]:
    """Macros the lake views need (``sql/lake/``), applied before them."""
    return sorted((SQL_DIR / "lake").glob("*.sql"))


def sql_files() -> list[Path]:
    """The project's SQL files (macros, then views), applied in name order."""
    return sorted(SQL_DIR.glob("*.sql"))


@functools.cache
def definitions_hash() -> str:
    """Hash of what a catalog is built from besides the data: the SQL files and the
    table schemas. A catalog built from other definitions is rebuilt on open."""
    h = hashlib.sha256(STORAGE_COMPATIBILITY.encode())
    for p in lake_sql_files() + sql_files():
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update(repr(sorted((n, str(t.schema)) for n, t in TABLES.items())).encode())
    return h.hexdigest()[:16]


def set_root(con: duckdb.DuckDBPyConnection, root: Path) -> None:
    """Point this connection's lake paths at ``root`` (the ``ssl_wc_root`` variable)."""
    con.execute(f"SET VARIABLE {ROOT_VARIABLE} = {_sql_str(root.as_posix())}")


def published_names(folder: Path) -> list[str]:
    """Names of the published JSON records in ``folder`` (temporaries excluded), sorted."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.endswith(".json") and not n.startswith("."))


def manifest_names(wh: WarehousePaths) -> list[str]:
    """Names of the published manifests, sorted."""
    return published_names(wh.manifests)


def history_token(wh: WarehousePaths) -> str:
    """A digest of which manifests and run records exist: changes exactly when a run
    starts or commits (or a record is removed by hand). A catalog built under another
    token does not show every commit or run."""
    blob = "\n".join(manifest_names(wh)) + "\n--\n" + "\n".join(published_names(wh.runs))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class LakeState:
    """What the manifests say: committed runs, their files and the live units."""

    manifests: list[dict[str, Any]] = field(default_factory=list)
    live: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def commit_state(self) -> str:
        ids = ",".join(m["run_id"] for m in self.manifests)
        return hashlib.sha256(ids.encode()).hexdigest()[:16]


def read_manifests(wh: WarehousePaths) -> LakeState:
    """Load every manifest; unreadable ones are skipped (``ssl-wc check`` reports them)."""
    state = LakeState()
    for name in manifest_names(wh):
        try:
            state.manifests.append(json.loads((wh.manifests / name).read_text()))
        except (OSError, ValueError):
            continue
    state.manifests.sort(key=lambda m: (m.get("committed_at", ""), m["run_id"]))
    for m in state.manifests:
        for table, keys in m.get("units", {}).items():
            for k in keys:
                state.live[(table, k)] = m["run_id"]
    return state


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_alive(rec: Mapping[str, Any]) -> bool:
    """Whether a run record's process may still be running: its pid lives on this host,
    or it ran on another host (whose processes cannot be checked from here)."""
    if rec.get("host") != socket.gethostname():
        return True
    try:
        return pid_alive(int(rec.get("pid") or 0))
    except (TypeError, ValueError):
        return False


def run_history(wh: WarehousePaths, state: LakeState) -> list[dict[str, Any]]:
    """Run records merged with manifests, status from facts: a committed manifest wins
    over its record, and a ``running`` run whose process is gone is ``interrupted``."""
    committed = {m["run_id"]: m for m in state.manifests}
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for p in sorted(wh.runs.glob("*.json")) if wh.runs.exists() else []:
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        rid = rec.get("run_id", p.stem)
        seen.add(rid)
        if rid in committed:
            rec = {**rec, **{k: v for k, v in committed[rid].items() if k != "units"}}
        elif rec.get("status") == "running" and not run_alive(rec):
            rec["status"] = "interrupted"
        out.append(rec)
    for rid, m in committed.items():
        if rid not in seen:
            out.append({k: v for k, v in m.items() if k != "units"})
    return out


def _typed_empty(ts: TableSpec) -> str:
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(f.type)}) AS \"{f.name}\"" for f in ts.schema)
    return f"SELECT {cols} WHERE false"


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def raw_view_sql(ts: TableSpec, full: list[str], partial: list[str]) -> str:
    """``SELECT`` over a table's committed files (paths relative to the warehouse
    folder), typed and in schema order."""
    cols = ", ".join(f"CAST(\"{f.name}\" AS {duckdb_type(f.type)}) AS \"{f.name}\""
                     for f in ts.schema)
    hive = ""
    if ts.partition_by:
        types = ", ".join(f"'{c}': 'VARCHAR'" for c in ts.partition_by)
        hive = f", hive_partitioning = true, hive_types = {{{types}}}"
    else:
        hive = ", hive_partitioning = false"

    def scan(files: list[str]) -> str:
        lst = ", ".join(_sql_str(f) for f in files)
        return f"read_parquet(ssl_wc_files([{lst}]), union_by_name = true{hive})"

    parts = []
    if full:
        parts.append(f"SELECT {cols} FROM {scan(full)}")
    if partial:
        parts.append(f"SELECT {cols} FROM {scan(partial)} WHERE (run_id, unit_key) IN "
                     f"(SELECT run_id, unit_key FROM _live_units WHERE tbl = '{ts.name}')")
    if not parts:
        return _typed_empty(ts)
    return "\nUNION ALL\n".join(parts)


def build_catalog_file(wh: WarehousePaths, target: Path, state: LakeState,
                       token: str) -> None:
    """Write a complete catalog database to ``target`` (which must not exist);
    ``token`` is the :func:`history_token` taken before ``state`` was read."""
    con = duckdb.connect(str(target),
                         config={"storage_compatibility_version": STORAGE_COMPATIBILITY})
    try:
        root = wh.root
        set_root(con, root)
        # committed files per table, split by whether every unit of the run is still live
        full: dict[str, list[str]] = {t: [] for t in TABLES}
        partial: dict[str, list[str]] = {t: [] for t in TABLES}
        live_rows: list[tuple[str, str, str]] = []
        for (tbl, unit), rid in state.live.items():
            live_rows.append((tbl, unit, rid))
        files_rows = []
        for m in state.manifests:
            units = m.get("units", {})
            for f in m.get("files", []):
                tbl = f["table"]
                files_rows.append((m["run_id"], tbl, f["path"], f["rows"], f["bytes"],
                                   f["sha256"]))
                if tbl not in TABLES:
                    continue
                keys = units.get(tbl, [])
                alive = sum(1 for k in keys if state.live.get((tbl, k)) == m["run_id"])
                if alive == len(keys):
                    full[tbl].append(f["path"])
                elif alive:
                    partial[tbl].append(f["path"])
        _create_table(con, "_live_units", ["tbl", "unit_key", "run_id"],
                      [pa.string()] * 3, live_rows)
        _create_table(con, "_manifest_files", ["run_id", "tbl", "path", "rows", "bytes", "sha256"],
                      [pa.string(), pa.string(), pa.string(), pa.int64(), pa.int64(),
                       pa.string()], files_rows)
        hist = run_history(wh, state)
        con.execute("""CREATE TABLE _runs (run_id VARCHAR, kind VARCHAR, status VARCHAR,
            started_at TIMESTAMPTZ, ended_at TIMESTAMPTZ, seconds DOUBLE, config_hash VARCHAR,
            config_json VARCHAR, code_version VARCHAR, host VARCHAR, pid INTEGER,
            device VARCHAR, row_counts_json VARCHAR, n_files INTEGER, n_errors INTEGER,
            error VARCHAR, summary_json VARCHAR)""")
        if hist:
            _insert_rows(con, "_runs", [(
                                r.get("run_id"), r.get("kind"), r.get("status"),
                                r.get("started_at"), r.get("ended_at"), r.get("seconds"),
                                r.get("config_hash"), json.dumps(r.get("config", {}),
                                                                 sort_keys=True),
                                r.get("code_version"), r.get("host"), r.get("pid"),
                                r.get("device"), json.dumps(r.get("row_counts", {}),
                                                            sort_keys=True),
                                len(r["files"]) if isinstance(r.get("files"), list)
                                else r.get("files"), r.get("n_errors", 0), r.get("error"),
                                json.dumps(r.get("summary", {}), sort_keys=True, default=str))
                                for r in hist])
        err_rows = [(r.get("run_id"), e.get("step", ""), e.get("item", ""), e.get("error", ""))
                    for r in hist if r.get("status") in ("failed", "interrupted")
                    for e in r.get("errors", [])]
        _create_table(con, "_run_errors", ["run_id", "step", "item", "error"],
                      [pa.string()] * 4, err_rows)
        con.execute("CREATE TABLE _catalog_meta (key VARCHAR, value VARCHAR)")
        con.executemany("INSERT INTO _catalog_meta VALUES (?, ?)", [
            ("root", root.as_posix()), ("commit_state", state.commit_state),
            ("history", token), ("definitions", definitions_hash()),
            ("built_at", dt.datetime.now(dt.UTC).isoformat()),
            ("n_manifests", str(len(state.manifests))),
            ("running", json.dumps(running_at_build(hist)))])
        _static_tables(con)
        for path in lake_sql_files():
            con.execute(path.read_text())
        for name, ts in TABLES.items():
            con.execute(f"CREATE VIEW _raw_{name} AS\n"
                        f"{raw_view_sql(ts, full[name], partial[name])}")
        for path in sql_files():
            try:
                con.execute(path.read_text())
            except duckdb.Error as exc:
                raise RuntimeError(f"{path.name}: {exc}") from exc
        con.execute("CHECKPOINT")
    finally:
        con.close()


def _create_table(con: duckdb.DuckDBPyConnection, name: str, cols: list[str],
                  types: list[pa.DataType], rows: list[tuple[Any, ...]]) -> None:
    """Create ``name`` from Python rows in one Arrow hand-over (executemany is slow)."""
    data = pa.table({c: pa.array([r[i] for r in rows], t)
                     for i, (c, t) in enumerate(zip(cols, types, strict=True))})
    con.register("_incoming", data)
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM _incoming")
    con.unregister("_incoming")


def _insert_rows(con: duckdb.DuckDBPyConnection, name: str, rows: list[tuple[Any, ...]]) -> None:
    """Insert Python rows into an existing table through one Arrow hand-over."""
    cols = [c[0] for c in con.sql(f"DESCRIBE {name}").fetchall()]
    data = pa.table({c: pa.array([r[i] for r in rows]) for i, c in enumerate(cols)})
    con.register("_incoming", data)
    con.execute(f"INSERT INTO {name} SELECT * FROM _incoming")
    con.unregister("_incoming")


def _static_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Small reference tables that come from code (metric catalogue, model registry)."""
    try:
        from ssl_wc.metrics.catalogue import catalogue_rows
    except ImportError:
        rows: list[dict[str, Any]] = []
    else:
        rows = list(catalogue_rows())
    con.execute("""CREATE TABLE metric_catalogue (metric VARCHAR, label VARCHAR,
        direction VARCHAR, reference VARCHAR, parameters VARCHAR, threshold_free BOOLEAN,
        description VARCHAR)""")
    if rows:
        con.executemany("INSERT INTO metric_catalogue VALUES (?, ?, ?, ?, ?, ?, ?)", [(
            r["name"], r.get("label", r["name"]), r["direction"], r.get("reference", ""),
            ",".join(r.get("parameters", ())) if not isinstance(r.get("parameters"), str)
            else r["parameters"], bool(r.get("threshold_free", False)),
            r.get("description", "")) for r in rows])


def running_at_build(hist: list[dict[str, Any]]) -> list[list[Any]]:
    """(run id, host, pid) of the runs a catalog shows as running: when one of those
    processes is gone, the catalog is stale (the run must show as interrupted)."""
    return [[r.get("run_id"), r.get("host"), r.get("pid")]
            for r in hist if r.get("status") == "running"]


@dataclass(frozen=True)
class CatalogStamp:
    """What a catalog file says it reflects."""

    definitions: str
    history: str
    running: tuple[tuple[str, str, int], ...]

    @classmethod
    def of(cls, meta: Mapping[str, str]) -> CatalogStamp | None:
        if "history" not in meta or "definitions" not in meta:
            return None
        try:
            running = tuple((str(r), str(h), int(p or 0))
                            for r, h, p in json.loads(meta.get("running") or "[]"))
        except (ValueError, TypeError):
            return None
        return cls(meta["definitions"], meta["history"], running)


def read_stamp(catalog: Path) -> CatalogStamp | None:
    """The stamp of a catalog file (None when it is missing, unreadable or too old to
    carry one)."""
    return CatalogStamp.of(catalog_meta(catalog))


def stale_reason(wh: WarehousePaths, stamp: CatalogStamp | None,
                 token: str | None = None) -> str | None:
    """Why the catalog with ``stamp`` no longer shows the warehouse as it is, or None.

    ``token`` is the current :func:`history_token` when the caller has it already.
    """
    if stamp is None:
        return "the catalog is missing or unreadable"
    if stamp.definitions != definitions_hash():
        return "the catalog was built from other SQL or table schemas"
    if token is None:
        token = history_token(wh)
    if stamp.history != token:
        return "runs started or committed since the catalog was built"
    for run_id, host, pid in stamp.running:
        if not run_alive({"host": host, "pid": pid}):
            return f"run {run_id} shows as running but its process is gone"
    return None


def rebuild_catalog(warehouse: WarehousePaths, *, force: bool = True) -> str | None:
    """Rebuild and atomically swap the catalog; returns the new commit state.

    With ``force=False`` the catalog is rebuilt only if it is stale (checked again
    under the lock, so concurrent callers rebuild once); returns None when it was not.
    """
    wh = warehouse.ensure()
    with FileLock(wh.locks / "catalog.lock", timeout=120, label="catalog rebuild"):
        token = history_token(wh)
        if not force and stale_reason(wh, read_stamp(wh.catalog), token) is None:
            return None
        state = read_manifests(wh)
        tmp = wh.tmp / f"catalog.{os.getpid()}.{uuid.uuid4().hex[:8]}.duckdb"
        try:
            build_catalog_file(wh, tmp, state, token)
            fsync_file(tmp)
            fault_point("swap")
            os.replace(tmp, wh.catalog)
            fsync_dir(wh.root)
        finally:
            for p in (tmp, Path(str(tmp) + ".wal")):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
    return state.commit_state


def catalog_meta(catalog: Path) -> dict[str, str]:
    """The metadata recorded in a catalog file (empty if unreadable)."""
    try:
        con = duckdb.connect(str(catalog), read_only=True)
    except duckdb.Error:
        return {}
    try:
        return dict(con.sql("SELECT key, value FROM _catalog_meta").fetchall())
    except duckdb.Error:
        return {}
    finally:
        con.close()
