"""Benchmark: the metrics job as users run it, before and after issue 18.

``ssl-wc metrics`` reads the committed maps from the lake, scores every map against its
image's union of boxes and each box alone, writes ``metrics_map`` and ``metrics_iou``
and commits. This builds (once; reused) a warehouse of real-format attention maps with
the test fixture builder: ``--images`` images (1-10 boxes each), two models (14x14 and
16x16 grids), one method, 12 layers x (12 heads + the fused mean). Then, each in its own
process on its own copy of that warehouse:

- after: the current job (``materialise_metrics``, scoring only: baselines and
  summaries are separate parts), with ``--workers`` threads (default 1: one core), and
  with 2 to show the scaling;
- before: the job as of ``previous.PREVIOUS`` (git history), one scoring thread.

Both first load their compiled loops on a tiny input, so the figures are the job's
steady state (the one-off compile is in ``bench_demo.py``). Prints maps/s and rows/s
(rows = map x target pairs) per wall second and per CPU second, and the speed-up.

    python benchmarks/bench_metrics_job.py [--images 139] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

from previous import PREVIOUS, previous_tree  # noqa: E402

FIXTURE_VERSION = "metrics-job-fixture-1"

DRIVER = r'''
import json, sys, time
from pathlib import Path
root, workers, old = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "old"
import numpy as np
import ingest.metrics as job
from ssl_wc.paths import WarehousePaths
from ssl_wc.metrics.kernels import score_maps
score_maps(np.random.default_rng(0).random((2, 14, 14)), [np.array([[.1, .1, .3, .3]])] * 2)
wh = WarehousePaths.of(root)
if old:  # the previous job: one scoring thread, no summaries (a separate part)
    job.SCORE_WORKERS = workers
    job.materialise_summaries = lambda *a, **k: job.JobResult("summaries", "skipped")
    kwargs = {}
else:
    kwargs = {"workers": workers, "summaries": False}
c0, t0 = time.process_time(), time.perf_counter()
res = job.materialise_metrics(wh, baselines=False, **kwargs)
cpu, wall = time.process_time() - c0, time.perf_counter() - t0
m = res[0]
print(json.dumps({"status": m.status, "maps": m.new, "seconds": m.seconds, "wall": wall,
                  "cpu": cpu}))
'''


def build(root: Path, n_images: int) -> None:
    from dashboard_fixture import FixtureSpec, ModelSpec, build_warehouse

    models = (ModelSpec("dinov3", (14, 14), ("cls",), quality=0.133, peak=1.0),
              ModelSpec("dinov2", (16, 16), ("cls",), quality=0.082, peak=1.0))
    spec = FixtureSpec(n_images=n_images, models=models, n_layers=12, n_heads=12,
                       fused=(-1,), metrics=False, summaries=False, baselines=(),
                       history=False, missing_files=0, image_size=(320, 480),
                       images_per_write=26)
    build_warehouse(root, spec)


def rows_per_map(root: Path) -> float:
    from ssl_wc.warehouse import read_named

    boxes = read_named(root, "job_annotation_boxes")
    images = read_named(root, "job_annotated_images")
    return 1.0 + boxes.height / max(images.height, 1)


def run(root: Path, workers: int, old: bool) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSL_WC_")}
    env["PYTHONPATH"] = str(previous_tree() if old else REPO)
    out = subprocess.run([sys.executable, "-c", DRIVER, str(root), str(workers),
                          "old" if old else "new"],
                         cwd=previous_tree() if old else REPO, env=env, capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=139)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--skip-before", action="store_true")
    args = ap.parse_args()
    base = REPO / "bench_out" / f"metrics_job_wh_{args.images}"
    marker = base / "FIXTURE"
    if args.rebuild or not marker.exists() or marker.read_text().strip() != FIXTURE_VERSION:
        shutil.rmtree(base, ignore_errors=True)
        t0 = time.perf_counter()
        build(base, args.images)
        marker.write_text(FIXTURE_VERSION + "\n")
        print(f"built the input warehouse in {time.perf_counter() - t0:.0f} s")
    per_map = rows_per_map(base)
    print(f"input: {args.images} images, {per_map - 1:.2f} boxes per image: every map is "
          f"scored against {per_map:.2f} targets; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    cases = [("after", args.workers, False)]
    if args.workers == 1:
        cases.append(("after", 2, False))
    if not args.skip_before:
        cases.append((f"before (git {PREVIOUS})", 1, True))
    results = {}
    for label, workers, old in cases:
        copy = base.parent / f"{base.name}_run"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(base, copy)
        r = run(copy, workers, old)
        shutil.rmtree(copy, ignore_errors=True)
        rows = r["maps"] * per_map
        results[(label, workers)] = r
        print(f"{label:24} workers={workers}: {r['maps']:,} maps ({rows:,.0f} rows) in "
              f"{r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU: {r['maps'] / r['wall']:,.0f} "
              f"maps/s, {rows / r['wall']:,.0f} rows/s wall; {r['maps'] / r['cpu']:,.0f} "
              f"maps/s, {rows / r['cpu']:,.0f} rows/s per CPU second")
    one = results.get(("after", 1))
    if one is not None and ("after", 2) in results:
        two = results[("after", 2)]
        print(f"scaling to 2 workers: {one['wall'] / two['wall']:.2f}x wall "
              f"(CPU {two['cpu'] / one['cpu']:.2f}x of one worker's)")
    prev = [v for (lbl, _), v in results.items() if lbl.startswith("before")]
    if one is not None and prev:
        print(f"speed-up vs before, one core: {prev[0]['wall'] / one['wall']:.2f}x wall, "
              f"{prev[0]['cpu'] / one['cpu']:.2f}x CPU")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
