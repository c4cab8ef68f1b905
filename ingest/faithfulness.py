"""``ssl-wc faithfulness``: do the maps reflect the model? Deletion / insertion curves and
the cascading model-parameter randomisation test for every committed map.

Two checks, one run each per (model, variant), one model in memory at a time:

- ``deletion`` (``ssl_wc.faithfulness.deletion``): for each stored mean-fused map (head
  -1) of the chosen methods and layers, the deletion and insertion curves of the image
  (ROAD removal by default) scored by the cosine similarity of the model's pooled
  embedding, and the fine-tuned head's class probability for fine-tuned variants; per
  image the controls: a random order and the centre, saliency-prior and Sobel baselines
  (method ``baseline:<name>``, layer -1). Table ``faithfulness_curves``.
- ``mprt`` (``ssl_wc.faithfulness.randomisation``): the maps are extracted again from
  the trained model and after every step of the cascade (top block first, then one
  block more, then every parameter); per (map, step): Spearman, SSIM, histogram
  entropies (``mprt_similarity``) and every plausibility metric of the trained and the
  randomised map (``mprt_metric_deltas``), scored by ``ssl_wc.metrics.kernels.score_maps``.

Units: ``model|variant|method|image|layer|protocol_hash`` (controls: method
``baseline:<name>``, layer -1), so a run for some layers never touches the others. A
unit is redone when its attention unit was rewritten by a newer run (maps) or when the
model's extraction configuration changed (controls), or with ``force``. The deletion
run commits before the randomisation run starts (the cascade overwrites the model's
weights in memory). After a commit the per-layer summaries (``layer_progression``,
``leaderboard``) are refreshed through the metrics job.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from ingest.attention import _Progress
from ingest.common import JobResult
from ssl_wc.faithfulness.protocol import CHECKS, DeletionProtocol, RandomisationProtocol
from ssl_wc.lake.catalog import LakeState, read_manifests
from ssl_wc.lake.runs import Run, code_version, config_hash
from ssl_wc.paths import WarehousePaths
from ssl_wc.warehouse import open_reader, read_named

CONTROLS = ("random", "center_gaussian", "saliency_prior", "sobel_edges")
CONTROL_LAYER = -1
FUSED_HEAD = -1
IMAGE_BATCH = 8


class FaithfulnessInputError(ValueError):
    """A request the job cannot serve (what is wrong and the valid values)."""


@dataclass
class FaithfulnessJob:
    """What to check. ``None`` means every model / variant / method / layer / image with
    committed maps; layers are 0-based block indices."""

    models: Sequence[str] | None = None
    variants: Sequence[str] | None = None
    methods: Sequence[str] | None = None
    layers: Sequence[int] | None = None
    images: Sequence[str] | None = None
    checks: Sequence[str] = CHECKS
    deletion: DeletionProtocol = field(default_factory=DeletionProtocol)
    randomisation: RandomisationProtocol = field(default_factory=RandomisationProtocol)
    controls: bool = True
    # deletion only for these methods (None: the same as the randomisation check)
    deletion_methods: Sequence[str] | None = None
    batch_size: int = 32
    device: str = "auto"
    dtype: str = "auto"
    model_config: Path | None = None
    specs: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    strict: bool = False
    progress: bool = True
    summaries: bool = True
    # every (model, variant) in one run and one commit (fewer catalog swaps; the demo)
    one_run: bool = False


# --------------------------------------------------------------------------- planning
@dataclass
class _Source:
    """One (model, variant) and the work it has to do."""

    model: str
    variant: str
    config_json: str
    num_layers: int
    # method -> image -> attention run id; method -> layers with a fused map
    units: dict[str, dict[str, str]] = field(default_factory=dict)
    layers: dict[str, list[int]] = field(default_factory=dict)
    # check -> (method, image, layer) still to do
    todo: dict[str, list[tuple[str, str, int]]] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return config_hash({"model": self.model, "variant": self.variant,
                            "config": self.config_json})


def _unit(model: str, variant: str, method: str, image_id: str, layer: int,
          phash: str) -> str:
    return f"{model}|{variant}|{method}|{image_id}|{layer}|{phash}"


def _live_sources(state: LakeState, table: str) -> dict[str, str]:
    """faithfulness unit -> what it was computed from (manifest summaries)."""
    by_run = {m["run_id"]: m for m in state.manifests}
    out: dict[str, str] = {}
    for (tbl, unit), rid in state.live.items():
        if tbl == table:
            out[unit] = by_run[rid].get("summary", {}).get("sources", {}).get(unit, "")
    return out


def _check_request(job: FaithfulnessJob, units: list[tuple[str, str, str, str, str]],
                   n_layers: dict[tuple[str, str], int]) -> None:
    """Refuse names that match nothing, naming the valid values."""
    def refuse(option: str, bad: Sequence[str], valid: set[str]) -> None:
        if bad:
            raise FaithfulnessInputError(
                f"{option}: no committed maps for {', '.join(sorted(bad))}; valid: "
                f"{', '.join(sorted(valid)) or '(none: run `ssl-wc ingest attention` first)'}")

    bad_checks = [c for c in job.checks if c not in CHECKS]
    if bad_checks or not job.checks:
        raise FaithfulnessInputError(f"--checks: unknown {bad_checks or list(job.checks)}; "
                                     f"valid: {', '.join(CHECKS)}")
    models = {u[0] for u in units}
    refuse("--models", [m for m in job.models or () if m not in models], models)
    sel = [u for u in units if job.models is None or u[0] in job.models]
    variants = {u[1] for u in sel}
    refuse("--variants", [v for v in job.variants or () if v not in variants], variants)
    sel = [u for u in sel if job.variants is None or u[1] in job.variants]
    methods = {u[2] for u in sel}
    refuse("--methods", [m for m in job.methods or () if m not in methods], methods)
    if job.layers is not None:
        top = max((n_layers.get((u[0], u[1]), 0) for u in sel), default=0)
        bad = [str(v) for v in job.layers if not -top <= v < top]
        if bad or not job.layers:
            raise FaithfulnessInputError(
                f"--layers: {', '.join(bad) or 'empty'} out of range; valid: 0..{top - 1} "
                "(negative counts from the last layer)")
    if job.images is not None:
        ids = {u[3] for u in sel}
        refuse("--images", [i for i in job.images if i not in ids], ids)
    if job.batch_size < 1:
        raise FaithfulnessInputError("--batch-size: must be >= 1")


def plan(wh: WarehousePaths, job: FaithfulnessJob, targets: dict[str, np.ndarray],
         state: LakeState) -> list[_Source]:
    """The (model, variant) sources with their units still to do per check."""
    con = open_reader(wh, udfs=False)
    try:
        from ssl_wc.sqlfiles import named_query

        units = [tuple(r) for r in con.sql(named_query("job_attention_units")).fetchall()]
        srcs = con.sql(named_query("job_faith_sources")).fetchall()
        avail = {(m, v, meth): [int(x) for x in ls] for m, v, meth, ls in
                 con.sql(named_query("job_faith_layers")).fetchall()}
    finally:
        con.close()
    units = [u for u in units if u[3] in targets]
    info = {(m, v): (cfg or "", int(n or 0)) for m, v, cfg, n in srcs}
    _check_request(job, units, {k: v[1] for k, v in info.items()})  # type: ignore[arg-type]
    dhash, rhash = job.deletion.hash(), job.randomisation.hash()
    done = {"deletion": {} if job.force else _live_sources(state, "faithfulness_curves"),
            "mprt": {} if job.force else _live_sources(state, "mprt_similarity")}
    out: dict[tuple[str, str], _Source] = {}
    for model, variant, method, image_id, rid in units:
        if (job.models is not None and model not in job.models) or \
                (job.variants is not None and variant not in job.variants) or \
                (job.methods is not None and method not in job.methods) or \
                (job.images is not None and image_id not in job.images):
            continue
        cfg, n_layers = info.get((model, variant), ("", 0))
        src = out.setdefault((model, variant), _Source(model, variant, cfg, n_layers))
        src.units.setdefault(method, {})[image_id] = rid
        if method not in src.layers:
            chosen = set(_layers0(job, n_layers))
            src.layers[method] = [li for li in avail.get((model, variant, method), [])
                                  if li in chosen]
    for src in out.values():
        for check in job.checks:
            phash = dhash if check == "deletion" else rhash
            todo = []
            for method, images in sorted(src.units.items()):
                if check == "deletion" and job.deletion_methods is not None \
                        and method not in job.deletion_methods:
                    continue
                for image_id, rid in sorted(images.items()):
                    for layer in src.layers[method]:
                        u = _unit(src.model, src.variant, method, image_id, layer, phash)
                        if done[check].get(u) != rid:
                            todo.append((method, image_id, layer))
            if check == "deletion":  # the random order always; the baselines on request
                for image_id in sorted({i for ims in src.units.values() for i in ims}):
                    for c in CONTROLS if job.controls else CONTROLS[:1]:
                        u = _unit(src.model, src.variant, f"baseline:{c}", image_id,
                                  CONTROL_LAYER, phash)
                        if done[check].get(u) != src.fingerprint:
                            todo.append((f"baseline:{c}", image_id, CONTROL_LAYER))
            src.todo[check] = todo
    return [out[k] for k in sorted(out)]


# --------------------------------------------------------------------------- model
@dataclass
class _Loaded:
    spec: Any
    model: Any
    classifier: Any
    choice: Any
    pre: Any


def _load(wh: WarehousePaths, job: FaithfulnessJob, src: _Source) -> _Loaded:
    """The backbone of a (model, variant), and its classifier for a fine-tuned variant."""
    from ingest.attention import quiet_hf
    from ingest.finetune import checkpoint_loader, resolve_model_spec
    from ssl_wc.models.device import choose_device
    from ssl_wc.models.loading import load_model
    from ssl_wc.models.preprocess import PreprocessConfig

    quiet_hf()
    choice = choose_device(job.device, job.dtype)
    classifier = None
    finetune_id = None
    if src.config_json:
        try:
            finetune_id = json.loads(src.config_json).get("finetune_id")
        except ValueError:
            finetune_id = None
    if finetune_id:
        spec, loader, _ = checkpoint_loader(wh, str(finetune_id), job.specs or None)
        model = loader.model(spec, choice)
        classifier = loader.classifier(choice)
    else:
        spec = resolve_model_spec(wh, src.model, job.specs or None, job.model_config)
        model = load_model(spec, choice).model
    if "mprt" in job.checks and src.todo.get("mprt"):
        from ssl_wc.faithfulness.randomisation import cascade_parts

        cascade_parts(model, spec)  # an architecture without blocks is refused here
    return _Loaded(spec, model, classifier, choice, PreprocessConfig.from_spec(spec))


def _skipped(src: _Source, exc: BaseException) -> str:
    """The line that says why a (model, variant) was skipped."""
    return f"{src.model}/{src.variant}: skipped, {type(exc).__name__}: {exc}"


def _failed(src: _Source, run_id: str, exc: BaseException,
            echo: Callable[[str], None] | None) -> JobResult:
    """A (model, variant) the checks could not serve: its reason, printed and returned."""
    if echo is not None:
        echo(_skipped(src, exc))
    return JobResult(f"faithfulness:{src.model}:{src.variant}", "failed", run_id, failed=1,
                     message=_skipped(src, exc))


def _images(wh: WarehousePaths) -> dict[str, Path]:
    rows = read_named(wh, "job_image_files").filter(pl.col("has_file")).rows()
    return {i: Path(root or "") / p if not Path(p).is_absolute() else Path(p)
            for i, p, root, _ in rows}


def _read_image(path: Path) -> Any:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


def _layers0(job: FaithfulnessJob, n_layers: int) -> list[int]:
    """The requested 0-based layers of a model with ``n_layers`` (negative from the end)."""
    if job.layers is None:
        return list(range(max(n_layers, 0)))
    return sorted({v % n_layers for v in job.layers}) if n_layers > 0 else []


# --------------------------------------------------------------------------- entry point
def run_faithfulness(wh: WarehousePaths, job: FaithfulnessJob,
                     echo: Callable[[str], None] | None = None) -> list[JobResult]:
    """Run the requested checks for every selected (model, variant); one result per run.

    Raises :class:`FaithfulnessInputError` before anything is written when the request
    names models, variants, methods, layers or images without committed maps.
    """
    from ingest.metrics import load_targets

    con = open_reader(wh, udfs=False)
    try:
        targets = load_targets(con)
    finally:
        con.close()
    state = read_manifests(wh)
    sources = plan(wh, job, targets, state)
    files = _images(wh)
    results: list[JobResult] = []
    todo = []
    for src in sources:
        if any(src.todo.get(c) for c in job.checks):
            todo.append(src)
            continue
        n = sum(len(v) for v in src.units.values())
        results.append(JobResult(f"faithfulness:{src.model}:{src.variant}", "skipped",
                                 skipped=n, message=f"{src.model}/{src.variant}: every map "
                                 "already checked"))
    if job.one_run and todo:
        results.append(_one_run(wh, job, todo, files, targets, echo))
    for src in todo if not job.one_run else []:
        # a model the checks cannot serve is skipped with its reason; the others go on
        # (a failed run commits nothing)
        try:
            loaded = _load(wh, job, src)
        except Exception as exc:
            if job.strict:
                raise
            run = Run(wh, "faithfulness", {"model": src.model, "variant": src.variant}).start()
            run.log_error("faithfulness", f"{src.model}/{src.variant}", exc)
            run.fail(exc)
            results.append(_failed(src, run.run_id, exc, echo))
            continue
        results.append(_source_run(wh, job, src, loaded, files, targets, echo))
        del loaded
    if job.summaries and any(r.status in ("committed", "partial") for r in results):
        from ingest.metrics import materialise_summaries

        results.append(materialise_summaries(wh))
    return results


def _run_config(job: FaithfulnessJob, checks: Sequence[str], **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        **extra, "checks": list(checks),
        "layers": None if job.layers is None else sorted(job.layers),
        "controls": job.controls, "batch_size": job.batch_size, "force": job.force}
    if "deletion" in checks:
        cfg.update(deletion=job.deletion.as_dict(), deletion_hash=job.deletion.hash())
    if "mprt" in checks:
        cfg.update(mprt=job.randomisation.as_dict(), mprt_hash=job.randomisation.hash())
    return cfg


def _checks(run: Run, job: FaithfulnessJob, src: _Source, loaded: _Loaded,
            files: dict[str, Path], targets: dict[str, np.ndarray],
            sources: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Both checks of one (model, variant), written to ``run``. Deletion first: the
    randomisation cascade overwrites the weights."""
    parts: dict[str, dict[str, Any]] = {}
    if src.todo.get("deletion") and "deletion" in job.checks:
        parts["deletion"] = _deletion(run, job, src, loaded, files, sources)
    if src.todo.get("mprt") and "mprt" in job.checks:
        parts["mprt"] = _mprt(run, job, src, loaded, files, targets, sources)
    return parts


def _said(src: _Source, parts: dict[str, dict[str, Any]], seconds: float) -> str:
    said = []
    if "deletion" in parts:
        d = parts["deletion"]
        said.append(f"{d['rows']} deletion/insertion curves on {d['images']} images "
                    f"({d['forwards']} forwards)")
    if "mprt" in parts:
        m = parts["mprt"]
        said.append(f"randomisation cascade of {m['units']} maps ({m['steps']} steps)")
    return f"{src.model}/{src.variant}: {'; '.join(said)} in {seconds:.1f}s"


def _rows(parts: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {"faithfulness_curves": parts.get("deletion", {}).get("rows", 0),
            "mprt_similarity": parts.get("mprt", {}).get("rows", 0)}


def _source_run(wh: WarehousePaths, job: FaithfulnessJob, src: _Source, loaded: _Loaded,
                files: dict[str, Path], targets: dict[str, np.ndarray],
                echo: Callable[[str], None] | None) -> JobResult:
    """Both checks of one (model, variant) in one run: one commit, one model in memory."""
    checks = [c for c in CHECKS if c in job.checks and src.todo.get(c)]
    cfg = _run_config(job, checks, model=src.model, variant=src.variant,
                      device=loaded.choice.to_dict())
    t0 = time.monotonic()
    sources: dict[str, str] = {}
    with Run(wh, "faithfulness", cfg,
             device=f"{loaded.choice.device}:{loaded.choice.dtype}") as run:
        try:
            parts = _checks(run, job, src, loaded, files, targets, sources)
        except Exception as exc:  # the run fails (nothing of it is committed)
            if job.strict:
                raise
            run.fail(exc)
            return _failed(src, run.run_id, exc, echo)
        seconds = time.monotonic() - t0
        summary: dict[str, Any] = {"sources": sources, "model": src.model,
                                   "variant": src.variant, "seconds_total": seconds,
                                   "code_version": code_version(), **parts}
        manifest = run.commit(**summary)
    message = _said(src, parts, seconds)
    if echo is not None:
        echo(message)
    return JobResult(f"faithfulness:{src.model}:{src.variant}", manifest["status"], run.run_id,
                     new=len(sources), failed=len(run.errors), rows=_rows(parts),
                     seconds=seconds, message=message)


def _one_run(wh: WarehousePaths, job: FaithfulnessJob, todo: list[_Source],
             files: dict[str, Path], targets: dict[str, np.ndarray],
             echo: Callable[[str], None] | None) -> JobResult:
    """Every (model, variant) in one run and one commit (``job.one_run``): fewer catalog
    swaps for small jobs; a kill loses the whole invocation. One model in memory."""
    checks = [c for c in CHECKS if c in job.checks and any(s.todo.get(c) for s in todo)]
    cfg = _run_config(job, checks, sources=[f"{s.model}/{s.variant}" for s in todo],
                      device=job.device)
    t0 = time.monotonic()
    sources: dict[str, str] = {}
    per: dict[str, dict[str, dict[str, Any]]] = {}
    rows = {"faithfulness_curves": 0, "mprt_similarity": 0}
    with Run(wh, "faithfulness", cfg, device=job.device) as run:
        for src in todo:
            t1 = time.monotonic()
            done: dict[str, str] = {}
            try:
                loaded = _load(wh, job, src)
                parts = _checks(run, job, src, loaded, files, targets, done)
            except Exception as exc:
                # skipped with its reason; rows it wrote stay unrecorded as done, so the
                # next run redoes (and supersedes) them
                if job.strict:
                    raise
                run.log_error("faithfulness", f"{src.model}/{src.variant}", exc)
                if echo is not None:
                    echo(_skipped(src, exc))
                continue
            sources.update(done)
            per[f"{src.model}/{src.variant}"] = parts
            for k, v in _rows(parts).items():
                rows[k] += v
            if echo is not None:
                echo(_said(src, parts, time.monotonic() - t1))
            del loaded
        seconds = time.monotonic() - t0
        summary: dict[str, Any] = {"sources": sources, "seconds_total": seconds,
                                   "code_version": code_version(), "per_source": per}
        manifest = run.commit(**summary)
    return JobResult("faithfulness", manifest["status"], run.run_id, new=len(sources),
                     failed=len(run.errors), rows=rows, seconds=seconds,
                     message=f"{len(per)} model(s) in one run: {rows['faithfulness_curves']} "
                             f"curves, {rows['mprt_similarity']} randomisation rows")


def _write_protocol(run: Run, phash: str, kind: str, proto: dict[str, Any]) -> None:
    run.write("faithfulness_protocols", {"protocol_hash": [phash], "kind": [kind],
                                         "protocol_json": [json.dumps(proto, sort_keys=True)]},
              unit_key=phash)


def _embedder(loaded: _Loaded) -> tuple[Callable[[Any], Any], Callable[[Any], Any] | None]:
    """Pooled embedding of a batch through the extraction code; class probabilities."""
    import torch

    from ssl_wc.models.extract import extract_batch

    def embed(x: torch.Tensor) -> torch.Tensor:
        res = extract_batch(loaded.model, loaded.spec, x, methods=(), heads=None, fuse=(),
                            features=True, feature_layers=[])
        assert res.features is not None
        return torch.from_numpy(res.features.vectors)

    if loaded.classifier is None:
        return embed, None
    head = loaded.classifier

    def prob(pooled: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            p = next(head.parameters())
            logits = head(pooled.to(device=p.device, dtype=p.dtype))
            return torch.softmax(logits.float(), dim=-1)

    return embed, prob


# --------------------------------------------------------------------------- deletion
def _map_grid(spec: Any, size: tuple[int, int], layer: int | None = None) -> tuple[int, int]:
    """The grid of a map for a model input of ``size`` (H, W): a ViT's patch grid (a
    NaFlex model's own grid for this image); a CNN's grid at 0-based stage ``layer``
    (default: the last stage, the Grad-CAM layer)."""
    from ssl_wc.models.spec import CnnSpec

    if isinstance(spec, CnnSpec):
        return spec.grid_for(size, -1 if layer is None or layer < 0 else layer)
    return spec.grid_for(size)  # type: ignore[no-any-return]


def _control_maps(image: Any, frame: tuple[float, float, float, float],
                  grid: tuple[int, int], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Baseline maps of the part of the image the model sees (``frame``: the whole image,
    or a checkpoint's centre crop) averaged into the cells of ``grid`` (the random
    control is an order)."""
    from ssl_wc.faithfulness.deletion import cell_means
    from ssl_wc.metrics import baselines as bl
    from ssl_wc.metrics.frames import is_full

    if not is_full(frame):
        w, h = image.size
        left, top, right, bottom = frame
        image = image.crop((round(left * w), round(top * h), round(right * w),
                            round(bottom * h)))
    gray = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    return {"center_gaussian": cell_means(bl.center_gaussian(size), grid),
            "saliency_prior": cell_means(bl.saliency_prior(size), grid),
            "sobel_edges": cell_means(bl.sobel_edges(gray, size), grid)}


@dataclass
class _Scorers:
    """One :class:`CurveScorer` per (map grid, model input size): a NaFlex model's images
    differ in both, a CNN's stages in grid; each scores only same-shaped requests."""

    embed: Callable[[Any], Any]
    prob: Callable[[Any], Any] | None
    job: FaithfulnessJob
    std: Sequence[float]
    by_shape: dict[tuple[tuple[int, int], tuple[int, int]], Any] = field(default_factory=dict)

    def get(self, grid: tuple[int, int], size: tuple[int, int]) -> Any:
        from ssl_wc.faithfulness.deletion import CurveScorer

        key = (grid, size)
        if key not in self.by_shape:
            self.by_shape[key] = CurveScorer(self.embed, self.job.deletion, grid, size,
                                             [1.0 / s for s in self.std],
                                             batch_size=self.job.batch_size, prob=self.prob)
        return self.by_shape[key]

    def summary(self) -> dict[str, Any]:
        sc = list(self.by_shape.values())
        return {"forwards": sum(s.forwards for s in sc),
                "road_max_iterations": max((s.stats.iterations for s in sc), default=0),
                "road_max_rel_residual": max((s.stats.max_rel_residual for s in sc),
                                             default=0.0),
                "road_unsolved": sum(s.stats.unsolved for s in sc),
                "grids": sorted({f"{g[0]}x{g[1]}@{h}x{w}" for g, (h, w) in self.by_shape})}


def _deletion(run: Run, job: FaithfulnessJob, src: _Source, loaded: _Loaded,
              files: dict[str, Path], sources: dict[str, str]) -> dict[str, Any]:
    """Deletion / insertion curves of the units to do, written to ``run``; its summary."""
    from ssl_wc.sqlfiles import named_query

    proto = job.deletion
    phash = proto.hash()
    todo = src.todo["deletion"]
    by_image: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for method, image_id, layer in todo:
        by_image[image_id].add((method, layer))
    embed, prob = _embedder(loaded)
    scorers = _Scorers(embed, prob, job, loaded.spec.std)
    t0 = time.monotonic()
    n_maps = 0
    _write_protocol(run, phash, "deletion", proto.as_dict())
    ids = sorted(by_image)
    con = open_reader(run.wh, udfs=False)
    progress = _Progress(len(ids), f"{src.model} deletion", enabled=job.progress)
    try:
        for start in range(0, len(ids), IMAGE_BATCH):
            chunk = ids[start:start + IMAGE_BATCH]
            progress.advance(len(chunk))
            maps = _fused_maps(con, named_query("job_faith_maps"), src, chunk, by_image)
            # same-shaped requests are scored together (one batch of forwards)
            groups: dict[tuple[tuple[int, int], tuple[int, int]], list[Any]] = \
                defaultdict(list)
            meta: dict[str, dict[str, tuple[str, int, str, int]]] = {}
            for image_id in chunk:
                path = files.get(image_id)
                try:
                    if path is None:
                        raise FileNotFoundError(f"{image_id}: no image file ingested")
                    image = _read_image(path)
                except (OSError, ValueError) as exc:
                    if job.strict:
                        raise
                    run.log_error("faithfulness", image_id, exc)
                    continue
                shaped, meta[image_id] = _image_requests(run, job, src, loaded, image_id,
                                                         image, maps.get(image_id, {}),
                                                         by_image[image_id])
                for shape, req in shaped:
                    groups[shape].append(req)
            curves: dict[str, dict[str, Any]] = defaultdict(dict)
            for (grid, size), reqs in groups.items():
                for req, res in zip(reqs, scorers.get(grid, size).score(reqs), strict=True):
                    curves[req.image_id].update(res)
            rows: list[dict[str, Any]] = []
            for image_id, keys in meta.items():
                res = curves[image_id]
                for key, (method, layer, rid, n_cells) in keys.items():
                    if key == "baseline:random":
                        c = _mean_curves([res[f"random:{t}"]
                                          for t in range(proto.random_orders)])
                    else:
                        c = res[key]
                    rows.append(_curve_row(src, method, layer, image_id, phash, rid, c,
                                           n_cells))
                    sources[_unit(src.model, src.variant, method, image_id, layer,
                                  phash)] = rid
            if rows:
                table = pa.Table.from_pylist(rows)
                units = [_unit(src.model, src.variant, r["method"], r["image_id"],
                               r["layer"], phash) for r in rows]
                run.write("faithfulness_curves", table, unit_key=units,
                          partition={"model": src.model})
                n_maps += len(rows)
    finally:
        progress.close()
        con.close()
    return {"protocol_hash": phash, "rows": n_maps, "images": len(ids),
            "seconds": time.monotonic() - t0, **scorers.summary()}


def _image_requests(run: Run, job: FaithfulnessJob, src: _Source, loaded: _Loaded,
                    image_id: str, image: Any,
                    maps: dict[tuple[str, int, tuple[int, int], str], np.ndarray],
                    wanted: set[tuple[str, int]]
                    ) -> tuple[list[tuple[tuple[tuple[int, int], tuple[int, int]], Any]],
                               dict[str, tuple[str, int, str, int]]]:
    """One image's requests, one per map grid, each with its (grid, input size) and the
    cell orders of the maps on that grid (the controls and random orders on the model's
    map grid), and the rows they give: order key -> (method, layer, source, cells).

    The pixels are the model input exactly as ``ingest attention`` makes it (the same
    preprocessing: a NaFlex model's aspect-kept size, a CNN's centre crop), so each map's
    cells are the input regions its own values describe."""
    import torch

    from ssl_wc.faithfulness.deletion import ImageRequest, random_order, rank_cells
    from ssl_wc.models.preprocess import preprocess_image

    arr, transform = preprocess_image(image, loaded.pre)
    pixels = torch.from_numpy(arr).to(device=loaded.choice.torch_device)
    size = (int(arr.shape[1]), int(arr.shape[2]))
    grid = _map_grid(loaded.spec, size)
    orders: dict[tuple[int, int], dict[str, np.ndarray]] = defaultdict(dict)
    meta: dict[str, tuple[str, int, str, int]] = {}
    for (method, layer, g, rid), values in maps.items():
        want = _map_grid(loaded.spec, size, layer)
        if g != want:
            run.log_error("faithfulness", f"{image_id} {method} layer {layer}",
                          f"map grid {g} differs from the model's grid {want} for its "
                          f"{size[0]}x{size[1]} input")
            continue
        orders[g][f"{method}|{layer}"] = rank_cells(values, random_order(image_id, g[0] * g[1]))
        meta[f"{method}|{layer}"] = (method, layer, rid, g[0] * g[1])
    k = grid[0] * grid[1]
    if job.controls:
        tiebreak = random_order(image_id, k)
        for c, cmap in _control_maps(image, transform.frame, grid, size).items():
            if (f"baseline:{c}", CONTROL_LAYER) in wanted:
                orders[grid][f"baseline:{c}"] = rank_cells(cmap, tiebreak)
                meta[f"baseline:{c}"] = (f"baseline:{c}", CONTROL_LAYER, src.fingerprint, k)
    randoms: list[np.ndarray] = []
    if ("baseline:random", CONTROL_LAYER) in wanted:
        randoms = [random_order(image_id, k, t) for t in range(job.deletion.random_orders)]
        meta["baseline:random"] = ("baseline:random", CONTROL_LAYER, src.fingerprint, k)
        orders.setdefault(grid, {})
    reqs = [((g, size), ImageRequest(image_id, pixels, o, randoms if g == grid else []))
            for g, o in orders.items()]
    return reqs, meta


def _fused_maps(con: Any, sql: str, src: _Source, ids: list[str],
                by_image: dict[str, set[tuple[str, int]]]
                ) -> dict[str, dict[tuple[str, int, tuple[int, int], str], np.ndarray]]:
    """image -> (method, layer, grid, run) -> (gh, gw) map, for the units to do."""
    out: dict[str, dict[tuple[str, int, tuple[int, int], str], np.ndarray]] = defaultdict(dict)
    methods = sorted({m for i in ids for m, _ in by_image[i] if not m.startswith("baseline:")})
    for method in methods:
        want = [i for i in ids if any(m == method for m, _ in by_image[i])]
        df = con.sql(sql, params={"model": src.model, "variant": src.variant,
                                  "method": method, "ids": want}).pl()
        for image_id, layer, gh, gw, values, rid in df.iter_rows():
            if (method, int(layer)) not in by_image[image_id]:
                continue
            grid = (int(gh), int(gw))
            out[image_id][(method, int(layer), grid, rid)] = np.asarray(
                values, dtype=np.float64).reshape(grid)
    return out


def _mean_curves(curves: list[Any]) -> Any:
    from ssl_wc.faithfulness.deletion import Curves

    def mean(attr: str) -> np.ndarray | None:
        vals = [getattr(c, attr) for c in curves]
        return None if vals[0] is None else np.mean(np.stack(vals), axis=0)

    dele, ins = mean("deletion"), mean("insertion")
    assert dele is not None and ins is not None
    return Curves(dele, ins, mean("deletion_prob"), mean("insertion_prob"))


def _curve_row(src: _Source, method: str, layer: int, image_id: str, phash: str, rid: str,
               c: Any, n_cells: int) -> dict[str, Any]:
    def lst(a: np.ndarray | None) -> list[float] | None:
        return None if a is None else [float(v) for v in a]

    return {"model": src.model, "variant": src.variant, "method": method, "layer": layer,
            "head": FUSED_HEAD, "image_id": image_id, "protocol_hash": phash,
            "source_run_id": rid, "n_cells": n_cells, "deletion": lst(c.deletion),
            "insertion": lst(c.insertion), "deletion_auc": c.deletion_auc,
            "insertion_auc": c.insertion_auc, "deletion_prob": lst(c.deletion_prob),
            "insertion_prob": lst(c.insertion_prob),
            "deletion_auc_prob": c.deletion_auc_prob,
            "insertion_auc_prob": c.insertion_auc_prob}


# --------------------------------------------------------------------------- randomisation
def _mprt(run: Run, job: FaithfulnessJob, src: _Source, loaded: _Loaded,
          files: dict[str, Path], targets: dict[str, np.ndarray],
          sources: dict[str, str]) -> dict[str, Any]:
    """The randomisation cascade for the units to do, written to ``run``; its summary."""
    import torch

    from ingest.attention import methods_for
    from ingest.metrics import framed_targets
    from ssl_wc.faithfulness.randomisation import (
        CascadeRandomiser,
        cascade_parts,
        init_std,
        parameter_stages,
        probe_forward,
    )
    from ssl_wc.metrics.frames import is_full
    from ssl_wc.models.preprocess import preprocess_image

    proto = job.randomisation
    phash = proto.hash()
    spec = loaded.spec
    todo = src.todo["mprt"]
    methods = methods_for(spec, sorted({m for m, _, _ in todo}))
    ids = sorted({i for _, i, _ in todo})
    layers = sorted({li for _, _, li in todo})
    t0 = time.monotonic()
    described: dict[str, Any] = {}
    _write_protocol(run, phash, "mprt", proto.as_dict())
    pixels: dict[str, np.ndarray] = {}
    boxes: dict[str, np.ndarray] = {}  # the union target, carried into the map's frame
    for image_id in ids:
        path = files.get(image_id)
        try:
            if path is None:
                raise FileNotFoundError(f"{image_id}: no image file ingested")
            pixels[image_id], transform = preprocess_image(_read_image(path), loaded.pre)
        except (OSError, ValueError) as exc:
            if job.strict:
                raise
            run.log_error("faithfulness", image_id, exc)
            continue
        frame = transform.frame
        boxes[image_id] = targets[image_id] if is_full(frame) else \
            framed_targets(targets[image_id], frame)[1][0]
    ids = [i for i in ids if i in pixels]
    wanted = set(todo)
    root, blocks = cascade_parts(loaded.model, spec)
    if ids:
        probe = torch.from_numpy(pixels[ids[0]][None])
        stages = parameter_stages(root, blocks, probe_forward(root, spec, probe))
        extra = [("classifier", loaded.classifier)] if loaded.classifier is not None \
            else []
        cascade = CascadeRandomiser(root, stages, seed=proto.seed, std=init_std(root),
                                    extra_top=extra)
        described = cascade.describe()
        trained = _extract(loaded, methods, ids, pixels, job.batch_size, layers)
        scorer = _MprtScorer(proto, boxes, trained, wanted)
        n_rows = 0
        progress = _Progress(cascade.num_steps, f"{src.model} randomisation",
                             enabled=job.progress)
        while cascade.step < cascade.num_steps:
            step = cascade.advance()
            progress.advance(1)
            randomised = _extract(loaded, methods, ids, pixels, job.batch_size, layers)
            sim, deltas = scorer.rows(src, step, cascade.randomised_from(step), randomised,
                                      phash)
            if sim:
                units = [_unit(src.model, src.variant, r["method"], r["image_id"],
                               r["layer"], phash) for r in sim]
                run.write("mprt_similarity", pa.Table.from_pylist(sim), unit_key=units,
                          partition={"model": src.model})
                units = [_unit(src.model, src.variant, r["method"], r["image_id"],
                               r["layer"], phash) for r in deltas]
                run.write("mprt_metric_deltas", pa.Table.from_pylist(deltas),
                          unit_key=units, partition={"model": src.model})
                n_rows += len(sim)
        progress.close()
    else:
        n_rows = 0
    done = {_unit(src.model, src.variant, m, i, li, phash): src.units[m][i]
            for m, i, li in wanted if i in pixels and m in methods}
    sources.update(done)
    return {"protocol_hash": phash, "rows": n_rows, "units": len(done), "images": len(ids),
            "steps": spec.num_layers + 1, "methods": methods, "layers": layers,
            "randomisation": described, "seconds": time.monotonic() - t0}


def _extract(loaded: _Loaded, methods: list[str], ids: list[str],
             pixels: dict[str, np.ndarray], batch_size: int,
             layers: list[int]) -> dict[tuple[str, str, int], np.ndarray]:
    """(image, method, layer) -> mean-fused map on its own grid, extracted as `ingest
    attention` does (batches of one input size: a NaFlex model's images differ)."""
    import torch

    from ssl_wc.models.extract import extract_batch

    out: dict[tuple[str, str, int], np.ndarray] = {}
    layers1 = [li + 1 for li in layers]
    by_size: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for i in ids:
        by_size[tuple(pixels[i].shape)].append(i)
    for same in by_size.values():
        for start in range(0, len(same), batch_size):
            chunk = same[start:start + batch_size]
            x = torch.from_numpy(np.stack([pixels[i] for i in chunk]))
            res = extract_batch(loaded.model, loaded.spec, x, methods=methods,
                                layers=layers1, heads=None, fuse=("mean",), features=False,
                                classifier=loaded.classifier)
            for batch in res.all_maps():
                mb = batch.select(head=FUSED_HEAD)
                grids = mb.maps()
                for r in range(len(mb)):
                    if int(mb.layer[r]) - 1 not in layers:
                        continue
                    key = (chunk[int(mb.image[r])], str(mb.method[r]), int(mb.layer[r]) - 1)
                    out[key] = grids[r].astype(np.float64)
    return out


class _MprtScorer:
    """Similarity and plausibility rows of one cascade step against the trained maps.
    Maps of one grid are scored together (a NaFlex model's grids differ by image, a CNN's
    by stage); ``boxes``: each image's union target in its maps' frame."""

    def __init__(self, proto: RandomisationProtocol, boxes: dict[str, np.ndarray],
                 trained: dict[tuple[str, str, int], np.ndarray],
                 wanted: set[tuple[str, str, int]]) -> None:
        from ssl_wc.faithfulness.similarity import histogram_entropy
        from ssl_wc.metrics.catalogue import metric_catalogue

        self.proto = proto
        self.boxes = boxes
        self.keys = sorted(k for k in trained if (k[1], k[0], k[2]) in wanted)
        self.trained = [trained[k] for k in self.keys]
        groups: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for n, m in enumerate(self.trained):
            groups[m.shape].append(n)
        self.groups = [np.asarray(g) for g in groups.values()]
        self.cat = metric_catalogue(proto.metrics)
        self.h_trained = self._per_map(self.trained,
                                       lambda m, _: histogram_entropy(m, proto.hist_bins))
        self.trained_scores = self._score(self.trained)

    def _per_map(self, maps: list[np.ndarray],
                 fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
        """``fn(stacked maps, their indices)`` per grid, back in key order."""
        out = np.full(len(maps), np.nan)
        for idx in self.groups:
            out[idx] = fn(np.stack([maps[i] for i in idx]), idx)
        return out

    def _score(self, maps: list[np.ndarray]) -> dict[tuple[str, int | None], np.ndarray]:
        """Every non-informational plausibility metric of each map (union target)."""
        from ssl_wc.metrics.kernels import score_maps

        out: dict[tuple[str, int | None], np.ndarray] = {}
        for idx in self.groups:
            tf, pct = score_maps(np.stack([maps[i] for i in idx]),
                                 [self.boxes[self.keys[i][0]] for i in idx],
                                 self.proto.metrics)
            cols: list[tuple[tuple[str, int | None], np.ndarray]] = []
            for col, vals in tf.items():
                if col in self.cat and self.cat[col].direction != "info":
                    cols.append(((col, None), vals))
            for col, vals in pct.items():
                if col in self.cat and self.cat[col].direction != "info":
                    for j, p in enumerate(self.proto.metrics.percentiles):
                        cols.append(((col, int(p)), vals[:, j]))
            for key, vals in cols:
                out.setdefault(key, np.full(len(maps), np.nan))[idx] = vals
        return out

    def rows(self, src: _Source, step: int, randomised_from: int,
             randomised: dict[tuple[str, str, int], np.ndarray], phash: str
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        from ssl_wc.faithfulness.randomisation import map_depends
        from ssl_wc.faithfulness.similarity import histogram_entropy, spearman_rows, ssim
        from ssl_wc.metrics.heatmap import heatmap

        if not self.keys:
            return [], []
        rand = [randomised[k] for k in self.keys]
        trained = self.trained
        size = tuple(int(v) for v in self.proto.metrics.eval_size)

        def rho(m: np.ndarray, idx: np.ndarray) -> np.ndarray:
            return spearman_rows(np.stack([trained[i] for i in idx]), m)

        def ss(m: np.ndarray, idx: np.ndarray) -> np.ndarray:
            t = np.stack([trained[i] for i in idx])
            return np.concatenate([ssim(heatmap(t[i:i + 64], size),  # type: ignore[arg-type]
                                        heatmap(m[i:i + 64], size))  # type: ignore[arg-type]
                                   for i in range(0, len(m), 64)])

        r, s = self._per_map(rand, rho), self._per_map(rand, ss)
        ent = self._per_map(rand, lambda m, _: histogram_entropy(m, self.proto.hist_bins))
        scores = self._score(rand)
        sim, deltas = [], []
        for n, (image_id, method, layer) in enumerate(self.keys):
            base = {"model": src.model, "variant": src.variant, "method": method,
                    "layer": layer, "head": FUSED_HEAD, "image_id": image_id,
                    "protocol_hash": phash}
            sim.append({**base, "source_run_id": src.units[method][image_id],
                        "cascade_step": step, "randomised_from": randomised_from,
                        "depends": map_depends(method, layer, randomised_from),
                        "unchanged": bool(np.array_equal(trained[n], rand[n])),
                        "spearman": _f(r[n]), "ssim": _f(s[n]), "hist_entropy": _f(ent[n]),
                        "hist_entropy_trained": _f(self.h_trained[n])})
            for (metric, pct), vals in scores.items():
                deltas.append({**base, "cascade_step": step, "metric": metric,
                               "percentile": pct,
                               "trained": _f(self.trained_scores[(metric, pct)][n]),
                               "randomised": _f(vals[n])})
        return sim, deltas


def _f(v: Any) -> float | None:
    x = float(v)
    return None if np.isnan(x) else x
