"""Set-up shared by the benchmarks: a warehouse of synthetic demo images and a
random-weight model with a registered backbone's real layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def demo_warehouse(root: Path, n_images: int) -> Any:
    """A warehouse under ``root / "wh"`` holding ``n_images`` synthetic annotated images
    (annotations and image files, the real WikiChurches formats)."""
    from ingest.annotations import ingest_annotations
    from ingest.images import ingest_images
    from ssl_wc.data.demo import generate_demo
    from ssl_wc.paths import WarehousePaths

    demo = generate_demo(root / "data", n_annotated=n_images, n_pool=2)
    wh = WarehousePaths.of(root / "wh")
    ingest_annotations(wh, demo.building_parts, demo.style_names, synthetic=True)
    ingest_images(wh, demo.images)
    return wh


def real_layout_model(key: str, folder: Path) -> Any:
    """A RANDOM-WEIGHT model with ``key``'s real (base-size) configuration, saved to
    ``folder`` and loadable like real weights; returns its spec."""
    from ssl_wc.models.registry import build_random_model, get_spec

    base = get_spec(key)
    return build_random_model(key, folder, seed=0, config=base.config, input_hw=base.input_hw)
