"""``ssl-wc check`` and ``ssl-wc gc``: the lake against its manifests.

``check`` reports missing files, files no manifest knows, size or checksum mismatches
and unreadable Parquet, each with its file and run. ``gc`` removes temporary files and
files of runs that never committed (never a committed file), and stale catalog
temporaries.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pyarrow.parquet as pq

from ssl_wc.lake.atomic import TMP_SUFFIX, sha256_file
from ssl_wc.lake.catalog import read_manifests
from ssl_wc.paths import WarehousePaths


@dataclass(frozen=True)
class Problem:
    kind: str  # missing | unknown | size | checksum | unreadable | manifest
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


def _run_of(name: str) -> str:
    base = name.lstrip(".").split(".parquet")[0]
    return base.rsplit("-", 1)[0] if base.count("-") >= 3 else ""


def garbage_collect(warehouse: WarehousePaths, *, dry_run: bool = False,
                    min_age_s: float = 0.0) -> list[str]:
    """Remove files that no committed manifest lists (temporaries, killed runs).

    Files of a run that is still running (younger than ``min_age_s``) can be spared.
    """
    from ssl_wc.lake.catalog import read_manifests, run_history

    wh = warehouse
    state = read_manifests(wh)
    known = {f["path"] for m in state.manifests for f in m.get("files", [])}
    running = {r["run_id"] for r in run_history(wh, state) if r.get("status") == "running"}
    removed: list[str] = []
    now = time.time()
    roots = [wh.lake, wh.tmp]
    for root in roots:
        if not root.exists():
            continue
        for path in sorted(root.rglob("*")):
            if not path.is_file():
                continue
            rel = path.relative_to(wh.root).as_posix()
            if rel in known:
                continue
            if any(r in path.name for r in running) or now - path.stat().st_mtime < min_age_s:
                continue
            removed.append(rel)
            if not dry_run:
                path.unlink(missing_ok=True)
    for folder in sorted((p for p in wh.lake.rglob("*") if p.is_dir()), reverse=True) \
            if wh.lake.exists() else []:
        if not dry_run and not any(folder.iterdir()):
            folder.rmdir()
    return removed

