"""Revisions: the commit every load resolves to is recorded; a pinned or moved revision is
a new configuration (recomputed, not skipped); `ssl-wc models list` shows revisions.

A real Hugging Face cache layout is built under a temporary HF_HUB_CACHE (two commits of
a tiny model, ``refs/main`` pointing at one), and the CLI runs offline against it: the
same loading code as for real checkpoints.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ssl_wc.models.registry import build_random_model, get_spec
from ssl_wc.models.revisions import folder_fingerprint, is_commit_hash, resolve_revision
from tests.conftest import ROOT, SSL_WC, cli_env, query_catalog

REPO = "ssl-wc-test/tiny-dinov2"
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40
IMAGE = "Q99100000_wd0.jpg"


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HF cache with two snapshots of a tiny DINOv2 (different seeds); main -> A."""
    cache = tmp_path_factory.mktemp("hf") / "hub"
    repo = cache / f"models--{REPO.replace('/', '--')}"
    for commit, seed in ((COMMIT_A, 0), (COMMIT_B, 1)):
        spec = build_random_model("dinov2", tmp_path_factory.mktemp("src") / commit[:4],
                                  seed=seed, grid=4, hidden_size=16, num_heads=2)
        assert spec.local_dir is not None
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        for f in ("config.json", "model.safetensors"):
            shutil.copy2(Path(spec.local_dir) / f, snap / f)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_A)
    return cache


def _cli(wh_root: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    return subprocess.run([*SSL_WC, "-w", str(wh_root), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _ingest(wh_root: Path, cache: Path, toml: Path) -> subprocess.CompletedProcess[str]:
    return _cli(wh_root, cache, "ingest", "attention", "--models", "tiny", "--methods", "cls",
                "--layers", "1", "--heads", "none", "--images", IMAGE, "--device", "cpu",
                "--patch-tokens", "none", "--no-features", "--model-config", str(toml))


def _source_rows(wh) -> list[tuple]:  # type: ignore[no-untyped-def]
    return query_catalog(wh, "SELECT m.revision, m.commit_hash, r.started_at FROM map_sources m "
                             "JOIN runs r USING (run_id) WHERE m.model = 'tiny' "
                             "ORDER BY r.started_at")


def test_revision_is_resolved_recorded_and_pinnable(annotated_wh, hub_cache: Path,
                                                   tmp_path: Path) -> None:
    toml = tmp_path / "models.toml"
    toml.write_text(f'[models.tiny]\nsource = "{REPO}"\ninput_size = [56, 56]\n\n'
                    f'[models.dinov2]\nrevision = "{COMMIT_B}"\n')
    first = _ingest(annotated_wh.root, hub_cache, toml)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "committed" in first.stdout
    assert [r[:2] for r in _source_rows(annotated_wh)] == [("", COMMIT_A)]
    summary = query_catalog(annotated_wh, "SELECT summary_json FROM runs WHERE kind = "
                                          "'attention' AND status = 'committed'")
    s = json.loads(summary[0][0])
    assert s["commit_hash"] == s["loaded_commit"] == COMMIT_A and s["resolved_by"] == "cache"

    again = _ingest(annotated_wh.root, hub_cache, toml)
    assert again.returncode == 0 and "skipped" in again.stdout  # same commit: nothing to do

    main = hub_cache / f"models--{REPO.replace('/', '--')}" / "refs" / "main"
    main.write_text(COMMIT_B)  # 'main' moved on the hub
    moved = _ingest(annotated_wh.root, hub_cache, toml)
    assert moved.returncode == 0 and "committed" in moved.stdout, moved.stdout
    assert [r[:2] for r in _source_rows(annotated_wh)][-1] == ("", COMMIT_B)

    toml.write_text(toml.read_text().replace('input_size = [56, 56]\n',
                                             f'input_size = [56, 56]\nrevision = "{COMMIT_A}"\n'))
    pinned = _ingest(annotated_wh.root, hub_cache, toml)
    assert pinned.returncode == 0 and "committed" in pinned.stdout, pinned.stdout
    assert [r[:2] for r in _source_rows(annotated_wh)][-1] == (COMMIT_A, COMMIT_A)
    live = query_catalog(annotated_wh, "SELECT DISTINCT config_hash FROM attention_maps "
                                       "WHERE model = 'tiny'")
    assert len(live) == 1  # the pinned run superseded the others

    listed = _cli(annotated_wh.root, hub_cache, "models", "list", "--model-config", str(toml),
                  "--format", "json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    rows = {r["key"]: r for r in json.loads(listed.stdout)}
    assert (rows["tiny"]["revision"], rows["tiny"]["revision_from"]) == (COMMIT_A, "pinned")
    assert (rows["dinov2"]["revision"], rows["dinov2"]["revision_from"]) == (COMMIT_B, "pinned")
    assert rows["resnet50"]["kind"] == "cnn" and rows["siglip2_naflex"]["grid"] == \
        "<= 256 patches"
    toml.write_text(toml.read_text().replace(f'revision = "{COMMIT_A}"\n', "", 1))
    floating = _cli(annotated_wh.root, hub_cache, "models", "list", "--model-config",
                    str(toml), "--format", "json")
    rows = {r["key"]: r for r in json.loads(floating.stdout)}
    # not pinned: the commit the newest run resolved
    assert (rows["tiny"]["revision"], rows["tiny"]["revision_from"]) == (COMMIT_A, "resolved")
    assert rows["mae"]["revision"] == "" and rows["mae"]["interpolation"] == "bilinear"


def test_resolve_revision_of_folders_and_pins(tmp_path: Path) -> None:
    spec = build_random_model("mae", tmp_path / "m", seed=0)
    got = resolve_revision(spec)
    assert got.how == "folder" and got.commit == folder_fingerprint(tmp_path / "m")
    assert got.commit is not None and got.commit.startswith("sha256:")
    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "m", moved)
    assert folder_fingerprint(moved) == got.commit  # identity survives a move
    build_random_model("mae", tmp_path / "m", seed=1)
    assert resolve_revision(spec).commit != got.commit  # other weights, other identity
    import dataclasses

    pinned = dataclasses.replace(get_spec("dinov2"), revision=COMMIT_A)
    assert resolve_revision(pinned).commit == COMMIT_A and is_commit_hash(COMMIT_A)
    assert not is_commit_hash("main")


def test_unresolvable_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = dataclasses.replace(get_spec("dinov2"), hub_id="ssl-wc-test/not-cached")
    got = resolve_revision(spec)
    assert got.commit is None and got.how == "unresolved"
