"""`ssl-wc run`: strict TOML config, dry run, the lock, partial runs and exit codes."""

from __future__ import annotations

import shutil
import subprocess
import textwrap

import pytest

from ssl_wc.lake.locks import FileLock
from ssl_wc.pipeline import ConfigError, load_config, validate
from tests.conftest import ROOT, SSL_WC, cli_env


def test_defaults_fill_in():
    cfg = validate({})
    assert cfg.get("attention", "batch_size") == 8
    assert cfg.get("pipeline", "steps") == ["annotations", "images", "attention", "metrics",
                                            "faithfulness", "stats"]
    assert cfg.get("faithfulness", "steps") == 16
    assert cfg.get("faithfulness", "imputation") == "road"


@pytest.mark.parametrize("raw, needle", [
    ({"attention": {"batch_sise": 8}}, "unknown key attention.batch_sise"),
    ({"atention": {}}, "unknown section [atention]"),
    ({"attention": {"batch_size": "8"}}, "attention.batch_size must be integer"),
    ({"attention": {"batch_size": True}}, "attention.batch_size must be integer"),
    ({"attention": {"models": "dinov2"}}, "attention.models must be array"),
    ({"attention": {"layers": [1, "2"]}}, "attention.layers[1] must be integer"),
    ({"attention": {"layers": "some"}}, "attention.layers must be \"all\""),
    ({"metrics": {"enabled": 1}}, "metrics.enabled must be boolean"),
    ({"pipeline": {"steps": ["annotations", "plots"]}}, "unknown step"),
    ({"faithfulness": {"imputation": "inpaint"}}, "faithfulness.imputation must be one of"),
    ({"faithfulness": {"checks": ["deletion", "lime"]}}, "faithfulness.checks has unknown"),
    ({"faithfulness": {"steps": 1}}, "faithfulness.steps must be >= 2"),
    ({"faithfulness": {"layers": "last"}}, "faithfulness.layers must be \"all\""),
])
def test_strict_validation_names_the_key(raw, needle):
    with pytest.raises(ConfigError) as err:
        validate(raw, "p.toml")
    assert needle in str(err.value)
    assert str(err.value).startswith("p.toml:")


def test_relative_paths_resolve_against_the_config(tmp_path):
    (tmp_path / "p.toml").write_text('[annotations]\npath = "data/bp.json"\n')
    cfg = load_config(tmp_path / "p.toml")
    assert cfg.get("annotations", "path") == str(tmp_path / "data/bp.json")


@pytest.fixture(scope="module")
def broken_model(tmp_path_factory, tiny_models) -> str:
    """A user model file whose one entry passes every check but cannot load (its
    weights are gone): a model that fails at run time."""
    specs, _ = tiny_models
    root = tmp_path_factory.mktemp("broken_model")
    folder = root / "weights_gone"
    shutil.copytree(specs["siglip-random"].local_dir, folder)
    for f in folder.glob("*.safetensors"):
        f.unlink()
    toml = root / "models.toml"
    toml.write_text(f'[models.broken]\nsource = "{folder}"\ninput_size = [32, 32]\n')
    return str(toml)


def _write_config(tmp_path, demo, models: str = '["nonexistent-model"]',
                  model_config: str | None = None) -> str:
    p = tmp_path / "pipeline.toml"
    extra = f'model_config = "{model_config}"' if model_config else ""
    p.write_text(textwrap.dedent(f"""
        [annotations]
        path = "{demo.building_parts}"
        style_names = "{demo.style_names}"
        churches = "{demo.churches}"
        [images]
        folder = "{demo.images}"
        [attention]
        models = {models}
        {extra}
        [metrics]
        baselines = false
        [stats]
        probe = false
    """))
    return str(p)


def _run(wh, *args):
    return subprocess.run([*SSL_WC, "-w", str(wh), "run", *args], cwd=ROOT, env=cli_env(),
                          capture_output=True, text=True, timeout=300)


def test_dry_run_touches_nothing(tmp_path, demo_data):
    wh = tmp_path / "wh"
    out = _run(wh, "--config", _write_config(tmp_path, demo_data), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "annotations" in out.stdout and "nonexistent-model" in out.stdout
    assert not wh.exists()


def test_bad_config_exits_2(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[attention]\nbatch_size = 'eight'\n")
    out = _run(tmp_path / "wh", "--config", str(p))
    assert out.returncode == 2
    assert "attention.batch_size" in out.stderr


def test_unknown_model_is_a_bad_config(tmp_path, demo_data):
    """Refused before the lock or any step: exit 2 naming the key, nothing written."""
    wh = tmp_path / "wh"
    out = _run(wh, "--config", _write_config(tmp_path, demo_data))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "attention.models nonexistent-model: unknown model key; valid:" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not wh.exists()


def test_lock_held_exits_4(tmp_path, demo_data, broken_model):
    wh = tmp_path / "wh"
    (wh / ".locks").mkdir(parents=True)
    with FileLock(wh / ".locks" / "pipeline.lock", label="test holder"):
        out = _run(wh, "--config", _write_config(tmp_path, demo_data, '["broken"]',
                                                 broken_model))
    assert out.returncode == 4
    assert "another" in out.stderr


def test_failing_model_gives_partial_run_and_error_view(tmp_path, demo_data, broken_model):
    wh = tmp_path / "wh"
    config = _write_config(tmp_path, demo_data, '["broken"]', broken_model)
    out = _run(wh, "--config", config)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "pipeline: partial" in out.stdout
    import ssl_wc

    errs = ssl_wc.query("SELECT step, item, error FROM ingest_errors", warehouse=str(wh))
    assert errs.height == 1 and errs["item"][0] == "broken"
    # --strict: the first failure is fatal
    strict = _run(wh, "--config", config, "--strict")
    assert strict.returncode == 1
