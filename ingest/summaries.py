"""The summaries of ``ssl-wc metrics``: per map source (model | variant | method) whose
metrics changed, every summary the views show, materialised as lake tables in one run.

- ``metric_summaries`` (view ``layer_progression``): per layer, head, protocol, metric
  and percentile of the fused maps and baselines: mean, sd, n and a percentile
  bootstrap 95 % CI of the mean over images (10,000 resamples, fixed seed; Efron &
  Tibshirani 1993).
- ``feature_summaries`` (``feature_metrics``, ``head_feature_matrix``): per feature
  label, each box alone as the target, by the box's own label and rolled up to every
  ontology ancestor: n boxes, n images, mean, sd. Computed here with numpy (the SQL
  form, kept in ``tests/test_summaries.py`` as the reference, needs a DISTINCT count
  over tens of millions of rows at full scale).
- ``style_summaries``, ``head_rankings``, ``baseline_gaps`` (``style_metrics``,
  ``head_ranking``, ``baseline_gap``): the named queries ``job_*`` in sql/queries.

Each source is a unit of every summary table, so unchanged sources keep their rows and
a source whose metrics are gone has its summaries withdrawn; a run records the input
fingerprint of each source it summarised, which is how the next run knows what changed.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from ingest.common import JobResult, nan_to_null
from ssl_wc.lake.catalog import LakeState, read_manifests, rebuild_catalog
from ssl_wc.lake.runs import Run
from ssl_wc.metrics.catalogue import catalogue_rows
from ssl_wc.paths import WarehousePaths
from ssl_wc.sqlfiles import named_query
from ssl_wc.warehouse import open_reader

#: Summary tables written per map source by a named query.
SUMMARY_TABLES: dict[str, str] = {
    "style_summaries": "job_style_summaries",
    "head_rankings": "job_head_rankings",
    "baseline_gaps": "job_baseline_gaps",
}
ALL_TABLES = ("metric_summaries", "feature_summaries", *SUMMARY_TABLES)
FEATURE_QUERIES = ("job_box_values", "job_box_labels")
SUMMARY_INPUTS = ("metrics_map", "metrics_iou", "faithfulness_curves", "mprt_similarity")
ANNOTATION_INPUTS = ("ann_boxes", "ann_images", "ann_styles", "ann_feature_types",
                     "ann_feature_ancestors")
ROWS_PER_GROUP = 16_384  # Parquet row groups of the summaries: small enough to prune

Source = tuple[str, str, str]


def _source_of(unit: str) -> Source:
    model, variant, method = unit.split("|")[:3]
    return model, variant, method


def _source_key(src: Source) -> str:
    return "|".join(src)


def summary_fingerprints(state: LakeState, resamples: int, seed: int) -> dict[str, str]:
    """Per map source (``model|variant|method``): a hash of everything its summaries are
    computed from: its live metric units and their runs, the baselines' (for the gaps),
    the annotations, the summary definitions and the bootstrap settings."""
    per: dict[str, list[str]] = defaultdict(list)
    shared: list[str] = []
    for (tbl, unit), rid in state.live.items():
        if tbl in SUMMARY_INPUTS and not _source_of(unit)[2].startswith("baseline:"):
            per[_source_key(_source_of(unit))].append(f"{tbl}|{unit}|{rid}")
        elif tbl in ANNOTATION_INPUTS:
            shared.append(f"{tbl}|{unit}|{rid}")
    digest = hashlib.sha256()
    for name in ("job_summary_values", *FEATURE_QUERIES, *SUMMARY_TABLES.values()):
        digest.update(named_query(name).encode())
    digest.update(json.dumps([resamples, seed, catalogue_rows()], sort_keys=True).encode())
    digest.update("\n".join(sorted(shared)).encode())
    base = digest.hexdigest()
    baselines = hashlib.sha256("\n".join(sorted(
        v for k, vs in per.items() if k.startswith("baseline:") for v in vs)).encode()).hexdigest()
    out = {}
    for key, items in per.items():
        h = hashlib.sha256(base.encode())
        h.update("\n".join(sorted(items)).encode())
        if not key.startswith("baseline:"):
            h.update(baselines.encode())
        out[key] = h.hexdigest()[:16]
    return out


def _summarised(state: LakeState) -> dict[str, str]:
    """Source -> fingerprint its live summaries were computed from (from manifests)."""
    by_run = {m["run_id"]: m for m in state.manifests}
    out = {}
    for (tbl, unit), rid in state.live.items():
        if tbl == "metric_summaries" and unit != "*":
            out[unit] = by_run[rid].get("summary", {}).get("fingerprints", {}).get(unit, "")
    return out


def materialise_summaries(wh: WarehousePaths, *, resamples: int = 10_000, seed: int = 0,
                          force: bool = False) -> JobResult:
    """Per map source (model | variant | method) whose metrics changed: the per-layer
    summaries (mean, sd, n and a percentile bootstrap CI of the mean over images, 10,000
    resamples with a fixed seed; Efron & Tibshirani 1993) and the feature, style,
    head-ranking and baseline-gap summaries, all in one run (all or nothing).

    Each source is a unit of every summary table, so unchanged sources keep their rows
    and a source whose metrics are gone has its summaries withdrawn.
    """
    state = read_manifests(wh)
    fps = summary_fingerprints(state, resamples, seed)
    done = _summarised(state)
    changed = sorted(k for k, fp in fps.items() if force or done.get(k) != fp)
    gone = sorted(set(done) - set(fps))
    # a whole-table snapshot from before per-source summaries is still live
    by_run = {m["run_id"]: m for m in state.manifests}
    star = state.live.get(("metric_summaries", "*"))
    legacy = star is not None and "fingerprints" not in by_run[star].get("summary", {})
    if not changed and not gone and not legacy:
        return JobResult("summaries", "skipped", None, skipped=len(fps),
                         message="metrics unchanged since the last summaries")
    t0 = time.monotonic()
    # everything changed (a first run, the demo): one query per table for all sources
    batches: list[Source | None] = ([None] if len(changed) == len(fps)
                                    else [_source_of(k) for k in changed])
    n_groups = 0
    # a short run straight after the metrics: its start needs no catalog of its own;
    # the catalog is rebuilt once it ends, committed or failed
    try:
        with Run(wh, "summaries", {"resamples": resamples, "seed": seed},
                 rebuild_catalog=False) as run:
            con = open_reader(wh, udfs=False)
            con.execute("SET enable_progress_bar = false")  # a job's output, not a terminal
            try:
                for src in batches:
                    n_groups += _summarise(run, con, src, resamples, seed)
                for key in changed:  # memory: one source's box values at a time
                    params = dict(zip(("model", "variant", "method"), _source_of(key),
                                      strict=True))
                    _write_per_source(run, "feature_summaries", feature_summaries(con, params))
            finally:
                con.close()
            for table in ALL_TABLES:
                run.add_units(table, [*changed, *gone])  # a source without rows: withdrawn
            run.add_units("metric_summaries", ["*"])  # supersedes a whole-table snapshot
            run.commit(groups=n_groups, fingerprints={k: fps[k] for k in changed},
                       withdrawn=gone)
    finally:
        rebuild_catalog(wh)
    return JobResult("summaries", run.status, run.run_id, new=len(changed),
                     skipped=len(fps) - len(changed),
                     message=f"{len(changed)} map sources summarised ({n_groups} layer "
                             f"groups)" + (f", {len(gone)} withdrawn" if gone else ""),
                     seconds=time.monotonic() - t0)


def _summarise(run: Run, con: duckdb.DuckDBPyConnection, src: Source | None, resamples: int,
               seed: int) -> int:
    """Write the SQL-defined summaries and the per-layer summaries of one map source
    (None: all sources)."""
    from ssl_wc.stats.bootstrap import bootstrap_mean_ci_groups

    params = dict(zip(("model", "variant", "method"), src or (None,) * 3, strict=True))
    n_groups = _write_layer_summaries(
        run, con.sql(named_query("job_summary_values"), params=params).pl(), resamples, seed,
        bootstrap_mean_ci_groups)
    for table, query in SUMMARY_TABLES.items():
        _write_per_source(run, table, con.sql(named_query(query), params=params).to_arrow_table())
    return n_groups


def _source_keys(rows: pa.Table) -> pa.Array:
    """``model|variant|method`` of every row."""
    cols = [rows.column(c).cast(pa.string()) for c in ("model", "variant", "method")]
    return pc.binary_join_element_wise(*cols, "|")


def _write_per_source(run: Run, table: str, rows: pa.Table) -> None:
    """Write summary rows (sorted by the query) with one unit per map source, in row
    groups of at most ROWS_PER_GROUP rows."""
    if rows.num_rows == 0:
        return
    keys = _source_keys(rows)
    for key in pc.unique(keys).to_pylist():
        part = rows.filter(pc.equal(keys, key))
        for s in range(0, part.num_rows, ROWS_PER_GROUP):
            run.write(table, part.slice(s, ROWS_PER_GROUP), unit_key=key,
                      partition={"model": key.split("|")[0]})


def feature_summaries(con: duckdb.DuckDBPyConnection, params: dict[str, Any]) -> pa.Table:
    """The feature_metrics rows of the map sources ``params`` selects (NULL: all).

    Groups are (source, layer, head, protocol, metric, percentile) x (feature label,
    rollup): rollup = false holds the boxes of the label itself, rollup = true the boxes
    of the label and of all its descendants (each box under every ancestor). Per group:
    n_boxes = non-NULL values, n_images = distinct images among them, mean, and the
    sample sd by two passes (sum of squared deviations from the group mean; NULL for
    one box). Dense integer keys and ``np.bincount`` replace a SQL DISTINCT count.
    """
    vals = con.sql(named_query("job_box_values"), params=params).pl()
    labels = con.sql(named_query("job_box_labels")).pl()
    keys = ["model", "variant", "method", "layer", "head", "protocol_hash", "metric",
            "percentile"]
    if vals.height == 0 or labels.height == 0:
        return _empty_feature_table()
    g, first = _group_ids(vals, keys)
    n_groups = int(first.size)
    g_keys = vals.select(keys)[first]
    value = vals["value"].to_numpy().astype(np.float64)
    box = vals["box"].to_numpy().astype(np.int64)
    image = vals["image"].to_numpy().astype(np.int64)
    n_img = int(image.max()) + 1
    n_box = int(labels["box"].max()) + 1
    label_ids = np.sort(labels["ancestor"].unique().to_numpy())
    n_lab = label_ids.size
    out: list[pl.DataFrame] = []
    for rollup in (False, True):
        sel = (labels if rollup else labels.filter(pl.col("depth") == 0)).sort("box")
        per_box = np.bincount(sel["box"].to_numpy(), minlength=n_box)
        ptr = np.zeros(n_box + 1, np.int64)
        np.cumsum(per_box, out=ptr[1:])
        anc = np.searchsorted(label_ids, sel["ancestor"].to_numpy())
        reps = per_box[box]  # rows fan out to each label of their box
        row = np.repeat(np.arange(value.size), reps)
        offset = np.arange(row.size) - np.repeat(np.cumsum(reps) - reps, reps)
        k = g[row] * n_lab + anc[ptr[box[row]] + offset]  # dense group x label key
        size = n_groups * n_lab
        v = value[row]
        n = np.bincount(k, minlength=size)
        live = np.flatnonzero(n)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(k, weights=v, minlength=size) / n
            dev = v - mean[k]
            ss = np.bincount(k, weights=dev * dev, minlength=size)
            sd = np.where(n > 1, np.sqrt(ss / (n - 1)), np.nan)
        seen = np.zeros(size * n_img, dtype=bool)
        seen[k * n_img + image[row]] = True
        n_images = seen.reshape(size, n_img).sum(axis=1)
        out.append(g_keys[live // n_lab].with_columns(
            feature_label=pl.Series(label_ids[live % n_lab].astype(np.int32)),
            rollup=pl.lit(rollup), n_boxes=pl.Series(n[live].astype(np.int64)),
            n_images=pl.Series(n_images[live].astype(np.int64)),
            mean=pl.Series(mean[live]), sd=pl.Series(sd[live]).fill_nan(None)))
    names = labels.select(pl.col("ancestor").alias("feature_label"),
                          pl.col("ancestor_name").alias("feature_name")).unique()
    df = pl.concat(out).join(names, on="feature_label", how="left")
    df = df.sort(["model", "variant", "method", "protocol_hash", "metric", "percentile",
                  "layer", "head", "rollup", "feature_label"], nulls_last=False)
    return df.select("model", "variant", "method", "layer", "head", "feature_label",
                     "feature_name", "rollup", "protocol_hash", "metric", "percentile",
                     "n_boxes", "n_images", "mean", "sd").to_arrow()


def _group_ids(df: pl.DataFrame, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Consecutive group ids of the rows of ``df`` by ``keys`` (NULL is a value), and the
    first row of each group."""
    code = np.zeros(df.height, np.int64)
    for k in keys:
        col = df[k]
        if col.dtype == pl.String:
            col = col.cast(pl.Categorical).to_physical()  # hashed, not sorted
        c = col.cast(pl.Int64).fill_null(-1).to_numpy()
        c = c - c.min()
        code = code * (int(c.max()) + 1) + c
        if code.max() > 2**40:  # keep the mixed-radix code small
            code = np.unique(code, return_inverse=True)[1].astype(np.int64)
    _, first, inv = np.unique(code, return_index=True, return_inverse=True)
    return inv.astype(np.int64), first


def _empty_feature_table() -> pa.Table:
    from ssl_wc.lake.schemas import spec

    return spec("feature_summaries").schema.empty_table().drop_columns(["run_id", "unit_key"])


def _write_layer_summaries(run: Run, df: pl.DataFrame, resamples: int, seed: int,
                           bootstrap: Any) -> int:
    keys = ["model", "variant", "method", "layer", "head", "protocol_hash", "metric",
            "percentile"]
    if df.height == 0:
        return 0
    groups = df.group_by(keys, maintain_order=True).agg(vals=pl.col("value"))
    vals = [np.asarray(v, dtype=np.float64) for v in groups["vals"].to_list()]
    mean, sd, lo, hi = bootstrap(vals, resamples=resamples, seed=seed)
    out = groups.drop("vals").to_arrow()
    out = out.append_column("n", pa.array([len(v) for v in vals], pa.int32()))
    for name, arr in (("mean", mean), ("sd", sd), ("ci_low", lo), ("ci_high", hi)):
        out = out.append_column(name, nan_to_null(arr))
    keys_col = _source_keys(out)
    for key in pc.unique(keys_col).to_pylist():
        run.write("metric_summaries", out.filter(pc.equal(keys_col, key)), unit_key=key)
    return groups.height
