"""Benchmark: ``ingest attention`` on the local engine vs the Ray engine with 1 and 2 actors.

Builds a RANDOM-WEIGHT model with the real DINOv2-with-registers base layout (768 wide,
12 layers, 12 heads, 4 registers, 16x16 patches at 224 px; saved to disk, loaded through
the same code as real weights) and a warehouse of N synthetic demo images (default 139,
the size of the annotated WikiChurches set). Then, in one process, on fresh copies of
that warehouse, the same job (``cls``, ``rollout``, ``mean`` at every layer and head plus
the fused mean, features, last-layer patch tokens, batch B, CPU fp32):

(a) reference: ``--engine local`` (model load, read, preprocess, extract, write, commit);
(b) ``--engine ray --workers 1`` on a local Ray instance (actor start-up and model load
    in the actor, the batches computed there, streamed back, written and committed by
    the driver);
(c) ``--engine ray --workers 2``.

Every timing is the whole job call, model loading included for both engines. Starting
the Ray instance itself is printed separately and excluded (a cluster outlives its jobs).
The visible rows of (a) and (b) are checked to be identical. Prints images/s of each and
the ratios to (a) (goal for (b): time <= 1.25x (a)).

    .venv/bin/python benchmarks/bench_ray.py [--images 139] [--batch 8]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=139)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()

    import duckdb
    import ray
    import torch
    from base_setup import base_vit_warehouse

    from ingest.attention import AttentionJob, ingest_attention
    from ssl_wc.lake.catalog import read_manifests
    from ssl_wc.paths import WarehousePaths

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        template, spec = base_vit_warehouse(root, args.images, "template")
        cpus = os.cpu_count() or 1
        t = time.perf_counter()
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="ERROR")
        ray_start = time.perf_counter() - t

        def run(name: str, **kw: object) -> tuple[float, WarehousePaths]:
            wh = WarehousePaths.of(root / name)
            shutil.copytree(template.root, wh.root)
            job = AttentionJob(models=[spec.key], specs={spec.key: spec},
                               methods=("cls", "rollout", "mean"), batch_size=args.batch,
                               device="cpu", progress=False, **kw)  # type: ignore[arg-type]
            t0 = time.perf_counter()
            res = ingest_attention(wh, job)
            seconds = time.perf_counter() - t0
            assert res[0].status == "committed", res[0].line()
            return seconds, wh

        local_s, local_wh = run("local")
        ray1_s, ray1_wh = run("ray1", engine="ray", workers=1)
        ray2_s, _ = run("ray2", engine="ray", workers=2)
        ray.shutdown()

        def rows(wh: WarehousePaths) -> list[tuple]:
            con = duckdb.connect(str(wh.catalog), read_only=True)
            con.execute(f"SET VARIABLE ssl_wc_root = '{wh.root.as_posix()}'")
            try:
                return sorted(con.sql("SELECT * EXCLUDE (run_id) FROM _raw_attention_maps")
                              .fetchall(), key=repr)
            finally:
                con.close()

        same = rows(local_wh) == rows(ray1_wh)
        summary = next(m for m in read_manifests(ray1_wh).manifests
                       if m["kind"] == "attention")["summary"]
        n = args.images
        print(f"model: {spec.key} (random weights, dinov2 base layout: 12 layers x 12 heads, "
              f"grid {spec.grid[0]}x{spec.grid[1]}); {n} images, batch {args.batch}, CPU "
              f"fp32, {cpus} cores, torch {torch.__version__}, ray {ray.__version__}")
        print(f"Ray instance start (excluded): {ray_start:.2f} s")
        print(f"(a) local engine:        {local_s:7.2f} s  {n / local_s:6.2f} images/s")
        print(f"(b) Ray, 1 actor:        {ray1_s:7.2f} s  {n / ray1_s:6.2f} images/s  "
              f"(worker threads {summary['worker_threads']}, driver writing "
              f"{summary['driver_write_seconds']:.2f} s = "
              f"{summary['driver_write_seconds'] / n * 1000:.1f} ms/image)")
        print(f"(c) Ray, 2 actors:       {ray2_s:7.2f} s  {n / ray2_s:6.2f} images/s")
        print(f"visible maps of (a) and (b) identical: {same}")
        print(f"ratio (b)/(a): {ray1_s / local_s:.3f}  (goal <= 1.25)")
        print(f"ratio (c)/(a): {ray2_s / local_s:.3f}")


if __name__ == "__main__":
    main()
