"""Bad inputs through the real command line: crafted files and option values (103 of
them), each refused with the documented exit code and one line naming the option, file
or element (and the valid values), never a traceback, and the warehouse left as it was.

Every case runs ``ssl-wc`` in its own subprocess. Refusals (exit 2) run side by side
against one shared warehouse per group and must leave it byte-identical: the same
manifests, the same run records (not even a failed run), the same lake files with the
same checksums (so every earlier row is identical), ``check_lake`` clean and ``ssl-wc
check`` exit 0. Partial runs (exit 3) then run one by one: they may add a run, but every
earlier file stays intact, the failed item is named on the terminal and in
``ingest_errors``, and the lake checks clean.

The tiny random-weight models of ``conftest.tiny_models`` stand in for real
checkpoints, loaded through a user model file exactly like real weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SSL_WC, cli_env, query_catalog

EXIT = {"ok": 0, "failed": 1, "usage": 2, "partial": 3}


@dataclass(frozen=True)
class Case:
    """One bad input: the arguments after ``ssl-wc -w WH``, the exit it must give and
    the words (option, file or element) the message must name."""

    id: str
    args: tuple[str, ...]
    names: tuple[str, ...]
    code: int = 2
    valid: str | None = None  # a valid value the message must list
    errors_item: str | None = None  # partial runs: the item named in ingest_errors


# ------------------------------------------------------------------------ fixtures
def _snapshot(wh: Path) -> dict[str, object]:
    """Everything a command could change in the warehouse's committed state."""
    lake = {p.relative_to(wh).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((wh / "lake").rglob("*")) if p.is_file()}
    manifests = {p.name: p.read_bytes() for p in sorted((wh / "manifests").glob("*.json"))}
    runs = sorted(p.name for p in (wh / "runs").glob("*.json"))
    return {"lake": lake, "manifests": manifests, "runs": runs}


def _run(wh: Path, args: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = cli_env(HF_HUB_OFFLINE="1", COLUMNS="200")
    return subprocess.run([*SSL_WC, "-w", str(wh), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _check_lake_clean(wh: Path) -> None:
    from ssl_wc.lake.integrity import check_lake
    from ssl_wc.paths import WarehousePaths

    problems = check_lake(WarehousePaths.of(wh))
    assert not problems, [p.line() for p in problems]


def _assert_message(case: Case, res: subprocess.CompletedProcess[str]) -> None:
    out = res.stdout + res.stderr
    assert "Traceback" not in out, out
    assert res.returncode == case.code, f"{case.id}: exit {res.returncode}\n{out}"
    if case.code == EXIT["usage"]:
        lines = res.stderr.rstrip("\n").splitlines()
        assert lines and lines[0].startswith("error: "), res.stderr
        # one line; only a file refused for several problems lists them, indented
        assert all(line.startswith("  ") for line in lines[1:]), res.stderr
        head = lines[0]
        for word in case.names:
            assert word in head, f"{case.id}: {word!r} not named in {head!r}"
        if case.valid is not None:
            assert case.valid in head, f"{case.id}: valid value {case.valid!r} not in {head!r}"
        for raw in ("Input should be", "Value error", "invalid literal", "Errno", "Exception:"):
            assert raw not in head, f"{case.id}: raw parser text in {head!r}"
    else:
        for word in case.names:
            assert word in out, f"{case.id}: {word!r} not named in\n{out}"


def _exercise_partial(wh: Path, case: Case, cwd: Path) -> None:
    """Run one case that must end partial (exit 3) and check what it may change."""
    before = _snapshot(wh)
    res = _run(wh, case.args, cwd)
    _assert_message(case, res)
    after = _snapshot(wh)
    assert set(before["lake"].items()) <= set(after["lake"].items()), case.id
    assert all(after["manifests"][k] == v for k, v in before["manifests"].items())
    if case.errors_item is not None:
        items = [r[0] for r in query_catalog(_paths(wh), "SELECT item FROM ingest_errors")]
        assert any(case.errors_item in i for i in items), (case.id, items)
    _check_lake_clean(wh)


def _paths(wh: Path):
    from ssl_wc.paths import WarehousePaths

    return WarehousePaths.of(wh)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, demo_data, tiny_models) -> Path:
    """The crafted input files, in one folder (the working directory of every case)."""
    d = tmp_path_factory.mktemp("bad_inputs")
    _write_inputs(d, demo_data, tiny_models)
    return d


@pytest.fixture(scope="module")
def annotated(tmp_path_factory: pytest.TempPathFactory, annotated_wh_template: Path) -> Path:
    dst = tmp_path_factory.mktemp("bad_annotated") / "wh"
    shutil.copytree(annotated_wh_template, dst)
    return dst


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory, scored_wh_template: Path) -> Path:
    dst = tmp_path_factory.mktemp("bad_scored") / "wh"
    shutil.copytree(scored_wh_template, dst)
    return dst


# ------------------------------------------------------------------------ crafted files
def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + \
        struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png(width: int, height: int, rows: bytes) -> bytes:
    head = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", head)
            + _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b""))


def _good_jpeg(path: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 60, 3)) * 255).astype(np.uint8)).save(path, "JPEG")


def _write_inputs(d: Path, demo, tiny_models) -> None:
    bp = json.loads(demo.building_parts.read_text())
    first = next(iter(bp["annotations"]))

    def variant(name: str, mutate: Callable[[dict], None]) -> None:
        doc = json.loads(json.dumps(bp))
        mutate(doc)
        (d / name).write_text(json.dumps(doc))

    def nan_left(doc: dict) -> None:
        doc["annotations"][first]["bbox_groups"][0]["elements"][0]["left"] = "NaN"

    variant("bp_nan.json", nan_left)
    (d / "bp_nan.json").write_text((d / "bp_nan.json").read_text().replace('"NaN"', "NaN"))
    variant("bp_negative_width.json", lambda doc: doc["annotations"][first]["bbox_groups"][0]
            ["elements"][0].update(width=-0.2))
    variant("bp_bad_label.json", lambda doc: doc["annotations"][first]["bbox_groups"][0]
            ["elements"][0].update(label=999))
    variant("bp_no_images.json", lambda doc: doc.update(annotations={}))

    def all_bad(doc: dict) -> None:
        for value in doc["annotations"].values():
            value["styles"] = "not a list"

    variant("bp_all_bad.json", all_bad)
    (d / "bp_truncated.json").write_text(demo.building_parts.read_text()[:500])
    (d / "bp_binary.json").write_bytes(b"\xff\xfe\x00garbage\x81")
    (d / "bp_empty.json").write_bytes(b"")
    (d / "bp_array.json").write_text("[1, 2, 3]")
    (d / "a_folder.json").mkdir()
    (d / "styles_bad.txt").write_text("Q46261 Romanesque\nnot-a-qid Gothic\n")
    churches = json.loads(demo.churches.read_text())
    key = next(iter(churches))
    churches[key]["location"] = {"lat": 123.0, "lon": 5.0}
    (d / "churches_bad.json").write_text(json.dumps(churches))

    # model files: one valid entry per tiny model, then broken copies
    specs, toml = tiny_models
    dino = specs["dinov2-random"]
    entry = f'[models.tiny]\nsource = "{dino.local_dir}"\ninput_size = [{dino.input_hw[0]}, ' \
            f'{dino.input_hw[1]}]\n'
    for name, extra in [("std_zero", "std = [0, 0, 0]\n"), ("mean_nan", "mean = [nan, 0.5, 0.5]\n"),
                        ("std_inf", "std = [inf, 1.0, 1.0]\n"),
                        ("std_negative", "std = [-0.2, 0.2, 0.2]\n"),
                        ("mean_two", "mean = [0.5, 0.5]\n"), ("unknown_field", "colour = 3\n")]:
        (d / f"models_{name}.toml").write_text(entry + extra)
    (d / "models_syntax.toml").write_text("[models.tiny\nsource = 1\n")
    (d / "models_binary.toml").write_bytes(b"\xff\xfe\xfd")
    shutil.copy(toml, d / "models.toml")
    # a model whose weights are NaN: maps and features are never committed
    nan_dir = d / "nan_model"
    shutil.copytree(dino.local_dir, nan_dir)
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(nan_dir / "model.safetensors"))
    for k in weights:
        if "layernorm" in k.lower() or "norm" in k.lower():
            weights[k] = np.full_like(weights[k], np.nan)
    save_file(weights, str(nan_dir / "model.safetensors"))
    (d / "models_nan.toml").write_text(entry.replace(str(dino.local_dir), str(nan_dir))
                                       .replace("models.tiny", "models.nanvit"))

    # pipeline configs
    (d / "run_syntax.toml").write_text("[pipeline\nsteps = 1\n")
    (d / "run_unknown_key.toml").write_text("[attention]\nbatchsize = 4\n")
    (d / "run_batch_zero.toml").write_text(
        f'[pipeline]\nsteps = ["attention"]\n[attention]\nmodels = ["dinov2-random"]\n'
        f'model_config = "{d / "models.toml"}"\nbatch_size = 0\n')
    (d / "run_layers.toml").write_text(
        f'[pipeline]\nsteps = ["attention"]\n[attention]\nmodels = ["dinov2-random"]\n'
        f'model_config = "{d / "models.toml"}"\nlayers = [99]\n')
    (d / "run_missing_path.toml").write_text(
        '[pipeline]\nsteps = ["annotations"]\n[annotations]\npath = "nowhere.json"\n')

    # image folders: each bad file next to one good image (a partial scan)
    for name in ("utf8", "huge", "rows", "pixels"):
        (d / f"img_{name}").mkdir()
        _good_jpeg(d / f"img_{name}" / f"good_{name}.jpg")
    # a name that is not UTF-8 (bytes \xff\xfe): Python sees it with surrogate escapes
    shutil.copy(d / "img_utf8" / "good_utf8.jpg",
                os.fsdecode(os.fsencode(d / "img_utf8") + b"/caf\xff\xfe.jpg"))
    with open(d / "img_huge" / "huge.jpg", "wb") as f:  # sparse: 3 GiB on paper
        f.truncate(3 * 2**30)
    full = np.random.default_rng(1).integers(0, 255, (120, 1 + 80 * 3), dtype=np.uint8)
    full[:, 0] = 0  # filter byte: none
    (d / "img_rows" / "rows.png").write_bytes(_png(80, 120, full[:12].tobytes()))
    (d / "img_pixels" / "bomb.png").write_bytes(_png(40_000, 40_000, b"\x00" * 10))
    (d / "img_empty").mkdir()
    (d / "img_corrupt").mkdir()
    _good_jpeg(d / "img_corrupt" / "ok.jpg")
    (d / "img_corrupt" / "broken.jpg").write_bytes((d / "img_corrupt" / "ok.jpg")
                                                   .read_bytes()[:300])
    (d / "not_a_folder.txt").write_text("x")


# ------------------------------------------------------------------------ the cases
ANNOTATION_CASES = [
    Case("ann-missing", ("ingest", "annotations", "nowhere.json"), ("nowhere.json",)),
    Case("ann-folder", ("ingest", "annotations", "a_folder.json"), ("a_folder.json",)),
    Case("ann-truncated", ("ingest", "annotations", "bp_truncated.json"),
         ("bp_truncated.json",)),
    Case("ann-binary", ("ingest", "annotations", "bp_binary.json"), ("bp_binary.json",)),
    Case("ann-empty", ("ingest", "annotations", "bp_empty.json"), ("bp_empty.json",)),
    Case("ann-array", ("ingest", "annotations", "bp_array.json"), ("bp_array.json", "$")),
    Case("ann-nan", ("ingest", "annotations", "bp_nan.json"), ("bp_nan.json", ".left")),
    Case("ann-negative-width", ("ingest", "annotations", "bp_negative_width.json"),
         ("bp_negative_width.json", ".width")),
    Case("ann-bad-label", ("ingest", "annotations", "bp_bad_label.json"),
         ("bp_bad_label.json", ".label")),
    Case("ann-no-images", ("ingest", "annotations", "bp_no_images.json"),
         ("bp_no_images.json", "$.annotations")),
    Case("ann-all-bad-nonstrict", ("ingest", "annotations", "bp_all_bad.json", "--no-strict"),
         ("refused", "ann_images", "--force")),
    Case("ann-style-names-missing", ("ingest", "annotations", "bp_nan.json", "--style-names",
                                     "none.txt"), ("none.txt",)),
    Case("ann-style-names-bad", ("ingest", "annotations", "{building_parts}", "--style-names",
                                 "styles_bad.txt"), ("styles_bad.txt", "line 2")),
    Case("ann-churches-bad", ("ingest", "annotations", "{building_parts}", "--churches",
                              "churches_bad.json"), ("churches_bad.json", ".location.lat")),
]

IMAGE_CASES = [
    Case("img-missing", ("ingest", "images", "no_such_dir"), ("no_such_dir",)),
    Case("img-file", ("ingest", "images", "not_a_folder.txt"), ("not_a_folder.txt",)),
    Case("img-empty", ("ingest", "images", "img_empty"), ("img_empty", "no readable image")),
    Case("img-strict-corrupt", ("ingest", "images", "img_corrupt", "--strict"),
         ("broken.jpg",)),
    Case("img-max-mb-zero", ("ingest", "images", "img_rows", "--max-image-mb", "0"),
         ("--max-image-mb",)),
    Case("img-max-mb-nan", ("ingest", "images", "img_rows", "--max-image-mb", "nan"),
         ("--max-image-mb",)),
    Case("img-max-px-negative", ("ingest", "images", "img_rows", "--max-image-megapixels",
                                 "-1"), ("--max-image-megapixels",)),
    Case("img-max-mb-text", ("ingest", "images", "img_rows", "--max-image-mb", "lots"),
         ("--max-image-mb", "lots")),
    # partial scans: the bad file is named and recorded, the good image committed
    Case("img-non-utf8-name", ("ingest", "images", "img_utf8"), ("not valid UTF-8",),
         code=3, errors_item="caf"),
    Case("img-3gib", ("ingest", "images", "img_huge"), ("huge.jpg", "--max-image-mb"),
         code=3, errors_item="huge.jpg"),
    Case("img-png-missing-rows", ("ingest", "images", "img_rows"), ("rows.png", "ends early"),
         code=3, errors_item="rows.png"),
    Case("img-pixel-bomb", ("ingest", "images", "img_pixels"),
         ("bomb.png", "--max-image-megapixels"), code=3, errors_item="bomb.png"),
]

ATT = ("ingest", "attention", "--model-config", "models.toml")
ATTENTION_CASES = [
    Case("att-unknown-model", (*ATT, "--models", "nope"), ("--models nope",),
         valid="dinov2-random"),
    Case("att-empty-models", (*ATT, "--models", ","), ("--models",)),
    Case("att-missing-models", ("ingest", "attention"), ("--models",)),
    Case("att-layer-99", (*ATT, "--models", "dinov2-random", "--layers", "99"),
         ("--layers 99", "dinov2-random"), valid="0..11"),
    Case("att-layer-negative", (*ATT, "--models", "dinov2-random", "--layers", "-1"),
         ("--layers -1",), valid="0..11"),
    Case("att-layer-other-model", (*ATT, "--models", "dinov2-random,siglip-random", "--layers",
                                   "5"), ("--layers 5", "siglip-random"), valid="0..1"),
    Case("att-layer-text", (*ATT, "--models", "dinov2-random", "--layers", "x"), ("--layers x",)),
    Case("att-layer-float", (*ATT, "--models", "dinov2-random", "--layers", "1.5"),
         ("--layers 1.5",)),
    Case("att-head-5", (*ATT, "--models", "dinov2-random", "--heads", "5"), ("--heads 5",),
         valid="0..1"),
    Case("att-head-negative", (*ATT, "--models", "dinov2-random", "--heads", "-1"),
         ("--heads -1",)),
    Case("att-fuse-empty", (*ATT, "--models", "dinov2-random", "--heads", "none", "--fuse",
                            ""), ("--fuse",)),
    Case("att-fuse-unknown", (*ATT, "--models", "dinov2-random", "--fuse", "avg"),
         ("--fuse avg",), valid="mean, max, min"),
    Case("att-batch-negative", (*ATT, "--models", "dinov2-random", "--batch-size", "-3"),
         ("--batch-size -3",), valid=None),
    Case("att-batch-zero", (*ATT, "--models", "dinov2-random", "--batch-size", "0"),
         ("--batch-size 0", "at least 1")),
    Case("att-batch-text", (*ATT, "--models", "dinov2-random", "--batch-size", "abc"),
         ("--batch-size abc",)),
    Case("att-shard-range", (*ATT, "--models", "dinov2-random", "--shard", "5/2"),
         ("--shard 5/2",)),
    Case("att-shard-zero", (*ATT, "--models", "dinov2-random", "--shard", "0/3"),
         ("--shard 0/3",)),
    Case("att-shard-form", (*ATT, "--models", "dinov2-random", "--shard", "1-2"),
         ("--shard 1-2", "k/N")),
    Case("att-device-unknown", (*ATT, "--models", "dinov2-random", "--device", "tpu"),
         ("--device tpu",), valid="cpu"),
    Case("att-device-absent", (*ATT, "--models", "dinov2-random", "--device", "cuda:99"),
         ("--device cuda:99", "not available")),
    Case("att-dtype-unknown", (*ATT, "--models", "dinov2-random", "--dtype", "float8"),
         ("--dtype float8",), valid="bfloat16"),
    Case("att-dtype-cpu-half", (*ATT, "--models", "dinov2-random", "--device", "cpu",
                                "--dtype", "float16"), ("--dtype float16",)),
    Case("att-unknown-image", (*ATT, "--models", "dinov2-random", "--images", "nope.jpg"),
         ("--images nope.jpg",), valid="Q99100000_wd0.jpg"),
    Case("att-unknown-method", (*ATT, "--models", "dinov2-random", "--methods", "bogus"),
         ("--methods bogus",), valid="gradcam"),
    Case("att-method-not-applicable", (*ATT, "--models", "dinov2-random", "--methods", "map"),
         ("--methods map", "dinov2-random"), valid="rollout"),
    Case("att-variant-pipe", (*ATT, "--models", "dinov2-random", "--variant", "a|b"),
         ("--variant",)),
    Case("att-unknown-option", (*ATT, "--models", "dinov2-random", "--colour", "red"),
         ("--colour",)),
    *(Case(f"att-model-file-{name}", ("ingest", "attention", "--models", "tiny",
                                       "--model-config", file), (file, *extra))
      for name, file, extra in (
          ("missing", "none.toml", ()), ("syntax", "models_syntax.toml", ()),
          ("binary", "models_binary.toml", ()),
          ("unknown-field", "models_unknown_field.toml", ("colour",)),
          ("std-zero", "models_std_zero.toml", ("std",)),
          ("mean-nan", "models_mean_nan.toml", ("mean",)),
          ("std-inf", "models_std_inf.toml", ("std",)),
          ("std-negative", "models_std_negative.toml", ("std",)),
          ("mean-two", "models_mean_two.toml", ("mean",)))),
    # NaN weights: every map is non-finite; nothing is committed for any image, each
    # image is named in ingest_errors and the run is partial
    Case("att-nan-weights", ("ingest", "attention", "--models", "nanvit", "--model-config",
                             "models_nan.toml", "--methods", "cls", "--layers", "0",
                             "--heads", "none", "--device", "cpu"),
         ("nanvit",), code=3, errors_item="Q99100000_wd0.jpg"),
]

OTHER_CASES = [
    Case("metrics-eval-zero", ("metrics", "--eval-size", "0"), ("--eval-size 0",)),
    Case("metrics-eval-huge", ("metrics", "--eval-size", "5000"), ("--eval-size 5000",)),
    Case("metrics-eval-text", ("metrics", "--eval-size", "big"), ("--eval-size big",)),
    Case("metrics-trials-zero", ("metrics", "--random-trials", "0"), ("--random-trials 0",)),
    Case("stats-resamples-zero", ("stats", "--resamples", "0"), ("--resamples 0",)),
    Case("stats-resamples-99", ("stats", "--resamples", "99"), ("--resamples 99", "100")),
    Case("probe-folds-zero", ("probe", "--folds", "0"), ("--folds 0",)),
    Case("probe-folds-one", ("probe", "--folds", "1"), ("--folds 1", "at least 2")),
    Case("leaderboard-no-metrics", ("leaderboard",), ("ssl-wc metrics",)),
    Case("runs-limit-negative", ("runs", "--limit", "-1"), ("--limit -1",)),
    Case("runs-limit-zero", ("runs", "--limit", "0"), ("--limit 0",)),
    Case("leaderboard-format", ("leaderboard", "-f", "xml"), ("--format xml",), valid="csv"),
    Case("ft-strategy", ("finetune", "--model", "dinov2-random", "--strategy", "bogus"),
         ("--strategy bogus",), valid="lora"),
    Case("ft-model", ("finetune", "--model", "nope", "--strategy", "lora"), ("--model nope",),
         valid="dinov2"),
    # one bad training option each: named with its value, before the model is looked up
    *(Case(f"ft-{option.strip('-')}-{value}", ("finetune", "--model", "nope", "--strategy",
                                              "lora", option, value), (f"{option} {value}",))
      for option, value in (
          ("--epochs", "0"), ("--batch-size", "0"), ("--lr-head", "nan"), ("--lr-head", "-1"),
          ("--lr-backbone", "0"), ("--val-fraction", "1.5"), ("--lora-rank", "0"),
          ("--num-workers", "-1"), ("--seed", "-1"), ("--methods", "bogus"),
          ("--extract-batch-size", "0"))),
    Case("ft-device", ("finetune", "--model", "dinov2-random", "--strategy", "lora",
                       "--device", "tpu"), ("--device tpu",)),
    Case("ft-images-missing", ("finetune", "--model", "dinov2-random", "--strategy", "lora",
                               "--images", "no_such_dir", "--model-config", "models.toml"),
         ("no_such_dir",)),
    Case("run-missing-config", ("run", "-c", "none.toml"), ("none.toml",)),
    Case("run-syntax", ("run", "-c", "run_syntax.toml"), ("run_syntax.toml",)),
    Case("run-unknown-key", ("run", "-c", "run_unknown_key.toml"),
         ("run_unknown_key.toml", "attention.batchsize")),
    Case("run-batch-zero", ("run", "-c", "run_batch_zero.toml"),
         ("run_batch_zero.toml", "attention.batch_size")),
    Case("run-layers", ("run", "-c", "run_layers.toml"),
         ("run_layers.toml", "attention.layers 99"), valid="0..11"),
    Case("run-missing-path", ("run", "-c", "run_missing_path.toml"),
         ("annotations.path", "nowhere.json")),
    Case("run-steps", ("run", "--steps", "bogus", "--dry-run"), ("bogus",)),
    Case("run-models-empty", ("run", "--models", ",", "--dry-run"), ("--models",)),
    Case("models-list-config", ("models", "list", "--model-config", "none.toml"),
         ("none.toml",)),
    Case("models-list-format", ("models", "list", "-f", "xml"), ("--format xml",)),
    Case("no-such-command", ("nosuchcmd",), ("nosuchcmd",), valid="ingest"),
]

SCORED_CASES = [
    Case("leaderboard-metric", ("leaderboard", "--metric", "nope"), ("--metric nope",),
         valid="coverage"),
    Case("leaderboard-percentile", ("leaderboard", "--percentile", "13"), ("--percentile 13",),
         valid="90"),
    Case("leaderboard-threshold-free", ("leaderboard", "--metric", "coverage", "--percentile",
                                        "90"), ("--percentile 90", "coverage")),
    Case("probe-folds-zero-scored", ("probe", "--folds", "0", "--force"), ("--folds 0",)),
]


def _resolve(case: Case, demo) -> Case:
    args = tuple(str(demo.building_parts) if a == "{building_parts}" else a for a in case.args)
    return Case(case.id, args, case.names, case.code, case.valid, case.errors_item)


def _ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


ON_ANNOTATED = ANNOTATION_CASES + IMAGE_CASES + ATTENTION_CASES + OTHER_CASES
REFUSED = [c for c in ON_ANNOTATED if c.code == EXIT["usage"]]
PARTIAL = [c for c in ON_ANNOTATED if c.code != EXIT["usage"]]
#: Refusals run side by side (each is a separate process that must not write); a
#: refusal that wrote anything shows in the group's before/after snapshot.
WORKERS = 3


def test_enough_bad_inputs() -> None:
    cases = ON_ANNOTATED + SCORED_CASES
    assert len(cases) >= 60 and len({c.id for c in cases}) == len(cases)


@dataclass
class Group:
    """The results of a group of refusals and the warehouse before and after them."""

    wh: Path
    results: dict[str, subprocess.CompletedProcess[str]]
    before: dict[str, object]
    after: dict[str, object]


def _refuse_all(wh: Path, cases: list[Case], cwd: Path, demo) -> Group:
    from concurrent.futures import ThreadPoolExecutor

    from ssl_wc.warehouse import ensure_catalog

    ensure_catalog(_paths(wh))  # a copied warehouse rebuilds its catalog once, here
    before = _snapshot(wh)
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        done = list(pool.map(lambda c: _run(wh, _resolve(c, demo).args, cwd), cases))
    return Group(wh, dict(zip(_ids(cases), done, strict=True)), before, _snapshot(wh))


@pytest.fixture(scope="module")
def refused(annotated: Path, files: Path, demo_data) -> Group:
    return _refuse_all(annotated, REFUSED, files, demo_data)


@pytest.fixture(scope="module")
def refused_scored(scored: Path, files: Path, demo_data) -> Group:
    return _refuse_all(scored, SCORED_CASES, files, demo_data)


@pytest.mark.parametrize("case", REFUSED, ids=_ids(REFUSED))
def test_refused_with_one_line_naming_it(case: Case, refused: Group) -> None:
    _assert_message(case, refused.results[case.id])


@pytest.mark.parametrize("case", SCORED_CASES, ids=_ids(SCORED_CASES))
def test_refused_on_a_scored_warehouse(case: Case, refused_scored: Group) -> None:
    _assert_message(case, refused_scored.results[case.id])


@pytest.mark.parametrize("which", ["refused", "refused_scored"])
def test_refusals_leave_the_warehouse_as_it_was(which: str, request: pytest.FixtureRequest,
                                                 files: Path) -> None:
    """Same manifests, run records and lake files (checksums): every earlier row is
    identical; the lake checks clean, in-process and through ``ssl-wc check``."""
    group: Group = request.getfixturevalue(which)
    assert group.after == group.before, _what_changed(group)
    _check_lake_clean(group.wh)
    res = subprocess.run([*SSL_WC, "-w", str(group.wh), "check"], env=cli_env(), cwd=files,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


def _what_changed(group: Group) -> str:
    new_runs = sorted(set(group.after["runs"]) - set(group.before["runs"]))  # type: ignore[arg-type]
    records = [json.loads((group.wh / "runs" / r).read_text()) for r in new_runs]
    return "runs written by refused commands: " + "; ".join(
        f"{r['kind']} {r['status']} {r.get('config')}" for r in records)


@pytest.mark.parametrize("case", PARTIAL, ids=_ids(PARTIAL))
def test_partial_run_names_the_failed_item(case: Case, annotated: Path, files: Path,
                                           demo_data, refused: Group) -> None:
    """After the refusals (which share the warehouse): exit 3, the item named on the
    terminal and in ingest_errors, every earlier file intact."""
    del refused
    _exercise_partial(annotated, _resolve(case, demo_data), files)


def test_missing_warehouse_is_named_and_not_created(tmp_path: Path, files: Path) -> None:
    wh = tmp_path / "nowhere"
    res = _run(wh, ("leaderboard",), files)
    assert res.returncode == 2 and "no warehouse at" in res.stderr and str(wh) in res.stderr
    assert not wh.exists()


def test_warehouse_that_is_a_file(tmp_path: Path, files: Path) -> None:
    target = files / "not_a_folder.txt"
    res = _run(target, ("info",), files)
    assert res.returncode == 2
    assert res.stderr.startswith("error: --warehouse") and "not a folder" in res.stderr


def test_no_strict_annotations_partial_exits_3_and_names_the_image(
        tmp_path: Path, annotated_wh_template: Path, demo_data, files: Path) -> None:
    """One bad image with --no-strict: exit 3, the image named on stderr and in
    ingest_errors, every good image committed."""
    wh = tmp_path / "wh"
    shutil.copytree(annotated_wh_template, wh)
    res = _run(wh, ("ingest", "annotations", "bp_nan.json", "--no-strict"), files)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and ".left" in res.stderr
    n_all = len(json.loads(demo_data.building_parts.read_text())["annotations"])
    rows = query_catalog(_paths(wh), "SELECT count(*) FROM images")
    assert rows[0][0] == n_all - 1
    errors = query_catalog(_paths(wh), "SELECT item, error FROM ingest_errors")
    assert any(".left" in item or ".left" in err for item, err in errors), errors
    _check_lake_clean(wh)


def test_rescan_of_an_emptied_folder_is_refused_unless_forced(tmp_path: Path,
                                                              annotated_wh_template: Path,
                                                              files: Path) -> None:
    wh = tmp_path / "wh"
    shutil.copytree(annotated_wh_template, wh)
    folder = tmp_path / "pics"
    folder.mkdir()
    _good_jpeg(folder / "one.jpg")
    assert _run(wh, ("ingest", "images", str(folder)), files).returncode == 0
    (folder / "one.jpg").unlink()
    before = _snapshot(wh)
    res = _run(wh, ("ingest", "images", str(folder)), files)
    assert res.returncode == 2 and "refused" in res.stderr and "--force" in res.stderr
    assert "image_files" in res.stderr and _snapshot(wh) == before
    forced = _run(wh, ("ingest", "images", str(folder), "--force"), files)
    assert forced.returncode == 0, forced.stderr
    rows = query_catalog(_paths(wh), f"SELECT count(*) FROM image_files WHERE image_root = "
                                     f"'{folder.as_posix()}'")
    assert rows == [(0,)]
