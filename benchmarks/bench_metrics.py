"""Benchmark: the metric kernels on the metrics job's workload, before and after.

Builds ``--n`` attention maps (half 14x14, half 16x16 patch grids, float32 as stored)
for ``--images`` images with 1-10 expert boxes each (mean box area about 1.7 % of the
image). As in ``ssl-wc metrics``, every map is scored against its image's union of
boxes and against each box alone: one *row* per (map, target), 61 values per row (57
before issue 18, which added roc_auc, emd_point, gini and entropy). In one process:

1. the current kernel, ``score_map_targets`` (``--workers`` threads, default 1 = one
   core): rows/s and maps/s, CPU time per row;
2. the previous kernel from git history (``benchmarks/previous.py``: each map repeated
   per target, as the previous job did), on ``--old`` maps: the speed-up per row, and
   the largest difference on every value both compute (the previous ``emd`` is the
   current ``emd_point``);
3. the per-map reference implementation (``reference.py``) on ``--ref`` rows: the
   speed-up and the largest difference per column (counts exactly, the rest <= 1e-6);
4. with ``--profile``: where the time goes per map and per row.

    python benchmarks/bench_metrics.py                 # 20,000 maps
    python benchmarks/bench_metrics.py --n 4000        # quick
    python benchmarks/bench_metrics.py --workers 2     # scaling to two cores
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from previous import PREVIOUS, previous_metrics

from ssl_wc.metrics.kernels import MetricProtocol, score_map_targets
from ssl_wc.metrics.reference import reference_score_maps
from ssl_wc.resources import peak_rss_mb


def make_boxes(rng: np.random.Generator, n_images: int) -> list[np.ndarray]:
    """1-10 boxes per image; log-normal areas with mean ~1.7 %, varied aspect ratios."""
    out = []
    for _ in range(n_images):
        k = int(rng.integers(1, 11))
        area = np.clip(np.exp(rng.normal(np.log(0.017) - 0.5, 1.0, size=k)), 5e-4, 0.5)
        aspect = np.exp(rng.normal(0.0, 0.4, size=k))
        w = np.minimum(np.sqrt(area * aspect), 1.0)
        h = np.minimum(np.sqrt(area / aspect), 1.0)
        left = rng.uniform(0, 1 - w)
        top = rng.uniform(0, 1 - h)
        out.append(np.column_stack([left, top, w, h]))
    return out


def make_maps(rng: np.random.Generator, n: int, grid: int) -> np.ndarray:
    """Attention-like maps: softmax of noise plus a bump, float32."""
    z = rng.normal(size=(n, grid, grid)) * 1.5
    cy, cx = rng.uniform(0, grid, size=(2, n, 1, 1))
    yy, xx = np.mgrid[0:grid, 0:grid]
    z += 3.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)
    z -= z.max(axis=(1, 2), keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=(1, 2), keepdims=True)).astype(np.float32)


def image_targets(boxes: np.ndarray) -> list[np.ndarray]:
    """The job's targets of one image: the union, then each box alone."""
    return [boxes] + [boxes[b : b + 1] for b in range(len(boxes))]


STAGES = {  # profile stage -> function names (cProfile) whose own time it holds
    "upsample": ("upsample_extrema",),
    "rank facts (top-k, ROC-AUC, Gini)": ("rank_maps",),
    "logs, KL and entropy dots": ("row_dots", "paired_dots"),
    "EMD cells and problems": ("transport_pairs", "_emd_columns", "resample_sampled"),
    "EMD network simplex (POT)": ("solve_transport",),
    "target preparation": ("build_target", "soft_target", "squared_distance_to_union",
                           "to_area_grid", "to_grid", "projections", "grid_projections"),
}


def profile(maps: np.ndarray, lists: list[list[np.ndarray]], protocol: MetricProtocol) -> None:
    rows = sum(len(t) for t in lists)
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    score_map_targets(maps, lists, protocol)
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values())
    by_stage = dict.fromkeys(STAGES, 0.0)
    for (_file, _line, name), v in stats.items():
        for stage, names in STAGES.items():
            if name in names:
                by_stage[stage] += v[2]  # own time
    other = total - sum(by_stage.values())
    print(f"\nwhere the time goes ({len(maps):,} maps, {rows:,} rows; CPU time, own time of "
          f"each part):")
    for stage, sec in [*by_stage.items(), ("numpy and Python between them", other)]:
        print(f"  {stage:38s} {sec / len(maps) * 1e6:8.1f} us/map {sec / rows * 1e6:7.1f} "
              f"us/row  {100 * sec / total:5.1f} %")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="maps to score")
    ap.add_argument("--images", type=int, default=139, help="images (target sets)")
    ap.add_argument("--old", type=int, default=None, help="maps for the previous kernel "
                    "(default: the same as --n)")
    ap.add_argument("--ref", type=int, default=300, help="rows for the reference check")
    ap.add_argument("--chunk", type=int, default=8, help="maps per chunk")
    ap.add_argument("--workers", type=int, default=1, help="threads")
    ap.add_argument("--profile", action="store_true", help="print where the time goes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    protocol = MetricProtocol()
    boxes = make_boxes(rng, args.images)
    per_image = [image_targets(b) for b in boxes]
    n14 = args.n // 2
    data = {}
    for grid, count in ((14, n14), (16, args.n - n14)):
        img = np.sort(rng.integers(0, args.images, size=count))  # maps arrive by image
        data[grid] = (make_maps(rng, count, grid), img)
    rows = sum(len(per_image[i]) for _, img in data.values() for i in img)
    print(f"synthetic set: {args.n:,} maps ({n14:,} 14x14, {args.n - n14:,} 16x16), "
          f"{args.images} images, {sum(len(b) for b in boxes)} boxes (mean box area "
          f"{100 * np.mean([float((b[:, 2] * b[:, 3]).mean()) for b in boxes]):.2f} %); "
          f"each map against its union and each box: {rows:,} rows; eval "
          f"{protocol.eval_size}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")

    # compiled loops are built (or loaded from numba's cache) on first use: timed apart
    t0 = time.perf_counter()
    for maps, img in data.values():
        score_map_targets(maps[:2], [per_image[i] for i in img[:2]], protocol)
    print(f"first call (imports, compiled loops built or loaded): "
          f"{time.perf_counter() - t0:.1f} s")

    results = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for grid, (maps, img) in data.items():
        results[grid] = score_map_targets(maps, [per_image[i] for i in img], protocol,
                                          chunk_size=args.chunk, workers=args.workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_values = len(results[14][0]) + len(results[14][1]) * len(protocol.percentiles)
    print(f"current  (score_map_targets, workers={args.workers}): {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU: {rows / wall:,.0f} rows/s ({args.n / wall:,.0f} maps/s) wall, "
          f"{rows / cpu:,.0f} rows/s per core-second of CPU; {cpu / rows * 1e6:.0f} us CPU "
          f"per row, {n_values} values per row; peak RSS {peak_rss_mb():.0f} MiB")

    # the previous kernel on the same maps (repeated per target, as the previous job did)
    old = previous_metrics()
    n_old = args.n if args.old is None else args.old
    old_rows = 0
    old_cpu = old_wall = 0.0
    worst_old: dict[str, float] = {}
    for grid, (maps, img) in data.items():
        k = min(len(maps), n_old * len(maps) // args.n)
        rep = [i for i in range(k) for _ in per_image[img[i]]]
        flat = [t for i in range(k) for t in per_image[img[i]]]
        old.score_maps(maps[:2], flat[:2], protocol)  # its compiled loops: load them first
        t0, c0 = time.perf_counter(), time.process_time()
        tf_old, pp_old = old.score_maps(maps[rep], flat, protocol, chunk_size=args.chunk)
        old_wall += time.perf_counter() - t0
        old_cpu += time.process_time() - c0
        old_rows += len(rep)
        tf_new, pp_new = results[grid]
        for col, want in tf_old.items():
            got = tf_new["emd_point" if col == "emd" else col][: len(rep)]
            diff = np.abs(np.nan_to_num(got - want)).max() if want.size else 0.0
            nan_ok = np.array_equal(np.isnan(got), np.isnan(want))
            worst_old[col] = max(worst_old.get(col, 0.0), float(diff) if nan_ok else np.inf)
        for col, want in pp_old.items():
            got = pp_new[col][: len(rep)]
            diff = np.abs(np.nan_to_num(got - want)).max() if want.size else 0.0
            worst_old[col] = max(worst_old.get(col, 0.0), float(diff))
    print(f"previous (git {PREVIOUS}, score_maps per repeated map): {old_rows:,} rows in "
          f"{old_wall:.1f} s wall, {old_cpu:.1f} s CPU: {old_rows / old_cpu:,.0f} rows/s per "
          f"core-second; {old_cpu / old_rows * 1e6:.0f} us CPU per row")
    print(f"speed-up vs previous, per row: {(old_cpu / old_rows) / (cpu / rows):.2f}x CPU, "
          f"{(old_wall / old_rows) / (wall / rows):.2f}x wall; largest difference on the "
          f"{len(worst_old)} common columns: {max(worst_old.values()):.3g}")

    # the per-map reference on a random subset of rows, same process
    worst: dict[str, float] = {}
    nan_mismatch = 0
    ref_cpu = 0.0
    n_ref = 0
    for grid, (maps, img) in data.items():
        lists = [per_image[i] for i in img]
        row_map = np.repeat(np.arange(len(maps)), [len(t) for t in lists])
        within = np.concatenate([np.arange(len(t)) for t in lists])
        k = min(len(row_map), args.ref * len(row_map) // rows)
        pick = np.sort(rng.choice(len(row_map), size=k, replace=False))
        c0 = time.process_time()
        ref = reference_score_maps(maps[row_map[pick]],
                                   [lists[row_map[r]][within[r]] for r in pick], protocol)
        ref_cpu += time.process_time() - c0
        n_ref += k
        for got_part, ref_part in zip(results[grid], ref, strict=True):
            for col, want in ref_part.items():
                got = got_part[col][pick]
                nan_mismatch += int((np.isnan(got) != np.isnan(want)).sum())
                diff = np.abs(np.nan_to_num(got - want)).max() if want.size else 0.0
                worst[col] = max(worst.get(col, 0.0), float(diff))
    print(f"reference: {n_ref} rows in {ref_cpu:.1f} s CPU, {ref_cpu / n_ref * 1e3:.2f} ms/row; "
          f"speed-up of the current kernel: {(ref_cpu / n_ref) / (cpu / rows):.1f}x CPU")
    print("max |current - reference| per column:")
    for col, diff in worst.items():
        print(f"  {col:20s} {diff:.3g}")
    print(f"NaN pattern mismatches: {nan_mismatch}")
    ok = nan_mismatch == 0 and max(worst.values()) <= 1e-6 and max(worst_old.values()) <= 1e-6
    print("identical values: " + ("yes (max diff <= 1e-6, to the reference and to the "
                                  "previous kernel)" if ok else "NO"))
    if args.profile:
        maps, img = data[14]
        k = min(len(maps), 2000)
        profile(maps[:k], [per_image[i] for i in img[:k]], protocol)
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
