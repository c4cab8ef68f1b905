"""``ssl-wc ingest annotations``: WikiChurches ``building_parts.json`` into the lake.

The annotation tables are a snapshot: a new run replaces the previous one whole (unit
``*``). Rerunning on unchanged input files is a no-op (same input hash).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from ingest.common import JobResult, last_manifest, refuse_emptying
from ssl_wc.data import wikichurches as wc
from ssl_wc.data.errors import InputError
from ssl_wc.lake.runs import Run
from ssl_wc.paths import WarehousePaths

SNAPSHOT = "*"


def _input_hash(paths: list[Path | None], strict: bool) -> str:
    h = hashlib.sha256(f"strict={strict}".encode())
    for p in paths:
        h.update(b"|")
        if p is not None:
            h.update(p.name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def ingest_annotations(warehouse: WarehousePaths, building_parts: Path,
                       style_names: Path | None = None, churches: Path | None = None,
                       *, strict: bool = True, force: bool = False,
                       synthetic: bool = False) -> JobResult:
    """Parse and validate the files, then write every annotation table in one run.

    In strict mode any error refuses the whole input and the warehouse is untouched. In
    non-strict mode bad images are skipped and recorded (a partial run), but a file in
    which no image is valid never replaces annotations that hold images, unless
    ``force`` (:class:`ssl_wc.options.Refused`).
    """
    building_parts = Path(building_parts)
    for p in (building_parts, style_names, churches):
        if p is not None and not Path(p).is_file():
            raise InputError(p, "file", "not a file" if Path(p).exists() else "no such file")
    digest = _input_hash([building_parts, style_names, churches], strict)
    prev = last_manifest(warehouse, "annotations")
    if not force and prev is not None and prev.get("summary", {}).get("input_hash") == digest:
        return JobResult("annotations", "skipped", prev["run_id"],
                         skipped=int(prev["summary"].get("n_images", 0)),
                         message="inputs unchanged since run " + prev["run_id"])
    # Parse everything before a run starts: bad input never touches the warehouse.
    parsed = wc.parse_building_parts(building_parts, strict=strict)
    styles = (wc.parse_style_names(style_names) if style_names is not None
              else wc.default_styles())
    church_table = wc.parse_churches(churches) if churches is not None else None
    refuse_emptying(warehouse, "ann_images", SNAPSHOT, parsed.n_images, force=force,
                    why=f"no image of {building_parts} is valid"
                        + (f" (first problem: {parsed.errors[0]})" if parsed.errors else ""))
    config = {"building_parts": str(building_parts.resolve()),
              "style_names": str(style_names) if style_names else None,
              "churches": str(churches) if churches else None, "strict": strict}
    with Run(warehouse, "annotations", config) as run:
        rows: dict[str, int] = {}
        for name, table in [("ann_feature_types", parsed.feature_types),
                            ("ann_feature_ancestors", parsed.feature_ancestors),
                            ("ann_images", parsed.images), ("ann_boxes", parsed.boxes),
                            ("ann_image_styles", parsed.image_styles), ("ann_styles", styles)]:
            rows[name] = run.write(name, table, unit_key=SNAPSHOT)
            run.add_units(name, [SNAPSHOT])
        if church_table is not None:
            rows["ann_churches"] = run.write("ann_churches", church_table, unit_key=SNAPSHOT)
        run.add_units("ann_churches", [SNAPSHOT])
        sources = [{"file": str(building_parts), "kind": "building_parts",
                    "sha256": parsed.source_sha256, "n_items": parsed.n_images,
                    "n_clamped": parsed.n_clamped, "synthetic": synthetic}]
        for p, kind, n in [(style_names, "style_names", styles.num_rows),
                           (churches, "churches",
                            church_table.num_rows if church_table is not None else 0)]:
            if p is not None:
                sources.append({"file": str(p), "kind": kind,
                                "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest(),
                                "n_items": n, "n_clamped": 0, "synthetic": synthetic})
        run.write("ann_sources", pa.Table.from_pylist(sources), unit_key=SNAPSHOT)
        for err in getattr(parsed, "errors", []) or []:
            run.log_error("annotations", getattr(err, "location", "") or str(building_parts),
                          err)
        manifest = run.commit(input_hash=digest, n_images=parsed.n_images,
                              n_boxes=parsed.n_boxes, n_clamped=parsed.n_clamped,
                              synthetic=synthetic)
    return JobResult("annotations", manifest["status"], run.run_id, new=parsed.n_images,
                     failed=len(parsed.skipped_images), rows=rows,
                     problems=[str(e) for e in getattr(parsed, "errors", ()) or ()],
                     message=f"{parsed.n_images} images, {parsed.n_boxes} boxes, "
                             f"{parsed.n_clamped} clamped")
