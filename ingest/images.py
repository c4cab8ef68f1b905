"""``ssl-wc ingest images DIR``: record every image file (size, checksum) in the lake.

One unit per image folder: rescanning a folder replaces its previous scan. Unreadable
or corrupt images are reported (``ingest_errors``) and make the run partial; with
``strict`` the first one refuses the whole scan.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from ingest.common import JobResult, last_manifest, refuse_emptying
from ssl_wc.data import imagefiles
from ssl_wc.data.errors import InputError
from ssl_wc.lake.runs import Run
from ssl_wc.paths import WarehousePaths
from ssl_wc.warehouse import read_named


def annotated_ids(warehouse: WarehousePaths) -> set[str]:
    """Image ids of the current annotation snapshot (empty if none)."""
    if not warehouse.catalog.exists():
        return set()
    return set(read_named(warehouse, "job_annotated_images")["image_id"].to_list())


def ingest_images(warehouse: WarehousePaths, folder: Path, *, strict: bool = False,
                  force: bool = False,
                  limits: imagefiles.ImageLimits | None = None) -> JobResult:
    """Scan ``folder`` and record its readable images (see the module docstring).

    Refused (nothing written) when the folder holds no readable image, unless ``force``:
    a rescan must not replace a folder's recorded files with none.
    """
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise InputError(folder, "folder", "not a folder" if folder.exists()
                         else "no such folder")
    scan = imagefiles.scan_images(folder, strict=strict, limits=limits)
    table, errors = scan.table, scan.errors
    fingerprint = sorted(zip(table.column("image_id").to_pylist(),
                             table.column("sha256").to_pylist(), strict=True))
    digest = hashlib.sha256(repr((fingerprint, [str(e) for e in errors])).encode()).hexdigest()
    prev = last_manifest(warehouse, "images", folder=folder.as_posix())
    if not force and prev is not None and prev["summary"].get("scan_hash") == digest[:16]:
        return JobResult("images", "skipped", prev["run_id"], skipped=table.num_rows,
                         message="folder unchanged since run " + prev["run_id"])
    if table.num_rows == 0 and not force:
        refuse_emptying(warehouse, "image_files", folder.as_posix(), 0, force=force,
                        why=f"{folder} holds no readable image")
        first = f" (first problem: {errors[0]})" if errors else ""
        raise InputError(folder, "folder", "no readable image file (.jpg, .jpeg, .png, "
                         f".webp){first}; nothing was written")
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
                     rows={"image_files": n}, message=msg, problems=[str(e) for e in errors])
