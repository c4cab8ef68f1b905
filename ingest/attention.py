"""``ssl-wc ingest attention``: run backbones over the warehouse's annotated images and
stream their attention maps and features into the lake, batch by batch.

Units: one per (model, variant, method, image) for maps and (model, variant, 'features',
image) for features. A unit is skipped when the live run that covers it used the same
configuration hash (model source and revision, preprocessing, layers, heads, fusions,
store dtype); ``force`` recomputes. ``shard="k/N"`` keeps the images whose stable hash
falls in shard k of N, so N processes (or GPUs) can ingest disjoint parts and commit
independently.

Layer numbering in the warehouse: 0-based transformer block index (0..L-1, as in the
published study: "layer 11" is the last block of a ViT-B). Features at layer -1 are the
patch embeddings. Maps are stored as float32 patch grids, never token-by-token matrices.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
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
from ssl_wc.options import BadOption, Refused, listing
from ssl_wc.options import shard as parse_shard
from ssl_wc.paths import WarehousePaths
from ssl_wc.warehouse import read_named

ALL_METHODS = ("cls", "rollout", "mean", "map", "gradcam")
FUSIONS = ("mean", "max", "min")
DTYPES = ("auto", "float32", "bfloat16", "float16")
DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


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


def in_shard(image_id: str, shard: tuple[int, int] | None) -> bool:
    """Stable assignment of an image to one of N shards (sha256, never Python's hash)."""
    if shard is None:
        return True
    k, n = shard
    h = int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "little")
    return h % n == k - 1


def methods_for(spec: Any, methods: Sequence[str]) -> list[str]:
    """The requested methods that apply to this architecture."""
    out = []
    for m in methods:
        if m not in ALL_METHODS:
            raise BadOption("methods", m, "unknown method", listing(ALL_METHODS))
        if m == "cls" and not spec.has_cls:
            continue
        if m == "map" and spec.pooled != "map":
            continue
        out.append(m)
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


def _live_hashes(wh: WarehousePaths) -> dict[str, str]:
    """unit -> configuration hash of the live run that covers it."""
    state = read_manifests(wh)
    by_run = {m["run_id"]: m for m in state.manifests}
    out: dict[str, str] = {}
    for (tbl, unit), rid in state.live.items():
        if tbl in ("attention_maps", "features"):
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
    choice = check_device(job.device, job.dtype)
    results = []
    for key in job.models:
        try:
            results.append(_ingest_model(wh, job, specs[key], choice, images, echo))
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
                  echo: Callable[[str], None] | None) -> JobResult:
    from ssl_wc.models.preprocess import PreprocessConfig

    methods = methods_for(spec, job.methods)
    pre = PreprocessConfig.from_spec(spec)
    # in range: check_job refused any layer outside 0..num_layers-1
    layers0 = list(range(spec.num_layers)) if job.layers is None else sorted(set(job.layers))
    base_cfg = {"model": spec.key, "variant": job.variant, "spec": _spec_identity(spec),
                "preprocess": pre.to_dict(), "layers": layers0,
                "heads": "all" if job.heads is None else sorted(job.heads),
                "fuse": list(job.fuse), "store_dtype": "float32", **job.extra_config}
    hashes = {m: config_hash({**base_cfg, "method": m}) for m in methods}
    if job.features:
        hashes["features"] = config_hash({**base_cfg, "method": "features"})
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
    from ssl_wc.models.loading import load_model

    quiet_hf()
    t_load = time.monotonic()
    if job.model_factory is not None:
        model = job.model_factory(spec, choice)
    else:
        model = load_model(spec, choice).model
    load_s = time.monotonic() - t_load
    classifier = job.classifier_factory(choice) if job.classifier_factory else None
    map_methods = [m for m in todo_methods if m != "features"]
    cfg = {**base_cfg, "methods": map_methods, "features": "features" in todo_methods,
           "device": choice.to_dict(), "shard": job.shard, "force": job.force}
    with Run(wh, "attention", cfg, device=f"{choice.device}:{choice.dtype}") as run:
        _write_source(run, spec, job, methods, hashes, pre, choice)
        stats = _stream(run, model, spec, job, todo, map_methods,
                        "features" in todo_methods, layers0, hashes, pre, classifier, echo)
        summary = {"unit_hashes": hashes, "model": spec.key, "variant": job.variant,
                   "n_images": stats["images"], "load_seconds": load_s, **stats}
        manifest = run.commit(**summary)
    return JobResult(name, manifest["status"], run.run_id, new=stats["images"],
                     skipped=len(images) - len(todo), failed=len(run.errors),
                     rows={"attention_maps": stats["maps"]},
                     message=f"{spec.key}: {stats['images']} images, {stats['maps']} maps "
                             f"({stats['images_per_s']:.1f} img/s on {choice.device})")


def _write_source(run: Run, spec: Any, job: AttentionJob, methods: list[str],
                  hashes: dict[str, str], pre: Any, choice: Any) -> None:
    gh, gw = spec.grid
    run.write("map_sources", {
        "model": [spec.key], "variant": [job.variant],
        "config_hash": [json.dumps(hashes, sort_keys=True)],
        "hub_id": [spec.hub_id or ""], "revision": [spec.revision or ""],
        "architecture": [spec.architecture], "random_weights": [bool(spec.random_weights)],
        "grid_h": [gh], "grid_w": [gw], "num_layers": [spec.num_layers],
        "num_heads": [spec.num_heads], "transform_json": [json.dumps(pre.to_dict())],
        "config_json": [json.dumps({**_spec_identity(spec), **job.extra_config},
                                   default=str)],
        "device": [choice.device], "dtype": [choice.dtype],
        "default_method": [spec.default_method], "methods": [methods]},
        unit_key=f"{spec.key}|{job.variant}|{run.run_id}")


def _load_images(batch: list[tuple[str, Path]], run: Run,
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


def _drop_non_finite(maps: Any, feats: Any, ids: list[str],
                     run: Run) -> tuple[Any, Any, int]:
    """The batch's maps and features without the images that have a NaN or infinite
    value in any of them, and how many images were dropped. Those are logged per image in
    ``ingest_errors``; their units are not committed, so a rerun tries them again (the
    run ends partial, exit 3). Inputs may be None."""
    bad: dict[int, list[str]] = {}
    for kind, batch in (("maps", maps), ("features", feats)):
        if batch is None or len(batch) == 0:
            continue
        values = batch.values if kind == "maps" else batch.vectors
        rows = ~np.isfinite(values).all(axis=1)
        for i in np.unique(batch.image[rows]).tolist():
            bad.setdefault(int(i), []).append(kind)
    if not bad:
        return maps, feats, 0
    for i, kinds in sorted(bad.items()):
        run.log_error("attention", ids[i], "non-finite values (NaN or infinity) in the "
                      f"{' and '.join(kinds)}; nothing stored for this image (check the "
                      "model's weights and its mean/std)")
    drop = np.asarray(sorted(bad), dtype=np.int64)
    return (None if maps is None else _keep_rows(maps, ~np.isin(maps.image, drop)),
            None if feats is None else _keep_rows(feats, ~np.isin(feats.image, drop)),
            len(bad))


def _keep_rows(batch: Any, keep: np.ndarray) -> Any:
    """A copy of a map or feature batch with only the rows in ``keep``."""
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


def _stream(run: Run, model: Any, spec: Any, job: AttentionJob, todo: list[tuple[str, Path]],
            methods: list[str], features: bool, layers0: list[int], hashes: dict[str, str],
            pre: Any, classifier: Any, echo: Callable[[str], None] | None) -> dict[str, Any]:
    """Batch loop: read, preprocess, extract, write. Memory is bounded by one batch."""
    import torch

    from ssl_wc.models.extract import extract_batch
    from ssl_wc.models.preprocess import preprocess_batch

    layers1 = [li + 1 for li in layers0]
    heads: str | list[int] | None = "all" if job.heads is None else list(job.heads)
    n_maps = n_img = 0
    t_fwd = 0.0
    t0 = time.monotonic()
    progress = _Progress(len(todo), spec.key, enabled=job.progress)
    try:
        for start in range(0, len(todo), job.batch_size):
            batch = todo[start:start + job.batch_size]
            ids, ims = _load_images(batch, run, job.strict)
            if not ids:
                progress.advance(len(batch))
                continue
            pixels, _ = preprocess_batch(ims, pre)
            t1 = time.monotonic()
            res = extract_batch(model, spec, torch.from_numpy(np.asarray(pixels)),
                                methods=methods or [spec.default_method], layers=layers1,
                                heads=heads, fuse=tuple(job.fuse), features=features,
                                feature_layers=[0, *layers1] if features else None,
                                classifier=classifier)
            t_fwd += time.monotonic() - t1
            mb, fb, n_bad = _drop_non_finite(res.maps if methods else None,
                                             res.features if features else None, ids, run)
            if mb is not None:
                img_ids = np.asarray(ids, dtype=object)[mb.image]
                meth = mb.method.astype(str)
                n = len(mb)
                run.write("attention_maps", {
                    "model": pa.array([spec.key] * n), "variant": pa.array([job.variant] * n),
                    "method": pa.array(meth), "layer": pa.array(mb.layer.astype(np.int16) - 1),
                    "head": pa.array(mb.head.astype(np.int16)),
                    "image_id": pa.array(img_ids.tolist()),
                    "grid_h": pa.array(np.full(n, mb.grid_h, np.int16)),
                    "grid_w": pa.array(np.full(n, mb.grid_w, np.int16)),
                    "config_hash": pa.array([hashes[m] for m in meth]),
                    "values": _values_array(mb.values)},
                    unit_key=[f"{spec.key}|{job.variant}|{m}|{i}"
                              for m, i in zip(meth, img_ids, strict=True)],
                    partition={"model": spec.key})
                n_maps += n
            if fb is not None:
                img_ids = np.asarray(ids, dtype=object)[fb.image]
                n = len(fb)
                run.write("features", {
                    "model": pa.array([spec.key] * n), "variant": pa.array([job.variant] * n),
                    "layer": pa.array(fb.layer.astype(np.int16) - 1),
                    "image_id": pa.array(img_ids.tolist()),
                    "kind": pa.array(fb.kind.astype(str)),
                    "config_hash": pa.array([hashes["features"]] * n),
                    "values": _values_array(fb.vectors)},
                    unit_key=[f"{spec.key}|{job.variant}|features|{i}" for i in img_ids],
                    partition={"model": spec.key})
            n_img += len(ids) - n_bad
            progress.advance(len(batch))
    finally:
        progress.close()
    wall = time.monotonic() - t0
    if echo is not None:
        echo(f"{spec.key}: {n_img} images in {wall:.1f}s ({n_img / max(wall, 1e-9):.1f} img/s)")
    return {"images": n_img, "maps": n_maps, "seconds_total": wall, "seconds_model": t_fwd,
            "images_per_s": n_img / max(wall, 1e-9), "code_version": code_version()}


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
