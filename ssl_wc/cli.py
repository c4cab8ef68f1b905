"""The ``ssl-wc`` command line: a thin layer over the ingest jobs and the warehouse."""

from __future__ import annotations

import json
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ssl_wc import options
from ssl_wc.options import BadOption
from ssl_wc.paths import ENV_VAR, WarehousePaths


class _RefusingGroup(TyperGroup):
    """The root command: a refusal raised by any command (a bad option, a bad input file,
    a refused run) ends it with one ``error:`` line and exit 2, however the app is
    invoked (``main()``, a test runner)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            text = refusal_text(exc)
            if text is None:
                raise
            typer.secho(f"error: {text}", fg="red", err=True)
            raise typer.Exit(EXIT_USAGE) from None


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  cls=_RefusingGroup,
                  help="ssl-wc: do self-supervised vision models look where experts look?")
ingest_app = typer.Typer(no_args_is_help=True, help="Load data into the warehouse.")
models_app = typer.Typer(no_args_is_help=True, help="The model registry.")
app.add_typer(ingest_app, name="ingest")
app.add_typer(models_app, name="models")


class State:
    warehouse: WarehousePaths


STATE = State()

# exit codes shared by every command (documented in README)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_LOCKED, EXIT_CHECK = 0, 1, 2, 3, 4, 5


class Fmt(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.callback()
def main_options(
    ctx: typer.Context,
    warehouse: Annotated[str | None, typer.Option(
        "--warehouse", "-w", envvar=ENV_VAR,
        help="Warehouse folder (default ./warehouse).")] = None,
) -> None:
    wh = WarehousePaths.of(warehouse)
    if wh.root.exists() and not wh.root.is_dir():
        raise BadOption("warehouse", warehouse, "is a file, not a folder",
                        "a warehouse folder (created when missing)")
    STATE.warehouse = wh
    if ctx.invoked_subcommand != "check" and wh.manifests.exists():
        # commit visibility: a catalog older than the committed runs (a job killed
        # after its commit point) or showing a dead run as running is rebuilt first
        from ssl_wc.warehouse import ensure_catalog

        ensure_catalog(wh)


def fail(msg: str, code: int = EXIT_FAILED) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(code)


def echo_result(res: Any) -> None:
    typer.echo(res.line())


def _flat(df: Any) -> Any:
    """``df`` with nested columns (lists, arrays, structs) as JSON text, for CSV."""
    import polars as pl

    nested = [c for c, t in df.schema.items() if t.is_nested()]
    if not nested:
        return df
    return df.with_columns(
        pl.Series(c, [None if v is None else json.dumps(v, default=str)
                      for v in df[c].to_list()], pl.String) for c in nested)


def print_frame(df: Any, fmt: Fmt = Fmt.table, max_rows: int = 200) -> None:
    import polars as pl

    if fmt is Fmt.csv:
        sys.stdout.write(_flat(df).write_csv())
    elif fmt is Fmt.json:
        sys.stdout.write(json.dumps(df.to_dicts(), default=str, indent=1) + "\n")
    else:
        with pl.Config(tbl_rows=max_rows, tbl_cols=30, fmt_str_lengths=60,
                       tbl_hide_dataframe_shape=False, tbl_width_chars=200):
            typer.echo(df)


# ------------------------------------------------------------------------- ingest
@ingest_app.command("annotations")
def ingest_annotations_cmd(
    path: Annotated[Path, typer.Argument(help="building_parts.json")],
    style_names: Annotated[Path | None, typer.Option(help="style_names.txt")] = None,
    churches: Annotated[Path | None, typer.Option(help="churches.json")] = None,
    strict: Annotated[bool, typer.Option(
        help="Refuse the whole file on any error (default); --no-strict skips bad images "
             "(exit 3).")] = True,
    force: Annotated[bool, typer.Option(
        help="Re-ingest even if the inputs are unchanged; replace annotations even when no "
             "image is valid.")] = False,
) -> None:
    """Parse WikiChurches annotations (feature ontology, images, boxes, styles).

    Exit: 0 ok, 3 partial (--no-strict skipped bad images), 2 refused (bad file; nothing
    written).
    """
    from ingest.annotations import ingest_annotations

    _finish([ingest_annotations(STATE.warehouse, path, style_names, churches, strict=strict,
                                force=force)])


@ingest_app.command("images")
def ingest_images_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder of image files")],
    strict: Annotated[bool, typer.Option(help="Refuse the scan on the first unreadable "
                                              "image.")] = False,
    force: Annotated[bool, typer.Option(help="Rescan even if unchanged; record a folder "
                                             "that holds no readable image.")] = False,
    max_image_mb: Annotated[float, typer.Option(
        help="Refuse image files larger than this (MiB), before reading them.")] = 100.0,
    max_image_megapixels: Annotated[float, typer.Option(
        help="Refuse images with more pixels than this (millions), before decoding.")]
        = 100.0,
) -> None:
    """Record every image file: id, path, width, height, sha256.

    Exit: 0 ok, 3 partial (unreadable files recorded in ingest_errors), 2 refused.
    """
    from ingest.images import ingest_images
    from ssl_wc.data.imagefiles import ImageLimits

    options.positive("max_image_mb", max_image_mb)
    options.positive("max_image_megapixels", max_image_megapixels)
    limits = ImageLimits(max_bytes=int(max_image_mb * 2**20),
                         max_pixels=int(max_image_megapixels * 1e6))
    _finish([ingest_images(STATE.warehouse, folder, strict=strict, force=force,
                           limits=limits)])


@ingest_app.command("attention")
def ingest_attention_cmd(
    models: Annotated[str, typer.Option(help="Comma-separated model keys (ssl-wc models list).")],
    methods: Annotated[str, typer.Option(
        help="cls,rollout,mean,map,gradcam")] = "cls,rollout,mean,map",
    layers: Annotated[str, typer.Option(
        help="'all' or 0-based block indices, e.g. 0,5,11")] = "all",
    heads: Annotated[str, typer.Option(help="'all', 'none' (fused only) or head indices")] = "all",
    fuse: Annotated[str, typer.Option(help="Head fusions stored: mean,max,min")] = "mean",
    images: Annotated[str | None, typer.Option(
        help="Only these image ids (comma-separated).")] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|mps")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto|float32|bfloat16|float16")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 8,
    shard: Annotated[str | None, typer.Option(help="k/N: this process's share of images.")] = None,
    variant: Annotated[str, typer.Option(help="Variant label (frozen by default).")] = "frozen",
    model_config: Annotated[Path | None, typer.Option(help="TOML/JSON with extra models.")] = None,
    features: Annotated[bool, typer.Option(help="Also store pooled / mean-patch features.")] = True,
    patch_tokens: Annotated[str, typer.Option(
        help="Patch tokens stored (float16): 'last' block, 'all', 'none' or 0-based "
             "layers, e.g. 5,11 (a CNN: stages).")] = "last",
    force: Annotated[bool, typer.Option(help="Recompute what is already committed.")] = False,
    strict: Annotated[bool, typer.Option(help="Fail on the first bad image or model.")] = False,
    engine: Annotated[str, typer.Option(
        help="local (this process) or ray (a Ray Data actor pool; needs ssl-wc[ray]).")
                      ] = "local",
    address: Annotated[str | None, typer.Option(
        help="Ray cluster: auto (the running one), local (a new one), HOST:PORT or "
             "ray://HOST:PORT (default: $RAY_ADDRESS, else local).")] = None,
    workers: Annotated[int, typer.Option(help="Ray actors, each holding the model once.")
                       ] = 1,
    gpus_per_worker: Annotated[float | None, typer.Option(
        help="GPUs per Ray actor (default: 1 where the cluster has GPUs, else 0).")] = None,
) -> None:
    """Run backbones over the annotated images; write maps, features and patch tokens.

    Every option is checked before anything runs (exit 2 names the option and the valid
    values). Exit: 0 ok, 3 partial (failed images recorded in ingest_errors), 1 failed.
    """
    from ingest.attention import ALL_METHODS, FUSIONS, TOKEN_CHOICES, AttentionJob, ingest_attention

    def ints(option: str, value: str, keywords: tuple[str, ...]) -> list[int] | None:
        parsed = options.int_list(option, value, keywords)
        if isinstance(parsed, str):
            return None if parsed == "all" else []
        return parsed

    tokens: str | list[int]
    if patch_tokens in TOKEN_CHOICES:
        tokens = patch_tokens
    else:
        parsed = options.int_list("patch_tokens", patch_tokens, TOKEN_CHOICES)
        tokens = parsed if isinstance(parsed, list) else patch_tokens
    job = AttentionJob(models=options.split_list("models", models),
                       methods=options.choices("methods", methods, ALL_METHODS),
                       layers=ints("layers", layers, ("all",)),
                       heads=ints("heads", heads, ("all", "none")),
                       fuse=options.choices("fuse", fuse, FUSIONS),
                       batch_size=batch_size, device=device, dtype=dtype, variant=variant,
                       features=features, model_config=model_config, shard=shard,
                       strict=strict,
                       images=options.split_list("images", images) if images is not None
                       else None, force=force, patch_tokens=tokens, engine=engine,
                       address=address, workers=workers, gpus_per_worker=gpus_per_worker)
    _finish(ingest_attention(STATE.warehouse, job))


def _finish(results: list[Any]) -> None:
    """Print each job result (and the first problems of partial ones); exit 3 when some
    items failed, 1 when everything failed."""
    for r in results:
        echo_result(r)
        problems = list(getattr(r, "problems", []) or [])
        for line in problems[:MAX_PROBLEMS]:
            typer.echo(f"  - {line}", err=True)
        if len(problems) > MAX_PROBLEMS:
            typer.echo(f"  ... and {len(problems) - MAX_PROBLEMS} more: SELECT * FROM "
                       f"ingest_errors WHERE run_id = '{r.run_id}'", err=True)
    states = {r.status for r in results}
    if "failed" in states:
        raise typer.Exit(EXIT_PARTIAL if states - {"failed"} else EXIT_FAILED)
    if "partial" in states:
        raise typer.Exit(EXIT_PARTIAL)


MAX_PROBLEMS = 5


@app.command("metrics")
def metrics_cmd(
    baselines: Annotated[bool, typer.Option(help="Also score the four baselines.")] = True,
    force: Annotated[bool, typer.Option(help="Rescore everything.")] = False,
    eval_size: Annotated[int, typer.Option(
        min=8, max=2048, help="Evaluation resolution (square), 8..2048 pixels.")] = 224,
    random_trials: Annotated[int, typer.Option(
        min=1, max=10_000, help="Trials of the random baseline, 1..10000.")] = 100,
) -> None:
    """Score every committed map not yet scored; refresh summaries (bootstrap CIs)."""
    from ingest.metrics import materialise_metrics
    from ssl_wc.metrics.protocol import MetricProtocol

    _finish(materialise_metrics(STATE.warehouse, baselines=baselines, force=force,
                                protocol=MetricProtocol(eval_size=(eval_size, eval_size)),
                                random_trials=random_trials))


@app.command("stats")
def stats_cmd(
    probe: Annotated[bool, typer.Option(help="Also run the linear probe.")] = True,
    force: Annotated[bool, typer.Option(help="Recompute even if metrics are unchanged.")] = False,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples (at least 100).")]
        = 10_000,
) -> None:
    """Paired model comparisons (t, Wilcoxon, d_z, bootstrap CI, Holm/Bonferroni/BH)."""
    from ingest.stats import materialise_stats

    _finish(materialise_stats(STATE.warehouse, probe=probe, force=force, resamples=resamples))


@app.command("probe")
def probe_cmd(
    force: Annotated[bool, typer.Option(help="Recompute even if features are unchanged.")] = False,
    folds: Annotated[int, typer.Option(help="At most this many folds (at least 2).")] = 5,
) -> None:
    """Linear probe (stratified k-fold, scaler inside folds) on stored features."""
    from ingest.stats import materialise_probe

    _finish([materialise_probe(STATE.warehouse, force=force, max_splits=folds)])


@app.command("faithfulness")
def faithfulness_cmd(
    models: Annotated[str, typer.Option(
        help="Comma-separated model keys, or 'all' (every model with maps).")] = "all",
    methods: Annotated[str, typer.Option(
        help="Comma-separated methods, or 'all' (every method with maps).")] = "all",
    steps: Annotated[int, typer.Option(
        help="Deletion / insertion steps over the patch grid.")] = 16,
    imputation: Annotated[str, typer.Option(
        help="How removed patches are filled: road (noisy linear imputation), blur or "
             "constant.")] = "road",
    checks: Annotated[str, typer.Option(
        help="deletion (deletion/insertion curves), mprt (randomisation cascade), or "
             "both.")] = "deletion,mprt",
    variants: Annotated[str, typer.Option(
        help="Comma-separated variants (frozen, lora, ...), or 'all'.")] = "all",
    layers: Annotated[str, typer.Option(
        help="'all' or 0-based block indices (negative from the last), e.g. 11 or -1.")] = "all",
    images: Annotated[str | None, typer.Option(
        help="Only these image ids (comma-separated).")] = None,
    random_orders: Annotated[int, typer.Option(
        help="Random-order controls per image (their curves are averaged).")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the weight re-initialisation.")] = 42,
    controls: Annotated[bool, typer.Option(
        help="Also score the centre, saliency-prior and Sobel baselines as deletion orders "
             "(the random order is always scored).")] = True,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|mps")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto|float32|bfloat16|float16")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 32,
    model_config: Annotated[Path | None, typer.Option(help="TOML/JSON with extra models.")] = None,
    force: Annotated[bool, typer.Option(help="Recompute what is already committed.")] = False,
    strict: Annotated[bool, typer.Option(help="Fail on the first bad image or model.")] = False,
) -> None:
    """Faithfulness of every committed map: deletion / insertion AUC (ROAD removal, cosine
    of the pooled embedding) with random and baseline controls, and the cascading
    model-parameter randomisation test (Spearman, SSIM, plausibility deltas)."""
    from ingest.faithfulness import FaithfulnessInputError, FaithfulnessJob, run_faithfulness
    from ssl_wc.faithfulness.protocol import (
        CHECKS,
        IMPUTATIONS,
        DeletionProtocol,
        RandomisationProtocol,
    )

    def names(option: str, value: str) -> list[str] | None:
        items = [v.strip() for v in value.split(",") if v.strip()]
        if not items:
            fail(f"{option}: empty; give 'all' or comma-separated names", EXIT_USAGE)
        return None if items == ["all"] else items

    def ints(option: str, value: str) -> list[int] | None:
        if value.strip() == "all":
            return None
        try:
            return [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            fail(f"{option}: {value!r} is not 'all' or comma-separated integers", EXIT_USAGE)
        return None

    if imputation not in IMPUTATIONS:
        fail(f"--imputation: unknown {imputation!r}; valid: {', '.join(IMPUTATIONS)}",
             EXIT_USAGE)
    wanted_checks = names("--checks", checks) or list(CHECKS)
    bad = [c for c in wanted_checks if c not in CHECKS]
    if bad:
        fail(f"--checks: unknown {', '.join(bad)}; valid: {', '.join(CHECKS)}", EXIT_USAGE)
    for option, value, low in (("--steps", steps, 2), ("--random-orders", random_orders, 1),
                               ("--batch-size", batch_size, 1), ("--seed", seed, 0)):
        if value < low:
            fail(f"{option}: must be an integer >= {low}, got {value}", EXIT_USAGE)
    if steps > 1024:
        fail(f"--steps: must be at most 1024, got {steps}", EXIT_USAGE)
    job = FaithfulnessJob(
        models=names("--models", models), variants=names("--variants", variants),
        methods=names("--methods", methods), layers=ints("--layers", layers),
        images=[i for i in images.split(",") if i] if images else None,
        checks=wanted_checks,
        deletion=DeletionProtocol(steps=steps, imputation=imputation,  # type: ignore[arg-type]
                                  random_orders=random_orders),
        randomisation=RandomisationProtocol(seed=seed), controls=controls,
        batch_size=batch_size, device=device, dtype=dtype, model_config=model_config,
        force=force, strict=strict)
    try:
        results = run_faithfulness(STATE.warehouse, job, echo=typer.echo)
    except FaithfulnessInputError as exc:
        fail(f"{exc}", EXIT_USAGE)
    except Exception as exc:  # strict mode: the first failure is fatal
        fail(f"{type(exc).__name__}: {exc}")
    _finish(results)


class Strategy(StrEnum):
    linear_probe = "linear_probe"
    lora = "lora"
    full = "full"


@app.command("finetune")
def finetune_cmd(
    model: Annotated[str, typer.Option(help="Model key (ssl-wc models list; <key>-random: the "
                                            "demo's tiny random-weight replica).")],
    strategy: Annotated[Strategy, typer.Option(help="What is trained: the head only, LoRA "
                                                    "adapters + head, or everything.")],
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 3,
    batch_size: Annotated[int, typer.Option(help="Training batch size.")] = 16,
    lr_backbone: Annotated[float | None, typer.Option(
        help="Backbone (LoRA: adapter) learning rate; default lora 5e-4, full 1e-5.")] = None,
    lr_head: Annotated[float, typer.Option(help="Head learning rate.")] = 1e-3,
    lora_rank: Annotated[int, typer.Option(help="LoRA rank r.")] = 8,
    lora_alpha: Annotated[int, typer.Option(help="LoRA alpha (scale alpha / r).")] = 16,
    seed: Annotated[int, typer.Option(help="Seed of the split, the head and the shuffling.")] = 0,
    val_fraction: Annotated[float, typer.Option(help="Share of churches for validation.")] = 0.2,
    images: Annotated[Path | None, typer.Option(
        help="Image folder (default: the one of the last `ingest images`).")] = None,
    churches: Annotated[Path | None, typer.Option(
        help="churches.json (default: the one of the last `ingest annotations`).")] = None,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda|mps")] = "auto",
    ingest: Annotated[bool, typer.Option(
        help="Also extract the fine-tuned maps as a variant, score them and compare with "
             "the frozen model.")] = True,
    methods: Annotated[str, typer.Option(
        help="Attention methods of the variant.")] = "cls,rollout,mean",
    extract_batch_size: Annotated[int, typer.Option(
        help="Images per extraction batch (use the frozen run's for bit-identical probes).")] = 8,
    num_workers: Annotated[int, typer.Option(help="Data-loading worker processes.")] = 0,
    model_config: Annotated[Path | None, typer.Option(help="TOML/JSON with extra models.")] = None,
    force: Annotated[bool, typer.Option(help="Retrain even if this config is committed.")] = False,
) -> None:
    """Fine-tune a backbone on the 4-style task; ingest it as variant <strategy>.

    Annotated images and their churches never enter training. Exit: 0 ok, 3 partial, 1 failed,
    2 refused (a bad option or input; nothing trained).
    """
    from ingest.attention import ALL_METHODS
    from ingest.finetune import (
        ensure_frozen,
        ingest_variant,
        materialise_variant_deltas,
        run_finetune,
    )
    from ingest.metrics import materialise_metrics

    wanted = options.choices("methods", methods, ALL_METHODS)
    options.at_least("extract_batch_size", extract_batch_size, 1)
    wh = STATE.warehouse
    res = run_finetune(wh, model, strategy.value, epochs=epochs, batch_size=batch_size,
                       lr_backbone=lr_backbone, lr_head=lr_head, lora_rank=lora_rank,
                       lora_alpha=lora_alpha, seed=seed, val_fraction=val_fraction,
                       images=images, churches=churches, device=device,
                       num_workers=num_workers, force=force, model_config=model_config,
                       echo=typer.echo)
    results: list[Any] = [res]
    if ingest and res.status in ("committed", "skipped"):
        # incremental: frozen maps only for methods that have none, the variant unless
        # this checkpoint's maps are committed, maps not yet scored, deltas if changed
        results += ensure_frozen(wh, model, wanted, device=device,
                                 batch_size=extract_batch_size, model_config=model_config)
        results += ingest_variant(wh, res.finetune_id, wanted, device=device,
                                  batch_size=extract_batch_size)
        results += materialise_metrics(wh, baselines=False)  # baselines: `ssl-wc metrics`
        results.append(materialise_variant_deltas(wh))
    _finish(results)


@models_app.command("list")
def models_list_cmd(
    model_config: Annotated[Path | None, typer.Option(
        help="Also list models from this file (its entries for built-in keys override "
             "them, e.g. a pinned revision).")] = None,
    fmt: Annotated[Fmt, typer.Option("--format", "-f")] = Fmt.table,
) -> None:
    """The registry: key, kind, hub id, revision, architecture, layout, preprocessing.

    ``revision`` is the pinned one, else the commit the warehouse's newest run of the
    model resolved (``revision_from`` says which: pinned, resolved, or empty when the
    model floats on ``main`` and has not run here yet).
    """
    import polars as pl

    from ssl_wc.models.registry import list_specs, load_user_specs

    if model_config is not None and not model_config.is_file():
        raise BadOption("model_config", model_config, "no such file")
    extra = load_user_specs(model_config) if model_config else []
    by_key = {s.key: s for s in list_specs()}
    by_key.update({s.key: s for s in extra})
    resolved = _resolved_revisions()
    rows = []
    for s in by_key.values():
        pinned = s.revision or ""
        last = resolved.get(s.key, "")
        rows.append({
            "key": s.key, "kind": s.kind, "hub_id": s.hub_id or s.local_dir,
            "revision": pinned or last,
            "revision_from": "pinned" if pinned else ("resolved" if last else ""),
            "architecture": s.architecture, "patch": s.patch_size,
            "input": "aspect" if s.resize_mode == "aspect" else
                     f"{s.input_hw[0]}x{s.input_hw[1]}",
            "grid": f"<= {s.max_num_patches} patches" if s.variable_grid else
                    f"{s.grid[0]}x{s.grid[1]}",
            "cls": s.has_cls, "registers": s.num_registers,
            "prefix_tokens": s.num_prefix_tokens, "layers": s.num_layers,
            "heads": s.num_heads, "resize": s.resize_mode, "interpolation": s.interpolation,
            "pooled": s.pooled, "default_method": s.default_method})
    print_frame(pl.DataFrame(rows), fmt)


def _resolved_revisions() -> dict[str, str]:
    """model -> the commit its newest attention run resolved, from the warehouse (empty
    when there is no warehouse yet)."""
    from ssl_wc.warehouse import read_named

    wh: WarehousePaths = STATE.warehouse
    if not wh.catalog.exists() and not wh.manifests.exists():
        return {}
    try:
        df = read_named(wh, "models_resolved_revisions")
    except Exception:  # an unreadable warehouse must not break listing the registry
        return {}
    return {str(m): str(c) for m, c in df.iter_rows() if c}


@app.command("leaderboard")
def leaderboard_cmd(
    metric: Annotated[str, typer.Option(help="Metric name (see metric_catalogue).")] = "iou",
    percentile: Annotated[int | None, typer.Option(
        help="Percentile of IoU-type metrics (default 90); not for threshold-free "
             "metrics.")] = None,
    fmt: Annotated[Fmt, typer.Option("--format", "-f")] = Fmt.table,
) -> None:
    """Best layer per model under its default method, baselines included (frozen
    variant). Flags synthetic annotations and random-weight models, as the dashboards do."""
    from ssl_wc.warehouse import read_named

    wh = STATE.warehouse
    pct = _leaderboard_percentile(read_named(wh, "leaderboard_metrics"), metric, percentile)
    df = read_named(wh, "leaderboard_cli", {"metric": metric, "pct": pct})
    print_frame(df, fmt)
    _not_real_warning(read_named(wh, "leaderboard_flags").row(0, named=True))


def _leaderboard_percentile(available: Any, metric: str, percentile: int | None) -> int:
    """The percentile to show for ``metric``; :class:`BadOption` when the metric or the
    percentile is not in the warehouse's leaderboard (valid values listed)."""
    if available.height == 0:
        raise options.Refused("the warehouse has no scored metrics yet: run `ssl-wc "
                              "metrics` first")
    metrics = available["metric"].unique(maintain_order=True).to_list()
    if metric not in metrics:
        raise BadOption("metric", metric, "not in the leaderboard", options.listing(
            metrics, limit=40))
    pcts = [p for p in available.filter(available["metric"] == metric)["percentile"]
            .to_list() if p is not None]
    if not pcts:
        if percentile is not None:
            raise BadOption("percentile", percentile, f"{metric} is threshold-free: it has "
                            "no percentile (leave the option out)")
        return -1
    chosen = 90 if percentile is None and 90 in pcts else percentile
    if chosen is None:
        chosen = pcts[-1]
    if chosen not in pcts:
        raise BadOption("percentile", chosen, f"not a percentile of {metric}",
                        options.listing(pcts))
    return int(chosen)


def _not_real_warning(flags: dict[str, Any]) -> None:
    """The dashboards' "not real results" note, on stderr (tables stay parseable)."""
    notes = []
    if flags.get("synthetic"):
        notes.append("the annotations are SYNTHETIC (demo data, not WikiChurches)")
    models = flags.get("random_models") or []
    if models:
        notes.append(f"RANDOM weights (no pretrained checkpoint): {', '.join(models)}")
    if notes:
        typer.secho("warning: not real results: " + "; ".join(notes) + ".", fg="yellow",
                    err=True)


@app.command("demo")
def demo_cmd(
    models: Annotated[bool, typer.Option(help="Also run the tiny random-weight models.")] = True,
    finetune: Annotated[bool, typer.Option(
        help="Also fine-tune a tiny model (3 strategies).")] = True,
) -> None:
    """Build the demo warehouse from the built-in SYNTHETIC data (no server).

    Exit: 0 ok, 3 when a step failed or was partial.
    """
    from ingest.demo import build_demo

    results = build_demo(STATE.warehouse, echo=typer.echo, models=models, finetune=finetune)
    if models:
        typer.echo("\nleaderboard (IoU@90, best layer under each model's default method):")
        leaderboard_cmd(metric="iou", percentile=90, fmt=Fmt.table)
    typer.echo(f"\ndemo warehouse ready at {STATE.warehouse.root}; "
               "start the dashboards with `make serve`")
    if any(r.status in ("failed", "partial") for r in results):
        raise typer.Exit(EXIT_PARTIAL)


# ------------------------------------------------------------------------- query
@app.command("sql")
def sql_cmd(
    query: Annotated[str, typer.Argument(help="One read-only query (SELECT, or EXPLAIN of one)")],
    fmt: Annotated[Fmt, typer.Option("--format", "-f")] = Fmt.table,
    allow_files: Annotated[bool, typer.Option(
        help="Also let the query read the files it names outside the lake (reads only).")
    ] = False,
    max_rows: Annotated[int, typer.Option(help="Rows shown in table format.")] = 200,
    timeout: Annotated[float, typer.Option(help="Stop the query after this many seconds.")
                       ] = 60.0,
) -> None:
    """Run a read-only query against the views (see README for the view list)."""
    import duckdb

    from ssl_wc.sqlguard import QueryRefused, QueryTimeout, run_readonly
    from ssl_wc.warehouse import WarehouseMissing

    if max_rows < 1:
        fail(f"--max-rows must be at least 1, not {max_rows}", EXIT_USAGE)
    if not timeout > 0:
        fail(f"--timeout must be a positive number of seconds, not {timeout}", EXIT_USAGE)
    try:
        res = run_readonly(query, STATE.warehouse.root, allow_files=allow_files,
                           timeout_s=timeout)
    except QueryRefused as exc:
        fail(str(exc), EXIT_USAGE)
    except (WarehouseMissing, QueryTimeout) as exc:
        fail(str(exc))
    except duckdb.Error as exc:
        fail(f"query failed: {str(exc).strip().splitlines()[0]}")
    for w in res.warnings:
        typer.secho(f"warning: {w}", fg="yellow", err=True)
    print_frame(res.frame, fmt, max_rows)


@app.command("runs")
def runs_cmd(
    limit: Annotated[int, typer.Option(help="Newest N runs.")] = 30,
    fmt: Annotated[Fmt, typer.Option("--format", "-f")] = Fmt.table,
) -> None:
    """Ingest history: every run with its status, duration and row counts."""
    from ssl_wc import query
    from ssl_wc.sqlfiles import named_query

    options.positive("limit", limit)
    df = query(named_query("runs_recent"), {"limit": limit}, warehouse=str(STATE.warehouse.root))
    print_frame(df, fmt)


@app.command("info")
def info_cmd() -> None:
    """What the warehouse holds."""
    from ssl_wc.warehouse import WarehouseMissing, read_named

    wh = STATE.warehouse
    try:
        meta = dict(read_named(wh, "dash_catalog_info").rows())
    except WarehouseMissing as exc:
        fail(str(exc))
    typer.echo(f"warehouse: {wh.root}")
    typer.echo(f"catalog:   {wh.catalog} (commit state {meta.get('commit_state')})")
    print_frame(read_named(wh, "dash_warehouse_summary"))
    if read_named(wh, "dash_sources")["synthetic"][0]:
        typer.secho("annotations: SYNTHETIC DEMO DATA (not WikiChurches)", fg="yellow")


# ------------------------------------------------------------------------- outputs
def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


@app.command("report")
def report_cmd(
    out: Annotated[Path, typer.Option(help="Output folder (created; must be new or empty).")
                   ] = Path("report"),
    fmt: Annotated[str, typer.Option(
        "--format", help="Comma-separated: html (the page), png, svg, pdf (figure files).")
                   ] = "html,png,svg,pdf",
    models: Annotated[str | None, typer.Option(help="Only these models (comma-separated).")
                      ] = None,
    metric: Annotated[str, typer.Option(help="Headline metric (see metric_catalogue).")
                      ] = "iou",
    percentile: Annotated[int, typer.Option(help="Percentile of IoU-type metrics.")] = 90,
    images: Annotated[str | None, typer.Option(
        help="Images of the overlay grid (comma-separated ids; default: the ones with most "
             "boxes).")] = None,
    n_images: Annotated[int, typer.Option(help="Overlay images when --images is not given.")
                        ] = 4,
    notebook: Annotated[bool, typer.Option(
        help="Also run the exploration notebook and export it (needs ssl-wc[notebook]).")
                        ] = True,
    force: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
) -> None:
    """A static, self-contained report: HTML page, figures (PNG/SVG/PDF), tables (CSV/LaTeX)."""
    from ssl_wc.report.build import ReportError, ReportOptions, build_report, parse_formats
    from ssl_wc.report.output import OutputRefused
    from ssl_wc.warehouse import WarehouseMissing

    try:
        opts = ReportOptions(out=out, formats=parse_formats(fmt), models=_csv(models),
                             metric=metric, percentile=percentile, images=_csv(images),
                             n_images=n_images, notebook=notebook, force=force)
        res = build_report(STATE.warehouse, opts, echo=typer.echo)
    except (ReportError, OutputRefused) as exc:
        fail(str(exc), EXIT_USAGE)
    except WarehouseMissing as exc:
        fail(str(exc), EXIT_USAGE)
    typer.echo(res.line())


@app.command("export")
def export_cmd(
    out: Annotated[Path, typer.Option(help="Output folder (created; must be new or empty).")],
    models: Annotated[str | None, typer.Option(help="Only these models (comma-separated).")
                      ] = None,
    variant: Annotated[str, typer.Option(help="Variant (frozen or a fine-tuning strategy).")
                       ] = "frozen",
    method: Annotated[str, typer.Option(
        help="'default' (each model's own) or cls, rollout, mean, map, gradcam.")] = "default",
    layer: Annotated[str, typer.Option(
        help="'best' (the leaderboard's layer for --metric), 'last', or a layer number.")
                     ] = "best",
    head: Annotated[int, typer.Option(help="Head: -1 mean, -2 max, -3 min, or a head index.")
                    ] = -1,
    images: Annotated[str | None, typer.Option(help="Only these image ids (comma-separated).")
                      ] = None,
    style: Annotated[str | None, typer.Option(help="Only images tagged with this style name.")
                     ] = None,
    metric: Annotated[str, typer.Option(help="Metric that picks the best layer.")] = "iou",
    percentile: Annotated[int, typer.Option(help="Its percentile (IoU-type metrics).")] = 90,
    max_side: Annotated[int, typer.Option(
        help="Longer side of the heatmap PNGs (0: the image's own size).")] = 512,
    copy_images: Annotated[bool, typer.Option(help="Copy the image files into data/.")] = True,
    force: Annotated[bool, typer.Option(help="Replace a non-empty output folder.")] = False,
) -> None:
    """Boxes and attention maps of a selection: COCO JSON + 16-bit heatmap PNGs (FiftyOne)."""
    from ssl_wc.export import ExportError, ExportOptions, export_selection
    from ssl_wc.report.output import OutputRefused
    from ssl_wc.warehouse import WarehouseMissing

    try:
        export_selection(STATE.warehouse, ExportOptions(
            out=out, models=_csv(models), variant=variant, method=method, layer=layer,
            head=head, images=_csv(images), style=style, metric=metric,
            percentile=percentile, max_side=max_side, copy_images=copy_images, force=force),
            echo=typer.echo)
    except (ExportError, OutputRefused) as exc:
        fail(str(exc), EXIT_USAGE)
    except WarehouseMissing as exc:
        fail(str(exc), EXIT_USAGE)


# ------------------------------------------------------------------------- operate
@app.command("check")
def check_cmd(
    checksums: Annotated[bool, typer.Option(help="Verify sha256 of every file.")] = True,
) -> None:
    """Verify the lake against the committed manifests, and that the catalog shows
    every commit (a stale catalog is reported and rebuilt); exit 5 if anything is wrong."""
    from ssl_wc.lake.integrity import check_catalog, check_lake

    problems = check_lake(STATE.warehouse, checksums=checksums)
    stale = check_catalog(STATE.warehouse)
    if stale is not None:
        problems.append(stale)
    for p in problems:
        typer.echo(p.line())
    if problems:
        typer.secho(f"{len(problems)} problem(s) found", fg="red", err=True)
        raise typer.Exit(EXIT_CHECK)
    typer.echo("lake OK: every committed file present, intact and readable; no stray files; "
               "the catalog shows every commit")


@app.command("gc")
def gc_cmd(
    dry_run: Annotated[bool, typer.Option(help="List what would be removed.")] = False,
    grace: Annotated[float, typer.Option(
        help="Keep files of unknown origin younger than this many seconds.")] = 900.0,
) -> None:
    """Remove temporary files and files of runs that never committed; never a committed
    file, and never what a live process owns (running runs, live temporaries)."""
    from ssl_wc.lake.integrity import garbage_collect

    if grace < 0:
        fail(f"--grace must be zero or more seconds, not {grace:g}", EXIT_USAGE)
    removed = garbage_collect(STATE.warehouse, dry_run=dry_run, grace_s=grace)
    for r in removed:
        typer.echo(("would remove " if dry_run else "removed ") + r)
    typer.echo(f"{len(removed)} file(s) {'to remove' if dry_run else 'removed'}; "
               "committed files and files of live runs are never touched")


# ------------------------------------------------------------------------- pipeline
@app.command("run")
def run_cmd(
    config: Annotated[Path | None, typer.Option("--config", "-c",
                                                help="pipeline.toml (see README).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the plan; touch nothing.")] = False,
    strict: Annotated[bool, typer.Option(help="Stop at the first failure.")] = False,
    models: Annotated[str | None, typer.Option(help="Override attention.models (a,b,c).")] = None,
    methods: Annotated[str | None, typer.Option(help="Override attention.methods.")] = None,
    device: Annotated[str | None, typer.Option(help="Override attention.device.")] = None,
    steps: Annotated[str | None, typer.Option(help="Override pipeline.steps.")] = None,
) -> None:
    """Run annotations, images, attention, metrics and stats in order, under a lock.

    Exit codes: 0 success, 3 partial success, 1 failure, 4 another run holds the lock,
    2 bad config.
    """
    from ssl_wc.lake.locks import LockHeld
    from ssl_wc.pipeline import (
        ConfigError,
        check_config,
        load_config,
        plan,
        run_pipeline,
        validate,
    )

    try:
        cfg = load_config(config)
        overrides: dict[str, dict[str, Any]] = {}
        if models is not None:
            overrides.setdefault("attention", {})["models"] = options.split_list("models",
                                                                                 models)
        if methods is not None:
            overrides.setdefault("attention", {})["methods"] = options.split_list("methods",
                                                                                  methods)
        if device is not None:
            overrides.setdefault("attention", {})["device"] = device
        if steps is not None:
            overrides.setdefault("pipeline", {})["steps"] = options.split_list("steps", steps)
        if overrides:
            validate(overrides, "command-line flags")
            for sec, kv in overrides.items():
                cfg.sections[sec].update(kv)
        check_config(STATE.warehouse, cfg, models=not dry_run)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)
    if dry_run:
        typer.echo(f"plan for {STATE.warehouse.root} (config {cfg.source}):")
        for step, what in plan(cfg):
            typer.echo(f"  {step:12s} {what}")
        return
    try:
        result = run_pipeline(STATE.warehouse, cfg, strict=strict, echo=typer.echo)
    except LockHeld as exc:
        fail(f"{exc}: another `ssl-wc run` is in progress on this warehouse; try later",
             EXIT_LOCKED)
    typer.echo("\nsummary:")
    for s in result.steps:
        typer.echo(f"  {s.step:12s} {s.status:10s} {s.seconds:7.1f}s  new {s.new:<6d} "
                   f"skipped {s.skipped:<6d} failed {s.failed:<4d} {s.detail[:100]}")
    typer.echo(f"pipeline: {result.status}")
    if result.status == "partial":
        raise typer.Exit(EXIT_PARTIAL)
    if result.status == "failed":
        raise typer.Exit(EXIT_FAILED)


def main() -> None:
    """Entry point: known failures become one clear line and an exit code, no traceback
    (set SSL_WC_DEBUG=1 to see it)."""
    import os

    try:
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(130)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click usage errors
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()
                sys.exit(0)
            typer.secho(f"error: {usage_line(exc, sys.argv[1:])}", fg="red", err=True)
            sys.exit(EXIT_USAGE if exc.exit_code else 0)
        if os.environ.get("SSL_WC_DEBUG"):
            raise
        typer.secho(f"error: {type(exc).__name__}: {exc}", fg="red", err=True)
        typer.secho("nothing half-written is visible; what was committed before is intact "
                    "(SSL_WC_DEBUG=1 shows the traceback)", err=True)
        sys.exit(EXIT_FAILED)


def refusal_text(exc: BaseException) -> str | None:
    """The message of an error that means "bad input, refused before anything was
    written" (exit 2): a bad option, a bad input file or model file, a refused run, a
    missing warehouse. None for anything else."""
    from ssl_wc.data.errors import InputError, InputErrors
    from ssl_wc.finetune.split import SplitError
    from ssl_wc.models.spec import SpecError
    from ssl_wc.pipeline import ConfigError
    from ssl_wc.warehouse import WarehouseMissing

    refusals: tuple[type[BaseException], ...] = (
        BadOption, options.Refused, InputError, SpecError, ConfigError, SplitError,
        WarehouseMissing)
    if isinstance(exc, InputErrors):
        return input_errors_text(exc)
    if isinstance(exc, refusals):
        return str(exc)
    if type(exc).__name__ == "FinetuneInputError":  # ingest.finetune: heavy to import
        return str(exc)
    return None


def input_errors_text(exc: Any) -> str:
    """A refused input file: the first problem on the first line (file, place in it,
    reason), the others indented below."""
    errors = list(exc.errors)
    head = f"{errors[0]} ({exc.note}"
    head += f"; {len(errors) - 1} more problem(s) below)" if len(errors) > 1 else ")"
    from ssl_wc.data.errors import MAX_LISTED

    rest = [f"  - {e}" for e in errors[1:MAX_LISTED]]
    if len(errors) > MAX_LISTED:
        rest.append(f"  ... and {len(errors) - MAX_LISTED} more")
    return "\n".join([head, *rest])


_PYDANTIC_WORDING = (
    (re.compile(r"Input should be a valid integer.*"), "not a whole number"),
    (re.compile(r"Input should be a valid number.*"), "not a number"),
    (re.compile(r"Input should be a valid boolean.*"), "not true/false"),
    (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be at least \1"),
    (re.compile(r"Input should be less than or equal to (\S+)"), r"must be at most \1"),
    (re.compile(r"Input should be greater than (\S+)"), r"must be above \1"),
    (re.compile(r"Input should be less than (\S+)"), r"must be below \1"),
)


def usage_line(exc: Any, argv: list[str]) -> str:
    """One line for a command-line parsing error: the option, the value given and what
    is valid, in plain words (never the parser's internal wording)."""
    param = getattr(exc, "param", None)
    message = str(getattr(exc, "message", "") or exc).strip()
    ctx = getattr(exc, "ctx", None)
    helper = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    if param is not None and type(exc).__name__ == "MissingParameter":
        opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
        shown = max(opts, key=len) if opts else str(param.name).upper()
        return f"{shown}: required{helper}"
    if param is None or type(exc).__name__ != "BadParameter":
        if type(exc).__name__ == "UsageError" and "No such command" in message and ctx:
            names = ", ".join(ctx.command.list_commands(ctx))
            return f"{message.rstrip('.')}; commands: {names}"
        return message.rstrip(".") + helper
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")] or \
        [str(getattr(param, "name", "argument")).upper()]
    name = max(opts, key=len)
    given = _given_value(getattr(param, "opts", []), argv)
    text = message.removeprefix("Value error, ").rstrip(".")
    m = re.fullmatch(r"'(.*)' is not one of (.*)", text)
    if m:
        valid = ", ".join(v.strip().strip("'") for v in m.group(2).split(","))
        return f"{name} {m.group(1)}: unknown value; valid: {valid}"
    for pattern, plain in _PYDANTIC_WORDING:
        if pattern.fullmatch(text):
            text = pattern.sub(plain, text)
            break
    return f"{name}{' ' + given if given is not None else ''}: {text}"


def _given_value(opts: list[str], argv: list[str]) -> str | None:
    """The value the user typed for an option (``--x v`` or ``--x=v``), if found."""
    for i, tok in enumerate(argv):
        if tok in opts and i + 1 < len(argv):
            return argv[i + 1]
        for o in opts:
            if o.startswith("--") and tok.startswith(o + "="):
                return tok.split("=", 1)[1]
    return None


if __name__ == "__main__":
    main()
