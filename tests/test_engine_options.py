"""``--engine`` and its options are checked before anything runs (exit 2, one line), and
nothing imports Ray unless ``--engine ray`` is asked for (no Ray needed here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ingest.attention import AttentionJob, check_options
from ingest.ray_engine import plan_resources
from ssl_wc.options import BadOption
from tests.conftest import ROOT, SSL_WC, cli_env


@pytest.mark.parametrize(("kw", "line"), [
    ({"engine": "spark"}, "--engine spark: unknown engine; valid: local, ray"),
    ({"engine": "ray", "workers": 0}, "--workers 0: must be at least 1"),
    ({"workers": 2}, "--workers 2: only with --engine ray; valid: local, ray"),
    ({"address": "auto"}, "--address auto: only with --engine ray; valid: local, ray"),
    ({"engine": "ray", "address": "not an address"},
     "--address 'not an address': not a Ray address; valid: auto, local, HOST:PORT, "
     "ray://HOST:PORT"),
    ({"engine": "ray", "gpus_per_worker": -1.0}, "--gpus-per-worker -1.0: must lie in 0..64"),
])
def test_engine_options_are_checked(kw, line):
    with pytest.raises(BadOption) as err:
        check_options(AttentionJob(models=["dinov2"], **kw))
    assert str(err.value).startswith(line)


def test_addresses_that_are_accepted():
    for address in ("auto", "local", "10.0.0.5:6379", "ray://head.example.org:10001"):
        check_options(AttentionJob(models=["dinov2"], engine="ray", address=address))


def test_actor_resources_fit_the_cluster():
    two_cpu = [{"Alive": True, "Resources": {"CPU": 2.0}}]
    assert plan_resources(two_cpu, 1, None).cpus == 2  # one actor uses every core
    assert plan_resources(two_cpu, 2, None).cpus == 1
    gpus = [{"Alive": True, "Resources": {"CPU": 16.0, "GPU": 4.0}},
            {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 4.0}},
            {"Alive": False, "Resources": {"CPU": 16.0, "GPU": 4.0}}]
    plan = plan_resources(gpus, 8, None)
    assert (plan.gpus, plan.cpus) == (1.0, 1.0)  # GPUs by default where the cluster has any
    assert plan_resources(gpus, 16, 0.5).gpus == 0.5
    with pytest.raises(BadOption, match="9 worker"):
        plan_resources(gpus, 9, None)
    with pytest.raises(BadOption, match="--workers 3"):
        plan_resources(two_cpu, 3, 0)


def test_cli_refuses_a_bad_engine_before_anything_runs(tmp_path):
    out = subprocess.run([*SSL_WC, "-w", str(tmp_path / "wh"), "ingest", "attention",
                          "--models", "dinov2", "--engine", "ray", "--workers", "0"],
                         cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["error: --workers 0: must be at least 1"]
    assert not (tmp_path / "wh").exists()


def test_nothing_imports_ray_without_engine_ray():
    code = ("import sys, ssl_wc.cli, ssl_wc.pipeline, ingest.attention, ingest.ray_engine, "
            "dashboards.data; sys.exit('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli_env(),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_pipeline_config_takes_the_engine(tmp_path):
    from ssl_wc.paths import WarehousePaths
    from ssl_wc.pipeline import ConfigError, attention_job, check_config, plan, validate

    wh = WarehousePaths.of(tmp_path / "wh")
    cfg = validate({"pipeline": {"steps": ["attention"]},
                    "attention": {"engine": "ray", "workers": 2, "gpus_per_worker": 1,
                                  "address": "auto"}}, "p.toml")
    job = attention_job(cfg)
    assert (job.engine, job.workers, job.gpus_per_worker, job.address) == ("ray", 2, 1.0,
                                                                           "auto")
    assert "engine ray x2" in plan(cfg)[0][1]
    bad = validate({"pipeline": {"steps": ["attention"]}, "attention": {"engine": "dask"}},
                   "p.toml")
    with pytest.raises(ConfigError, match=r"p.toml: attention.engine dask: unknown engine"):
        check_config(wh, bad, models=False)
