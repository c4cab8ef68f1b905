"""Benchmark: full attention extraction vs a bare forward pass, on a base-size ViT.

Builds a RANDOM-WEIGHT model with the real DINOv2-with-registers base layout (768 wide,
12 layers, 12 heads, patch 14, 4 registers, 224 px input: 261 tokens), saves and reloads it
through ``ssl_wc.models.loading.load_model``, then times, in the same process:

(a) the bare forward pass with ``output_attentions=True`` (eager attention), and
(b) ``extract_batch`` with ``cls``, ``rollout`` and ``mean`` for every layer, every head and
    the fused maps, copied to numpy (plus the per-layer features unless ``--no-features``).

Both run on the same batches, interleaved batch by batch (alternating which goes first)
after one warm-up each. The headline ratio (goal: <= 1.10) compares, batch by batch, the
fastest of the repeats (the ``timeit`` estimator: load from other processes on a shared
machine only ever adds time). Also printed: the median ratio of adjacent (a, b) pairs,
the ratio of process CPU time, and the peak RSS after the warm-ups of (a) and (b).

    .venv/bin/python benchmarks/bench_extract.py [--images 16] [--batch 8] [--repeats 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from ssl_wc.models.extract import extract_batch, forward_kwargs
from ssl_wc.models.loading import load_model
from ssl_wc.models.registry import build_random_model, get_spec
from ssl_wc.resources import peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--fuse", default="mean", help="comma list of mean,max,min")
    ap.add_argument("--no-features", action="store_true")
    args = ap.parse_args()
    fuse = tuple(f for f in args.fuse.split(",") if f)

    base = get_spec("dinov2")
    with tempfile.TemporaryDirectory() as tmp:
        spec = build_random_model("dinov2", Path(tmp) / "dinov2-base-random", seed=0,
                                  config=base.config, input_hw=base.input_hw)
        loaded = load_model(spec, device="cpu")
    model = loaded.model
    h, w = spec.input_hw
    gh, gw = spec.grid
    g = torch.Generator().manual_seed(0)
    images = torch.randn(args.images, 3, h, w, generator=g)
    batches = list(images.split(args.batch))

    def bare(x: torch.Tensor) -> int:
        with torch.inference_mode():
            out = model(pixel_values=x, output_attentions=True,
                        **forward_kwargs(model, gh * gw, x.shape[0]))
        if len(out.attentions) != spec.num_layers:
            raise RuntimeError("bare forward returned no attentions (not eager?)")
        return 0

    def full(x: torch.Tensor) -> int:
        res = extract_batch(model, spec, x, methods=("cls", "rollout", "mean"), layers=None,
                            heads="all", fuse=fuse, features=not args.no_features)
        return len(res.maps)

    for x in batches:  # warm-ups
        bare(x)
    rss_a = peak_rss_mb()
    rows = sum(full(x) for x in batches)
    rss_b = peak_rss_mb()

    # Interleaved per batch, alternating which goes first, so that load from other processes
    # on a shared machine hits both sides alike. wall[side][r][i], cpu[side][r][i].
    n_rep, n_bat = args.repeats, len(batches)
    wall = {s: [[0.0] * n_bat for _ in range(n_rep)] for s in "ab"}
    cpu = {s: [[0.0] * n_bat for _ in range(n_rep)] for s in "ab"}
    fns = {"a": bare, "b": full}
    for r in range(n_rep):
        for i, x in enumerate(batches):
            for side in ("a", "b") if (r + i) % 2 == 0 else ("b", "a"):
                t0, c0 = time.perf_counter(), time.process_time()
                fns[side](x)
                wall[side][r][i] = time.perf_counter() - t0
                cpu[side][r][i] = time.process_time() - c0

    def best(side: str) -> float:  # per batch: the fastest of the repeats, summed
        return sum(min(wall[side][r][i] for r in range(n_rep)) for i in range(n_bat))

    def passes(side: str) -> list[float]:
        return [round(sum(wall[side][r]), 2) for r in range(n_rep)]

    best_a, best_b = best("a"), best("b")
    paired = [wall["b"][r][i] / wall["a"][r][i] for r in range(n_rep) for i in range(n_bat)]
    cpu_ratio = sum(map(sum, cpu["b"])) / sum(map(sum, cpu["a"]))
    print(f"model: RANDOM-WEIGHT {spec.architecture} base layout, {spec.num_layers} layers, "
          f"{spec.num_heads} heads, hidden {spec.hidden_size}, input {h}x{w}, grid {gh}x{gw}, "
          f"{spec.num_prefix_tokens} prefix tokens ({spec.num_tokens()} tokens)")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, images "
          f"{args.images}, batch {args.batch}, repeats {n_rep}, fuse {fuse}, "
          f"features {not args.no_features}")
    print(f"(a) bare forward, output_attentions=True : best {best_a:.3f} s "
          f"({best_a / args.images * 1000:.1f} ms/image)  passes {passes('a')}")
    print(f"(b) extract cls+rollout+mean -> numpy    : best {best_b:.3f} s "
          f"({best_b / args.images * 1000:.1f} ms/image)  passes {passes('b')}")
    print(f"map rows per pass: {rows} ({rows // args.images} per image)")
    ratio = best_b / best_a
    print(f"ratio (b)/(a), per-batch best of {n_rep}: {ratio:.3f}  goal <= 1.10: "
          f"{'OK' if ratio <= 1.10 else 'MISSED'}")
    print(f"ratio (b)/(a), median of {len(paired)} adjacent pairs: "
          f"{statistics.median(paired):.3f}; process CPU time: {cpu_ratio:.3f}")
    print(f"peak RSS: after (a) warm-up {rss_a:.0f} MB, after (b) warm-up {rss_b:.0f} MB, "
          f"end {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
