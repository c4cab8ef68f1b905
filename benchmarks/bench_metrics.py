"""Benchmark: materialise every metric for a full-scale synthetic warehouse.

Builds ``--n`` attention maps (half 14x14, half 16x16 patch grids, float32 as stored)
for ``--images`` images with 1-10 expert boxes each (mean box area about 1.7 % of the
image), scores each map against its image's union target or one of its boxes (as the
ingest does), prints maps/second, then runs the per-map reference implementation on a
random subset in the same process: the per-map time ratio and the largest difference
per column (counts must agree exactly, continuous metrics to rounding).

    python benchmarks/bench_metrics.py            # 100,000 maps
    python benchmarks/bench_metrics.py --n 5000   # quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssl_wc.metrics.kernels import MetricProtocol, score_maps
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


def assign_targets(rng: np.random.Generator, n: int, boxes: list[np.ndarray]) -> list[np.ndarray]:
    """Each map scores one image's union target (half) or one of its boxes (half)."""
    image = rng.integers(0, len(boxes), size=n)
    image.sort()  # maps arrive grouped by image, as in the lake
    targets = []
    for i in image:
        b = boxes[int(i)]
        if rng.random() < 0.5:
            targets.append(b)
        else:
            j = int(rng.integers(0, len(b)))
            targets.append(b[j : j + 1])
    return targets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="maps to score")
    ap.add_argument("--images", type=int, default=139, help="images (targets)")
    ap.add_argument("--ref", type=int, default=500, help="maps for the reference check")
    ap.add_argument("--chunk", type=int, default=8, help="score_maps chunk_size")
    ap.add_argument("--workers", type=int, default=1, help="score_maps threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    protocol = MetricProtocol()
    boxes = make_boxes(rng, args.images)
    areas = [float((b[:, 2] * b[:, 3]).mean()) for b in boxes]
    n14 = args.n // 2
    groups = {14: n14, 16: args.n - n14}
    data = {}
    for grid, count in groups.items():
        data[grid] = (make_maps(rng, count, grid), assign_targets(rng, count, boxes))
    print(
        f"synthetic set: {args.n:,} maps ({n14:,} 14x14, {args.n - n14:,} 16x16), "
        f"{args.images} images, {sum(len(b) for b in boxes)} boxes "
        f"(mean box area {100 * np.mean(areas):.2f} %), eval {protocol.eval_size}, "
        f"protocol {protocol.hash()}"
    )

    # The compiled loops are built (or loaded from numba's cache) on first use: a
    # one-off cost per process, timed here and kept out of the throughput figure.
    t0 = time.perf_counter()
    for maps, targets in data.values():
        score_maps(maps[:4], targets[:4], protocol)
    print(f"first call (imports, compiled loops built or loaded): {time.perf_counter() - t0:.1f} s")

    results = {}
    t0, c0 = time.perf_counter(), time.process_time()
    for grid, (maps, targets) in data.items():
        results[grid] = score_maps(
            maps, targets, protocol, chunk_size=args.chunk, workers=args.workers
        )
    batch_s = time.perf_counter() - t0
    batch_cpu = time.process_time() - c0
    per_map_batch = batch_s / args.n
    n_cols = len(results[14][0]) + len(results[14][1]) * len(protocol.percentiles)
    print(
        f"score_maps: {batch_s:.1f} s wall ({batch_cpu:.1f} s CPU), "
        f"{args.n / batch_s:,.0f} maps/s ({per_map_batch * 1e6:.0f} us/map wall, "
        f"{batch_cpu / args.n * 1e6:.0f} us/map CPU; {n_cols} values per map, "
        f"workers={args.workers}, chunk={args.chunk})"
    )
    peak = peak_rss_mb()
    print(f"peak RSS: {peak:.0f} MiB")

    # reference on a random subset, same process
    worst: dict[str, float] = {}
    nan_mismatch = 0
    ref_s = 0.0
    ref_cpu = 0.0
    n_ref = 0
    for grid, (maps, targets) in data.items():
        k = min(len(maps), args.ref * len(maps) // args.n)
        pick = np.sort(rng.choice(len(maps), size=k, replace=False))
        t0, c0 = time.perf_counter(), time.process_time()
        ref = reference_score_maps(maps[pick], [targets[i] for i in pick], protocol)
        ref_s += time.perf_counter() - t0
        ref_cpu += time.process_time() - c0
        n_ref += k
        for got_part, ref_part in zip(results[grid], ref, strict=True):
            for col, want in ref_part.items():
                got = got_part[col][pick]
                nan_mismatch += int((np.isnan(got) != np.isnan(want)).sum())
                diff = np.abs(np.nan_to_num(got - want)).max() if want.size else 0.0
                worst[col] = max(worst.get(col, 0.0), float(diff))
    per_map_ref = ref_s / n_ref
    print(
        f"reference: {n_ref} maps in {ref_s:.1f} s wall ({ref_cpu:.1f} s CPU), "
        f"{per_map_ref * 1e3:.2f} ms/map"
    )
    print(
        f"per-map speed-up: {per_map_ref / per_map_batch:.1f}x wall, "
        f"{(ref_cpu / n_ref) / (batch_cpu / args.n):.1f}x CPU time"
    )
    print("max |batched - reference| per column:")
    for col, diff in worst.items():
        print(f"  {col:20s} {diff:.3g}")
    print(f"NaN pattern mismatches: {nan_mismatch}")
    ok = nan_mismatch == 0 and max(worst.values()) <= 1e-6
    print("identical values: " + ("yes (max diff <= 1e-6)" if ok else "NO"))
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
