"""The ``ssl-wc`` command line: a thin layer over the ingest jobs and the warehouse."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ssl_wc.paths import ENV_VAR, WarehousePaths

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
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
    warehouse: Annotated[str | None, typer.Option(
        "--warehouse", "-w", envvar=ENV_VAR,
        help="Warehouse folder (default ./warehouse).")] = None,
) -> None:
    STATE.warehouse = WarehousePaths.of(warehouse)


def fail(msg: str, code: int = EXIT_FAILED) -> None:
    typer.secho(f"error: {msg}", fg="red", err=True)
    raise typer.Exit(code)


def echo_result(res: Any) -> None:
    typer.echo(res.line())


def print_frame(df: Any, fmt: Fmt = Fmt.table, max_rows: int = 200) -> None:
    import polars as pl

    if fmt is Fmt.csv:
        sys.stdout.write(df.write_csv())
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
        help="Refuse the whole file on any error (default); --no-strict skips bad images."
    )] = True,
    force: Annotated[bool, typer.Option(
        help="Re-ingest even if the inputs are unchanged.")] = False,
) -> None:
    """Parse WikiChurches annotations (feature ontology, images, boxes, styles)."""
    from ingest.annotations import ingest_annotations
    from ssl_wc.data.errors import InputError, InputErrors

    try:
        res = ingest_annotations(STATE.warehouse, path, style_names, churches, strict=strict,
                                 force=force)
    except (InputError, InputErrors, FileNotFoundError) as exc:
        fail(f"{exc}\nnothing was written; the warehouse is unchanged.")
    echo_result(res)


@ingest_app.command("images")
def ingest_images_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder of image files")],
    strict: Annotated[bool, typer.Option(help="Fail on the first unreadable image.")] = False,
    force: Annotated[bool, typer.Option(help="Rescan even if unchanged.")] = False,
) -> None:
    """Record every image file: id, path, width, height, sha256."""
    from ingest.images import ingest_images
    from ssl_wc.data.errors import InputError, InputErrors

    try:
        res = ingest_images(STATE.warehouse, folder, strict=strict, force=force)
    except (InputError, InputErrors, FileNotFoundError) as exc:
        fail(f"{exc}\nnothing was written; the warehouse is unchanged.")
    echo_result(res)
    if res.status == "partial":
        raise typer.Exit(EXIT_PARTIAL)


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
    force: Annotated[bool, typer.Option(help="Recompute what is already committed.")] = False,
    strict: Annotated[bool, typer.Option(help="Fail on the first bad image or model.")] = False,
) -> None:
    """Run backbones over the annotated images; write maps and features to the lake."""
    from ingest.attention import AttentionJob, ingest_attention

    def ints(v: str) -> list[int] | None:
        return None if v == "all" else [int(x) for x in v.split(",") if x]

    job = AttentionJob(models=models.split(","), methods=methods.split(","), layers=ints(layers),
                       heads=[] if heads == "none" else ints(heads), fuse=fuse.split(","),
                       batch_size=batch_size, device=device, dtype=dtype, variant=variant,
                       features=features, model_config=model_config, shard=shard,
                       strict=strict, images=images.split(",") if images else None,
                       force=force)
    try:
        results = ingest_attention(STATE.warehouse, job)
    except Exception as exc:  # strict mode: the first failure is fatal
        fail(f"{type(exc).__name__}: {exc}")
    _finish(results)


def _finish(results: list[Any]) -> None:
    for r in results:
        echo_result(r)
    states = {r.status for r in results}
    if "failed" in states:
        raise typer.Exit(EXIT_PARTIAL if states - {"failed"} else EXIT_FAILED)
    if "partial" in states:
        raise typer.Exit(EXIT_PARTIAL)


@app.command("metrics")
def metrics_cmd(
    baselines: Annotated[bool, typer.Option(help="Also score the four baselines.")] = True,
    force: Annotated[bool, typer.Option(help="Rescore everything.")] = False,
    eval_size: Annotated[int, typer.Option(help="Evaluation resolution (square).")] = 224,
    random_trials: Annotated[int, typer.Option(help="Trials of the random baseline.")] = 100,
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
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10_000,
) -> None:
    """Paired model comparisons (t, Wilcoxon, d_z, bootstrap CI, Holm/Bonferroni/BH)."""
    from ingest.stats import materialise_stats

    _finish(materialise_stats(STATE.warehouse, probe=probe, force=force, resamples=resamples))


@app.command("probe")
def probe_cmd(
    force: Annotated[bool, typer.Option(help="Recompute even if features are unchanged.")] = False,
    folds: Annotated[int, typer.Option(help="At most this many folds.")] = 5,
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

    Annotated images and their churches never enter training. Exit: 0 ok, 3 partial, 1 failed.
    """
    from ingest.attention import ALL_METHODS
    from ingest.finetune import (
        FinetuneInputError,
        ensure_frozen,
        ingest_variant,
        materialise_variant_deltas,
        run_finetune,
    )
    from ingest.metrics import materialise_metrics
    from ssl_wc.finetune.split import SplitError
    from ssl_wc.models.registry import SpecError

    wanted = [m for m in methods.split(",") if m]
    bad = [m for m in wanted if m not in ALL_METHODS]
    if bad or not wanted:
        fail(f"--methods: unknown {bad or methods!r}; choose from {', '.join(ALL_METHODS)}",
             EXIT_USAGE)
    wh = STATE.warehouse
    try:
        res = run_finetune(wh, model, strategy.value, epochs=epochs, batch_size=batch_size,
                           lr_backbone=lr_backbone, lr_head=lr_head, lora_rank=lora_rank,
                           lora_alpha=lora_alpha, seed=seed, val_fraction=val_fraction,
                           images=images, churches=churches, device=device,
                           num_workers=num_workers, force=force, model_config=model_config,
                           echo=typer.echo)
    except (FinetuneInputError, SplitError, SpecError, ValueError, RuntimeError) as exc:
        fail(f"{exc}\nnothing was trained; the warehouse is unchanged.")
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
        help="Also list models from this file.")] = None,
    fmt: Annotated[Fmt, typer.Option("--format", "-f")] = Fmt.table,
) -> None:
    """The registry: key, hub id, revision, architecture, token layout, preprocessing."""
    import polars as pl

    from ssl_wc.models.registry import list_specs, load_user_specs

    specs = list_specs() + (load_user_specs(model_config) if model_config else [])
    rows = [{"key": s.key, "hub_id": s.hub_id or s.local_dir, "revision": s.revision or "",
             "architecture": s.architecture, "patch": s.patch_size,
             "input": f"{s.input_hw[0]}x{s.input_hw[1]}", "grid": f"{s.grid[0]}x{s.grid[1]}",
             "cls": s.has_cls, "registers": s.num_registers,
             "prefix_tokens": s.num_prefix_tokens, "layers": s.num_layers, "heads": s.num_heads,
             "resize": s.resize_mode, "pooled": s.pooled, "default_method": s.default_method}
            for s in specs]
    print_frame(pl.DataFrame(rows), fmt)


@app.command("leaderboard")
def leaderboard_cmd(
    metric: Annotated[str, typer.Option(help="Metric name (see metric_catalogue).")] = "iou",
    percentile: Annotated[int, typer.Option(help="Percentile for IoU-type metrics.")] = 90,
    fmt: Annotated[Fmt, typer.Option("--format", "-f")] = Fmt.table,
) -> None:
    """Best layer per model under its default method, baselines included."""
    from ssl_wc import query
    from ssl_wc.sqlfiles import named_query

    df = query(named_query("leaderboard_cli"), {"metric": metric, "pct": percentile},
               warehouse=str(STATE.warehouse.root))
    print_frame(df, fmt)


@app.command("demo")
def demo_cmd(
    models: Annotated[bool, typer.Option(help="Also run the tiny random-weight models.")] = True,
    finetune: Annotated[bool, typer.Option(
        help="Also fine-tune a tiny model (3 strategies).")] = True,
) -> None:
    """Build the demo warehouse from the built-in SYNTHETIC data (no server)."""
    from ingest.demo import build_demo

    results = build_demo(STATE.warehouse, echo=typer.echo, models=models, finetune=finetune)
    if models:
        typer.echo("\nleaderboard (IoU@90, best layer under each model's default method; "
                   "SYNTHETIC data, RANDOM weights):")
        leaderboard_cmd(metric="iou", percentile=90, fmt=Fmt.table)
    typer.echo(f"\ndemo warehouse ready at {STATE.warehouse.root}; "
               "start the dashboards with `make serve`")
    if any(r.status == "failed" for r in results):
        raise typer.Exit(EXIT_PARTIAL)


# ------------------------------------------------------------------------- query
@app.command("sql")
def sql_cmd(
    query: Annotated[str, typer.Argument(help="A read-only SQL query")],
    fmt: Annotated[Fmt, typer.Option("--format", "-f")] = Fmt.table,
    allow_files: Annotated[bool, typer.Option(
        help="Allow table functions that read files outside the lake.")] = False,
    max_rows: Annotated[int, typer.Option(help="Rows shown in table format.")] = 200,
) -> None:
    """Run a read-only query against the views (see README for the view list)."""
    import duckdb

    from ssl_wc.sqlguard import QueryRefused, run_readonly
    from ssl_wc.warehouse import WarehouseMissing

    try:
        rel = run_readonly(query, STATE.warehouse.root, allow_files=allow_files)
        if rel is None:
            return
        df = rel.pl()
    except QueryRefused as exc:
        fail(str(exc), EXIT_USAGE)
    except WarehouseMissing as exc:
        fail(str(exc))
    except duckdb.PermissionException as exc:
        fail(f"refused: {str(exc).splitlines()[0]} (pass --allow-files to read files outside "
             "the lake)", EXIT_USAGE)
    except duckdb.Error as exc:
        fail(f"query failed: {str(exc).splitlines()[0]}")
    print_frame(df, fmt, max_rows)


@app.command("runs")
def runs_cmd(
    limit: Annotated[int, typer.Option(help="Newest N runs.")] = 30,
    fmt: Annotated[Fmt, typer.Option("--format", "-f")] = Fmt.table,
) -> None:
    """Ingest history: every run with its status, duration and row counts."""
    from ssl_wc import query
    from ssl_wc.sqlfiles import named_query

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


# ------------------------------------------------------------------------- operate
@app.command("check")
def check_cmd(
    checksums: Annotated[bool, typer.Option(help="Verify sha256 of every file.")] = True,
) -> None:
    """Verify the lake against the committed manifests; exit 5 if anything is wrong."""
    from ssl_wc.lake.integrity import check_lake

    problems = check_lake(STATE.warehouse, checksums=checksums)
    for p in problems:
        typer.echo(p.line())
    if problems:
        typer.secho(f"{len(problems)} problem(s) found", fg="red", err=True)
        raise typer.Exit(EXIT_CHECK)
    typer.echo("lake OK: every committed file present, intact and readable; no stray files")


@app.command("gc")
def gc_cmd(
    dry_run: Annotated[bool, typer.Option(help="List what would be removed.")] = False,
) -> None:
    """Remove temporary files and files of runs that never committed."""
    from ssl_wc.lake.integrity import garbage_collect

    removed = garbage_collect(STATE.warehouse, dry_run=dry_run)
    for r in removed:
        typer.echo(("would remove " if dry_run else "removed ") + r)
    typer.echo(f"{len(removed)} file(s) {'to remove' if dry_run else 'removed'}; "
               "committed files are never touched")


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
    from ssl_wc.pipeline import ConfigError, load_config, plan, run_pipeline, validate

    try:
        cfg = load_config(config)
        overrides: dict[str, dict[str, Any]] = {}
        if models:
            overrides.setdefault("attention", {})["models"] = models.split(",")
        if methods:
            overrides.setdefault("attention", {})["methods"] = methods.split(",")
        if device:
            overrides.setdefault("attention", {})["device"] = device
        if steps:
            overrides.setdefault("pipeline", {})["steps"] = steps.split(",")
        if overrides:
            validate(overrides, "command-line flags")
            for sec, kv in overrides.items():
                cfg.sections[sec].update(kv)
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
            if type(exc).__name__ != "NoArgsIsHelpError":
                exc.show()
            sys.exit(EXIT_USAGE if exc.exit_code else 0)
        if os.environ.get("SSL_WC_DEBUG"):
            raise
        typer.secho(f"error: {type(exc).__name__}: {exc}", fg="red", err=True)
        typer.secho("nothing half-written is visible; what was committed before is intact "
                    "(SSL_WC_DEBUG=1 shows the traceback)", err=True)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
