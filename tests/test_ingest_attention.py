"""The attention job: incremental units, force, shards, failures, rows in the views."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess

import numpy as np
import pytest

from ingest.attention import AttentionJob, in_shard, ingest_attention, parse_shard
from ssl_wc.options import BadOption
from tests.conftest import ROOT, SSL_WC, cli_env, query_catalog

_q = query_catalog


def _job(specs, **kw):
    base = {"models": list(specs), "specs": specs, "progress": False, "device": "cpu",
            "methods": ("cls", "rollout", "mean", "map")}
    return AttentionJob(**{**base, **kw})


def test_maps_have_the_documented_shape(scored_wh, tiny_models):
    _specs, _ = tiny_models
    rows = _q(scored_wh, "SELECT model, method, count(DISTINCT layer), min(layer), max(layer), "
                         "min(head), max(head), any_value(grid_h), any_value(grid_w), "
                         "count(*) FROM attention_maps GROUP BY ALL ORDER BY ALL")
    by = {(r[0], r[1]): r[2:] for r in rows}
    # dinov2-random: 12 blocks, 0-based; 2 heads + mean fusion; no 'map' (CLS model)
    assert by[("dinov2-random", "cls")][:5] == (12, 0, 11, -1, 1)
    assert ("dinov2-random", "map") not in by
    assert by[("dinov2-random", "rollout")][3:5] == (-1, -1)  # rollout: fused rows only
    # siglip-random: MAP head, no CLS; the probe map is stored at the last block
    assert ("siglip-random", "cls") not in by
    assert by[("siglip-random", "map")][:3] == (1, 1, 1)
    assert by[("siglip-random", "cls" if False else "mean")][5:7] == (4, 4)
    # layers sort numerically (SMALLINT, never text)
    layers = [r[0] for r in _q(scored_wh, "SELECT DISTINCT layer FROM attention_maps WHERE "
                                          "model = 'dinov2-random' ORDER BY layer")]
    assert layers == list(range(12))


def test_row_sums(scored_wh):
    cls = _q(scored_wh, "SELECT list_sum(\"values\") FROM attention_maps WHERE method = 'cls' "
                        "AND head >= 0")
    assert all(0 < s[0] <= 1 + 1e-5 for s in cls)  # CLS/registers took the rest
    probe = _q(scored_wh, "SELECT list_sum(\"values\") FROM attention_maps WHERE method = 'map' "
                          "AND head >= 0")
    assert np.allclose([s[0] for s in probe], 1.0, atol=1e-5)


def test_rerun_skips_and_force_supersedes(scored_wh, tiny_models):
    specs, _ = tiny_models
    before = _q(scored_wh, "SELECT count(*) FROM attention_maps")[0][0]
    res = ingest_attention(scored_wh, _job(specs))
    assert [r.status for r in res] == ["skipped", "skipped"]
    one = "Q99100000_wd0.jpg"
    res = ingest_attention(scored_wh, _job(specs, images=[one], force=True,
                                           models=["dinov2-random"]))
    assert res[0].status == "committed" and res[0].new == 1
    assert _q(scored_wh, "SELECT count(*) FROM attention_maps")[0][0] == before
    assert _q(scored_wh, "SELECT count(*) - count(DISTINCT (model, variant, method, layer, head,"
                         " image_id)) FROM attention_maps") == [(0,)]
    runs = _q(scored_wh, f"SELECT count(DISTINCT run_id) FROM attention_maps WHERE image_id = "
                         f"'{one}' AND model = 'dinov2-random'")
    assert runs == [(1,)]


def test_a_new_method_only_computes_that_method(scored_wh, tiny_models):
    specs, _ = tiny_models
    res = ingest_attention(scored_wh, _job(specs, models=["dinov2-random"],
                                           methods=("cls", "gradcam")))
    assert res[0].status == "committed"
    assert _q(scored_wh, "SELECT count(*) FROM attention_maps WHERE method = 'gradcam'")[0][0] \
        == 32 * 12


def test_shards_partition_the_images():
    ids = [f"Q{i}_wd0.jpg" for i in range(200)]
    parts = [{i for i in ids if in_shard(i, parse_shard(f"{k}/3"))} for k in (1, 2, 3)]
    assert set.union(*parts) == set(ids)
    assert sum(len(p) for p in parts) == len(ids)
    assert all(len(p) > 40 for p in parts)


def test_sharded_runs_fill_the_same_lake(annotated_wh, tiny_models):
    specs, _ = tiny_models
    for k in (1, 2):
        res = ingest_attention(annotated_wh, _job(specs, models=["siglip-random"],
                                                  shard=f"{k}/2", methods=("map",),
                                                  features=False))
        assert res[0].status == "committed"
    assert _q(annotated_wh, "SELECT count(DISTINCT image_id) FROM attention_maps") == [(32,)]
    assert _q(annotated_wh, "SELECT count(DISTINCT run_id) FROM attention_maps") == [(2,)]


def test_unknown_model_is_refused_before_anything_runs(annotated_wh, tiny_models):
    specs, _ = tiny_models
    runs_before = sorted(annotated_wh.runs.glob("*.json"))
    with pytest.raises(BadOption, match=r"--models nope: unknown model key; valid: .*"
                                        r"siglip-random"):
        ingest_attention(annotated_wh, _job(specs, models=["siglip-random", "nope"],
                                            methods=("map",), features=False))
    assert sorted(annotated_wh.runs.glob("*.json")) == runs_before  # not even a failed run


def test_a_model_that_cannot_load_fails_alone(annotated_wh, tiny_models, tmp_path):
    """A model that passes every check but cannot load (weights gone) is a failed run
    with its error; the other model commits."""
    specs, _ = tiny_models
    broken_dir = tmp_path / "no_weights"
    shutil.copytree(specs["dinov2-random"].local_dir, broken_dir)
    for f in broken_dir.glob("*.safetensors"):
        f.unlink()
    broken = dataclasses.replace(specs["dinov2-random"], key="broken", local_dir=str(broken_dir))
    res = ingest_attention(annotated_wh, _job({"broken": broken, **specs},
                                              models=["broken", "siglip-random"],
                                              methods=("map", "cls"), features=False))
    assert [r.status for r in res] == ["failed", "committed"]
    errs = _q(annotated_wh, "SELECT item, error FROM ingest_errors")
    assert errs and errs[0][0] == "broken"


def test_layers_and_heads_outside_the_model_are_refused(annotated_wh, tiny_models):
    """No wrapping: layer 12 of a 12-block model or head -1 never becomes another one."""
    specs, _ = tiny_models
    for kw, match in [({"layers": [12]}, r"--layers 12: out of range for dinov2-random "
                                         r"\(12 blocks\); valid: 0\.\.11"),
                      ({"layers": [-1]}, r"--layers -1: out of range"),
                      ({"heads": [2]}, r"--heads 2: out of range .*valid: 0\.\.1"),
                      ({"batch_size": 0}, r"--batch-size 0: must be at least 1"),
                      ({"images": ["nope.jpg"]}, r"--images nope.jpg: not an annotated image")]:
        with pytest.raises(BadOption, match=match):
            ingest_attention(annotated_wh, _job(specs, models=["dinov2-random"], **kw))
    assert not list(annotated_wh.runs.glob("*attention*"))


def test_cli_with_a_user_model_file(annotated_wh, tiny_models):
    _, toml = tiny_models
    out = subprocess.run([*SSL_WC, "-w", str(annotated_wh.root), "ingest", "attention",
                          "--models", "siglip-random", "--methods", "map,mean", "--layers",
                          "1", "--heads", "none", "--model-config", str(toml), "--device",
                          "cpu", "--images", "Q99100000_wd0.jpg,Q99100001_wd0.jpg"],
                         cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = _q(annotated_wh, "SELECT method, layer, head, count(*) FROM attention_maps "
                            "GROUP BY ALL ORDER BY ALL")
    assert rows == [("map", 1, -1, 2), ("mean", 1, -1, 2)]
