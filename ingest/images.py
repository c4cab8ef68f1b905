"""``ssl-wc ingest images DIR``: record every image file (size, checksum) in the lake.

One unit per image folder: rescanning a folder replaces its previous scan. Unreadable
or corrupt images are reported (``ingest_errors``) and make the run partial; with
``strict`` the first one refuses the whole scan.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from ingest.common import JobResult, last_manifest
from ssl_wc.data import imagefiles
from ssl_wc.lake.runs import Run
from ssl_wc.paths import WarehousePaths
from ssl_wc.warehouse import read_named


def annotated_ids(warehouse: WarehousePaths) -> set[str]:
    """Image ids of the current annotation snapshot (empty if none)."""
    if not warehouse.catalog.exists():
        return set()
    return set(read_named(warehouse, "job_annotated_images")["image_id"].to_list())


def ingest_images(warehouse: WarehousePaths, folder: Path, *, strict: bool = False,
                  force: bool = False) -> JobResult:
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    scan = imagefiles.scan_images(folder, strict=strict)
    table, errors = scan.table, scan.errors
    fingerprint = sorted(zip(table.column("image_id").to_pylist(),
                             table.column("sha256").to_pylist(), strict=True))
    digest = hashlib.sha256(repr((fingerprint, [str(e) for e in errors])).encode()).hexdigest()
    prev = last_manifest(warehouse, "images", folder=folder.as_posix())
    if not force and prev is not None and prev["summary"].get("scan_hash") == digest[:16]:
        return JobResult("images", "skipped", prev["run_id"], skipped=table.num_rows,
                         message="folder unchanged since run " + prev["run_id"])
    table = table.append_column("image_root", pa.array([folder.as_posix()] * table.num_rows))
    ann = annotated_ids(warehouse)
    have = set(table.column("image_id").to_pylist())
    missing = sorted(ann - have)
    with Run(warehouse, "images", {"folder": folder.as_posix(), "strict": strict}) as run:
        n = run.write("image_files", table, unit_key=folder.as_posix())
        run.add_units("image_files", [folder.as_posix()])
        for err in errors:
            run.log_error("images", getattr(err, "location", "") or str(err), err)
        manifest = run.commit(folder=folder.as_posix(), scan_hash=digest[:16], n_files=n,
                              n_missing_annotated=len(missing), missing=missing[:50])
    msg = f"{n} files"
    if missing:
        msg += f"; {len(missing)} annotated image(s) have no file (see view missing_images)"
    return JobResult("images", manifest["status"], run.run_id, new=n, failed=len(errors),
                     rows={"image_files": n}, message=msg)
