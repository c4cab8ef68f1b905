"""Fault-injection suite for the model, metrics and statistics jobs (issue: scheduled
runs that survive faults). Each job is SIGKILLed at random points while a separate
process keeps querying the views with plain DuckDB. After every kill the visible state
must be exactly the last committed one (no partial rows, no duplicates); a final rerun
must reach the state of an uninterrupted run. The tallies are printed."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.conftest import ROOT, SSL_WC, cli_env, query_catalog
from tests.faults import Reader, Tally, kill_rerun_cycles
from tests.test_spine_faults import snapshot

pytestmark = pytest.mark.slow


def _cycle(wh, tmp_path, name, args, views, checks, *, kills, max_delay, reference=None):
    """Run uninterrupted once (the reference), then kill/rerun cycles with a reader."""
    cat = wh.catalog
    if reference is None:
        out = subprocess.run([*SSL_WC, "-w", str(wh.root), *args], cwd=ROOT, env=cli_env(),
                             capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
        reference = snapshot(cat, views)
    mismatches = []

    def between() -> None:
        if snapshot(cat, views) != reference:
            mismatches.append("state after a kill differs from the committed state")

    reader = Reader(cat, checks, tmp_path / f"reader-{name}.json", seconds=900)
    tally = Tally(name)
    try:
        tally = kill_rerun_cycles(name, args, wh.root, kills=kills, max_delay=max_delay,
                                  seed=len(name), fault_sleep="0.1", between=between)
    finally:
        time.sleep(0.2)
        reader.finish(tally)
    print(tally.line())
    tally.record()
    assert mismatches == []
    assert tally.errors == [], tally.errors[:5]
    assert tally.partial == [], tally.partial[:5]
    assert tally.queries > 0
    assert snapshot(cat, views) == reference
    chk = subprocess.run([*SSL_WC, "-w", str(wh.root), "check"], cwd=ROOT, env=cli_env(),
                         capture_output=True, text=True)
    assert chk.returncode == 5 or chk.returncode == 0  # killed runs may leave strays
    gc = subprocess.run([*SSL_WC, "-w", str(wh.root), "gc"], cwd=ROOT, env=cli_env(),
                        capture_output=True, text=True)
    assert gc.returncode == 0
    chk = subprocess.run([*SSL_WC, "-w", str(wh.root), "check"], cwd=ROOT, env=cli_env(),
                         capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout
    assert snapshot(cat, views) == reference
    return tally


def _count(wh, view, where="true"):
    return query_catalog(wh, f"SELECT count(*) FROM {view} WHERE {where}")[0][0]


def test_kill_attention(scored_wh, tiny_models, tmp_path):
    _, toml = tiny_models
    n = _count(scored_wh, "attention_maps", "model = 'dinov2-random'")
    args = ["ingest", "attention", "--models", "dinov2-random", "--methods",
            "cls,rollout,mean", "--model-config", str(toml), "--device", "cpu", "--force",
            "--batch-size", "8"]
    checks = [["maps", "SELECT count(*) FROM attention_maps WHERE model = 'dinov2-random'",
               [n]],
              ["one run per unit", "SELECT max(c) FROM (SELECT count(DISTINCT run_id) c FROM "
               "attention_maps GROUP BY model, method, layer, head, image_id)", [1]]]
    views = ["attention_maps", "features"]
    ref = snapshot(scored_wh.catalog, views)
    _cycle(scored_wh, tmp_path, "attention", args, views, checks, kills=5, max_delay=12.0,
           reference=ref)


def test_kill_metrics(scored_wh, tmp_path):
    n_img = _count(scored_wh, "image_metrics")
    n_box = _count(scored_wh, "box_metrics")
    n_sum = _count(scored_wh, "layer_progression")
    checks = [["image metrics", "SELECT count(*) FROM image_metrics", [n_img]],
              ["box metrics", "SELECT count(*) FROM box_metrics", [n_box]],
              ["summaries", "SELECT count(*) FROM layer_progression", [n_sum]]]
    views = ["image_metrics", "box_metrics", "layer_progression"]
    ref = snapshot(scored_wh.catalog, views)
    _cycle(scored_wh, tmp_path, "metrics", ["metrics", "--force", "--random-trials", "10"],
           views, checks, kills=5, max_delay=25.0, reference=ref)


def test_kill_stats(scored_wh, tmp_path):
    n = _count(scored_wh, "model_comparisons")
    n_probe = _count(scored_wh, "probe_results")
    checks = [["comparisons", "SELECT count(*) FROM model_comparisons", [n]],
              ["probes", "SELECT count(*) FROM probe_results", [n_probe]]]
    views = ["model_comparisons", "probe_results"]
    ref = snapshot(scored_wh.catalog, views)
    _cycle(scored_wh, tmp_path, "stats", ["stats", "--force", "--resamples", "1000"], views,
           checks, kills=5, max_delay=8.0, reference=ref)


def test_kill_finetune(annotated_wh, tiny_models, tmp_path):
    """Fine-tuning killed at random points: runs, epochs and splits stay whole."""
    _, toml = tiny_models
    args = ["finetune", "--model", "siglip-random", "--strategy", "lora", "--epochs", "2",
            "--model-config", str(toml), "--device", "cpu", "--no-ingest", "--force"]
    checks = [["epochs per run",
               "SELECT coalesce(max(c), 2) FROM (SELECT count(*) c FROM finetune_epochs "
               "GROUP BY finetune_id)", [2]],
              ["one model row per run", "SELECT count(*) - count(DISTINCT finetune_id) FROM "
               "finetune_runs", [0]]]
    views = ["finetune_epochs", "finetune_splits"]
    out = subprocess.run([*SSL_WC, "-w", str(annotated_wh.root), *args], cwd=ROOT,
                         env=cli_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    _cycle(annotated_wh, tmp_path, "finetune", args, views, checks, kills=4, max_delay=9.0,
           reference=snapshot(annotated_wh.catalog, views))
