"""The lake's commit protocol: all-or-nothing runs, supersession, failures, gc, check."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pytest

from ssl_wc.lake.catalog import read_manifests
from ssl_wc.lake.integrity import check_lake, garbage_collect
from ssl_wc.lake.locks import FileLock, LockHeld
from ssl_wc.lake.runs import Run
from ssl_wc.paths import WarehousePaths
from tests.conftest import query_catalog


def _maps(model: str, images: list[str], value: float) -> dict:
    n = len(images)
    return {"model": [model] * n, "variant": ["frozen"] * n, "method": ["cls"] * n,
            "layer": [0] * n, "head": [-1] * n, "image_id": images, "grid_h": [2] * n,
            "grid_w": [2] * n, "config_hash": ["c"] * n, "values": [[value] * 4] * n}


_count = query_catalog


def test_commit_makes_rows_visible_and_rerun_supersedes(tmp_path):
    wh = WarehousePaths.of(tmp_path / "wh")
    with Run(wh, "t", {}) as run:
        run.write("attention_maps", _maps("m", ["a", "b"], 0.1), unit_key=["a", "b"],
                  partition={"model": "m"})
    assert _count(wh, "SELECT count(*) FROM attention_maps") == [(2,)]
    with Run(wh, "t", {}) as run:  # recompute image a only
        run.write("attention_maps", _maps("m", ["a"], 0.9), unit_key=["a"],
                  partition={"model": "m"})
    rows = _count(wh, "SELECT image_id, \"values\"[1] FROM attention_maps ORDER BY 1")
    assert [(r[0], round(r[1], 3)) for r in rows] == [("a", 0.9), ("b", 0.1)]


def test_failed_run_leaves_nothing(tmp_path):
    wh = WarehousePaths.of(tmp_path / "wh")
    with Run(wh, "t", {}) as run:
        run.write("attention_maps", _maps("m", ["a"], 0.1), unit_key=["a"],
                  partition={"model": "m"})
    with pytest.raises(RuntimeError), Run(wh, "t", {}) as run:
        run.write("attention_maps", _maps("m", ["a", "c"], 0.5), unit_key=["a", "c"],
                  partition={"model": "m"})
        raise RuntimeError("boom")
    assert _count(wh, "SELECT image_id, \"values\"[1] FROM attention_maps") == [
        ("a", pytest.approx(0.1))]
    assert _count(wh, "SELECT status FROM runs ORDER BY started_at") == [("committed",),
                                                                        ("failed",)]
    assert [p for p in wh.lake.rglob("*") if p.is_file()] == [
        wh.root / f for m in read_manifests(wh).manifests for f in
        [x["path"] for x in m["files"]]]
    assert check_lake(wh) == []


@pytest.mark.parametrize("point", ["write", "publish", "manifest"])
def test_write_failure_keeps_previous_state(tmp_path, monkeypatch, point):
    """A full disk (injected OSError) at each step ends the job and changes nothing."""
    wh = WarehousePaths.of(tmp_path / "wh")
    with Run(wh, "t", {}) as run:
        run.write("attention_maps", _maps("m", ["a"], 0.1), unit_key=["a"],
                  partition={"model": "m"})
    before = _count(wh, "SELECT * EXCLUDE (run_id) FROM attention_maps")
    monkeypatch.setenv("SSL_WC_FAIL_AT", point)
    with pytest.raises(OSError, match="No space left"), Run(wh, "t", {}) as run:
        run.write("attention_maps", _maps("m", ["a", "b"], 0.7), unit_key=["a", "b"],
                  partition={"model": "m"})
    monkeypatch.delenv("SSL_WC_FAIL_AT")
    assert _count(wh, "SELECT * EXCLUDE (run_id) FROM attention_maps") == before
    assert check_lake(wh) == []


def test_gc_removes_only_uncommitted_files(tmp_path):
    wh = WarehousePaths.of(tmp_path / "wh")
    with Run(wh, "t", {}) as run:
        run.write("attention_maps", _maps("m", ["a"], 0.1), unit_key=["a"],
                  partition={"model": "m"})
    stray = wh.lake / "attention_maps" / "model=m" / "20000101T000000000000-x-abc-0001.parquet"
    stray.write_bytes(b"PAR1junk")
    tmp = wh.lake / "attention_maps" / "model=m" / ".x.parquet.1.abcd.tmp"
    tmp.write_bytes(b"")
    kinds = sorted(p.kind for p in check_lake(wh))
    assert kinds == ["unknown", "unknown"]
    # files of unknown origin (no run record, no pid in the name) get a grace period
    assert garbage_collect(wh) == []
    removed = garbage_collect(wh, grace_s=0)
    assert sorted(removed) == sorted(p.relative_to(wh.root).as_posix() for p in (stray, tmp))
    assert check_lake(wh) == []
    assert _count(wh, "SELECT count(*) FROM attention_maps") == [(1,)]


def test_gc_spares_live_runs_and_collects_dead_ones(tmp_path):
    """Files of a running run (live pid) and live temporaries are never touched, even
    with no grace period; once the run is dead they go at once."""
    wh = WarehousePaths.of(tmp_path / "wh")
    run = Run(wh, "t", {}).start()
    run.write("attention_maps", _maps("m", ["a"], 0.1), unit_key=["a"], partition={"model": "m"})
    part = next(iter(run._parts.values()))
    catalog_tmp = wh.tmp / f"catalog.{os.getpid()}.0123abcd.duckdb"
    catalog_tmp.write_bytes(b"")
    other_tmp = wh.manifests / f".x.json.{os.getpid()}.0123abcd.tmp"
    other_tmp.write_bytes(b"")
    assert part.tmp.exists()
    removed = garbage_collect(wh, grace_s=0)
    # the catalog temporary is swept under the catalog lock (no rebuild can be running)
    assert removed == [catalog_tmp.relative_to(wh.root).as_posix()]
    assert part.tmp.exists() and other_tmp.exists()
    run.commit()
    assert _count(wh, "SELECT count(*) FROM attention_maps") == [(1,)]
    # a run whose process died: its record says running, its pid is gone
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    rec = json.loads(run.record_path.read_text())
    ghost = wh.runs / "20000101T000000000000-t-dead00.json"
    ghost.write_text(json.dumps({**rec, "run_id": ghost.stem, "status": "running",
                                 "pid": int(dead)}))
    leftover = part.final.parent / f".{ghost.stem}-0001.parquet.{dead}.0123abcd.tmp"
    leftover.write_bytes(b"x")
    other_tmp.rename(wh.manifests / f".x.json.{dead}.0123abcd.tmp")
    removed = garbage_collect(wh)
    assert sorted(removed) == sorted([leftover.relative_to(wh.root).as_posix(),
                                      f"manifests/.x.json.{dead}.0123abcd.tmp"])
    assert check_lake(wh) == []


def test_check_finds_truncated_and_corrupt_files(tmp_path):
    wh = WarehousePaths.of(tmp_path / "wh")
    with Run(wh, "t", {}) as run:
        run.write("attention_maps", _maps("m", ["a"], 0.1), unit_key=["a"],
                  partition={"model": "m"})
        run.write("ann_styles", pa.table({"style_id": ["Q1"], "name": ["x"]}), unit_key="*")
    files = [wh.root / f["path"] for m in read_manifests(wh).manifests for f in m["files"]]
    data = files[0].read_bytes()
    files[0].write_bytes(data[: len(data) // 2])
    files[1].write_bytes(files[1].read_bytes()[:-1] + b"X")
    problems = check_lake(wh)
    assert {p.kind for p in problems} >= {"size", "checksum"}
    assert all(p.run_id for p in problems)


def test_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "x.lock"
    with FileLock(path, blocking=False, label="first"), pytest.raises(LockHeld, match="first"):
        FileLock(path, blocking=False).acquire()
    with FileLock(path, blocking=False):
        pass
