"""``ssl-wc demo``: the whole pipeline on the built-in SYNTHETIC demo data.

Generates the synthetic WikiChurches-format dataset under ``<wh>/demo_data``, builds tiny
RANDOM-WEIGHT replicas of every backbone under ``<wh>/artifacts/random_models`` (model
keys ``<key>-random``; never results: the ViTs, SigLIP 2 NaFlex with a 64-patch budget so
portrait and landscape facades get 9x7 and 7x9 grids, and ResNet-50 with narrow stages
and its own 256/224 centre crop), and runs annotations, images, attention (every method,
layer and head; last-block patch tokens), metrics with baselines, the faithfulness
checks, statistics and the linear probe. Everything is incremental, so running it again is quick.

The faithfulness step is kept small (:data:`DEMO_FAITHFULNESS`) and runs right after the
attention step, so the metrics step's per-layer summaries include it: the frozen models
on the first 2 annotated images, the ViTs in one run and ResNet-50 in another; deletion /
insertion with 4 steps for each model's default method (``cls``, ``map`` for SigLIP,
``gradcam`` for ResNet-50) at every layer against the random-order control; the
randomisation cascade for the default method and ``rollout`` (ResNet-50: Grad-CAM, over
its stages). Every model gets all three kinds of numbers (plausibility, deletion /
insertion, randomisation). `ssl-wc faithfulness` checks every image, method and variant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ingest.common import JobResult
from ingest.model_specs import demo_specs
from ssl_wc.data.demo import DemoPaths
from ssl_wc.paths import WarehousePaths

DEMO_METHODS = ("cls", "rollout", "mean", "map", "gradcam")
DEMO_FAITHFULNESS: dict[str, Any] = {"images": 2, "steps": 4, "deletion_methods": ("cls", "map"),
                                     "methods": ("cls", "map", "rollout"),
                                     "cnn_methods": ("gradcam",)}


def demo_inputs(wh: WarehousePaths, data: Path, *, n_annotated: int = 32,
                n_pool: int = 160) -> tuple[DemoPaths, list[JobResult]]:
    """Generate the synthetic dataset under ``data`` and ingest its annotations and images
    (deterministic: a rerun rewrites identical bytes, so the ingest steps skip)."""
    from ingest.annotations import ingest_annotations
    from ingest.images import ingest_images
    from ssl_wc.data.demo import generate_demo

    paths = generate_demo(data, n_annotated=n_annotated, n_pool=n_pool)
    return paths, [ingest_annotations(wh, paths.building_parts, paths.style_names,
                                      paths.churches, synthetic=True),
                   ingest_images(wh, paths.images)]


def build_demo(wh: WarehousePaths, *, echo: Callable[[str], None] = print,
               models: bool = True, random_trials: int = 100,
               finetune: bool = True, model_keys: Sequence[str] | None = None) -> list[JobResult]:
    """The whole demo; ``model_keys`` restricts the replicas (default: every built-in)."""
    from ssl_wc.data.demo import DEMO_LABEL

    wh.ensure()
    if models:
        # the metric kernels' compiled loops build (first run) or load meanwhile
        import threading

        from ssl_wc.metrics.kernels import warm_up

        threading.Thread(target=warm_up, name="numba-warm-up", daemon=True).start()
    data = wh.root / "demo_data"
    echo(f"{DEMO_LABEL}: synthetic facades in the WikiChurches formats, at {data}")
    results: list[JobResult] = []

    def step(res: JobResult | list[JobResult]) -> None:
        for r in res if isinstance(res, list) else [res]:
            echo(r.line())
            results.append(r)

    paths, ingested = demo_inputs(wh, data)
    step(ingested)
    if not models:
        return results
    from ingest.attention import AttentionJob, ingest_attention
    from ingest.metrics import materialise_metrics
    from ingest.stats import materialise_stats

    echo("building tiny RANDOM-WEIGHT replicas of every backbone (keys *-random)")
    specs = demo_specs(wh, model_keys)
    step(ingest_attention(wh, AttentionJob(models=list(specs), methods=DEMO_METHODS,
                                           fuse=("mean", "max", "min"), specs=specs,
                                           device="cpu", batch_size=16)))
    step(demo_faithfulness(wh, specs))
    if finetune:
        from ingest.finetune_demo import demo_finetune

        step(demo_finetune(wh, specs, paths, echo=echo))
    step(materialise_metrics(wh, random_trials=random_trials))
    step(materialise_stats(wh))
    return results


def demo_faithfulness(wh: WarehousePaths, specs: dict[str, Any]) -> list[JobResult]:
    """Deletion / insertion and the randomisation cascade of the frozen models on a few
    images (see the module docstring); the metrics step summarises them. The ViTs in one
    run, the CNNs (Grad-CAM, their only map) in another."""
    from ingest.attention import methods_for
    from ingest.faithfulness import FaithfulnessJob, run_faithfulness
    from ssl_wc.faithfulness.protocol import DeletionProtocol
    from ssl_wc.warehouse import read_named

    ids = sorted(read_named(wh, "job_annotated_images")["image_id"].to_list())
    cnns = sorted(k for k, s in specs.items() if s.kind == "cnn")
    vits = sorted(k for k in specs if k not in cnns)
    results: list[JobResult] = []
    for models, methods, deletion_methods in (
            (vits, DEMO_FAITHFULNESS["methods"], DEMO_FAITHFULNESS["deletion_methods"]),
            (cnns, DEMO_FAITHFULNESS["cnn_methods"], DEMO_FAITHFULNESS["cnn_methods"])):
        # only the methods some of these models have (a subset of the demo's models)
        methods = [m for m in methods if any(methods_for(specs[k], [m]) for k in models)]
        if models and methods:
            results += run_faithfulness(wh, FaithfulnessJob(
                models=models, images=ids[:DEMO_FAITHFULNESS["images"]], variants=["frozen"],
                methods=methods, deletion_methods=deletion_methods,
                deletion=DeletionProtocol(steps=DEMO_FAITHFULNESS["steps"]), controls=False,
                specs=specs, device="cpu", batch_size=64, progress=False, one_run=True,
                summaries=False))
    return results
