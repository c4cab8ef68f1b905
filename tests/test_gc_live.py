"""``gc`` and live writers: a gc loop (no grace period at all) against a writer loop.

gc must never touch what a live process owns (its Parquet temporaries, its published
but not yet committed parts, its catalog temporary): every write succeeds, and the
final state equals an undisturbed one.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, cli_env
from tests.test_spine_faults import USER_TABLES, snapshot

pytestmark = pytest.mark.slow

WRITER = r'''
import json, sys, traceback
from pathlib import Path
from ingest.annotations import ingest_annotations
from ingest.images import ingest_images
from ssl_wc.paths import WarehousePaths
wh, bp, sn, ch, images, n, out = sys.argv[1:8]
wh = WarehousePaths.of(wh)
stats = {"writes": 0, "failures": []}
for i in range(int(n)):
    try:
        if i % 2:
            res = ingest_annotations(wh, Path(bp), Path(sn), Path(ch), force=True,
                                     synthetic=True)
        else:
            res = ingest_images(wh, Path(images), force=True)
        if res.status != "committed":
            stats["failures"].append(f"{i}: {res.line()}")
        stats["writes"] += 1
    except BaseException:
        stats["failures"].append(f"{i}: {traceback.format_exc()[-800:]}")
Path(out).write_text(json.dumps(stats))
'''

GC = r'''
import json, sys, time
from pathlib import Path
from ssl_wc.lake.integrity import garbage_collect
from ssl_wc.paths import WarehousePaths
wh, stop, out = WarehousePaths.of(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
loops, removed, errors = 0, 0, []
while not stop.exists():
    try:
        removed += len(garbage_collect(wh, grace_s=0))
    except Exception as exc:
        errors.append(repr(exc)[:300])
    loops += 1
Path(out).write_text(json.dumps({"loops": loops, "removed": removed, "errors": errors}))
'''


def test_gc_loop_never_breaks_a_writer_loop(annotated_wh, demo_data, tmp_path):
    ref = snapshot(annotated_wh.catalog, USER_TABLES)
    stop, gc_out, w_out = tmp_path / "stop", tmp_path / "gc.json", tmp_path / "writer.json"
    env = cli_env(SSL_WC_FAULT_SLEEP="0.02")  # widen every window between phases
    gc = subprocess.Popen([sys.executable, "-c", GC, str(annotated_wh.root), str(stop),
                           str(gc_out)], cwd=ROOT, env=cli_env())
    try:
        time.sleep(1.0)
        writer = subprocess.run(
            [sys.executable, "-c", WRITER, str(annotated_wh.root),
             str(demo_data.building_parts), str(demo_data.style_names),
             str(demo_data.churches), str(demo_data.images), "32", str(w_out)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    finally:
        stop.touch()
        gc.wait(60)
    assert writer.returncode == 0, writer.stderr[-3000:]
    w, g = json.loads(w_out.read_text()), json.loads(gc_out.read_text())
    line = (f"[gc vs writers] writes={w['writes']} writer_failures={len(w['failures'])} "
            f"gc_loops={g['loops']} gc_removed={g['removed']} gc_errors={len(g['errors'])}")
    print(line)
    with open(ROOT / ".pytest_cache" / "fault_tallies.txt", "a") as fh:
        fh.write(line + "\n")
    assert w["writes"] >= 30 and w["failures"] == [], w["failures"][:3]
    assert g["errors"] == [] and g["loops"] > 10
    assert snapshot(annotated_wh.catalog, USER_TABLES) == ref
    chk = subprocess.run([sys.executable, "-m", "ssl_wc.cli", "-w", str(annotated_wh.root),
                          "check"], cwd=ROOT, env=cli_env(), capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout
