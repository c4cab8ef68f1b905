"""``ssl-wc metrics``: score every committed attention map (and the baselines) that is
not scored yet, and refresh the per-layer summaries with bootstrap CIs.

Units: one per (attention unit, protocol) = model | variant | method | image | protocol.
A unit is recomputed when its attention unit was recomputed (a newer attention run) or
with ``force``. Baselines are pseudo-models ``baseline:<name>`` scored through exactly
the same :func:`ssl_wc.metrics.kernels.score_map_targets` path (method ``baseline``, layer 0,
head -1).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ingest.common import JobResult, nan_to_null
from ingest.summaries import materialise_summaries
from ssl_wc.lake.catalog import LakeState, read_manifests, rebuild_catalog
from ssl_wc.lake.runs import Run
from ssl_wc.metrics import baselines as bl
from ssl_wc.metrics.frames import boxes_in_frame, is_full
from ssl_wc.metrics.kernels import TargetSets, score_map_targets
from ssl_wc.metrics.protocol import MetricProtocol
from ssl_wc.paths import WarehousePaths
from ssl_wc.sqlfiles import named_query
from ssl_wc.warehouse import open_reader

BASELINES = ("random", "center_gaussian", "saliency_prior", "sobel_edges")
TF_COLS = ("coverage", "pointing_t0", "pointing_t15", "topk_pointing", "relevance_rank_acc",
           "annotation_area", "mse", "kl", "emd", "roc_auc", "emd_point", "gini", "entropy")
PCT_COLS = ("iou", "attention_area", "random_iou", "max_iou", "iou_over_max", "corloc")
IMAGES_PER_READ = 32  # images whose targets are prepared together (memory: ~6 MB each)
CHUNK_MAPS = 4096
# threads for score_map_targets (the compiled loops release the GIL): up to 4 cores
SCORE_WORKERS = max(1, min(4, os.cpu_count() or 1))


def load_targets(con: duckdb.DuckDBPyConnection) -> dict[str, np.ndarray]:
    """Clamped boxes per annotated image, in box_index order."""
    rows = con.sql(named_query("job_annotation_boxes")).fetchall()
    out: dict[str, list[list[float]]] = defaultdict(list)
    for r in rows:
        out[r[0]].append([r[2], r[3], r[4], r[5]])
    ids = [r[0] for r in con.sql(named_query("job_annotated_images")).fetchall()]
    return {i: np.asarray(out.get(i, []), dtype=np.float64).reshape(-1, 4) for i in ids}


def image_targets(boxes: np.ndarray, kept: np.ndarray | None = None) -> list[np.ndarray]:
    """An image's targets in row order: the union of its boxes, then each box alone.

    ``kept`` (per box, the share inside the map's frame; see ``ssl_wc.metrics.frames``):
    a box with ``kept == 0`` lies outside a cropped map's frame: it is left out of the
    union and scored alone as an empty target, so the rows keep their order."""
    if kept is None:
        return [boxes] + [boxes[b:b + 1] for b in range(len(boxes))]
    inside = kept > 0
    return [boxes[inside]] + [boxes[b:b + 1] if inside[b] else boxes[:0]
                              for b in range(len(boxes))]


def framed_targets(boxes: np.ndarray, frame: tuple[float, float, float, float]
                   ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The boxes of a map that covers only ``frame`` of its image (a centre crop:
    ResNet-50, or a ViT in native mode), carried into the frame, and their targets."""
    moved, kept = boxes_in_frame(boxes, frame)
    return moved, image_targets(moved, kept)


def _constant(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)),
                                          pa.array([value])).cast(pa.string())


def score_rows(keys: dict[str, Any], maps: np.ndarray, boxes: list[np.ndarray],
               protocol: MetricProtocol, phash: str, *, workers: int = SCORE_WORKERS,
               targets: list[list[np.ndarray]] | None = None,
               target_sets: TargetSets | None = None
               ) -> tuple[pa.Table, pa.Table, np.ndarray]:
    """Score maps against their images' union target and each box alone.

    ``keys`` holds per-map columns model, variant, method, layer, head, image_id,
    source_run_id (lists or arrays of length N). ``boxes[i]`` are map i's image boxes
    (maps of one image should share the array; ``targets[i]``, when given, the target
    list :func:`image_targets` made of it, shared the same way; ``target_sets``, the
    prepared targets to reuse across calls). Returns the metrics_map rows, the
    metrics_iou rows and, per metrics_map row, its map's index.
    """
    n = maps.shape[0]
    if targets is None:
        made: dict[int, list[np.ndarray]] = {}
        targets = [made.setdefault(id(b), image_targets(b)) for b in boxes]
    tf, pct = score_map_targets(maps, targets, protocol, workers=workers,
                                target_sets=target_sets)
    counts = np.fromiter((len(t) for t in targets), dtype=np.int64, count=n)
    row_map = np.repeat(np.arange(n), counts)
    m = int(row_map.size)
    first = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=first[1:])
    within = np.arange(m) - first[row_map]
    take = pa.array(row_map)
    base: dict[str, pa.Array] = {}
    for k, v in keys.items():
        arr = v if isinstance(v, pa.Array) else pa.array(v)
        base[k] = arr.take(take)
    base["target"] = pa.DictionaryArray.from_arrays(
        pa.array((within > 0).astype(np.int32)), pa.array(["image", "box"])).cast(pa.string())
    base["box_index"] = pa.array((within - 1).astype(np.int32))
    base["protocol_hash"] = _constant(phash, m)
    mm = pa.table({**base, **{c: nan_to_null(tf[c]) for c in TF_COLS}})
    p = len(protocol.percentiles)
    rep = pa.array(np.repeat(np.arange(m), p))
    iou_cols = {k: v.take(rep) for k, v in base.items()}
    iou_cols["percentile"] = pa.array(np.tile(np.asarray(protocol.percentiles, np.int16), m))
    for c in PCT_COLS:
        iou_cols[c] = nan_to_null(np.asarray(pct[c]).reshape(-1))
    return mm, pa.table(iou_cols), row_map


def _unit(model: str, variant: str, method: str, image_id: str, phash: str) -> str:
    return f"{model}|{variant}|{method}|{image_id}|{phash}"


def _scored_sources(state: LakeState) -> dict[str, str]:
    """metric unit -> attention run it was computed from (from manifests)."""
    by_run = {m["run_id"]: m for m in state.manifests}
    out: dict[str, str] = {}
    for (tbl, unit), rid in state.live.items():
        if tbl == "metrics_map":
            out[unit] = by_run[rid].get("summary", {}).get("sources", {}).get(unit, "")
    return out


def materialise_metrics(wh: WarehousePaths, *, baselines: bool = True, strict: bool = False,
                        protocol: MetricProtocol | None = None, force: bool = False,
                        random_trials: int = 100, echo: Any = None,
                        workers: int = SCORE_WORKERS, summaries: bool = True
                        ) -> list[JobResult]:
    """Compute what is missing; then refresh the summaries of the map sources whose
    metrics changed (``summaries``). Returns one result per part."""
    protocol = protocol or MetricProtocol()
    phash = protocol.hash()
    results: list[JobResult] = []
    # One read of the manifests serves the three parts: this run and the baselines run
    # write disjoint units, and neither writes summaries.
    state = read_manifests(wh)
    con = open_reader(wh, udfs=False)
    try:
        boxes = load_targets(con)
        scored = {} if force else _scored_sources(state)
        units = con.sql(named_query("job_attention_units")).fetchall()
        todo: dict[str, dict[tuple[str, str, str], str]] = defaultdict(dict)
        skipped = 0
        for model, variant, method, image_id, rid in units:
            if image_id not in boxes:
                continue
            u = _unit(model, variant, method, image_id, phash)
            if scored.get(u) == rid:
                skipped += 1
                continue
            todo[image_id][(model, variant, method)] = rid
        images = [r[:3] for r in con.sql(named_query("job_image_files")).fetchall()]
    finally:
        con.close()
    t0 = time.monotonic()
    new = 0
    if todo:
        with Run(wh, "metrics", {"protocol": protocol.as_dict(), "force": force}) as run:
            sources: dict[str, str] = {}
            pjson = json.dumps(protocol.as_dict(), sort_keys=True)
            run.write("metric_protocols", {"protocol_hash": [phash], "protocol_json": [pjson]},
                      unit_key=phash)
            con = open_reader(wh, udfs=False)
            try:
                ids = sorted(todo)
                for start in range(0, len(ids), IMAGES_PER_READ):
                    chunk = ids[start:start + IMAGES_PER_READ]
                    new += _score_images(con, run, chunk, todo, boxes, protocol, phash,
                                         sources, workers)
            finally:
                con.close()
            run.commit(sources=sources, n_units=len(sources))
            results.append(JobResult("metrics", run.status, run.run_id, new=new,
                                     skipped=skipped, message=f"{new} maps scored",
                                     seconds=time.monotonic() - t0))
    else:
        results.append(JobResult("metrics", "skipped", None, skipped=skipped,
                                 message="every committed map is already scored"))
    if baselines:
        results.append(materialise_baselines(wh, state, images, boxes, protocol, force=force,
                                             trials=random_trials, workers=workers))
    if summaries:
        results.append(materialise_summaries(wh, force=force))
    return results


def _score_images(con: duckdb.DuckDBPyConnection, run: Run, chunk: list[str],
                  todo: dict[str, dict[tuple[str, str, str], str]],
                  boxes: dict[str, np.ndarray], protocol: MetricProtocol, phash: str,
                  sources: dict[str, str], workers: int) -> int:
    """Score every listed map source's maps of a chunk of images: the images' targets are
    prepared once and shared by every model, method, layer and head."""
    lists = {i: image_targets(boxes[i]) for i in chunk}
    prepared = TargetSets(protocol, capacity=8 * len(chunk) + 64)  # for every source
    by_source: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for image_id in chunk:
        for source in todo[image_id]:
            by_source[source].append(image_id)
    n_done = 0
    for (model, variant, method), img_ids in sorted(by_source.items()):
        df = con.sql(named_query("job_attention_maps"),
                     params={"model": model, "variant": variant, "method": method,
                             "ids": img_ids}).pl()
        # maps of a crop: boxes carried into its frame, the ones cut off scored as empty
        framed = {i: framed_targets(boxes[i], f)
                  for i, f in _cropped_frames(con, model, variant, img_ids).items()}
        for (gh, gw), grp in df.group_by(["grid_h", "grid_w"], maintain_order=True):
            for s in range(0, grp.height, CHUNK_MAPS):
                part = grp.slice(s, CHUNK_MAPS)
                maps = part["values"].list.to_array(int(gh) * int(gw)).to_numpy()
                maps = maps.reshape(-1, int(gh), int(gw))
                img = part["image_id"].to_list()
                keys = {"model": _constant(model, part.height),
                        "variant": _constant(variant, part.height),
                        "method": _constant(method, part.height),
                        "layer": part["layer"].to_arrow(), "head": part["head"].to_arrow(),
                        "image_id": part["image_id"].to_arrow(),
                        "source_run_id": part["run_id"].to_arrow()}
                mm, mi, row_map = score_rows(
                    keys, maps, [framed[i][0] if i in framed else boxes[i] for i in img],
                    protocol, phash, workers=workers,
                    targets=[framed[i][1] if i in framed else lists[i] for i in img],
                    target_sets=prepared)
                _write_by_image(run, model, variant, method, phash, img, row_map, mm, mi,
                                len(protocol.percentiles))
                n_done += part.height
        for image_id in img_ids:
            sources[_unit(model, variant, method, image_id, phash)] = \
                todo[image_id][(model, variant, method)]
    return n_done


def _cropped_frames(con: duckdb.DuckDBPyConnection, model: str, variant: str,
                    ids: list[str]) -> dict[str, tuple[float, float, float, float]]:
    """Frames of the listed images' maps that are not the whole image (a centre crop:
    ResNet-50, or a ViT in native mode); see ``ssl_wc.metrics.frames``."""
    rows = con.sql(named_query("job_map_frames"),
                   params={"model": model, "variant": variant, "ids": ids}).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows if not is_full(r[1:5])}


IMAGES_PER_ROW_GROUP = 8
"""Metric rows are written in Parquet row groups of this many images of one map source:
a reader of one image reads a few thousand rows, and the files' footers stay small
(every reader without a metadata cache, a plain duckdb session say, parses them)."""


def _write_by_image(run: Run, model: str, variant: str, method: str, phash: str,
                    img: list[str], row_map: np.ndarray, mm: pa.Table, mi: pa.Table,
                    p: int) -> None:
    """Write the rows of the maps (ordered by image) ``IMAGES_PER_ROW_GROUP`` images at a
    time, each row with its image's unit key."""
    images = np.asarray(img)
    first = np.flatnonzero(np.r_[True, images[1:] != images[:-1]])
    starts = first[::IMAGES_PER_ROW_GROUP]
    bounds = np.asarray(np.searchsorted(row_map, np.r_[starts, len(img)]))
    units = {i: _unit(model, variant, method, i, phash) for i in set(img)}
    row_units = [units[img[m]] for m in row_map]
    for k in range(len(starts)):
        a, b = int(bounds[k]), int(bounds[k + 1])
        keys = row_units[a:b]
        run.write("metrics_map", mm.slice(a, b - a), unit_key=keys, partition={"model": model})
        run.write("metrics_iou", mi.slice(a * p, (b - a) * p),
                  unit_key=[u for u in keys for _ in range(p)], partition={"model": model})


def _gray(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float64) / 255.0


def materialise_baselines(wh: WarehousePaths, state: LakeState,
                          images: list[tuple[str, str | None, str | None]],
                          targets: dict[str, np.ndarray], protocol: MetricProtocol,
                          *, force: bool = False, trials: int = 100,
                          workers: int = SCORE_WORKERS) -> JobResult:
    """Score the four baselines per annotated image (unit baseline | image | protocol)
    that ``state`` (the manifests) does not show as scored. Each image's union and box
    targets are prepared once for its four baselines and 100 random trials."""
    phash = protocol.hash()
    done = {u for (t, u) in state.live if t == "metrics_map"}
    h, w = protocol.eval_size
    todo = [(i, p, r) for i, p, r in images if i in targets and (force or any(
        _unit(f"baseline:{b}", "frozen", "baseline", i, phash) not in done for b in BASELINES))]
    if not todo:
        return JobResult("baselines", "skipped", None, skipped=len(images),
                         message="baselines already scored")
    t0 = time.monotonic()
    fixed = {"center_gaussian": bl.center_gaussian((h, w)),
             "saliency_prior": bl.saliency_prior((h, w))}
    # a short run straight after another: its start needs no catalog of its own;
    # the catalog is rebuilt once it ends, committed or failed
    try:
        with Run(wh, "baselines", {"protocol": protocol.as_dict(), "baselines": BASELINES,
                                   "random_trials": trials}, rebuild_catalog=False) as run:
            for image_id, path, root in todo:
                maps: dict[str, np.ndarray] = dict(fixed)
                if path is not None:
                    full = Path(path) if Path(path).is_absolute() else Path(root or "") / path
                    try:
                        maps["sobel_edges"] = bl.sobel_edges(_gray(full), (h, w))
                    except OSError as exc:
                        run.log_error("baselines", image_id, exc)
                _score_baselines(run, image_id, maps, targets[image_id], protocol, phash,
                                 trials, workers)
            run.commit()
    finally:
        rebuild_catalog(wh)
    return JobResult("baselines", run.status, run.run_id, new=len(todo),
                     failed=len(run.errors), message=f"{len(todo)} images x {len(BASELINES)} "
                                                     "baselines",
                     seconds=time.monotonic() - t0)


def _score_baselines(run: Run, image_id: str, maps: dict[str, np.ndarray], boxes: np.ndarray,
                     protocol: MetricProtocol, phash: str, trials: int, workers: int) -> None:
    """One image's fixed baseline maps and its random trials, against its union and each
    box (the targets prepared once for all of them)."""
    tlist = image_targets(boxes)
    names = list(maps)
    k = len(names)
    keys: dict[str, Any] = {
        "model": [f"baseline:{name}" for name in names], "variant": ["frozen"] * k,
        "method": ["baseline"] * k, "layer": [0] * k, "head": [-1] * k,
        "image_id": [image_id] * k, "source_run_id": [""] * k}
    mm, mi, row_map = score_rows(keys, np.stack([maps[b] for b in names]), [boxes] * k,
                                 protocol, phash, workers=workers, targets=[tlist] * k)
    p = len(protocol.percentiles)
    for j, name in enumerate(names):
        rows = np.flatnonzero(row_map == j)
        iou_rows = (rows[:, None] * p + np.arange(p)).ravel()
        _write_baseline(run, name, image_id, phash, mm.take(pa.array(rows)),
                        mi.take(pa.array(iou_rows)))
    mm, mi = _random_rows(image_id, tlist, protocol, phash, trials, workers)
    _write_baseline(run, "random", image_id, phash, mm, mi)


def _write_baseline(run: Run, name: str, image_id: str, phash: str, mm: pa.Table,
                    mi: pa.Table) -> None:
    model = f"baseline:{name}"
    u = _unit(model, "frozen", "baseline", image_id, phash)
    run.write("metrics_map", mm, unit_key=u, partition={"model": model})
    run.write("metrics_iou", mi, unit_key=u, partition={"model": model})


def _random_rows(image_id: str, targets: list[np.ndarray], protocol: MetricProtocol,
                 phash: str, trials: int, workers: int) -> tuple[pa.Table, pa.Table]:
    """Random baseline: every metric averaged over its seeded trials (image and each box)."""
    tf, pct = bl.score_random_baseline([image_id] * len(targets), targets, protocol,
                                       trials=trials, workers=workers)
    n = len(targets)
    base: dict[str, list[Any]] = {
        "model": ["baseline:random"] * n, "variant": ["frozen"] * n,
        "method": ["baseline"] * n, "layer": [0] * n, "head": [-1] * n,
        "image_id": [image_id] * n, "source_run_id": [""] * n,
        "target": ["image"] + ["box"] * (n - 1), "box_index": list(range(-1, n - 1)),
        "protocol_hash": [phash] * n}
    mm = pa.table({**base, **{c: nan_to_null(tf[c]) for c in TF_COLS}})
    p = len(protocol.percentiles)
    idx = np.repeat(np.arange(n), p)
    cols: dict[str, Any] = {k: [v[i] for i in idx] for k, v in base.items()}
    cols["percentile"] = list(protocol.percentiles) * n
    for c in PCT_COLS:
        cols[c] = nan_to_null(np.asarray(pct[c]).reshape(-1))
    return mm, pa.table(cols)
