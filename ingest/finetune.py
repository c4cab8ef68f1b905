"""``ssl-wc finetune``: fine-tune a backbone on the four-style task, ingest the fine-tuned
model's attention as a variant, and measure how far fine-tuning moved it.

Jobs:

- :func:`run_finetune` trains one model with one strategy (``linear_probe``, ``lora``,
  ``full``; see :mod:`ssl_wc.finetune.train`) on the leakage-safe style split
  (:mod:`ssl_wc.finetune.split`) and writes, in one :class:`ssl_wc.lake.runs.Run`,
  ``finetune_splits`` (unit: the split id), ``finetune_epochs`` and ``finetune_models``
  (unit: the finetune id). The best checkpoint is kept under
  ``<wh>/artifacts/finetune/<finetune_id>/`` with its manifest. The finetune id is a hash
  of the model, its source, the split id and every hyper-parameter that changes the
  result, so the same configuration on the same split is skipped once committed (unless
  ``force``); a run killed midway leaves nothing visible and is redone.
- :func:`ingest_variant` extracts attention maps (every layer and head) from the
  fine-tuned checkpoint through :func:`ingest.attention.ingest_attention`, with
  ``variant`` = the strategy and the model key of the base model (``dinov2`` stays
  ``dinov2``), Grad-CAM targeting the fine-tuned head's predicted class. ``ssl-wc
  metrics`` then scores the variant like any other map. One variant per model and
  strategy is live at a time: ingesting another checkpoint of the same model and strategy
  supersedes the previous maps (``map_sources.config_json`` names the finetune id).
- :func:`materialise_variant_deltas` writes ``variant_delta_stats``: fine-tuned minus
  frozen per model, strategy, method, layer and metric (fused mean map, image targets),
  paired over images: mean, percentile-bootstrap 95 % CI (Efron & Tibshirani 1993),
  Cohen's d_z, paired t-test and Wilcoxon signed-rank p-values, and Holm's step-down
  adjustment (Holm 1979) over the family of all layers x methods of one model, strategy,
  metric and percentile (stated in each row). A comparison whose differences are all zero
  (the linear probe: identical maps) has no p-value and is left out of its family.

Public: :func:`run_finetune`, :func:`ingest_variant`, :func:`materialise_variant_deltas`,
:func:`resolve_model_spec`, :func:`default_inputs`, :class:`FinetuneResult`,
:class:`FinetuneInputError`.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from ingest.common import (
    METRIC_TABLES,
    JobResult,
    last_manifest,
    refuse_emptying,
    unchanged_input,
)
from ingest.model_specs import quiet_hf, resolve_spec
from ssl_wc import options
from ssl_wc.finetune import STRATEGIES
from ssl_wc.lake.catalog import read_manifests
from ssl_wc.lake.runs import Run, code_version, config_hash
from ssl_wc.options import BadOption
from ssl_wc.paths import WarehousePaths
from ssl_wc.warehouse import read_named

VARIANT_METHODS = ("cls", "rollout", "mean")
FROZEN = "frozen"


class FinetuneInputError(ValueError):
    """Something fine-tuning needs is missing (what, and the command that provides it)."""


@dataclass
class FinetuneResult(JobResult):
    """A :class:`JobResult` that also names the fine-tuned model and its checkpoint."""

    finetune_id: str = ""
    checkpoint: str = ""
    best_val_acc: float | None = None


# --------------------------------------------------------------------------- helpers
def resolve_model_spec(wh: WarehousePaths, key: str, specs: Mapping[str, Any] | None = None,
                       model_config: Path | None = None) -> Any:
    """The spec of ``key`` (see :func:`ingest.model_specs.resolve_spec`): ``specs``
    overrides, a user model file, the registry, or ``<key>-random``, the demo's tiny
    random-weight replica; :class:`BadOption` (``--model``) when unknown."""
    return resolve_spec(wh, key, specs, model_config, option="model")


def default_inputs(wh: WarehousePaths, images: Path | None,
                   churches: Path | None) -> tuple[Path, Path]:
    """The image folder and ``churches.json``: given, else those recorded by the last
    committed ``images`` and ``annotations`` runs."""
    if images is None:
        m = last_manifest(wh, "images")
        folder = (m or {}).get("summary", {}).get("folder") or \
            (m or {}).get("config", {}).get("folder")
        if not folder:
            raise FinetuneInputError("no image folder: pass --images DIR, or run "
                                     "`ssl-wc ingest images DIR` first")
        images = Path(folder)
    if churches is None:
        m = last_manifest(wh, "annotations")
        path = (m or {}).get("config", {}).get("churches")
        if not path:
            raise FinetuneInputError(
                "no churches.json: pass --churches FILE, or ingest the annotations with "
                "`ssl-wc ingest annotations building_parts.json --churches churches.json`")
        churches = Path(path)
    images, churches = Path(images), Path(churches)
    if not images.is_dir():
        raise FinetuneInputError(f"{images}: not a folder of images")
    if not churches.is_file():
        raise FinetuneInputError(f"{churches}: no such file (churches.json)")
    return images, churches


def annotated_images(wh: WarehousePaths) -> list[tuple[str, str | None]]:
    """(image_id, church_qid) of the annotated benchmark images in the warehouse."""
    rows = read_named(wh, "job_annotated_images").rows()
    return [(str(i), c) for i, c in rows]


def _spec_identity(spec: Any) -> dict[str, Any]:
    d: dict[str, Any] = spec.describe()
    d.pop("local_dir", None)
    return d


def _live(wh: WarehousePaths, table: str, unit: str) -> bool:
    return (table, unit) in read_manifests(wh).live


# --------------------------------------------------------------------------- fine-tune
def run_finetune(wh: WarehousePaths, model: str, strategy: str, *, epochs: int = 3,
                 batch_size: int = 16, lr_backbone: float | None = None, lr_head: float = 1e-3,
                 lora_rank: int = 8, lora_alpha: int = 16, lora_dropout: float = 0.0,
                 weight_decay: float = 0.05, warmup_fraction: float = 0.1,
                 grad_clip: float = 1.0, seed: int = 0, val_fraction: float = 0.2,
                 images: Path | None = None, churches: Path | None = None,
                 device: str = "auto", precision: str = "auto", num_workers: int = 0,
                 force: bool = False, strict: bool = False,
                 specs: Mapping[str, Any] | None = None, model_config: Path | None = None,
                 echo: Callable[[str], None] | None = None) -> FinetuneResult:
    """Fine-tune ``model`` with ``strategy``; see the module docstring.

    Raises :class:`FinetuneInputError` for missing inputs (nothing is written); a failure
    during training is recorded as a failed run and returned as a ``failed`` result
    (raised with ``strict``).
    """
    from ingest.attention import check_device
    from ssl_wc.finetune.split import build_split
    from ssl_wc.finetune.train import FinetuneConfig

    check_training_options(strategy=strategy, epochs=epochs, batch_size=batch_size,
                           lr_backbone=lr_backbone, lr_head=lr_head, lora_rank=lora_rank,
                           lora_alpha=lora_alpha, val_fraction=val_fraction,
                           num_workers=num_workers, seed=seed)
    check_device(device, "auto")
    spec = resolve_model_spec(wh, model, specs, model_config)
    if spec.kind != "vit" or spec.variable_grid:
        what = "a CNN" if spec.kind != "vit" else "a variable-resolution (NaFlex) ViT"
        raise FinetuneInputError(f"model {spec.key!r} is {what}: fine-tuning supports "
                                 "fixed-resolution ViTs (dinov2, dinov3, mae, clip, siglip2, "
                                 "siglip)")
    images, churches = default_inputs(wh, images, churches)
    annotated = annotated_images(wh)
    if not annotated:
        raise FinetuneInputError(
            "the warehouse holds no annotated images: ingest the annotations first "
            "(without them the benchmark images could leak into training)")
    split = build_split(images, churches, [i for i, _ in annotated],
                        annotated_churches=[c for _, c in annotated if c], seed=seed,
                        val_fraction=val_fraction)
    cfg = FinetuneConfig(strategy=strategy, epochs=epochs, batch_size=batch_size,
                         lr_backbone=lr_backbone, lr_head=lr_head, weight_decay=weight_decay,
                         warmup_fraction=warmup_fraction, grad_clip=grad_clip,
                         lora_rank=lora_rank, lora_alpha=lora_alpha,
                         lora_dropout=lora_dropout, seed=seed, device=device,
                         precision=precision, num_workers=num_workers)
    identity = {"model": spec.key, "spec": _spec_identity(spec), "split_id": split.split_id,
                "train": cfg.identity()}
    finetune_id = f"{spec.key}-{strategy}-{config_hash(identity)[:12]}"
    ckpt = wh.artifacts / "finetune" / finetune_id
    rel_ckpt = ckpt.relative_to(wh.root).as_posix()
    name = f"finetune:{spec.key}:{strategy}"
    if not force and _live(wh, "finetune_models", finetune_id) and \
            (ckpt / "manifest.json").is_file():
        return FinetuneResult(name, "skipped", skipped=1, finetune_id=finetune_id,
                              checkpoint=rel_ckpt,
                              message=f"{finetune_id} already trained (same config and split "
                                      f"{split.split_id}); --force retrains")
    try:
        return _train_and_commit(wh, spec, split, cfg, finetune_id, ckpt, rel_ckpt, name,
                                 images, churches, identity, echo)
    except Exception as exc:
        if strict:
            raise
        return FinetuneResult(name, "failed", failed=1, finetune_id=finetune_id,
                              message=f"{type(exc).__name__}: {exc}")


def check_training_options(*, strategy: str, epochs: int, batch_size: int,
                           lr_backbone: float | None, lr_head: float, lora_rank: int,
                           lora_alpha: int, val_fraction: float, num_workers: int,
                           seed: int) -> None:
    """Every training option in its valid range (:class:`BadOption` names it)."""
    if strategy not in STRATEGIES:
        raise BadOption("strategy", strategy, "unknown strategy", ", ".join(STRATEGIES))
    for name, value in (("epochs", epochs), ("batch_size", batch_size),
                        ("lora_rank", lora_rank), ("lora_alpha", lora_alpha)):
        options.at_least(name, value, 1)
    options.at_least("num_workers", num_workers, 0)
    options.at_least("seed", seed, 0)
    options.positive("lr_head", lr_head)
    if lr_backbone is not None:
        options.positive("lr_backbone", lr_backbone)
    options.open_fraction("val_fraction", val_fraction)


def _train_and_commit(wh: WarehousePaths, spec: Any, split: Any, cfg: Any, finetune_id: str,
                      ckpt: Path, rel_ckpt: str, name: str, images: Path, churches: Path,
                      identity: dict[str, Any],
                      echo: Callable[[str], None] | None) -> FinetuneResult:
    import peft
    import torch
    import transformers

    from ssl_wc.finetune.data import StyleDataset
    from ssl_wc.finetune.train import save_checkpoint, train_classifier, weights_fingerprint
    from ssl_wc.models.device import choose_device
    from ssl_wc.models.loading import load_model
    from ssl_wc.models.preprocess import PreprocessConfig

    quiet_hf()
    choice = choose_device(cfg.device, "float32")
    pre = PreprocessConfig.from_spec(spec)
    items = {s: [(r.path, split.label_index(r.style_id)) for r in split.subset(s)]
             for s in ("train", "val")}
    train_ds, val_ds = StyleDataset(items["train"], pre), StyleDataset(items["val"], pre)
    run_cfg = {**identity, "finetune_id": finetune_id, "device": choice.to_dict(),
               "images": images.as_posix(), "churches": churches.as_posix(),
               "num_workers": cfg.num_workers, "preprocess": pre.to_dict()}
    with Run(wh, "finetune", run_cfg, device=f"{choice.device}:{choice.dtype}") as run:
        if echo is not None:
            echo(f"{finetune_id}: {len(train_ds)} training / {len(val_ds)} validation images "
                 f"(split {split.split_id}), {cfg.epochs} epoch(s) on {choice.device}")
        backbone = load_model(spec, choice).model
        base_fp = weights_fingerprint(backbone)
        t0 = time.monotonic()
        result = train_classifier(backbone, spec, train_ds, val_ds, len(split.classes), cfg,
                                  choice, echo=echo)
        seconds = time.monotonic() - t0
        manifest = {"finetune_id": finetune_id, "model": spec.key, "strategy": cfg.strategy,
                    "classes": list(split.classes), "split": split.describe(),
                    "config": cfg.to_dict(), "identity": identity,
                    "code_version": code_version(), "run_id": run.run_id,
                    "created_at": dt.datetime.now(dt.UTC).isoformat(),
                    "versions": {"torch": torch.__version__,
                                 "transformers": transformers.__version__,
                                 "peft": peft.__version__},
                    "device": choice.to_dict(), "train_seconds": seconds}
        save_checkpoint(result, ckpt, manifest, base_fp)
        rows: dict[str, int] = {}
        if not _live(wh, "finetune_splits", split.split_id):
            rows["finetune_splits"] = run.write("finetune_splits", split.table(),
                                                unit_key=split.split_id)
        ep = result.epochs
        rows["finetune_epochs"] = run.write("finetune_epochs", {
            "finetune_id": [finetune_id] * len(ep), "model": [spec.key] * len(ep),
            "strategy": [cfg.strategy] * len(ep), "epoch": [e.epoch for e in ep],
            "train_loss": [e.train_loss for e in ep], "val_loss": [e.val_loss for e in ep],
            "train_acc": [e.train_acc for e in ep], "val_acc": [e.val_acc for e in ep],
            "lr_head": [e.lr_head for e in ep], "seconds": [e.seconds for e in ep]},
            unit_key=finetune_id)
        config_json = json.dumps({**cfg.to_dict(), "split_id": split.split_id,
                                  "classes": list(split.classes),
                                  "n_train": len(train_ds), "n_val": len(val_ds),
                                  "best_val_loss": result.best_val_loss,
                                  "best_confusion": result.best_confusion,
                                  "class_weights": result.class_weights,
                                  "precision": result.precision,
                                  "lora_targets": result.lora_targets,
                                  "base_fingerprint": base_fp}, sort_keys=True)
        rows["finetune_models"] = run.write("finetune_models", {
            "finetune_id": [finetune_id], "model": [spec.key], "strategy": [cfg.strategy],
            "split_id": [split.split_id], "best_epoch": [result.best_epoch],
            "best_val_acc": [result.best_val_acc], "checkpoint": [rel_ckpt],
            "config_json": [config_json], "n_trainable": [result.n_trainable],
            "n_params": [result.n_params]}, unit_key=finetune_id)
        committed = run.commit(finetune_id=finetune_id, model=spec.key,
                               strategy=cfg.strategy, split_id=split.split_id,
                               best_epoch=result.best_epoch, best_val_acc=result.best_val_acc,
                               n_train=len(train_ds), n_val=len(val_ds), checkpoint=rel_ckpt,
                               train_seconds=seconds)
    return FinetuneResult(name, committed["status"], run.run_id, new=1, rows=rows,
                          finetune_id=finetune_id, checkpoint=rel_ckpt,
                          best_val_acc=result.best_val_acc, seconds=seconds,
                          message=f"{finetune_id}: best val acc {result.best_val_acc:.3f} at "
                                  f"epoch {result.best_epoch}/{cfg.epochs} "
                                  f"({result.n_trainable:,} of {result.n_params:,} parameters "
                                  f"trained, {seconds:.1f}s)")


# --------------------------------------------------------------------------- variants
def finetuned_model_row(wh: WarehousePaths, finetune_id: str) -> dict[str, Any]:
    """The committed ``finetune_models`` row of ``finetune_id``."""
    rows = read_named(wh, "job_finetune_model", {"finetune_id": finetune_id}).rows()
    if not rows:
        raise FinetuneInputError(f"no committed fine-tuning run {finetune_id!r}: run "
                                 "`ssl-wc finetune` first (see the finetune_runs view)")
    fid, model, strategy, checkpoint, split_id = rows[-1]
    return {"finetune_id": fid, "model": model, "strategy": strategy,
            "checkpoint": checkpoint, "split_id": split_id}


class _CheckpointLoader:
    """Loads a checkpoint once for both AttentionJob hooks (backbone, then head)."""

    def __init__(self, path: Path, spec: Any) -> None:
        self.path = path
        self.spec = spec
        self.loaded: Any = None

    def _load(self, choice: Any) -> Any:
        if self.loaded is None:
            from ssl_wc.finetune.train import load_finetuned

            self.loaded = load_finetuned(self.path, choice, merge=True, spec=self.spec)
        return self.loaded

    def model(self, spec: Any, choice: Any) -> Any:
        del spec
        return self._load(choice).backbone

    def classifier(self, choice: Any) -> Any:
        return self._load(choice).head.to(choice.torch_device).eval()


def _checkpoint_spec(wh: WarehousePaths, manifest: dict[str, Any],
                     specs: Mapping[str, Any] | None) -> Any:
    """The base model's spec: an override, else the checkpoint's own (rebuilt), else the
    registry / demo replica when the recorded local folder is gone (moved warehouse)."""
    from ssl_wc.finetune.train import spec_from_dict

    key = manifest["model"]
    if specs and key in specs:
        return specs[key]
    spec = spec_from_dict(manifest["spec"])
    if spec.local_dir is None or Path(spec.local_dir).is_dir():
        return spec
    return resolve_model_spec(wh, key)


def checkpoint_loader(wh: WarehousePaths, finetune_id: str,
                      specs: Mapping[str, Any] | None = None
                      ) -> tuple[Any, _CheckpointLoader, dict[str, Any]]:
    """The base model's spec, a loader of the fine-tuned backbone and its head (each
    loaded once: ``loader.model(spec, choice)``, ``loader.classifier(choice)``), and the
    checkpoint's manifest, for the committed fine-tuning run ``finetune_id``."""
    from ssl_wc.finetune.train import read_manifest

    row = finetuned_model_row(wh, finetune_id)
    path = wh.root / row["checkpoint"]
    manifest = read_manifest(path)
    spec = _checkpoint_spec(wh, manifest, specs)
    return spec, _CheckpointLoader(path, spec), manifest


def ingest_variant(wh: WarehousePaths, finetune_id: str,
                   methods: Sequence[str] = VARIANT_METHODS, *,
                   layers: Sequence[int] | None = None, heads: Sequence[int] | None = None,
                   fuse: Sequence[str] = ("mean",), device: str = "auto", dtype: str = "auto",
                   batch_size: int = 8, features: bool = True, force: bool = False,
                   strict: bool = False, progress: bool = True,
                   specs: Mapping[str, Any] | None = None,
                   echo: Callable[[str], None] | None = None) -> list[JobResult]:
    """Extract the fine-tuned checkpoint's maps as variant ``<strategy>`` of its base model.

    Every layer and head by default (``layers``/``heads`` None), like the frozen
    extraction; use the frozen run's ``batch_size`` so a linear probe's maps are
    bit-identical to the frozen ones.
    """
    from ingest.attention import AttentionJob, ingest_attention

    row = finetuned_model_row(wh, finetune_id)
    spec, loader, manifest = checkpoint_loader(wh, finetune_id, specs)
    job = AttentionJob(models=[spec.key], methods=list(methods), layers=layers, heads=heads,
                       fuse=list(fuse), batch_size=batch_size, device=device, dtype=dtype,
                       variant=row["strategy"], features=features, force=force, strict=strict,
                       progress=progress, specs={spec.key: spec},
                       model_factory=loader.model, classifier_factory=loader.classifier,
                       extra_config={"finetune_id": finetune_id,
                                     "finetune_run_id": manifest.get("run_id"),
                                     "gradcam_target": "fine-tuned head, predicted class"})
    return ingest_attention(wh, job, echo)


def ensure_frozen(wh: WarehousePaths, model: str, methods: Sequence[str], *,
                  fuse: Sequence[str] = ("mean",), device: str = "auto", batch_size: int = 8,
                  specs: Mapping[str, Any] | None = None, model_config: Path | None = None,
                  progress: bool = True,
                  echo: Callable[[str], None] | None = None) -> list[JobResult]:
    """Extract frozen maps for the methods that have none yet for ``model`` (never
    recomputes existing frozen maps, whatever configuration made them)."""
    from ingest.attention import AttentionJob, ingest_attention, methods_for

    spec = resolve_model_spec(wh, model, specs, model_config)
    have = set(read_named(wh, "job_frozen_methods", {"model": spec.key})["method"].to_list())
    missing = [m for m in methods_for(spec, methods) if m not in have]
    if not missing:
        return []
    job = AttentionJob(models=[spec.key], methods=missing, fuse=list(fuse), device=device,
                       batch_size=batch_size, specs={spec.key: spec}, progress=progress)
    return ingest_attention(wh, job, echo)


# --------------------------------------------------------------------------- deltas
def _none(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if np.isnan(f) else f


def variant_delta_rows(df: pl.DataFrame, *, resamples: int = 10_000,
                       seed: int = 0) -> list[dict[str, Any]]:
    """Statistics rows from paired values.

    ``df`` columns: model, strategy, method, layer, protocol_hash, metric, percentile (-1
    when threshold-free), image_id, finetuned, frozen.
    """
    from ssl_wc.stats.bootstrap import bootstrap_mean_ci_groups
    from ssl_wc.stats.multiple import holm
    from ssl_wc.stats.paired import paired_compare

    keys = ["model", "strategy", "method", "layer", "protocol_hash", "metric", "percentile"]
    if df.height == 0:
        return []
    groups = df.sort([*keys, "image_id"]).group_by(keys, maintain_order=True).agg(
        pl.col("finetuned"), pl.col("frozen"))
    fts = [np.asarray(v, dtype=np.float64) for v in groups["finetuned"].to_list()]
    frs = [np.asarray(v, dtype=np.float64) for v in groups["frozen"].to_list()]
    diffs = [a - b for a, b in zip(fts, frs, strict=True)]
    # identical to paired_bootstrap_ci(a, b) group by group (same draws), vectorised
    _, _, lo, hi = bootstrap_mean_ci_groups(diffs, resamples=resamples, seed=seed)
    rows: list[dict[str, Any]] = []
    for i, g in enumerate(groups.drop("finetuned", "frozen").iter_rows(named=True)):
        res = paired_compare(fts[i], frs[i])
        pct = int(g["percentile"])
        rows.append({
            "model": g["model"], "strategy": g["strategy"], "method": g["method"],
            "layer": int(g["layer"]), "protocol_hash": g["protocol_hash"],
            "metric": g["metric"], "percentile": pct if pct >= 0 else None, "n": res.n,
            "mean_delta": _none(res.mean_diff), "ci_low": _none(lo[i]),
            "ci_high": _none(hi[i]), "d_z": _none(res.cohens_dz),
            "t_stat": _none(res.ttest.t), "p_t": _none(res.ttest.p),
            "p_wilcoxon": _none(res.wilcoxon.p)})
    fam_keys = ("model", "strategy", "protocol_hash", "metric", "percentile")
    families: dict[tuple[Any, ...], list[int]] = {}
    for i, r in enumerate(rows):
        families.setdefault(tuple(r[k] for k in fam_keys), []).append(i)
    for (model, strategy, _ph, metric, pct), idx in families.items():
        tested = [i for i in idx if rows[i]["p_t"] is not None]
        what = (f"{model} {strategy} vs frozen, {metric}"
                f"{'@' + str(pct) if pct is not None else ''} (fused mean map, image targets)")
        label = (f"all {len(tested)} layer x method tests of {what}; tests whose differences "
                 f"are all zero have no p" if tested else
                 f"no test: every difference is zero for {what}")
        adj: Sequence[float] = (holm(np.array([rows[i]["p_t"] for i in tested])).tolist()
                                if tested else [])
        for i in idx:
            rows[i]["family"] = label
            rows[i]["family_size"] = len(tested)
            rows[i]["p_holm"] = None
        for i, p in zip(tested, adj, strict=True):
            rows[i]["p_holm"] = float(p)
    return rows


def paired_variant_values(wh: WarehousePaths) -> pl.DataFrame:
    """Fine-tuned and frozen values paired on image (the ``variant_image_deltas`` view)."""
    return read_named(wh, "job_variant_pairs")


def materialise_variant_deltas(wh: WarehousePaths, *, resamples: int = 10_000, seed: int = 0,
                               force: bool = False) -> JobResult:
    """Rebuild ``variant_delta_stats`` (snapshot, unit ``*``) when the metrics changed.

    The run is opened before the computation (its duration covers the work; a crash
    leaves a failed run). Comparisons that exist are never replaced by none (unless
    ``force``): :func:`ingest.common.refuse_emptying`.
    """
    fp, skip = unchanged_input(wh, "variant_deltas", METRIC_TABLES, force=force,
                               what="metrics", resamples=resamples)
    if skip is not None:
        return skip
    with Run(wh, "variant_deltas", {"resamples": resamples, "seed": seed}) as run:
        rows = variant_delta_rows(paired_variant_values(wh), resamples=resamples, seed=seed)
        refuse_emptying(wh, "variant_delta_stats", "*", len(rows), force=force, run=run,
                        why="no fine-tuned variant has frozen maps to compare with")
        if rows:
            run.write("variant_delta_stats", pa.Table.from_pylist(rows), unit_key="*")
        run.add_units("variant_delta_stats", ["*"])
        manifest = run.commit(input=fp, resamples=resamples, comparisons=len(rows))
    return JobResult("variant_deltas", run.status, run.run_id, new=len(rows),
                     seconds=manifest["seconds"],
                     message=f"{len(rows)} fine-tuned vs frozen comparisons")
