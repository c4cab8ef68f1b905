"""``ssl-wc metrics``: score every committed attention map (and the baselines) that is
not scored yet, and refresh the per-layer summaries with bootstrap CIs.

Units: one per (attention unit, protocol) = model | variant | method | image | protocol.
A unit is recomputed when its attention unit was recomputed (a newer attention run) or
with ``force``. Baselines are pseudo-models ``baseline:<name>`` scored through exactly
the same :func:`ssl_wc.metrics.kernels.score_maps` path (method ``baseline``, layer 0,
head -1).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from ingest.common import JobResult
from ssl_wc.lake.catalog import LakeState, read_manifests
from ssl_wc.lake.runs import Run
from ssl_wc.metrics import baselines as bl
from ssl_wc.metrics.frames import boxes_in_frame, is_full
from ssl_wc.metrics.kernels import score_maps
from ssl_wc.metrics.protocol import MetricProtocol
from ssl_wc.paths import WarehousePaths
from ssl_wc.sqlfiles import named_query
from ssl_wc.warehouse import open_reader, read_named

BASELINES = ("random", "center_gaussian", "saliency_prior", "sobel_edges")
TF_COLS = ("coverage", "pointing_t0", "pointing_t15", "topk_pointing", "relevance_rank_acc",
           "annotation_area", "mse", "kl", "emd")
PCT_COLS = ("iou", "attention_area", "random_iou", "max_iou", "iou_over_max", "corloc")
CHUNK_MAPS = 4096
# threads for score_maps (numpy releases the GIL in the heavy passes): up to 4 cores
SCORE_WORKERS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Target:
    image_id: str
    union: np.ndarray  # (k, 4) clamped (left, top, width, height)


def load_targets(con: duckdb.DuckDBPyConnection) -> dict[str, np.ndarray]:
    """Clamped boxes per annotated image, in box_index order."""
    rows = con.sql(named_query("job_annotation_boxes")).fetchall()
    out: dict[str, list[list[float]]] = defaultdict(list)
    for r in rows:
        out[r[0]].append([r[2], r[3], r[4], r[5]])
    ids = [r[0] for r in con.sql(named_query("job_annotated_images")).fetchall()]
    return {i: np.asarray(out.get(i, []), dtype=np.float64).reshape(-1, 4) for i in ids}


def _nan_to_none(a: np.ndarray) -> pa.Array:
    a = np.asarray(a, dtype=np.float64)
    return pa.array(a, mask=np.isnan(a))


def score_rows(keys: dict[str, list[Any]], maps: np.ndarray, boxes: list[np.ndarray],
               protocol: MetricProtocol, phash: str,
               kept: list[np.ndarray] | None = None) -> tuple[pa.Table, pa.Table]:
    """Score maps against their images' union target and each box alone.

    ``keys`` holds per-map columns model, variant, method, layer, head, image_id,
    source_run_id. ``kept`` (per map, per box): boxes with ``kept == 0`` lie outside the
    map's frame (a crop cut them off): left out of the union, an empty target alone.
    Returns (metrics_map rows, metrics_iou rows).
    """
    n = maps.shape[0]
    # union targets and one row per (map, box)
    rep = [i for i in range(n) for _ in range(len(boxes[i]))]
    box_idx = [b for i in range(n) for b in range(len(boxes[i]))]
    all_maps = np.concatenate([maps, maps[rep]]) if rep else maps
    if kept is None:
        targets = list(boxes) + [boxes[i][b:b + 1] for i, b in zip(rep, box_idx, strict=True)]
    else:
        targets = [boxes[i][kept[i] > 0] for i in range(n)] + [
            boxes[i][b:b + 1] if kept[i][b] > 0 else boxes[i][:0]
            for i, b in zip(rep, box_idx, strict=True)]
    tf, pct = score_maps(all_maps, targets, protocol, workers=SCORE_WORKERS)
    src = list(range(n)) + rep
    m = len(src)
    base = {k: [v[i] for i in src] for k, v in keys.items()}
    base["target"] = ["image"] * n + ["box"] * len(rep)
    base["box_index"] = [-1] * n + box_idx
    base["protocol_hash"] = [phash] * m
    mm = pa.table({**base, **{c: _nan_to_none(tf[c]) for c in TF_COLS}})
    percentiles = list(protocol.percentiles)
    p = len(percentiles)
    rows_idx = np.repeat(np.arange(m), p)
    iou_cols = {k: [v[i] for i in rows_idx] for k, v in base.items()}
    iou_cols["percentile"] = percentiles * m
    for c in PCT_COLS:
        iou_cols[c] = _nan_to_none(np.asarray(pct[c]).reshape(-1))
    return mm, pa.table(iou_cols)


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
                        random_trials: int = 100, echo: Any = None) -> list[JobResult]:
    """Compute what is missing; then refresh the summaries. Returns one result per part."""
    protocol = protocol or MetricProtocol()
    phash = protocol.hash()
    results: list[JobResult] = []
    # One read of the manifests serves the three parts: this run and the baselines run
    # write disjoint units, and neither writes summaries.
    state = read_manifests(wh)
    con = open_reader(wh, udfs=False)
    try:
        targets = load_targets(con)
        scored = {} if force else _scored_sources(state)
        units = con.sql(named_query("job_attention_units")).fetchall()
        todo: dict[tuple[str, str, str], list[tuple[str, str]]] = defaultdict(list)
        skipped = 0
        for model, variant, method, image_id, rid in units:
            if image_id not in targets:
                continue
            u = _unit(model, variant, method, image_id, phash)
            if scored.get(u) == rid:
                skipped += 1
                continue
            todo[(model, variant, method)].append((image_id, rid))
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
                for (model, variant, method), items in sorted(todo.items()):
                    new += _score_source(con, run, model, variant, method, items, targets,
                                         protocol, phash, sources)
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
        results.append(materialise_baselines(wh, state, images, targets, protocol, force=force,
                                             trials=random_trials))
    if any(r.status in ("committed", "partial") for r in results) or force or \
            not any(t == "metric_summaries" for (t, _u) in state.live):
        results.append(materialise_summaries(wh))
    return results


def _score_source(con: duckdb.DuckDBPyConnection, run: Run, model: str, variant: str,
                  method: str, items: list[tuple[str, str]], targets: dict[str, np.ndarray],
                  protocol: MetricProtocol, phash: str, sources: dict[str, str]) -> int:
    """Score one model/variant/method's maps for the listed images, chunk by chunk."""
    n_done = 0
    ids = [i for i, _ in items]
    for start in range(0, len(ids), 64):
        chunk = ids[start:start + 64]
        df = con.sql(named_query("job_attention_maps"),
                     params={"model": model, "variant": variant, "method": method,
                             "ids": chunk}).pl()
        if df.height == 0:
            continue
        frames = _cropped_frames(con, model, variant, chunk)
        for (gh, gw), grp in df.group_by(["grid_h", "grid_w"]):
            for s in range(0, grp.height, CHUNK_MAPS):
                part = grp.slice(s, CHUNK_MAPS)
                maps = part["values"].list.to_array(int(gh) * int(gw)).to_numpy()
                maps = maps.reshape(-1, int(gh), int(gw))
                img = part["image_id"].to_list()
                keys = {"model": part["model"].to_list(), "variant": part["variant"].to_list(),
                        "method": part["method"].to_list(), "layer": part["layer"].to_list(),
                        "head": part["head"].to_list(), "image_id": img,
                        "source_run_id": part["run_id"].to_list()}
                if frames:  # maps of a crop: boxes carried into it, cut-off ones dropped
                    moved = [boxes_in_frame(targets[i], frames.get(i)) for i in img]
                    mm, mi = score_rows(keys, maps, [m for m, _ in moved], protocol, phash,
                                        kept=[k for _, k in moved])
                else:
                    mm, mi = score_rows(keys, maps, [targets[i] for i in img], protocol,
                                        phash)
                ukeys_m = [_unit(model, variant, method, i, phash)
                           for i in mm.column("image_id").to_pylist()]
                ukeys_i = [_unit(model, variant, method, i, phash)
                           for i in mi.column("image_id").to_pylist()]
                run.write("metrics_map", mm, unit_key=ukeys_m, partition={"model": model})
                run.write("metrics_iou", mi, unit_key=ukeys_i, partition={"model": model})
                n_done += part.height
        for i, rid in items:
            if i in chunk:
                sources[_unit(model, variant, method, i, phash)] = rid
    return n_done


def _cropped_frames(con: duckdb.DuckDBPyConnection, model: str, variant: str,
                    ids: list[str]) -> dict[str, tuple[float, float, float, float]]:
    """Frames of the listed images' maps that are not the whole image (a centre crop:
    ResNet-50, or a ViT in native mode); see ``ssl_wc.metrics.frames``."""
    rows = con.sql(named_query("job_map_frames"),
                   params={"model": model, "variant": variant, "ids": ids}).fetchall()
    return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows if not is_full(r[1:5])}


def _gray(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float64) / 255.0


def materialise_baselines(wh: WarehousePaths, state: LakeState,
                          images: list[tuple[str, str | None, str | None]],
                          targets: dict[str, np.ndarray], protocol: MetricProtocol,
                          *, force: bool = False, trials: int = 100) -> JobResult:
    """Score the four baselines per annotated image (unit baseline | image | protocol)
    that ``state`` (the manifests) does not show as scored."""
    phash = protocol.hash()
    done = {u for (t, u) in state.live if t == "metrics_map"}
    h, w = protocol.eval_size
    todo = [(i, p, r) for i, p, r in images if i in targets and (force or any(
        _unit(f"baseline:{b}", "frozen", "baseline", i, phash) not in done for b in BASELINES))]
    if not todo:
        return JobResult("baselines", "skipped", None, skipped=len(images),
                         message="baselines already scored")
    with Run(wh, "baselines", {"protocol": protocol.as_dict(), "baselines": BASELINES,
                               "random_trials": trials}) as run:
        fixed = {"center_gaussian": bl.center_gaussian((h, w)),
                 "saliency_prior": bl.saliency_prior((h, w))}
        for image_id, path, root in todo:
            boxes = targets[image_id]
            maps: dict[str, np.ndarray] = dict(fixed)
            if path is not None:
                try:
                    full = Path(root or "") / path if not Path(path).is_absolute() else Path(path)
                    maps["sobel_edges"] = bl.sobel_edges(_gray(full), (h, w))
                except OSError as exc:
                    run.log_error("baselines", image_id, exc)
            for name, amap in maps.items():
                keys: dict[str, list[Any]] = {
                        "model": [f"baseline:{name}"], "variant": ["frozen"],
                        "method": ["baseline"], "layer": [0], "head": [-1],
                        "image_id": [image_id], "source_run_id": [""]}
                mm, mi = score_rows(keys, amap[None], [boxes], protocol, phash)
                _write_baseline(run, name, image_id, phash, mm, mi)
            mm, mi = _random_rows(image_id, boxes, protocol, phash, trials)
            _write_baseline(run, "random", image_id, phash, mm, mi)
        run.commit()
    return JobResult("baselines", run.status, run.run_id, new=len(todo),
                     failed=len(run.errors), message=f"{len(todo)} images x {len(BASELINES)} "
                                                     "baselines")


def _write_baseline(run: Run, name: str, image_id: str, phash: str, mm: pa.Table,
                    mi: pa.Table) -> None:
    model = f"baseline:{name}"
    u = _unit(model, "frozen", "baseline", image_id, phash)
    run.write("metrics_map", mm, unit_key=u, partition={"model": model})
    run.write("metrics_iou", mi, unit_key=u, partition={"model": model})


def _random_rows(image_id: str, boxes: np.ndarray, protocol: MetricProtocol,
                 phash: str, trials: int) -> tuple[pa.Table, pa.Table]:
    """Random baseline: every metric averaged over its seeded trials (image and each box)."""
    targets = [boxes] + [boxes[b:b + 1] for b in range(len(boxes))]
    tf, pct = bl.score_random_baseline([image_id] * len(targets), targets, protocol,
                                       trials=trials, workers=2)
    n = len(targets)
    base: dict[str, list[Any]] = {
        "model": ["baseline:random"] * n, "variant": ["frozen"] * n,
        "method": ["baseline"] * n, "layer": [0] * n, "head": [-1] * n,
        "image_id": [image_id] * n, "source_run_id": [""] * n,
        "target": ["image"] + ["box"] * (n - 1), "box_index": list(range(-1, n - 1)),
        "protocol_hash": [phash] * n}
    mm = pa.table({**base, **{c: _nan_to_none(tf[c]) for c in TF_COLS}})
    p = len(protocol.percentiles)
    idx = np.repeat(np.arange(n), p)
    cols: dict[str, Any] = {k: [v[i] for i in idx] for k, v in base.items()}
    cols["percentile"] = list(protocol.percentiles) * n
    for c in PCT_COLS:
        cols[c] = _nan_to_none(np.asarray(pct[c]).reshape(-1))
    return mm, pa.table(cols)


def materialise_summaries(wh: WarehousePaths, *, resamples: int = 10_000,
                          seed: int = 0) -> JobResult:
    """Per model/variant/method/layer/fused head and metric: mean, sd, n, bootstrap CI.

    Percentile bootstrap (Efron & Tibshirani 1993) of the mean over images, 10,000
    resamples with a fixed seed; a snapshot table (unit ``*``) rebuilt whole.
    """
    from ssl_wc.stats.bootstrap import bootstrap_mean_ci_groups

    df = read_named(wh, "job_summary_values")
    keys = ["model", "variant", "method", "layer", "head", "protocol_hash", "metric",
            "percentile"]
    groups = df.group_by(keys, maintain_order=True).agg(vals=df.columns[-1])
    with Run(wh, "summaries", {"resamples": resamples, "seed": seed}) as run:
        if groups.height:
            vals = [np.asarray(v, dtype=np.float64) for v in groups["vals"].to_list()]
            mean, sd, lo, hi = bootstrap_mean_ci_groups(vals, resamples=resamples, seed=seed)
            out = groups.drop("vals").to_arrow()
            out = out.append_column("n", pa.array([len(v) for v in vals], pa.int32()))
            for name, arr in (("mean", mean), ("sd", sd), ("ci_low", lo), ("ci_high", hi)):
                out = out.append_column(name, _nan_to_none(arr))
            run.write("metric_summaries", out, unit_key="*")
        run.add_units("metric_summaries", ["*"])
        run.commit(groups=groups.height)
    return JobResult("summaries", run.status, run.run_id, new=groups.height,
                     message=f"{groups.height} summaries")

