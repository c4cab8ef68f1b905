"""``ssl-wc ingest attention``: run backbones over the warehouse's annotated images and
stream their attention maps, features and patch tokens into the lake, batch by batch.

Units: one per (model, variant, method, image) for maps, (model, variant, 'features',
image) for features and (model, variant, 'tokens', image) for patch tokens and their
box similarities. A unit is skipped when the live run that covers it used the same
configuration hash (model source and the commit its revision resolved to, preprocessing,
layers, heads, fusions, store dtype; token layers for tokens); ``force`` recomputes.
``shard="k/N"`` keeps the images whose stable hash falls in shard k of N, so N processes
(or GPUs) can ingest disjoint parts and commit independently.

Layer numbering in the warehouse: 0-based transformer block index (0..L-1, as in the
published study: "layer 11" is the last block of a ViT-B); for a CNN the 0-based stage
(ResNet-50: 0..3, Grad-CAM on stage 3 by default). Features at layer -1 are the patch
embeddings (CNN: the stem). Maps are stored as float32 patch grids, never token-by-token
matrices. Each image also gets its frame (``map_frames``): the part of the image its maps
cover: the whole image, or the centre crop of a checkpoint that crops (ResNet-50), with
the area lost. SigLIP 2 NaFlex keeps each image's aspect ratio, so its grids differ per
image; its images are batched by input size.

Patch tokens (``patch_tokens``): float16, one row per patch (CNN: per cell of a stage), at
the chosen layers (default the last; ``"all"``; ``"none"``); with them, for every expert
box, the mean cosine similarity of the patch tokens to the box's mean token inside vs
outside the box (``box_similarity``, see ``ssl_wc.metrics.feature_similarity``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import socket
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from ingest.common import JobResult
from ingest.model_specs import known_keys, quiet_hf, resolve_spec
from ssl_wc import options
from ssl_wc.lake.catalog import read_manifests
from ssl_wc.lake.runs import Run, code_version, config_hash
from ssl_wc.metrics.feature_similarity import box_contrast
from ssl_wc.metrics.frames import boxes_in_frame
from ssl_wc.options import BadOption, Refused, listing
from ssl_wc.options import shard as parse_shard
from ssl_wc.paths import WarehousePaths
from ssl_wc.warehouse import read_named

ALL_METHODS = ("cls", "rollout", "mean", "map", "gradcam")
FUSIONS = ("mean", "max", "min")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
TOKEN_CHOICES = ("last", "all", "none")
ENGINES = ("local", "ray")
ADDRESS_RE = re.compile(r"auto|local|(ray://)?[A-Za-z0-9_.-]+:\d{1,5}")


@dataclass
class AttentionJob:
    """What to extract. ``layers``/``heads`` None means all."""

    models: Sequence[str]
    methods: Sequence[str] = ("cls", "rollout", "mean", "map")
    layers: Sequence[int] | None = None  # 0-based block indices
    heads: Sequence[int] | None = None
    fuse: Sequence[str] = ("mean",)
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    variant: str = "frozen"
    features: bool = True
    model_config: Path | None = None
    shard: str | None = None
    strict: bool = False
    images: Sequence[str] | None = None
    force: bool = False
    progress: bool = True
    specs: dict[str, Any] = field(default_factory=dict)  # key -> ModelSpec overrides
    # fine-tuned variants: build the module to extract from (spec, device) -> nn.Module,
    # and optionally a classifier (pooled -> logits) used as the Grad-CAM target
    model_factory: Callable[[Any, Any], Any] | None = None
    classifier_factory: Callable[[Any], Any] | None = None
    extra_config: dict[str, Any] = field(default_factory=dict)
    # patch tokens: "last" (default), "all", "none"/None, or 0-based layers (CNN: stages)
    patch_tokens: str | Sequence[int] | None = "last"
    # where the batches run: "local" (this process) or "ray" (a Ray Data actor pool; see
    # ingest.attention_ray): the cluster address, actors, GPUs per actor (None: 1 where
    # the cluster has GPUs, else 0)
    engine: str = "local"
    address: str | None = None
    workers: int = 1
    gpus_per_worker: float | None = None


def in_shard(image_id: str, shard: tuple[int, int] | None) -> bool:
    """Stable assignment of an image to one of N shards (sha256, never Python's hash)."""
    if shard is None:
        return True
    k, n = shard
    h = int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "little")
    return h % n == k - 1


def methods_for(spec: Any, methods: Sequence[str]) -> list[str]:
    """The requested methods that apply to this architecture (a CNN: ``gradcam``, its only
    map, whatever was asked)."""
    out = []
    for m in methods:
        if m not in ALL_METHODS:
            raise BadOption("methods", m, "unknown method", listing(ALL_METHODS))
        if m == "cls" and not spec.has_cls:
            continue
        if m == "map" and spec.pooled != "map":
            continue
        out.append(m)
    if spec.kind == "cnn":  # Grad-CAM is a CNN's only map: it gets it whatever was asked
        return ["gradcam"] if methods else []
    return out


def check_options(job: AttentionJob) -> None:
    """The options of ``job`` that need no model: :class:`BadOption` names the first bad
    one with its valid values."""
    if job.batch_size < 1:
        raise BadOption("batch_size", job.batch_size, "must be at least 1")
    if not job.methods:
        raise BadOption("methods", "", "give at least one method", listing(ALL_METHODS))
    bad = [f for f in job.fuse if f not in FUSIONS]
    if bad:
        raise BadOption("fuse", ",".join(bad), "unknown head fusion", listing(FUSIONS))
    check_device_names(job.device, job.dtype)
    check_engine(job)
    options.label("variant", job.variant)
    parse_shard(job.shard)
    if job.layers is not None and not job.layers:
        raise BadOption("layers", "", "give at least one layer, or all")
    if job.heads is not None and not job.heads and not job.fuse:
        raise BadOption("fuse", "", "with --heads none, store at least one fusion",
                        listing(FUSIONS))
    if job.model_config is not None and not Path(job.model_config).is_file():
        raise BadOption("model_config", job.model_config, "no such file")
    if not job.models:
        raise BadOption("models", "", "give at least one model key",
                        listing(known_keys(job.model_config, job.specs), limit=40))


def check_job(wh: WarehousePaths, job: AttentionJob) -> dict[str, Any]:
    """Every option of ``job`` checked before anything runs; the specs by model key.

    Raises :class:`BadOption` naming the option, the value and the valid values (layers
    and heads must lie in each model's range: nothing wraps around), or ``SpecError`` for
    a bad model file.
    """
    check_options(job)
    specs: dict[str, Any] = {}
    for key in job.models:
        spec = resolve_spec(wh, key, job.specs, job.model_config)
        if job.layers is not None:
            options.in_range("layers", job.layers, 0, spec.num_layers - 1,
                             f"{spec.key} ({spec.num_layers} blocks)")
        if job.heads:
            options.in_range("heads", job.heads, 0, spec.num_heads - 1,
                             f"{spec.key} ({spec.num_heads} heads)")
        if not methods_for(spec, job.methods):
            raise BadOption("methods", ",".join(job.methods), f"none applies to {spec.key}",
                            listing(methods_for(spec, ALL_METHODS)))
        specs[key] = spec
    return specs


def check_engine(job: AttentionJob) -> None:
    """``--engine`` and its options (``--address``, ``--workers``, ``--gpus-per-worker``)."""
    if job.engine not in ENGINES:
        raise BadOption("engine", job.engine, "unknown engine", listing(ENGINES))
    if job.workers < 1:
        raise BadOption("workers", job.workers, "must be at least 1")
    if job.gpus_per_worker is not None and not (
            0 <= job.gpus_per_worker <= 64 and np.isfinite(job.gpus_per_worker)):
        raise BadOption("gpus_per_worker", job.gpus_per_worker, "must lie in 0..64",
                        "0 (CPU), a fraction such as 0.5, 1, 2, ...")
    if job.address is not None and not ADDRESS_RE.fullmatch(job.address):
        raise BadOption("address", job.address, "not a Ray address",
                        "auto, local, HOST:PORT, ray://HOST:PORT")
    if job.engine == "local":
        for name, value, default in (("workers", job.workers, 1), ("address", job.address, None),
                                     ("gpus_per_worker", job.gpus_per_worker, None)):
            if value != default:
                raise BadOption(name, value, "only with --engine ray", listing(ENGINES))
    elif importlib.util.find_spec("ray") is None:
        raise BadOption("engine", job.engine, "Ray is not installed: pip install -e "
                        "'.[ray]' (or make venv-ray)", listing(ENGINES))


def check_device_names(device: str, dtype: str) -> None:
    """``--device`` and ``--dtype`` spelled as one of their values (no torch needed)."""
    if not DEVICE_RE.fullmatch(device):
        raise BadOption("device", device, "unknown device", "auto, cpu, cuda, cuda:N, mps")
    if dtype not in DTYPES:
        raise BadOption("dtype", dtype, "unknown dtype", listing(DTYPES))


def check_device(device: str, dtype: str = "auto") -> Any:
    """The device choice, or :class:`BadOption` (``--device`` / ``--dtype``) when the
    value is unknown or the device is not available on this machine."""
    from ssl_wc.models.device import choose_device

    check_device_names(device, dtype)
    index = re.fullmatch(r"cuda:(\d+)", device)
    if index is not None:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if int(index.group(1)) >= n:
            raise BadOption("device", device, f"not available: this machine has {n} CUDA "
                            "device(s)", "auto, cpu" + (f", cuda:0..cuda:{n - 1}" if n else ""))
    try:
        return choose_device(device, dtype)
    except (RuntimeError, ValueError) as exc:
        if dtype != "auto" and "precision" in str(exc):
            raise BadOption("dtype", dtype, str(exc)) from None
        raise BadOption("device", device, str(exc), "auto, cpu") from None


def select_images(wh: WarehousePaths, job: AttentionJob) -> list[tuple[str, Path]]:
    """The annotated images with a file that ``job`` covers (its ``--images`` and shard);
    unknown ids are refused with the valid ones."""
    images = _image_rows(wh)
    if not images:
        raise Refused("the warehouse holds no annotated image with a file: run `ssl-wc "
                      "ingest annotations building_parts.json` and `ssl-wc ingest images "
                      "DIR` first")
    if job.images is not None:
        have = [i for i, _ in images]
        unknown = [i for i in dict.fromkeys(job.images) if i not in set(have)]
        if unknown or not job.images:
            raise BadOption("images", ",".join(unknown[:5]) + (" ..." if len(unknown) > 5
                                                              else ""),
                            "not an annotated image with a file",
                            listing(sorted(have), limit=8) + " (SELECT image_id FROM "
                            "images WHERE has_file)")
        wanted = set(job.images)
        images = [r for r in images if r[0] in wanted]
    shard = parse_shard(job.shard)
    return [r for r in images if in_shard(r[0], shard)]


def _image_rows(wh: WarehousePaths) -> list[tuple[str, Path]]:
    rows = read_named(wh, "job_image_files").filter(pl.col("has_file")).rows()
    return [(i, Path(root) / p) for i, p, root, _ in rows]


def map_layers0(spec: Any, layers: Sequence[int] | None) -> list[int]:
    """0-based map layers: all blocks of a ViT (a CNN: its last stage) unless given;
    the job refused any index outside 0..num_layers-1 before it started."""
    n = spec.num_layers
    if layers is None:
        return [n - 1] if spec.kind == "cnn" else list(range(n))
    return sorted({li % n for li in layers})


def token_layers0(spec: Any, tokens: str | Sequence[int] | None) -> list[int]:
    """0-based layers (CNN: stages) whose patch tokens are stored (see ``AttentionJob``)."""
    n = spec.num_layers
    if tokens is None or tokens == "none":
        return []
    if tokens == "last":
        return [n - 1]
    if tokens == "all":
        return list(range(n))
    if isinstance(tokens, str):
        raise ValueError(f"patch tokens must be {', '.join(TOKEN_CHOICES)} or layer "
                         f"indices, not {tokens!r}")
    bad = [li for li in tokens if not 0 <= int(li) < n]
    if bad:
        raise ValueError(f"patch-token layers {bad} out of range 0..{n - 1} for {spec.key!r}")
    return sorted({int(li) for li in tokens})


def _live_hashes(wh: WarehousePaths) -> dict[str, str]:
    """unit -> configuration hash of the live run that covers it."""
    state = read_manifests(wh)
    by_run = {m["run_id"]: m for m in state.manifests}
    out: dict[str, str] = {}
    for (tbl, unit), rid in state.live.items():
        if tbl in ("attention_maps", "features", "patch_tokens"):
            hashes = by_run[rid].get("summary", {}).get("unit_hashes", {})
            method = unit.split("|")[2]
            out[unit] = hashes.get(method, "")
    return out


def _spec_identity(spec: Any) -> dict[str, Any]:
    d = spec.describe()
    d.pop("local_dir", None)  # moving the warehouse must not invalidate committed maps
    return d


def ingest_attention(wh: WarehousePaths, job: AttentionJob,
                     echo: Callable[[str], None] | None = None) -> list[JobResult]:
    """Run every requested model; one run (and one result) per model.

    Every option is checked first (:func:`check_job`, the images, the device): a bad one
    raises :class:`BadOption` / :class:`Refused` and nothing is written.
    """
    specs = check_job(wh, job)
    images = select_images(wh, job)
    # under Ray each worker picks its device (the driver may have no GPU)
    choice = check_device(job.device, job.dtype) if job.engine == "local" else None
    results = []
    session: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if job.engine == "ray":
        from ingest.ray_engine import ray_session

        # connects, and refuses what the cluster cannot host before any run starts
        session = ray_session(job.address, job.workers, job.gpus_per_worker)
    with session as ray_plan:
        for key in job.models:
            try:
                results.append(_ingest_model(wh, job, specs[key], choice, images, echo,
                                             ray_plan))
            except Exception as exc:
                if job.strict:
                    raise
                results.append(JobResult(f"attention:{key}", "failed", failed=len(images),
                                         message=f"{type(exc).__name__}: {exc}"))
                _record_model_failure(wh, job, key, exc)
    return results


def _record_model_failure(wh: WarehousePaths, job: AttentionJob, key: str,
                          exc: BaseException) -> None:
    """A model that could not run at all is recorded as a failed run with its error."""
    run = Run(wh, "attention", {"model": key, "variant": job.variant}).start()
    run.log_error("attention", key, exc)
    run.fail(exc)


def _ingest_model(wh: WarehousePaths, job: AttentionJob, spec: Any, choice: Any,
                  images: list[tuple[str, Path]],
                  echo: Callable[[str], None] | None, ray_plan: Any = None) -> JobResult:
    from ssl_wc.models.preprocess import PreprocessConfig
    from ssl_wc.models.revisions import resolve_revision

    methods = methods_for(spec, job.methods)
    pre = PreprocessConfig.from_spec(spec)
    # in range: check_job refused any layer outside the model's blocks
    layers0 = map_layers0(spec, job.layers)
    tokens0 = token_layers0(spec, job.patch_tokens)
    resolved = resolve_revision(spec)
    base_cfg = {"model": spec.key, "variant": job.variant, "spec": _spec_identity(spec),
                "resolved_revision": resolved.commit,
                "preprocess": pre.to_dict(), "layers": layers0,
                "heads": "all" if job.heads is None else sorted(job.heads),
                "fuse": list(job.fuse), "store_dtype": "float32", **job.extra_config}
    hashes = {m: config_hash({**base_cfg, "method": m}) for m in methods}
    if job.features:
        hashes["features"] = config_hash({**base_cfg, "method": "features"})
    if tokens0:
        hashes["tokens"] = config_hash({**base_cfg, "method": "tokens",
                                        "token_layers": tokens0, "token_dtype": "float16"})
    live = {} if job.force else _live_hashes(wh)

    def unit(method: str, image_id: str) -> str:
        return f"{spec.key}|{job.variant}|{method}|{image_id}"

    todo_methods = sorted({m for m in hashes for i, _ in images
                           if live.get(unit(m, i)) != hashes[m]})
    todo = [(i, p) for i, p in images
            if any(live.get(unit(m, i)) != hashes[m] for m in todo_methods)]
    name = f"attention:{spec.key}"
    if not todo:
        return JobResult(name, "skipped", skipped=len(images),
                         message=f"{spec.key}: all {len(images)} images already ingested")
    map_methods = [m for m in todo_methods if m not in ("features", "tokens")]
    plan = _StreamPlan(methods=map_methods, features="features" in todo_methods,
                       layers0=layers0, tokens0=tokens0 if "tokens" in todo_methods else [],
                       hashes=hashes, pre=pre, classifier=None, projection=None)
    if job.engine == "ray":
        return _ingest_model_ray(wh, job, spec, ray_plan, images, todo, plan, base_cfg,
                                 resolved, echo)
    t_load = time.monotonic()
    model, plan.projection, plan.classifier, loaded_commit = load_extractor(
        spec, job, choice, resolved.commit)
    load_s = time.monotonic() - t_load
    revision = {"revision": spec.revision, "commit_hash": resolved.commit,
                "resolved_by": resolved.how, "loaded_commit": loaded_commit}
    cfg = {**base_cfg, "methods": map_methods, "features": plan.features,
           "patch_token_layers": plan.tokens0, "device": choice.to_dict(),
           "shard": job.shard, "force": job.force, "engine": "local"}
    with Run(wh, "attention", cfg, device=f"{choice.device}:{choice.dtype}") as run:
        _write_source(run, spec, job, methods, hashes, pre, choice, revision)
        boxes = _boxes_by_image(wh) if plan.tokens0 else {}
        stats = _stream(run, model, spec, job, todo, plan, boxes, echo)
        summary = {"unit_hashes": hashes, "model": spec.key, "variant": job.variant,
                   "n_images": stats["images"], "load_seconds": load_s, **revision,
                   **stats}
        manifest = run.commit(**summary)
    return JobResult(name, manifest["status"], run.run_id, new=stats["images"],
                     skipped=len(images) - len(todo), failed=len(run.errors),
                     rows={"attention_maps": stats["maps"], "patch_tokens": stats["tokens"]},
                     message=f"{spec.key}: {stats['images']} images, {stats['maps']} maps "
                             f"({stats['images_per_s']:.1f} img/s on {choice.device})")


def load_extractor(spec: Any, job: AttentionJob, choice: Any,
                   resolved_commit: str | None) -> tuple[Any, Any, Any, str | None]:
    """(model, projection, classifier, loaded commit) on ``choice``: the one loading path of
    both engines (a Ray worker calls it once, in its constructor)."""
    import dataclasses

    from ssl_wc.models.loading import load_model

    quiet_hf()
    projection = None
    loaded_commit = None
    if job.model_factory is not None:
        model = job.model_factory(spec, choice)
    else:
        # load exactly the commit that was hashed (a floating 'main' may move meanwhile)
        load_spec = spec if spec.local_dir is not None or resolved_commit is None else \
            dataclasses.replace(spec, revision=resolved_commit)
        loaded = load_model(load_spec, choice)
        model, projection = loaded.model, loaded.projection
        loaded_commit = loaded.provenance.get("commit_hash")
        if spec.local_dir is None and resolved_commit and loaded_commit \
                and loaded_commit != resolved_commit:
            raise RuntimeError(f"model {spec.key!r}: resolved commit {resolved_commit} but "
                               f"transformers loaded {loaded_commit}")
    classifier = job.classifier_factory(choice) if job.classifier_factory else None
    return model, projection, classifier, loaded_commit


class BatchComputer:
    """The compute half of the batch loop on a Ray worker: the device chosen there, the
    model loaded once (:func:`load_extractor`), then :func:`compute_batch` per batch.
    Returns ``(BatchOut, info)``; info: the device, the loaded commit, torch threads."""

    def __init__(self, spec: Any, job: AttentionJob, plan: _StreamPlan,
                 resolved_commit: str | None) -> None:
        import dataclasses

        import torch

        choice = check_device(job.device, job.dtype)
        model, projection, classifier, commit = load_extractor(spec, job, choice,
                                                               resolved_commit)
        self.model, self.spec, self.job = model, spec, job
        self.plan = dataclasses.replace(plan, projection=projection, classifier=classifier)
        self.info = {"device": choice.to_dict(), "loaded_commit": commit,
                     "threads": torch.get_num_threads()}

    def __call__(self, batch: list[tuple[str, Path]]) -> tuple[BatchOut, dict[str, Any]]:
        return compute_batch(self.model, self.spec, self.job, self.plan, batch), self.info


def _ingest_model_ray(wh: WarehousePaths, job: AttentionJob, spec: Any, rp: Any,
                      images: list[tuple[str, Path]], todo: list[tuple[str, Path]],
                      plan: _StreamPlan, base_cfg: dict[str, Any], resolved: Any,
                      echo: Callable[[str], None] | None) -> JobResult:
    """One model's run on a Ray actor pool (:mod:`ingest.ray_engine`): workers compute the
    local engine's batches; this process checks that each batch arrives once with all
    its images, writes it through its run, logs the images of batches that never came
    back, and commits."""
    import dataclasses

    from ingest.ray_engine import run_on_pool
    from ssl_wc.models.device import DeviceChoice

    batches = _batches(todo, plan.pre, job.batch_size)
    cfg = {**base_cfg, "methods": plan.methods, "features": plan.features,
           "patch_token_layers": plan.tokens0,
           "device": {"requested": job.device, "dtype": job.dtype},
           "shard": job.shard, "force": job.force, "engine": "ray", "workers": rp.workers,
           "cpus_per_worker": rp.cpus, "gpus_per_worker": rp.gpus, "address": rp.address}
    worker_job = dataclasses.replace(job, specs={}, images=None, progress=False)
    worker_plan = dataclasses.replace(plan, classifier=None, projection=None)
    t0 = time.monotonic()
    tally: dict[str, Any] = {"images": 0, "maps": 0, "tokens": 0, "model": 0.0,
                             "write": 0.0, "info": None, "per_worker": {}}
    progress = _Progress(len(todo), f"{spec.key} (ray x{rp.workers})", enabled=job.progress)
    run = Run(wh, "attention", cfg, device=f"ray:{job.device}")
    try:
        with run:
            boxes = _boxes_by_image(wh) if plan.tokens0 else {}

            def on_batch(k: int, result: tuple[BatchOut, dict[str, Any]],
                         meta: dict[str, Any]) -> None:
                out, info = result
                expected = Counter(i for i, _ in batches[k])
                got = Counter([*out.ids, *(item for _, item, _ in out.errors if item in expected)])
                if got != expected:  # never commit rows that cannot be accounted for
                    raise RuntimeError(f"batch {k} came back with images {sorted(got)}, "
                                       f"expected {sorted(expected)}")
                t1 = time.monotonic()
                m, t = write_batch(run, spec, job, plan, out, boxes)
                tally["write"] += time.monotonic() - t1
                tally["maps"] += m
                tally["tokens"] += t
                tally["images"] += len(out.ids)
                tally["model"] += out.seconds_model
                tally["info"] = tally["info"] or info
                w = tally["per_worker"].setdefault(meta["worker"], {"images": 0, "seconds": 0.0})
                w["images"] += len(out.ids)
                w["seconds"] += meta["seconds"]
                progress.advance(out.n_in)

            try:
                outcome = run_on_pool(batches, BatchComputer, (spec, worker_job, worker_plan,
                                                               resolved.commit),
                                      rp, on_batch, strict=job.strict)
            finally:
                progress.close()
            if outcome.error is not None:
                line = (str(outcome.error).strip().splitlines() or [""])[-1][:300]
                for k in outcome.missing:
                    for image_id, _ in batches[k]:
                        run.log_error("attention", image_id, "not computed: the Ray job stopped "
                                      f"({type(outcome.error).__name__}: {line}); rerun to retry")
            info = tally["info"]
            choice = DeviceChoice(**info["device"])
            run.device = f"{choice.device}:{choice.dtype}"
            revision = {"revision": spec.revision, "commit_hash": resolved.commit,
                        "resolved_by": resolved.how, "loaded_commit": info["loaded_commit"]}
            _write_source(run, spec, job, methods_for(spec, job.methods), plan.hashes, plan.pre,
                          choice, revision)
            wall = time.monotonic() - t0
            n_img = tally["images"]
            per_worker = {w: {**v, "images_per_s": v["images"] / max(v["seconds"], 1e-9)}
                          for w, v in sorted(tally["per_worker"].items())}
            summary = {"unit_hashes": plan.hashes, "model": spec.key, "variant": job.variant,
                       "n_images": n_img, **revision, "images": n_img, "maps": tally["maps"],
                       "tokens": tally["tokens"], "seconds_total": wall,
                       "seconds_model": tally["model"], "images_per_s": n_img / max(wall, 1e-9),
                       "code_version": code_version(), "engine": "ray", "workers": rp.workers,
                       "per_worker": per_worker, "batches": len(batches),
                       "worker_images_per_s": sum(v["images_per_s"] for v in per_worker.values())
                       / max(len(per_worker), 1),
                       "duplicates_dropped": outcome.duplicates,
                       "driver_write_seconds": tally["write"], "worker_threads": info["threads"]}
            manifest = run.commit(**summary)
    except Exception as exc:  # the run is recorded as failed: no second record
        if job.strict:
            raise
        return JobResult(f"attention:{spec.key}", "failed", run.run_id, failed=len(todo),
                         message=f"{type(exc).__name__}: {exc}")
    rate = n_img / max(wall, 1e-9)
    if echo is not None:
        echo(f"{spec.key}: {n_img} images in {wall:.1f}s on {rp.workers} Ray worker(s) "
             f"({rate:.1f} img/s)")
    return JobResult(f"attention:{spec.key}", manifest["status"], run.run_id, new=n_img,
                     skipped=len(images) - len(todo), failed=len(run.errors),
                     rows={"attention_maps": tally["maps"], "patch_tokens": tally["tokens"]},
                     message=f"{spec.key}: {n_img} images, {tally['maps']} maps ({rate:.1f} "
                             f"img/s on {rp.workers} Ray worker(s), {choice.device})")


def _write_source(run: Run, spec: Any, job: AttentionJob, methods: list[str],
                  hashes: dict[str, str], pre: Any, choice: Any,
                  revision: dict[str, Any]) -> None:
    """One ``map_sources`` row; ``config_json`` holds the spec, the resolved revision
    (``commit_hash``, ``resolved_by``) and the fine-tuning extras."""
    gh, gw = spec.grid
    run.write("map_sources", {
        "model": [spec.key], "variant": [job.variant],
        "config_hash": [json.dumps(hashes, sort_keys=True)],
        "hub_id": [spec.hub_id or ""], "revision": [spec.revision or ""],
        "architecture": [spec.architecture], "random_weights": [bool(spec.random_weights)],
        "grid_h": [gh], "grid_w": [gw], "num_layers": [spec.num_layers],
        "num_heads": [spec.num_heads], "transform_json": [json.dumps(pre.to_dict())],
        "config_json": [json.dumps({**_spec_identity(spec), **revision, **job.extra_config},
                                   default=str)],
        "device": [choice.device], "dtype": [choice.dtype],
        "default_method": [spec.default_method], "methods": [methods]},
        unit_key=f"{spec.key}|{job.variant}|{run.run_id}")


def _boxes_by_image(wh: WarehousePaths) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(box indices, clamped (left, top, width, height) boxes) of every annotated image."""
    rows = read_named(wh, "job_annotation_boxes").rows()
    by: dict[str, list[tuple[int, float, float, float, float]]] = {}
    for image_id, idx, left, top, width, height in rows:
        by.setdefault(image_id, []).append((idx, left, top, width, height))
    return {i: (np.asarray([r[0] for r in v], np.int32),
                np.asarray([r[1:] for r in v], np.float64).reshape(-1, 4))
            for i, v in by.items()}


class ErrorLog:
    """Per-image errors of one batch computed away from the :class:`Run` (a Ray worker);
    :func:`write_batch` replays them into the run, in order."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str, str]] = []

    def log_error(self, step: str, item: str, error: BaseException | str) -> None:
        self.errors.append((step, item, str(error)))


@dataclass
class BatchOut:
    """One batch computed (read, preprocessed, extracted, non-finite images dropped): what
    :func:`write_batch` writes. ``ids`` are the images kept; every other image of the
    batch has an entry in ``errors``."""

    ids: list[str]
    transforms: list[Any]
    res: Any  # ExtractionResult, or None when no image of the batch could be read
    errors: list[tuple[str, str, str]]
    n_in: int
    seconds_model: float = 0.0


def compute_batch(model: Any, spec: Any, job: AttentionJob, plan: _StreamPlan,
                  batch: list[tuple[str, Path]]) -> BatchOut:
    """Read, preprocess and extract one batch, and drop the images with non-finite values:
    the compute half of the batch loop, shared by both engines."""
    import torch

    from ssl_wc.models.extract import extract_batch
    from ssl_wc.models.preprocess import preprocess_batch

    log = ErrorLog()
    ids, ims = _load_images(batch, log, job.strict)
    if not ids:
        return BatchOut([], [], None, log.errors, len(batch))
    layers1 = [li + 1 for li in plan.layers0]
    heads: str | list[int] | None = "all" if job.heads is None else list(job.heads)
    feature_layers = list(range(spec.num_layers + 1)) if spec.kind == "cnn" else \
        [0, *layers1]
    pixels, transforms = preprocess_batch(ims, plan.pre)
    t1 = time.monotonic()
    res = extract_batch(model, spec, torch.from_numpy(np.asarray(pixels)),
                        methods=plan.methods, layers=layers1, heads=heads,
                        fuse=tuple(job.fuse), features=plan.features,
                        feature_layers=feature_layers if plan.features else None,
                        patch_token_layers=[li + 1 for li in plan.tokens0],
                        classifier=plan.classifier, projection=plan.projection)
    t_fwd = time.monotonic() - t1
    res, ids, transforms = _drop_non_finite(res, plan, ids, transforms, log)
    return BatchOut(ids, transforms, res, log.errors, len(batch), t_fwd)


def write_batch(run: Run, spec: Any, job: AttentionJob, plan: _StreamPlan, out: BatchOut,
                boxes: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[int, int]:
    """Write one computed batch through ``run`` (its errors first): the write half of the
    batch loop, run by the process that owns the run. Returns (maps, token rows)."""
    for step, item, error in out.errors:
        run.log_error(step, item, error)
    n_maps = n_tok = 0
    if out.res is None:
        return n_maps, n_tok
    res, ids, transforms = out.res, out.ids, out.transforms
    img_ids = np.asarray(ids, dtype=object)
    for mb in res.all_maps() if plan.methods else []:
        n_maps += _write_maps(run, spec, job, plan, mb, img_ids)
    if plan.features and res.features is not None:
        _write_features(run, spec, job, plan, res.features, img_ids)
    if ids:
        _write_frames(run, spec, job, ids, transforms)
    if plan.tokens0 and ids:
        n_tok += _write_tokens(run, spec, job, plan, res, ids, transforms, boxes)
    return n_maps, n_tok


def _load_images(batch: list[tuple[str, Path]], run: Run | ErrorLog,
                 strict: bool) -> tuple[list[str], list[Any]]:
    from PIL import Image

    ids, ims = [], []
    for image_id, path in batch:
        try:
            with Image.open(path) as im:
                im.load()
                ims.append(im.convert("RGB"))
            ids.append(image_id)
        except (OSError, ValueError) as exc:
            if strict:
                raise
            run.log_error("attention", image_id, f"{path}: cannot read image: {exc}")
    return ids, ims


def _drop_non_finite(res: Any, plan: Any, ids: list[str], transforms: list[Any],
                     run: Run | ErrorLog) -> tuple[Any, list[str], list[Any]]:
    """The batch without the images that have a NaN or infinite value in any stored map,
    feature or patch token, with their ids and transforms. Those are logged per image in
    ``ingest_errors``; their units are not committed, so a rerun tries them again (the
    run ends partial, exit 3)."""
    import dataclasses

    bad: dict[int, list[str]] = {}
    for mb in res.all_maps() if plan.methods else []:
        rows = ~np.isfinite(mb.values).all(axis=1)
        for i in np.unique(mb.image[rows]).tolist():
            bad.setdefault(int(i), []).append("maps")
    fb = res.features if plan.features else None
    if fb is not None and len(fb):
        finite = np.isfinite(fb.values)
        ok = np.logical_and.reduceat(finite, fb.offsets[:-1]) if finite.size else \
            np.ones(len(fb), bool)
        for i in np.unique(fb.image[~ok]).tolist():
            bad.setdefault(int(i), []).append("features")
    for tok in res.patch_tokens.values():
        rows = ~np.isfinite(tok.reshape(tok.shape[0], -1)).all(axis=1)
        for i in np.flatnonzero(rows).tolist():
            bad.setdefault(int(i), []).append("patch tokens")
    if not bad:
        return res, ids, transforms
    for i, kinds in sorted(bad.items()):
        run.log_error("attention", ids[i], "non-finite values (NaN or infinity) in the "
                      f"{' and '.join(dict.fromkeys(kinds))}; nothing stored for this image "
                      "(check the model's weights and its mean/std)")
    keep = np.asarray([i for i in range(len(ids)) if i not in bad], dtype=np.int64)
    renumber = np.full(len(ids), -1, np.int64)
    renumber[keep] = np.arange(len(keep))

    def maps_kept(mb: Any) -> Any:
        kept = _keep_rows(mb, np.isin(mb.image, keep))
        return dataclasses.replace(kept, image=renumber[kept.image].astype(kept.image.dtype))

    features = None
    if res.features is not None:
        f = res.features
        rows = np.flatnonzero(np.isin(f.image, keep))
        vecs = [f.row(int(r)) for r in rows]
        features = type(f).from_rows(renumber[f.image[rows]].astype(f.image.dtype),
                                     f.layer[rows], f.kind[rows], vecs)
    res = dataclasses.replace(
        res, maps=maps_kept(res.maps), more_maps=[maps_kept(m) for m in res.more_maps],
        features=features, patch_tokens={k: v[keep] for k, v in res.patch_tokens.items()})
    return res, [ids[i] for i in keep], [transforms[i] for i in keep]


def _keep_rows(batch: Any, keep: np.ndarray) -> Any:
    """A copy of a map batch with only the rows in ``keep``."""
    import dataclasses

    changes = {f.name: getattr(batch, f.name)[keep] for f in dataclasses.fields(batch)
               if isinstance(getattr(batch, f.name), np.ndarray)}
    return dataclasses.replace(batch, **changes)


def _values_array(values: np.ndarray) -> pa.Array:
    """(n, P) float32 -> list<float32> without a Python loop."""
    n, p = values.shape
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1))
    offsets = pa.array(np.arange(0, (n + 1) * p, p, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, flat)


def _ragged_array(values: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """Flat float32 values + (n + 1) offsets -> list<float32> (rows may differ in size)."""
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)),
                                    pa.array(np.ascontiguousarray(values, np.float32)))


@dataclass
class _StreamPlan:
    """What the batch loop computes and writes for one model."""

    methods: list[str]
    features: bool
    layers0: list[int]
    tokens0: list[int]
    hashes: dict[str, str]
    pre: Any
    classifier: Any
    projection: Any


def _header_hw(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.height, im.width
    except (OSError, ValueError):
        return None  # unreadable: _load_images records the error


def _batches(todo: list[tuple[str, Path]], pre: Any,
             batch_size: int) -> list[list[tuple[str, Path]]]:
    """Batches of the images to do; in ``aspect`` mode (NaFlex) each batch holds images of
    one input size, so one forward pass has one grid."""
    groups: list[list[tuple[str, Path]]] = [todo]
    if pre.resize_mode == "aspect":
        from ssl_wc.models.preprocess import plan_transform

        by: dict[Any, list[tuple[str, Path]]] = {}
        for item in todo:
            hw = _header_hw(item[1])
            size = plan_transform(hw, pre).input_hw if hw is not None else None
            by.setdefault(size, []).append(item)
        groups = list(by.values())
    return [g[i:i + batch_size] for g in groups for i in range(0, len(g), batch_size)]


def _stream(run: Run, model: Any, spec: Any, job: AttentionJob, todo: list[tuple[str, Path]],
            plan: _StreamPlan, boxes: dict[str, tuple[np.ndarray, np.ndarray]],
            echo: Callable[[str], None] | None) -> dict[str, Any]:
    """Batch loop of the local engine: compute, then write, batch by batch. Memory is
    bounded by one batch."""
    n_maps = n_img = n_tok = 0
    t_fwd = 0.0
    t0 = time.monotonic()
    progress = _Progress(len(todo), spec.key, enabled=job.progress)
    try:
        for batch in _batches(todo, plan.pre, job.batch_size):
            out = compute_batch(model, spec, job, plan, batch)
            t_fwd += out.seconds_model
            m, t = write_batch(run, spec, job, plan, out, boxes)
            n_maps, n_tok, n_img = n_maps + m, n_tok + t, n_img + len(out.ids)
            progress.advance(len(batch))
    finally:
        progress.close()
    wall = time.monotonic() - t0
    if echo is not None:
        echo(f"{spec.key}: {n_img} images in {wall:.1f}s ({n_img / max(wall, 1e-9):.1f} img/s)")
    worker = f"{socket.gethostname()}:{os.getpid()}"
    return {"images": n_img, "maps": n_maps, "tokens": n_tok, "seconds_total": wall,
            "seconds_model": t_fwd, "images_per_s": n_img / max(wall, 1e-9),
            "code_version": code_version(), "engine": "local", "workers": 1,
            "per_worker": {worker: {"images": n_img, "seconds": wall,
                                    "images_per_s": n_img / max(wall, 1e-9)}},
            "worker_images_per_s": n_img / max(wall, 1e-9)}


def _write_maps(run: Run, spec: Any, job: AttentionJob, plan: _StreamPlan, mb: Any,
                img_ids: np.ndarray) -> int:
    ids = img_ids[mb.image]
    meth = mb.method.astype(str)
    n = len(mb)
    run.write("attention_maps", {
        "model": pa.array([spec.key] * n), "variant": pa.array([job.variant] * n),
        "method": pa.array(meth), "layer": pa.array(mb.layer.astype(np.int16) - 1),
        "head": pa.array(mb.head.astype(np.int16)),
        "image_id": pa.array(ids.tolist()),
        "grid_h": pa.array(np.full(n, mb.grid_h, np.int16)),
        "grid_w": pa.array(np.full(n, mb.grid_w, np.int16)),
        "config_hash": pa.array([plan.hashes[m] for m in meth]),
        "values": _values_array(mb.values)},
        unit_key=[f"{spec.key}|{job.variant}|{m}|{i}" for m, i in zip(meth, ids, strict=True)],
        partition={"model": spec.key})
    return n


def _write_features(run: Run, spec: Any, job: AttentionJob, plan: _StreamPlan, fb: Any,
                    img_ids: np.ndarray) -> None:
    ids = img_ids[fb.image]
    n = len(fb)
    run.write("features", {
        "model": pa.array([spec.key] * n), "variant": pa.array([job.variant] * n),
        "layer": pa.array(fb.layer.astype(np.int16) - 1),
        "image_id": pa.array(ids.tolist()),
        "kind": pa.array(fb.kind.astype(str)),
        "config_hash": pa.array([plan.hashes["features"]] * n),
        "values": _ragged_array(fb.values, fb.offsets)},
        unit_key=[f"{spec.key}|{job.variant}|features|{i}" for i in ids],
        partition={"model": spec.key})


def _write_frames(run: Run, spec: Any, job: AttentionJob, ids: list[str],
                  transforms: list[Any]) -> None:
    """Per image: the frame its maps cover (unit ``model|variant|frames|image``)."""
    frames = np.asarray([t.frame for t in transforms], np.float64).reshape(-1, 4)
    run.write("map_frames", {
        "model": [spec.key] * len(ids), "variant": [job.variant] * len(ids),
        "image_id": ids, "resize_mode": [t.resize_mode for t in transforms],
        "orig_h": [t.orig_hw[0] for t in transforms], "orig_w": [t.orig_hw[1] for t in transforms],
        "input_h": [t.input_hw[0] for t in transforms],
        "input_w": [t.input_hw[1] for t in transforms],
        "frame_left": frames[:, 0], "frame_top": frames[:, 1], "frame_right": frames[:, 2],
        "frame_bottom": frames[:, 3], "area_lost": [t.area_lost for t in transforms]},
        unit_key=[f"{spec.key}|{job.variant}|frames|{i}" for i in ids])


def _write_tokens(run: Run, spec: Any, job: AttentionJob, plan: _StreamPlan, res: Any,
                  ids: list[str], transforms: list[Any],
                  boxes: dict[str, tuple[np.ndarray, np.ndarray]]) -> int:
    """Patch tokens (float16, one row per patch) and every box's in/out similarity."""
    grids = res.info.get("stage_grids") or {}
    n_rows = 0
    sim_rows: dict[str, list[Any]] = {k: [] for k in (
        "layer", "image_id", "box_index", "n_in", "n_out", "sim_in", "sim_out")}
    units = [f"{spec.key}|{job.variant}|tokens|{i}" for i in ids]
    for layer1, tok in sorted(res.patch_tokens.items()):
        gh, gw = (grids[layer1] if layer1 in grids else res.info["grid"])
        b, p, d = tok.shape
        tok16 = np.ascontiguousarray(tok, dtype=np.float16)
        idx = np.arange(p, dtype=np.int32)
        n = b * p
        values = pa.ListArray.from_arrays(pa.array(np.arange(0, n * d + 1, d, dtype=np.int32)),
                                          pa.array(tok16.reshape(-1)))
        run.write("patch_tokens", {
            "model": pa.array([spec.key] * n), "variant": pa.array([job.variant] * n),
            "layer": pa.array(np.full(n, layer1 - 1, np.int16)),
            "image_id": pa.array(np.repeat(np.asarray(ids, dtype=object), p).tolist()),
            "patch": pa.array(np.tile(idx, b)),
            "row": pa.array(np.tile(idx // gw, b).astype(np.int16)),
            "col": pa.array(np.tile(idx % gw, b).astype(np.int16)),
            "grid_h": pa.array(np.full(n, gh, np.int16)),
            "grid_w": pa.array(np.full(n, gw, np.int16)),
            "config_hash": pa.array([plan.hashes["tokens"]] * n), "values": values},
            unit_key=np.repeat(np.asarray(units, dtype=object), p).tolist(),
            partition={"model": spec.key})
        n_rows += n
        for j, image_id in enumerate(ids):
            if image_id not in boxes:
                continue
            idx_b, bx = boxes[image_id]
            moved, kept = boxes_in_frame(bx, transforms[j].frame)
            contrast = box_contrast(tok16[j].astype(np.float64), (gh, gw), moved)
            outside = kept <= 0  # wholly cut off by the crop: not scored
            sim_rows["layer"] += [layer1 - 1] * len(idx_b)
            sim_rows["image_id"] += [image_id] * len(idx_b)
            sim_rows["box_index"] += idx_b.tolist()
            sim_rows["n_in"] += np.where(outside, 0, contrast.n_in).tolist()
            sim_rows["n_out"] += np.where(outside, 0, contrast.n_out).tolist()
            sim_rows["sim_in"] += np.where(outside, np.nan, contrast.sim_in).tolist()
            sim_rows["sim_out"] += np.where(outside, np.nan, contrast.sim_out).tolist()
    k = len(sim_rows["image_id"])
    if k:
        sims = {c: pa.array(np.asarray(v, np.float64), mask=np.isnan(np.asarray(v, np.float64)))
                for c, v in sim_rows.items() if c.startswith("sim_")}
        run.write("box_similarity", {
            "model": [spec.key] * k, "variant": [job.variant] * k,
            "layer": sim_rows["layer"], "image_id": sim_rows["image_id"],
            "box_index": sim_rows["box_index"], "n_in": sim_rows["n_in"],
            "n_out": sim_rows["n_out"], **sims,
            "config_hash": [plan.hashes["tokens"]] * k},
            unit_key=[f"{spec.key}|{job.variant}|tokens|{i}" for i in sim_rows["image_id"]])
    run.add_units("box_similarity", units)  # an image without boxes supersedes old rows
    return n_rows


class _Progress:
    """A rich progress bar (throughput and ETA) on stderr; silent when disabled."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.bar: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class Speed(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"{task.speed or 0:.1f} img/s")

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                            MofNCompleteColumn(), Speed(),
                            TimeElapsedColumn(), TimeRemainingColumn(),
                            console=Console(stderr=True), transient=False)
        self.bar.start()
        self.task = self.bar.add_task(label, total=total)

    def advance(self, n: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
