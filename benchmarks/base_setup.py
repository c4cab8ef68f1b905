"""Shared set-up of the model-job benchmarks: a warehouse of N synthetic demo images and
a random-weight model with the real DINOv2-with-registers base layout, saved to disk and
loaded through the same code as real weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def base_vit_warehouse(root: Path, n_images: int, name: str = "wh") -> tuple[Any, Any]:
    """(warehouse with the demo annotations and images, base-layout random ViT spec)."""
    from ingest.annotations import ingest_annotations
    from ingest.attention import quiet_hf
    from ingest.images import ingest_images
    from ssl_wc.data.demo import generate_demo
    from ssl_wc.models.registry import build_random_model, get_spec
    from ssl_wc.paths import WarehousePaths

    quiet_hf()
    demo = generate_demo(root / "data", n_annotated=n_images, n_pool=2)
    wh = WarehousePaths.of(root / name)
    ingest_annotations(wh, demo.building_parts, demo.style_names, synthetic=True)
    ingest_images(wh, demo.images)
    base = get_spec("dinov2")
    spec = build_random_model("dinov2", root / "model", seed=0, config=base.config,
                              input_hw=base.input_hw)
    return wh, spec
