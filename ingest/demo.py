"""``ssl-wc demo``: the whole pipeline on the built-in SYNTHETIC demo data.

Generates the synthetic WikiChurches-format dataset under ``<wh>/demo_data``, builds tiny
RANDOM-WEIGHT replicas of every backbone under ``<wh>/artifacts/random_models`` (model
keys ``<key>-random``; never results), and runs annotations, images, attention (every
method, layer and head), metrics with baselines, statistics and the linear probe.
Everything is incremental, so running it again is quick.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ingest.common import JobResult
from ssl_wc.paths import WarehousePaths

DEMO_METHODS = ("cls", "rollout", "mean", "map", "gradcam")
TINY: dict[str, Any] = {"grid": 8, "hidden_size": 64, "num_layers": 4, "num_heads": 4}


def demo_specs(wh: WarehousePaths) -> dict[str, Any]:
    """Random-weight tiny replicas of every registered backbone (built once, reused)."""
    from ingest.attention import quiet_hf
    from ssl_wc.models.registry import BUILTIN_KEYS, build_random_model

    quiet_hf()
    specs = {}
    for key in BUILTIN_KEYS:
        folder = wh.artifacts / "random_models" / key
        spec = build_random_model(key, folder, seed=0, **TINY)
        specs[spec.key] = spec
    return specs


def build_demo(wh: WarehousePaths, *, echo: Callable[[str], None] = print,
               models: bool = True, random_trials: int = 100,
               finetune: bool = True) -> list[JobResult]:
    from ingest.annotations import ingest_annotations
    from ingest.images import ingest_images
    from ssl_wc.data.demo import DEMO_LABEL, generate_demo

    wh.ensure()
    if models:
        # the metric kernels' compiled loops build (first run) or load meanwhile
        import threading

        from ssl_wc.metrics.kernels import warm_up

        threading.Thread(target=warm_up, name="numba-warm-up", daemon=True).start()
    data = wh.root / "demo_data"
    echo(f"{DEMO_LABEL}: synthetic facades in the WikiChurches formats, at {data}")
    # deterministic: a rerun rewrites identical bytes, so the ingest steps skip
    paths = generate_demo(data)
    results: list[JobResult] = []

    def step(res: JobResult | list[JobResult]) -> None:
        for r in res if isinstance(res, list) else [res]:
            echo(r.line())
            results.append(r)

    step(ingest_annotations(wh, paths.building_parts, paths.style_names, paths.churches,
                            synthetic=True))
    step(ingest_images(wh, paths.images))
    if not models:
        return results
    from ingest.attention import AttentionJob, ingest_attention
    from ingest.metrics import materialise_metrics
    from ingest.stats import materialise_stats

    echo("building tiny RANDOM-WEIGHT replicas of every backbone (keys *-random)")
    specs = demo_specs(wh)
    step(ingest_attention(wh, AttentionJob(models=list(specs), methods=DEMO_METHODS,
                                           fuse=("mean", "max", "min"), specs=specs,
                                           device="cpu", batch_size=16)))
    if finetune:
        from ingest.finetune_demo import demo_finetune

        step(demo_finetune(wh, specs, paths, echo=echo))
    step(materialise_metrics(wh, random_trials=random_trials))
    step(materialise_stats(wh))
    return results

