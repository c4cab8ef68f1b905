"""``ssl-wc check`` and ``ssl-wc gc``: the lake against its manifests.

``check`` reports missing files, files no manifest knows, size or checksum mismatches
and unreadable Parquet, each with its file and run. ``gc`` removes temporary files and
files of runs that never committed (never a committed file), and stale catalog
temporaries.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ssl_wc.lake.atomic import TMP_SUFFIX, owner_pid, sha256_file
from ssl_wc.lake.catalog import read_manifests
from ssl_wc.lake.locks import FileLock
from ssl_wc.paths import WarehousePaths


@dataclass(frozen=True)
class Problem:
    kind: str  # missing | unknown | size | checksum | rows | unreadable | manifest | catalog
    path: str
    run_id: str
    detail: str

    def line(self) -> str:
        run = f" (run {self.run_id})" if self.run_id else ""
        return f"{self.kind}: {self.path}{run}: {self.detail}"


def check_lake(warehouse: WarehousePaths, *, checksums: bool = True) -> list[Problem]:
    """Every disagreement between the lake folder and the committed manifests."""
    wh = warehouse
    problems: list[Problem] = []
    for p in sorted(wh.manifests.glob("*.json")) if wh.manifests.exists() else []:
        try:
            json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            problems.append(Problem("manifest", p.relative_to(wh.root).as_posix(), p.stem,
                                    f"unreadable manifest: {exc}"))
    known: dict[str, str] = {}
    state = read_manifests(wh)
    for m in state.manifests:
        units = m.get("units", {})
        for f in m.get("files", []):
            known[f["path"]] = m["run_id"]
            keys = units.get(f["table"], [])
            if keys and not any(state.live.get((f["table"], k)) == m["run_id"] for k in keys):
                continue  # every unit superseded by a later run: no view reads this file
            path = wh.root / f["path"]
            if not path.exists():
                problems.append(Problem("missing", f["path"], m["run_id"],
                                        "listed in the manifest but not on disk"))
                continue
            size = path.stat().st_size
            if size != f["bytes"]:
                problems.append(Problem("size", f["path"], m["run_id"],
                                        f"{size} bytes on disk, manifest says {f['bytes']}"))
            elif checksums and sha256_file(path) != f["sha256"]:
                problems.append(Problem("checksum", f["path"], m["run_id"],
                                        "sha256 differs from the manifest"))
            try:
                meta = pq.read_metadata(path)
                if meta.num_rows != f["rows"]:
                    problems.append(Problem("rows", f["path"], m["run_id"],
                                            f"{meta.num_rows} rows, manifest says {f['rows']}"))
            except Exception as exc:  # pyarrow raises several types for corrupt files
                problems.append(Problem("unreadable", f["path"], m["run_id"],
                                        f"not a readable Parquet file: {exc}"))
    if wh.lake.exists():
        for path in sorted(wh.lake.rglob("*")):
            if path.is_file():
                rel = path.relative_to(wh.root).as_posix()
                if rel not in known:
                    why = ("temporary file" if path.name.endswith(TMP_SUFFIX)
                           else "no committed manifest lists it")
                    problems.append(Problem("unknown", rel, _run_of(path.name), why))
    return problems


def check_catalog(warehouse: WarehousePaths, *, repair: bool = True) -> Problem | None:
    """A catalog that does not show the committed state (a commit it misses, a dead run
    it shows as running, other SQL); rebuilt when ``repair`` (as any later command or
    reader would)."""
    from ssl_wc.lake.catalog import read_stamp, rebuild_catalog, stale_reason

    wh = warehouse
    if not wh.manifests.exists() and not wh.catalog.exists():
        return None
    reason = stale_reason(wh, read_stamp(wh.catalog))
    if reason is None:
        return None
    detail = reason
    if repair:
        rebuild_catalog(wh, force=False)
        detail += "; rebuilt now"
    return Problem("catalog", wh.catalog.name, "", detail)


def _run_of(name: str) -> str:
    base = name.lstrip(".").split(".parquet")[0]
    return base.rsplit("-", 1)[0] if base.count("-") >= 3 else ""


#: Files of unknown origin younger than this are never collected (seconds).
GC_GRACE_S = 900.0


def garbage_collect(warehouse: WarehousePaths, *, dry_run: bool = False,
                    grace_s: float = GC_GRACE_S) -> list[str]:
    """Remove files that no committed manifest lists (temporaries, killed runs).

    Never touches what a live process owns. A file named after a run (every Parquet
    part and its temporary) belongs to that run: it is kept while the run's record says
    running and its process is alive (or ran on another host, which cannot be checked
    from here), and collected once the run ended without committing it. Catalog
    temporaries are swept under the catalog lock, so no rebuild is under way. Other
    temporaries are kept while the pid in their name lives; files of unknown origin
    are kept for ``grace_s`` seconds.
    """
    from ssl_wc.lake.catalog import read_manifests, run_alive, run_history

    wh = warehouse
    state = read_manifests(wh)
    known = {f["path"] for m in state.manifests for f in m.get("files", [])}
    records = {r["run_id"]: r for r in run_history(wh, state) if r.get("run_id")}
    host = socket.gethostname()
    removed: list[str] = []
    now = time.time()

    def owned(path: Path, *, locked: bool = False) -> bool:
        rec = records.get(_run_of(path.name))
        if rec is not None:
            return rec.get("status") == "running" and run_alive(rec)
        if locked and path.name.startswith("catalog."):
            return False  # the catalog lock is ours: no rebuild owns it
        pid = owner_pid(path.name)
        if pid is not None:
            return run_alive({"host": host, "pid": pid})
        try:
            return now - path.stat().st_mtime < grace_s
        except FileNotFoundError:
            return True  # gone already (its owner published or removed it)

    def sweep(root: Path, pattern: str, only_tmp: bool = False, locked: bool = False) -> None:
        if not root.exists():
            return
        for path in sorted(root.glob(pattern)):
            if not path.is_file() or path.is_symlink():
                continue
            rel = path.relative_to(wh.root).as_posix()
            if rel in known or (only_tmp and not path.name.endswith(TMP_SUFFIX)):
                continue
            if owned(path, locked=locked):
                continue
            removed.append(rel)
            if not dry_run:
                path.unlink(missing_ok=True)

    sweep(wh.lake, "**/*")
    for folder in (wh.manifests, wh.runs):
        sweep(folder, ".*", only_tmp=True)
    if wh.tmp.exists():
        with FileLock(wh.locks / "catalog.lock", timeout=120, label="gc"):
            sweep(wh.tmp, "*", locked=True)
    for folder in sorted((p for p in wh.lake.rglob("*") if p.is_dir()), reverse=True) \
            if wh.lake.exists() else []:
        if not dry_run and not any(folder.iterdir()):
            with contextlib.suppress(OSError):  # a writer may have just created a file
                folder.rmdir()
    return removed
