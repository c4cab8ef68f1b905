"""Shared scenarios for the commit-phase fault suites (``test_commit_phases_*.py``).

A job is started from a fixed pre-state, and made to fail (``SSL_WC_FAIL_AT``) or die
(``SSL_WC_KILL_AT``, a real ``SIGKILL``) at one named phase of the commit protocol.
Then:

* every commit that happened is visible to the next reader (0 invisible commits);
* the dead or failed run is shown as ``interrupted`` / ``failed``, never ``running``;
* a plain rerun of the same command reaches exactly the state of a clean build
  (rows compared without run ids: no duplicates, nothing missing);
* ``gc`` then ``check`` leave a clean lake.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ssl_wc.lake.catalog import (
    history_token,
    manifest_names,
    read_manifests,
    read_stamp,
    run_history,
)
from ssl_wc.lake.integrity import check_catalog, check_lake, garbage_collect
from ssl_wc.paths import WarehousePaths
from ssl_wc.warehouse import open_reader
from tests.conftest import ROOT, SSL_WC, cli_env
from tests.faults import TALLY_FILE
from tests.test_spine_faults import snapshot

#: Every phase, in the order a run meets them (``swap:1`` is the catalog swap when the
#: run starts, ``swap:2`` the one after its commit).
PHASES = ["start", "swap:1", "write", "publish", "manifest", "record", "catalog", "swap:2"]


@dataclass(frozen=True)
class Job:
    name: str
    args: tuple[str, ...]
    views: tuple[str, ...]


def run_cli_in_process(argv: list[str]) -> int:
    """``ssl-wc ARGV`` through the real entry point, in this process (a plain rerun)."""
    from ssl_wc.cli import main

    saved = sys.argv
    sys.argv = ["ssl-wc", *argv]
    try:
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
                assert code in (0, 3), err.getvalue()[-2000:]
                return code
    finally:
        sys.argv = saved
    return 0


def reference(pre: Path, job: Job, dst: Path) -> dict[str, list[tuple]]:
    """The visible state after a clean run of ``job`` from ``pre``."""
    shutil.copytree(pre, dst)
    run_cli_in_process(["-w", str(dst), *job.args])
    return snapshot(dst / "ssl_wc.duckdb", list(job.views))


def scenario(pre: Path, job: Job, mode: str, phase: str, dst: Path,
             ref: dict[str, list[tuple]]) -> None:
    """One fault at one phase, then the checks listed in the module docstring."""
    shutil.copytree(pre, dst)
    wh = WarehousePaths(dst)
    before = set(manifest_names(wh))
    var = "SSL_WC_KILL_AT" if mode == "kill" else "SSL_WC_FAIL_AT"
    proc = subprocess.run([*SSL_WC, "-w", str(dst), *job.args], cwd=ROOT,
                          env=cli_env(**{var: phase}), capture_output=True, text=True,
                          timeout=600)
    if mode == "kill":
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    else:
        assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    new = set(manifest_names(wh)) - before
    # the next reader sees every commit: its connection reconciles a stale catalog
    open_reader(wh, udfs=False).close()
    stamp = read_stamp(wh.catalog)
    invisible = 0 if stamp is not None and stamp.history == history_token(wh) else 1
    with open(TALLY_FILE, "a") as fh:
        fh.write(f"[commit phases] {job.name} {mode}@{phase}: new_commits={len(new)} "
                 f"invisible={invisible}\n")
    assert invisible == 0, f"{job.name} {mode}@{phase}: a commit is not visible"
    shown = {r["run_id"]: r["status"] for r in open_reader(wh, udfs=False).sql(
        "SELECT run_id, status FROM runs").pl().iter_rows(named=True)}
    for rec in run_history(wh, read_manifests(wh)):
        assert rec["run_id"] in shown, (job.name, mode, phase, rec["run_id"])
        assert shown[rec["run_id"]] != "running", (job.name, mode, phase, rec["run_id"])
    # a plain rerun of the same command reaches the clean build
    run_cli_in_process(["-w", str(dst), *job.args])
    assert snapshot(wh.catalog, list(job.views)) == ref, f"{job.name} {mode}@{phase}"
    garbage_collect(wh)
    problems = check_lake(wh)
    stale = check_catalog(wh, repair=False)
    assert problems == [] and stale is None, [p.line() for p in problems] + [str(stale)]
    assert json.dumps(ref)  # the reference itself is plain data


def jobs(demo, toml: Path) -> list[Job]:
    """The five jobs that write facts, each with the views it feeds."""
    return [
        Job("annotations", ("ingest", "annotations", str(demo.building_parts), "--style-names",
                            str(demo.style_names), "--churches", str(demo.churches)),
            ("images", "boxes", "feature_types", "styles", "image_styles", "churches")),
        Job("images", ("ingest", "images", str(demo.images)), ("image_files", "missing_images")),
        Job("attention", ("ingest", "attention", "--models", "siglip-random", "--methods",
                          "map,mean", "--model-config", str(toml), "--device", "cpu"),
            ("attention_maps", "features")),
        Job("metrics", ("metrics", "--random-trials", "5"),
            ("image_metrics", "box_metrics", "layer_progression")),
        Job("stats", ("stats", "--resamples", "200", "--no-probe"), ("model_comparisons",)),
        Job("probe", ("probe", "--folds", "2"), ("probe_results",)),
        Job("finetune", ("finetune", "--model", "siglip-random", "--strategy", "linear_probe",
                         "--epochs", "1", "--model-config", str(toml), "--device", "cpu",
                         "--no-ingest"),
            ("finetune_epochs", "finetune_splits")),
    ]


def pre_states(root: Path, demo, toml: Path, names: list[str]) -> dict[str, Path]:
    """The warehouse each of the jobs ``names`` starts from: the jobs before it in
    :func:`jobs` order have run, it has not."""
    out: dict[str, Path] = {}
    wh = root / "chain"
    root.mkdir(parents=True, exist_ok=True)
    chain = jobs(demo, toml)
    last = max(i for i, j in enumerate(chain) if j.name in names)
    for job in chain[:last + 1]:
        dst = root / f"before-{job.name}"
        if wh.exists():
            shutil.copytree(wh, dst)
        else:
            dst.mkdir()
        out[job.name] = dst
        run_cli_in_process(["-w", str(wh), *job.args])
    return out
