"""Shared fixtures: the synthetic demo dataset and warehouses built from it."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory):
    """The deterministic synthetic demo dataset (real WikiChurches file formats)."""
    from ssl_wc.data.demo import generate_demo

    return generate_demo(tmp_path_factory.mktemp("demo") / "data")


@pytest.fixture(scope="session")
def annotated_wh_template(tmp_path_factory: pytest.TempPathFactory, demo_data):
    """A warehouse holding the demo annotations and images (copied per test)."""
    from ingest.annotations import ingest_annotations
    from ingest.images import ingest_images
    from ssl_wc.paths import WarehousePaths

    wh = WarehousePaths.of(tmp_path_factory.mktemp("whtpl") / "wh")
    ingest_annotations(wh, demo_data.building_parts, demo_data.style_names, demo_data.churches,
                       synthetic=True)
    ingest_images(wh, demo_data.images)
    return wh.root


@pytest.fixture()
def annotated_wh(tmp_path: Path, annotated_wh_template: Path):
    """A fresh copy of the annotated warehouse (copying also exercises folder moves)."""
    from ssl_wc.paths import WarehousePaths

    dst = tmp_path / "wh"
    shutil.copytree(annotated_wh_template, dst)
    return WarehousePaths.of(dst)


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for CLI subprocesses (the venv's ssl-wc, unbuffered output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSL_WC_")}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}, **extra)
    return env


SSL_WC = [sys.executable, "-m", "ssl_wc.cli"]
