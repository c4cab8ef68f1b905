"""``ingest attention --engine ray`` on a local Ray instance (one per module, 2 CPUs):
the same visible rows as the local engine, reruns across engines, kills of a worker and
of the driver. Skipped when the ``ray`` extra is not installed."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psutil
import pytest

from ingest.attention import AttentionJob, ingest_attention
from ssl_wc.options import BadOption
from tests.conftest import ROOT, SSL_WC, cli_env, query_catalog

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

#: tables the attention job writes, compared row for row (run ids aside)
TABLES = ("attention_maps", "features", "map_frames", "patch_tokens", "box_similarity")
KEYS = "model, variant, method, layer, head, image_id"


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray instance for the module; its address lets CLI drivers join it."""
    t0 = time.monotonic()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    print(f"\nRay start-up: {time.monotonic() - t0:.1f}s")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _job(specs, **kw):
    base = {"models": list(specs), "specs": specs, "progress": False, "device": "cpu",
            "methods": ("cls", "rollout", "mean", "map"), "batch_size": 3}
    return AttentionJob(**{**base, **kw})


def _rows(wh, table):
    """Every live row of a lake table with its unit key, without the run id, sorted."""
    cols = [c[0] for c in query_catalog(wh, f"DESCRIBE _raw_{table}") if c[0] != "run_id"]
    sel = ", ".join(f'"{c}"' for c in cols)
    return sorted(query_catalog(wh, f"SELECT {sel} FROM _raw_{table}"), key=repr)


def _sources(wh):
    return sorted(query_catalog(wh, "SELECT * EXCLUDE (run_id, unit_key) FROM _raw_map_sources"),
                  key=repr)


def _dupes(wh):
    sql = f"SELECT count(*) - count(DISTINCT ({KEYS})) FROM attention_maps"
    return query_catalog(wh, sql)[0][0]


def _copy(template, dst):
    import shutil

    from ssl_wc.paths import WarehousePaths

    shutil.copytree(template, dst)
    return WarehousePaths.of(dst)


def test_ray_rows_equal_local_rows_and_engines_mix(ray_address, annotated_wh_template,
                                                    tiny_models, tmp_path):
    specs, _ = tiny_models
    local = _copy(annotated_wh_template, tmp_path / "local")
    on_ray = _copy(annotated_wh_template, tmp_path / "ray")
    res = ingest_attention(local, _job(specs))
    assert [r.status for r in res] == ["committed", "committed"]
    res = ingest_attention(on_ray, _job(specs, engine="ray", workers=2))
    assert [r.status for r in res] == ["committed", "committed"], [r.line() for r in res]
    for table in TABLES:
        a, b = _rows(local, table), _rows(on_ray, table)
        assert len(a) > 0 and a == b, table  # values and unit keys, byte for byte
    assert _sources(local) == _sources(on_ray)
    engines = query_catalog(on_ray, "SELECT DISTINCT summary_json->>'engine', "
                                    "summary_json->>'workers' FROM runs WHERE kind = "
                                    "'attention'")
    assert engines == [("ray", "2")]
    # unit hashes do not depend on the engine: each engine skips what the other committed
    assert [r.status for r in ingest_attention(local, _job(specs, engine="ray"))] == \
        ["skipped", "skipped"]
    assert [r.status for r in ingest_attention(on_ray, _job(specs))] == ["skipped", "skipped"]
    # --force supersedes across engines; never a duplicate
    n = _rows(local, "attention_maps")
    two = ["Q99100000_wd0.jpg", "Q99100001_wd0.jpg"]
    res = ingest_attention(local, _job(specs, engine="ray", models=["dinov2-random"],
                                       images=two, force=True))
    assert res[0].status == "committed" and res[0].new == 2
    assert _rows(local, "attention_maps") == n
    assert _dupes(local) == 0
    assert query_catalog(local, "SELECT count(DISTINCT run_id) FROM attention_maps WHERE "
                                f"image_id IN ('{two[0]}', '{two[1]}') AND model = "
                                "'dinov2-random'") == [(1,)]


def test_options_the_cluster_cannot_host_are_refused(ray_address, annotated_wh, tiny_models):
    specs, _ = tiny_models
    with pytest.raises(BadOption, match=r"gpus-per-worker 1.*the Ray cluster has 0"):
        ingest_attention(annotated_wh, _job(specs, engine="ray", gpus_per_worker=1.0))
    with pytest.raises(BadOption, match=r"--workers 3: the Ray cluster has 2 CPUs"):
        ingest_attention(annotated_wh, _job(specs, engine="ray", workers=3))
    assert query_catalog(annotated_wh, "SELECT count(*) FROM runs WHERE kind = 'attention'") \
        == [(0,)]


def _cli(wh, toml, address, *extra, env=None, **kw):
    args = [*SSL_WC, "-w", str(wh.root), "ingest", "attention", "--models", "dinov2-random",
            "--methods", "cls,mean", "--model-config", str(toml), "--device", "cpu",
            "--engine", "ray", "--address", address, "--batch-size", "2", "--workers", "2",
            "--patch-tokens", "none", *extra]
    return subprocess.Popen(args, cwd=ROOT, env=cli_env(**(env or {})), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _workers():
    """This test session's Ray Data actors computing batches."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "PoolWorker" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.Error:
            pass
    return out


def _each_unit_once_or_failed(wh, images):
    """Every image: its maps committed by exactly one run, or the image recorded as failed."""
    failed = {r[0] for r in query_catalog(wh, "SELECT item FROM ingest_errors")}
    done = dict(query_catalog(wh, "SELECT image_id, count(DISTINCT run_id) FROM attention_maps "
                                  "WHERE model = 'dinov2-random' GROUP BY image_id"))
    assert _dupes(wh) == 0
    for image_id in images:
        assert (done.get(image_id) == 1) != (image_id in failed), image_id
    return done, failed


def test_kill_one_worker_mid_run(ray_address, annotated_wh, tiny_models):
    _, toml = tiny_models
    images = [r[0] for r in query_catalog(annotated_wh, "SELECT image_id FROM images WHERE "
                                                        "has_file")]
    proc = _cli(annotated_wh, toml, ray_address, env={"SSL_WC_FAULT_SLEEP": "0.3@batch"})
    killed = None
    deadline = time.monotonic() + 180
    lake = annotated_wh.lake / "attention_maps"
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        started = lake.exists() and any(p.name.endswith(".tmp") for p in lake.rglob("*"))
        workers = _workers()
        if started and workers:  # batches are being written: kill a worker mid-batch
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    _, err = proc.communicate(timeout=300)
    assert killed is not None, err[-2000:]
    assert proc.returncode in (0, 3), err[-3000:]
    done, failed = _each_unit_once_or_failed(annotated_wh, images)
    assert len(done) > 0
    print(f"worker {killed} killed: exit {proc.returncode}, {len(done)} images committed, "
          f"{len(failed)} recorded as failed")
    summary = query_catalog(annotated_wh, "SELECT summary_json->>'engine', status FROM runs "
                                          "WHERE kind = 'attention'")
    assert summary[-1][0] == "ray"


def test_kill_driver_leaves_nothing_and_a_rerun_completes(ray_address, annotated_wh,
                                                          tiny_models):
    _, toml = tiny_models
    images = [r[0] for r in query_catalog(annotated_wh, "SELECT image_id FROM images WHERE "
                                                        "has_file")]
    proc = _cli(annotated_wh, toml, ray_address, env={"SSL_WC_KILL_AT": "write:6"})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL
    assert query_catalog(annotated_wh, "SELECT count(*) FROM attention_maps") == [(0,)]
    strays = [p for p in annotated_wh.lake.rglob("*") if p.name.endswith(".tmp")]
    assert strays  # the killed driver's open parts: invisible, and garbage to gc
    gc = subprocess.run([*SSL_WC, "-w", str(annotated_wh.root), "gc"], cwd=ROOT,
                        env=cli_env(), capture_output=True, text=True)
    assert gc.returncode == 0, gc.stderr
    assert not [p for p in annotated_wh.lake.rglob("*") if p.name.endswith(".tmp")]
    rerun = _cli(annotated_wh, toml, ray_address)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err[-3000:]
    done, failed = _each_unit_once_or_failed(annotated_wh, images)
    assert set(done) == set(images) and not failed
    chk = subprocess.run([*SSL_WC, "-w", str(annotated_wh.root), "check"], cwd=ROOT,
                         env=cli_env(), capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout
