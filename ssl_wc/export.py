"""``ssl-wc export``: attention maps and expert boxes of a selection, for other tools.

Layout (a COCO detection dataset that FiftyOne imports as ``COCODetectionDataset``)::

    labels.json     COCO: images, categories (the feature ontology), annotations (the
                    expert boxes in pixels), plus "attention_maps": one entry per image,
                    model, variant, method, layer and head with the stored patch grid
                    (row-major, row = y) and the path of its heatmap PNG
    data/           the image files (copied)
    heatmaps/<model>/<variant>_<method>_L<layer>_<head>/<image stem>.png
                    16-bit greyscale at the image's size (longer side capped by
                    ``max_side``): the map upsampled bilinearly with half-pixel centres
                    and min-max normalised (the metrics' heatmap), times 65535, rounded
    README.txt      how to load it

Boxes are the clamped fractions times the image's width and height: ``bbox = [left * W,
top * H, width * W, height * H]``. The folder appears whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from PIL import Image

from ssl_wc.paths import WarehousePaths
from ssl_wc.report.output import StagedFolder, require_known
from ssl_wc.report.source import Source

LABELS = "labels.json"
README = """ssl-wc export: expert boxes and attention maps ({n_images} images, {n_maps} maps).
{warning}
labels.json is a COCO detection file (boxes in pixels: [x, y, width, height]); its
"attention_maps" list holds each exported map's patch grid ("values", row-major, row = y,
grid_h x grid_w) and its heatmap PNG (16-bit greyscale, value / 65535 = the min-max
normalised bilinear upsampling used by the metrics).

FiftyOne:
    import fiftyone as fo
    ds = fo.Dataset.from_dir(dataset_dir="{out}", dataset_type=fo.types.COCODetectionDataset,
                             label_types="detections")
    # heatmaps: for each entry m of labels.json["attention_maps"], on the sample whose
    # filepath ends with m["file_name"], set a field to
    #     fo.Heatmap(map_path=<export>/m["heatmap"], range=[0, 65535])

pycocotools:
    from pycocotools.coco import COCO
    coco = COCO("{out}/labels.json")
"""


class ExportError(ValueError):
    """A usage problem (bad option, empty selection): one line, exit code 2."""


@dataclass(frozen=True)
class ExportOptions:
    """What to export (see ``ssl-wc export --help``)."""

    out: Path
    models: tuple[str, ...] = ()
    variant: str = "frozen"
    method: str = "default"
    layer: str = "best"  # best | last | an integer
    head: int = -1
    images: tuple[str, ...] = ()
    style: str | None = None
    metric: str = "iou"
    percentile: int | None = 90
    max_side: int = 512
    copy_images: bool = True
    force: bool = False


@dataclass
class ExportResult:
    out: Path
    n_images: int
    n_boxes: int
    n_maps: int
    skipped: list[str]

    def line(self) -> str:
        extra = f"; skipped {len(self.skipped)} ({'; '.join(self.skipped[:3])})" \
            if self.skipped else ""
        return (f"export: {self.n_images} images, {self.n_boxes} boxes, {self.n_maps} maps "
                f"-> {self.out}{extra}")


def heatmap_png(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """The metrics' heatmap of ``grid`` at (height, width) as uint16 (value * 65535)."""
    from ssl_wc.metrics.heatmap import heatmap

    heat = heatmap(np.asarray(grid, dtype=np.float64)[None], (height, width))[0]
    return np.rint(np.clip(heat, 0.0, 1.0) * 65535.0).astype(np.uint16)


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    if max_side <= 0 or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def _select_images(src: Source, opts: ExportOptions) -> pl.DataFrame:
    gal = src.q("dash_gallery")
    if opts.images:
        known = set(gal["image_id"].to_list())
        bad = [i for i in opts.images if i not in known]
        if bad:
            raise ExportError(f"--images: not annotated images: {', '.join(bad[:5])}")
        gal = gal.filter(pl.col("image_id").is_in(list(opts.images)))
    if opts.style:
        styles = sorted({s for lst in gal["style_names"].to_list() for s in lst or []})
        if opts.style not in styles:
            raise ExportError(f"--style: {opts.style!r} is not a style of the selected images; "
                              f"choose from {', '.join(styles) or '(none)'}")
        gal = gal.filter(pl.col("style_names").list.contains(opts.style))
    if gal.height == 0:
        raise ExportError("the selection holds no annotated image")
    return gal


def _resolve_layer(src: Source, opts: ExportOptions, model: str, method: str,
                   maps: pl.DataFrame) -> int:
    layers = sorted(set(maps.filter(pl.col("method") == method)["layer"].to_list()))
    if not layers:
        raise ExportError(f"no {method} maps of {model} ({opts.variant}, head {opts.head})")
    if opts.layer == "last":
        return int(layers[-1])
    if opts.layer == "best":
        protos = src.q("dash_protocols")
        if protos.height:
            lb = src.q("report_leaderboard", {
                "metric": opts.metric, "percentile": opts.percentile,
                "protocol": protos["protocol_hash"][0], "variant": opts.variant})
            row = lb.filter(pl.col("model") == model)
            if row.height and row["method"][0] == method and row["layer"][0] is not None:
                return int(row["layer"][0])
        return int(layers[-1])  # nothing scored for this method: the last layer
    layer = int(opts.layer)
    if layer not in layers:
        raise ExportError(f"--layer: {model} has no {method} maps at layer {layer}; choose "
                          f"from best, last, {', '.join(str(v) for v in layers)}")
    return layer


def export_selection(wh: WarehousePaths, opts: ExportOptions,
                     echo: Callable[[str], None] = lambda _s: None) -> ExportResult:
    """Write the export folder (see the module docstring)."""
    if opts.layer not in ("best", "last"):
        try:
            int(opts.layer)
        except ValueError:
            raise ExportError(f"--layer: {opts.layer!r}; choose best, last or a layer "
                              f"number") from None
    with Source.open(wh) as src:
        sources = src.q("dash_map_sources").filter(pl.col("variant") == opts.variant)
        known = sorted(set(sources["model"].to_list()))
        require_known("--models", opts.models, known, ExportError,
                      f"no {opts.variant} maps of")
        models = list(opts.models) or known
        defaults = dict(sources.select("model", "default_method").iter_rows())
        gal = _select_images(src, opts)
        with_file = gal.filter(pl.col("has_file"))
        skipped = [f"{i}: no image file" for i in gal.filter(~pl.col("has_file"))["image_id"]]
        if with_file.height == 0:
            raise ExportError("none of the selected images has a file: run `ssl-wc ingest "
                              "images` first")
        cats = src.q("export_categories")
        image_ids = with_file["image_id"].to_list()
        plan = []
        for model in models:
            method = defaults.get(model, "") if opts.method == "default" else opts.method
            maps = src.q("export_maps", {"model": model, "variant": opts.variant,
                                         "head": opts.head, "images": image_ids})
            if opts.method != "default" and method not in set(maps["method"].to_list()):
                raise ExportError(f"--method: {model} has no {method} maps; choose from "
                                  f"default, {', '.join(sorted(set(maps['method'])))}")
            layer = _resolve_layer(src, opts, model, method, maps)
            plan.append((model, method, layer, maps.filter((pl.col("method") == method)
                                                          & (pl.col("layer") == layer))))
        flags = src.q("dash_sources")
        boxes = {i: src.q("dash_image_boxes", {"image": i}) for i in image_ids}
    stage = StagedFolder(opts.out, opts.force)
    try:
        coco = _write(stage.path, opts, with_file, boxes, cats, plan, flags, wh)
        n_maps = len(coco["attention_maps"])
        warning = ("SYNTHETIC DATA / RANDOM WEIGHTS: not real results."
                   if coco["info"]["synthetic"] or coco["info"]["random_weight_models"] else "")
        (stage.path / "README.txt").write_text(README.format(
            n_images=len(coco["images"]), n_maps=n_maps, warning=warning,
            out=opts.out.resolve()))
        out = stage.commit()
    except BaseException:
        stage.abort()
        raise
    res = ExportResult(out, len(coco["images"]), len(coco["annotations"]), n_maps, skipped)
    echo(res.line())
    return res


def _write(folder: Path, opts: ExportOptions, images: pl.DataFrame,
           boxes: dict[str, pl.DataFrame], cats: pl.DataFrame,
           plan: list[tuple[str, str, int, pl.DataFrame]], flags: pl.DataFrame,
           wh: WarehousePaths) -> dict[str, Any]:
    (folder / "data").mkdir()
    coco: dict[str, Any] = {
        "info": {"description": "ssl-wc export: expert boxes and attention maps",
                 "date_created": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                 "warehouse": str(wh.root),
                 "synthetic": bool(flags["synthetic"][0]) if flags.height else False,
                 "random_weight_models": sorted(set(flags["random_weight_models"].to_list()[0]
                                                    or [])) if flags.height else [],
                 "selection": {"variant": opts.variant, "method": opts.method,
                               "layer": opts.layer, "head": opts.head,
                               "style": opts.style}},
        "licenses": [],
        "images": [], "annotations": [], "attention_maps": [],
        "categories": [{"id": int(r["label"]) + 1, "name": r["name"],
                        "supercategory": r["supercategory"], "ssl_wc_label": int(r["label"]),
                        "parents": list(r["parent_names"] or [])}
                       for r in cats.iter_rows(named=True)],
    }
    coco_id = {}
    for n, row in enumerate(images.iter_rows(named=True), start=1):
        image_id = row["image_id"]
        coco_id[image_id] = n
        src = Path(row["path"])
        if not src.is_absolute():
            src = Path(row["image_root"] or "") / src
        w, h = int(row["width"]), int(row["height"])
        file_name = Path(image_id).name
        if opts.copy_images:
            shutil.copy2(src, folder / "data" / file_name)
        coco["images"].append({"id": n, "file_name": file_name, "width": w, "height": h,
                               "ssl_wc_image_id": image_id,
                               "styles": list(row["style_names"] or []),
                               "source_path": str(src)})
        for b in boxes[image_id].iter_rows(named=True):
            frac = [float(b["left_c"]), float(b["top_c"]), float(b["width_c"]),
                    float(b["height_c"])]
            bbox = [frac[0] * w, frac[1] * h, frac[2] * w, frac[3] * h]
            coco["annotations"].append({
                "id": len(coco["annotations"]) + 1, "image_id": n,
                "category_id": int(b["label"]) + 1, "bbox": bbox, "area": bbox[2] * bbox[3],
                "iscrowd": 0, "box_index": int(b["box_index"]), "bbox_fraction": frac,
                "feature_name": b["feature_name"], "was_clamped": bool(b["was_clamped"])})
    sizes = {r["image_id"]: (int(r["width"]), int(r["height"]))
             for r in images.iter_rows(named=True)}
    for model, method, layer, maps in plan:
        sub = f"heatmaps/{model}/{opts.variant}_{method}_L{layer}_{opts.head}"
        (folder / sub).mkdir(parents=True, exist_ok=True)
        for r in maps.iter_rows(named=True):
            gh, gw = int(r["grid_h"]), int(r["grid_w"])
            values = np.asarray(r["values"], dtype=np.float32)
            w, h = _fit(*sizes[r["image_id"]], opts.max_side)
            rel = f"{sub}/{Path(r['image_id']).stem}.png"
            Image.fromarray(heatmap_png(values.reshape(gh, gw), h, w)).save(folder / rel)
            coco["attention_maps"].append({
                "id": len(coco["attention_maps"]) + 1, "image_id": coco_id[r["image_id"]],
                "file_name": Path(r["image_id"]).name, "model": model,
                "variant": opts.variant, "method": method, "layer": layer,
                "head": opts.head, "grid_h": gh, "grid_w": gw,
                "values": [float(v) for v in values], "heatmap": rel,
                "heatmap_size": [w, h]})
    (folder / LABELS).write_text(json.dumps(coco, indent=1), encoding="utf-8")
    return coco
