"""``ssl-wc stats`` and ``ssl-wc probe``: paired model comparisons and linear probes.

``model_comparisons``: for every pair of models (baselines included) per metric and
percentile and layer rule (``best_layer``: each model at its best layer for that metric;
``last_layer``), under each model's default method with the mean-fused map, paired over
the images both scored: mean difference, bootstrap CI, Cohen's d_z, paired t-test and
Wilcoxon signed-rank p-values (survival functions, never 0), and Holm, Bonferroni and
Benjamini-Hochberg adjustments over the family stated in each row (all pairs of that
metric, percentile, layer rule and variant).

``probe_results``: a linear probe (stratified k-fold, scaler fitted inside folds) per
model, variant, layer and feature kind, predicting the first listed style of the
annotated images among the four study styles.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from ingest.common import METRIC_TABLES, JobResult, refuse_emptying, unchanged_input
from ssl_wc.lake.runs import Run
from ssl_wc.options import BadOption
from ssl_wc.paths import WarehousePaths
from ssl_wc.stats.bootstrap import paired_bootstrap_ci
from ssl_wc.stats.multiple import benjamini_hochberg, bonferroni, holm
from ssl_wc.stats.paired import paired_compare
from ssl_wc.warehouse import read_named

STUDY_STYLES = {"Q46261": "Romanesque", "Q176483": "Gothic", "Q236122": "Renaissance",
                "Q840829": "Baroque"}
COMPARED_METRICS = ("iou", "coverage", "pointing_t0", "pointing_t15", "topk_pointing",
                    "relevance_rank_acc", "mse", "kl", "emd", "iou_over_max",
                    # faithfulness (`ssl-wc faithfulness`): the gains over each image's
                    # random order, not the raw AUCs, whose scale differs between models
                    "deletion_gain", "insertion_gain", "road_gap", "mprt_spearman_abs",
                    "mprt_ssim", "emprt")


MIN_RESAMPLES = 100


def materialise_stats(wh: WarehousePaths, *, probe: bool = True, force: bool = False,
                      resamples: int = 10_000) -> list[JobResult]:
    """Model comparisons, fine-tuned-vs-frozen deltas and (``probe``) the linear probe;
    one result each. ``resamples`` (bootstrap) must be at least ``MIN_RESAMPLES``."""
    from ingest.finetune import materialise_variant_deltas

    if resamples < MIN_RESAMPLES:
        raise BadOption("resamples", resamples, f"must be at least {MIN_RESAMPLES} for a "
                        "95 % bootstrap interval")
    out = [materialise_comparisons(wh, force=force, resamples=resamples)]
    out.append(materialise_variant_deltas(wh, resamples=resamples, force=force))
    if probe:
        out.append(materialise_probe(wh, force=force))
    return out


def materialise_comparisons(wh: WarehousePaths, *, force: bool = False,
                            resamples: int = 10_000) -> JobResult:
    """Rebuild ``model_comparisons`` when the metrics changed (see the module docstring).

    The run is opened before the computation, so its duration covers the work and a
    crash during it leaves a failed run with its error.
    """
    fp, skip = unchanged_input(wh, "stats", METRIC_TABLES, force=force,
                               what="metrics", resamples=resamples)
    if skip is not None:
        return skip
    with Run(wh, "stats", {"resamples": resamples, "metrics": COMPARED_METRICS}) as run:
        rows = _comparison_rows(wh, resamples)
        refuse_emptying(wh, "model_comparisons", "*", len(rows), force=force, run=run,
                        why="no pair of models has paired metric values")
        if rows:
            run.write("model_comparisons", pa.Table.from_pylist(rows), unit_key="*")
        run.add_units("model_comparisons", ["*"])
        manifest = run.commit(input=fp, comparisons=len(rows), resamples=resamples)
    return JobResult("stats", run.status, run.run_id, new=len(rows),
                     seconds=manifest["seconds"], message=f"{len(rows)} paired comparisons")


def _comparison_rows(wh: WarehousePaths, resamples: int) -> list[dict[str, Any]]:
    df = read_named(wh, "job_comparison_values", {"metrics": list(COMPARED_METRICS)})
    rows: list[dict[str, Any]] = []
    if not df.height:
        return rows
    means = df.group_by(["model", "variant", "method", "layer", "protocol_hash", "metric",
                         "percentile", "direction"]).agg(pl.col("value").mean())
    for (phash, metric, pct, variant), grp in df.group_by(
            ["protocol_hash", "metric", "percentile", "variant"]):
        sub = means.filter((pl.col("protocol_hash") == phash) & (pl.col("metric") == metric)
                           & (pl.col("percentile") == pct) & (pl.col("variant") == variant))
        lower = (sub["direction"][0] if sub.height else "higher") == "lower"
        for rule in ("best_layer", "last_layer"):
            chosen = _choose_layers(sub, rule, lower)
            rows += _compare_family(grp, chosen, str(metric), int(pct), rule,
                                    str(variant), resamples)
    return rows


def _choose_layers(sub: pl.DataFrame, rule: str, lower: bool) -> dict[str, tuple[int, str]]:
    """model -> (layer, method) under the rule."""
    out: dict[str, tuple[int, str]] = {}
    for (model,), g in sub.group_by(["model"]):
        if rule == "last_layer":
            r = g.sort("layer").row(-1, named=True)
        else:
            # ties: the lowest layer (then method name) wins, so reruns choose the same
            r = g.sort(["value", "layer", "method"], descending=[not lower, False, False],
                       nulls_last=True).row(0, named=True)
        out[str(model)] = (int(r["layer"]), str(r["method"]))
    return out


def _compare_family(grp: pl.DataFrame, chosen: dict[str, tuple[int, str]], metric: str,
                    pct: int, rule: str, variant: str, resamples: int) -> list[dict[str, Any]]:
    series: dict[str, dict[str, float]] = {}
    for model, (layer, method) in chosen.items():
        g = grp.filter((pl.col("model") == model) & (pl.col("layer") == layer)
                       & (pl.col("method") == method))
        series[model] = dict(zip(g["image_id"].to_list(), g["value"].to_list(), strict=True))
    rows = []
    models = sorted(series)
    pairs = list(itertools.combinations(models, 2))
    family = (f"all {len(pairs)} model pairs of {metric}"
              f"{'@' + str(pct) if pct >= 0 else ''}, {rule}, variant {variant}")
    for a, b in pairs:
        common = sorted(set(series[a]) & set(series[b]))
        va = np.array([series[a][i] for i in common], dtype=np.float64)
        vb = np.array([series[b][i] for i in common], dtype=np.float64)
        keep = np.isfinite(va) & np.isfinite(vb)
        va, vb = va[keep], vb[keep]
        row: dict[str, Any] = {
            "metric": metric, "percentile": pct if pct >= 0 else None, "layer_rule": rule,
            "method_rule": "default method, mean over heads", "model_a": a,
            "variant_a": variant, "layer_a": chosen[a][0], "method_a": chosen[a][1],
            "model_b": b, "variant_b": variant, "layer_b": chosen[b][0],
            "method_b": chosen[b][1], "n": int(va.size), "family": family,
            "family_size": len(pairs)}
        if va.size >= 2:
            res = paired_compare(va, vb)
            ci = paired_bootstrap_ci(va, vb, n_resamples=resamples)
            row.update(mean_a=res.mean_a, mean_b=res.mean_b, mean_diff=res.mean_diff,
                       ci_low=ci.low, ci_high=ci.high, d_z=res.cohens_dz, t_stat=res.ttest.t,
                       p_t=res.ttest.p, wilcoxon_stat=res.wilcoxon.statistic,
                       p_wilcoxon=res.wilcoxon.p)
        rows.append(row)
    p = np.array([r.get("p_t", np.nan) for r in rows], dtype=np.float64)
    ok = np.isfinite(p)
    if ok.any():
        for name, fn in (("p_holm", holm), ("p_bonferroni", bonferroni),
                         ("p_bh", benjamini_hochberg)):
            adj = np.full(p.shape, np.nan)
            adj[ok] = fn(p[ok])
            for r, v in zip(rows, adj, strict=True):
                r[name] = None if np.isnan(v) else float(v)
    for r in rows:
        for k in ("mean_a", "mean_b", "mean_diff", "ci_low", "ci_high", "d_z", "t_stat", "p_t",
                  "wilcoxon_stat", "p_wilcoxon", "p_holm", "p_bonferroni", "p_bh"):
            v = r.get(k)
            r[k] = None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)
    return rows


def materialise_probe(wh: WarehousePaths, *, force: bool = False, seed: int = 0,
                      max_splits: int = 5) -> JobResult:
    """Linear probe on stored features of the annotated images (first listed style).

    ``max_splits`` (``--folds``) must be at least 2. The run is opened before the
    computation (durations cover the work; a crash leaves a failed run).
    """
    from ssl_wc.stats.probe import linear_probe

    if max_splits < 2:
        raise BadOption("folds", max_splits, "must be at least 2 (stratified k-fold)")
    fp, skip = unchanged_input(wh, "probe", ("features", "ann_images"), force=force,
                               what="features", max_splits=max_splits)
    if skip is not None:
        return skip
    with Run(wh, "probe", {"seed": seed, "max_splits": max_splits}) as run:
        df = read_named(wh, "job_probe_features", {"styles": list(STUDY_STYLES)})
        rows: list[dict[str, Any]] = []
        skipped: list[str] = []
        for (model, variant, kind, layer), g in df.group_by(
                ["model", "variant", "kind", "layer"], maintain_order=True):
            y = np.asarray(g["primary_style"].to_list())
            _, counts = np.unique(y, return_counts=True)
            k = int(min(max_splits, counts.min())) if counts.size >= 2 else 0
            if k < 2:
                skipped.append(f"{model}/{kind}/{layer}")
                continue
            x = np.stack([np.asarray(v, dtype=np.float64) for v in g["values"].to_list()])
            rows.append(_probe_row(linear_probe(x, y, n_splits=k, seed=seed), model, variant,
                                   layer, kind, int(y.size), k, seed))
        refuse_emptying(wh, "probe_results", "*", len(rows), force=force, run=run,
                        why="no model has features of two styles with enough images")
        if rows:
            run.write("probe_results", pa.Table.from_pylist(rows), unit_key="*")
        run.add_units("probe_results", ["*"])
        manifest = run.commit(input=fp, probes=len(rows), skipped=skipped[:20],
                              max_splits=max_splits)
    return JobResult("probe", run.status, run.run_id, new=len(rows),
                     seconds=manifest["seconds"],
                     message=f"{len(rows)} probes" + (f", {len(skipped)} skipped (too few "
                                                      "images per class)" if skipped else ""))


def _probe_row(res: Any, model: str, variant: str, layer: int, kind: str, n_images: int,
               k: int, seed: int) -> dict[str, Any]:
    labels = [str(v) for v in res.labels]
    return {
        "model": model, "variant": variant, "layer": layer, "feature_kind": kind,
        "label_rule": "first listed style, 4 study styles", "n_images": n_images,
        "n_folds": k, "seed": seed, "accuracy": res.accuracy,
        "accuracy_sd": float(np.std(res.fold_accuracy, ddof=1)) if k > 1 else None,
        "macro_f1": res.macro_f1,
        "per_class_json": json.dumps({STUDY_STYLES.get(c, c): v for c, v in
                                      zip(labels, res.per_class_accuracy.values(),
                                          strict=True)}),
        "confusion_json": json.dumps(np.asarray(res.confusion).tolist()),
        "classes_json": json.dumps([STUDY_STYLES.get(c, c) for c in labels])}
