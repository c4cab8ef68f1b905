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


def plain_connect(catalog: Path):
    """A plain duckdb read-only connection to a catalog (no ssl_wc code), pointed at its
    warehouse folder the documented way (the ``ssl_wc_root`` variable)."""
    import duckdb

    con = duckdb.connect(str(catalog), read_only=True)
    root = Path(catalog).parent.as_posix().replace("'", "''")
    con.execute(f"SET VARIABLE ssl_wc_root = '{root}'")
    return con


def query_catalog(wh, sql: str) -> list[tuple]:
    """Rows of ``sql`` from a warehouse's catalog through plain duckdb (read-only)."""
    con = plain_connect(wh.catalog)
    try:
        return con.sql(sql).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory):
    """Two tiny random-weight models (a CLS+registers ViT and a MAP-pooled SigLIP) saved
    to disk, plus a user model file that points at them (the same loading code as real
    weights). Returns (specs by key, path of the model TOML)."""
    from ssl_wc.models.registry import build_random_model

    root = tmp_path_factory.mktemp("tiny_models")
    specs = {}
    for key, kw in [("dinov2", {"grid": 4, "num_layers": 12, "hidden_size": 16,
                                "num_heads": 2}),
                    ("siglip", {"grid": 4, "num_layers": 2, "hidden_size": 16,
                                "num_heads": 2})]:
        spec = build_random_model(key, root / key, seed=1, **kw)
        specs[spec.key] = spec
    toml = root / "models.toml"
    lines = []
    for spec in specs.values():
        lines += [f'[models."{spec.key}"]', f'source = "{spec.local_dir}"',
                  f"input_size = [{spec.input_hw[0]}, {spec.input_hw[1]}]", ""]
    toml.write_text("\n".join(lines))
    return specs, toml


@pytest.fixture(scope="session")
def scored_wh_template(tmp_path_factory: pytest.TempPathFactory, annotated_wh_template,
                       tiny_models):
    """Annotated warehouse + tiny-model maps + metrics (10 random trials) + stats."""
    from ingest.attention import AttentionJob, ingest_attention
    from ingest.metrics import materialise_metrics
    from ingest.stats import materialise_stats
    from ssl_wc.paths import WarehousePaths

    dst = tmp_path_factory.mktemp("scored") / "wh"
    shutil.copytree(annotated_wh_template, dst)
    wh = WarehousePaths.of(dst)
    specs, _ = tiny_models
    res = ingest_attention(wh, AttentionJob(models=list(specs), specs=specs, progress=False,
                                            methods=("cls", "rollout", "mean", "map"),
                                            device="cpu"))
    assert all(r.status == "committed" for r in res), [r.line() for r in res]
    materialise_metrics(wh, random_trials=10)
    materialise_stats(wh, resamples=1000)
    return dst


@pytest.fixture()
def scored_wh(tmp_path: Path, scored_wh_template: Path):
    from ssl_wc.paths import WarehousePaths

    dst = tmp_path / "wh"
    shutil.copytree(scored_wh_template, dst)
    return WarehousePaths.of(dst)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):  # the controller, not an xdist worker
        tally = ROOT / ".pytest_cache" / "fault_tallies.txt"
        tally.parent.mkdir(exist_ok=True)
        tally.write_text("")


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Print the fault-injection tallies (kills, reruns, reader queries, errors)."""
    tally = ROOT / ".pytest_cache" / "fault_tallies.txt"
    if tally.exists() and tally.read_text().strip():
        terminalreporter.section("fault-injection tallies")
        for line in tally.read_text().splitlines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def scored_report(tmp_path_factory: pytest.TempPathFactory, scored_wh_template):
    """``ssl-wc report`` (all formats, notebook included) of the scored warehouse, built
    once per session; tests only read it."""
    from ssl_wc.paths import WarehousePaths
    from ssl_wc.report.build import ReportOptions, build_report

    out = tmp_path_factory.mktemp("report") / "report"
    return build_report(WarehousePaths.of(scored_wh_template), ReportOptions(out=out))
