"""The demo's fine-tuning step: one tiny RANDOM-WEIGHT model, all three strategies.

On the synthetic demo data, ``dinov2-random`` (or the first CLS model available) is
fine-tuned with ``linear_probe``, ``lora`` and ``full`` for a few epochs (seconds each on
a CPU), each checkpoint is ingested as a variant (methods cls, rollout, mean; every
layer and head, the same fusions and batch size as the demo's frozen extraction, so the
linear probe's maps are bit-identical to the frozen ones), the maps are scored and
``variant_delta_stats`` is materialised. Learning rates are higher than the real
defaults so the tiny model visibly moves in a few steps; nothing here is a result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ingest.common import JobResult
from ssl_wc.finetune import STRATEGIES
from ssl_wc.paths import WarehousePaths

DEMO_MODEL = "dinov2-random"
DEMO_VARIANT_METHODS = ("cls", "rollout", "mean")
DEMO_FUSE = ("mean", "max", "min")
DEMO_BATCH = 16  # the demo's frozen extraction batch size (identical linear-probe maps)
DEMO_TRAIN: dict[str, Any] = {"epochs": 3, "batch_size": 16, "lr_head": 1e-2,
                              "warmup_fraction": 0.1, "seed": 0, "val_fraction": 0.2}
DEMO_LR_BACKBONE = {"linear_probe": None, "lora": 2e-3, "full": 2e-4}


def _pick_model(specs: Mapping[str, Any]) -> str:
    if DEMO_MODEL in specs:
        return DEMO_MODEL
    for key, spec in specs.items():
        if getattr(spec, "has_cls", False):
            return str(key)
    return str(next(iter(specs)))


def demo_finetune(wh: WarehousePaths, specs: Mapping[str, Any], paths: Any,
                  echo: Callable[[str], None] = print) -> list[JobResult]:
    """Fine-tune, ingest, score and compare; one result per step (see module docstring)."""
    from ingest.finetune import ingest_variant, materialise_variant_deltas, run_finetune
    from ingest.metrics import materialise_metrics

    key = _pick_model(specs)
    echo(f"fine-tuning {key} (RANDOM WEIGHTS) on the synthetic style pool: "
         f"{', '.join(STRATEGIES)}")
    results: list[JobResult] = []
    for strategy in STRATEGIES:
        res = run_finetune(wh, key, strategy, lr_backbone=DEMO_LR_BACKBONE[strategy],
                           images=paths.images, churches=paths.churches, device="cpu",
                           specs=specs, **DEMO_TRAIN)
        results.append(res)
        if res.status not in ("committed", "partial", "skipped"):
            continue
        results += ingest_variant(wh, res.finetune_id, DEMO_VARIANT_METHODS, fuse=DEMO_FUSE,
                                  device="cpu", batch_size=DEMO_BATCH, specs=specs,
                                  progress=False)
    # both steps are incremental: what is already scored or unchanged is skipped
    results += materialise_metrics(wh)
    results.append(materialise_variant_deltas(wh))
    return results
