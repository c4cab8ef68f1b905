"""Benchmark: the faithfulness job's cost per image and model, in bare forward passes.

Builds a RANDOM-WEIGHT model with a registered backbone's real layout (default: the
DINOv2-with-registers base layout, 12 layers x 768 wide, 16x16 patches at 224 px, so a
16x16 grid of 256 cells) and a warehouse of N synthetic demo images with its attention
maps (``cls``, mean-fused). Then, in one process:

(a) reference: one bare forward pass of the model (pooled output, no attentions) over the
    same preprocessed images, batch size B, timed before and after (the faster counts);
(b) the deletion check of ``ssl-wc faithfulness`` (16 steps, ROAD removal): reading the
    maps, preprocessing, the orders, ROAD imputation, the batched forwards, writing. The
    time is the check's own (model loading, the commit and the catalog swap excluded and
    printed separately), per image, divided by (a) per image;
(c) optionally (``--mprt``) the randomisation cascade of the same maps.

Forwards per image: 2 (the image, everything removed) + 15 for the random-order control
+ 30 per map (15 deletion + 15 insertion images); the job counts the forwards it ran.

    .venv/bin/python benchmarks/bench_faithfulness.py [--images 4] [--batch 32]
        [--layers -1] [--layout base|tiny] [--mprt] [--device cpu|cuda]

``--no-warehouse`` times the same work without the warehouse (no DuckDB, Polars or
Parquet: for a machine that has only torch): synthetic images, the model's own mean-fused
CLS maps at ``--layers``, the deletion scorer (orders, ROAD, batched forwards) and, with
``--mprt``, the cascade's extractions and similarities.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import demo_warehouse, real_layout_model
from ssl_wc.resources import peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--layers", default="-1", help="maps per image: 0-based layers, e.g. -1")
    ap.add_argument("--layout", choices=("base", "tiny"), default="base")
    ap.add_argument("--model", default="dinov2")
    ap.add_argument("--mprt", action="store_true", help="also time the randomisation cascade")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto", help="model weights: auto (bf16 on CUDA), float32")
    ap.add_argument("--imputation", default="road", choices=("road", "blur", "constant"))
    ap.add_argument("--no-warehouse", action="store_true",
                    help="time the scorer and the cascade alone (see the docstring)")
    args = ap.parse_args()
    layers = [int(v) for v in args.layers.split(",")]
    if args.no_warehouse:
        lean(args, layers)
        return

    import numpy as np
    import torch
    from PIL import Image

    from ingest.attention import AttentionJob, _image_rows, ingest_attention, quiet_hf
    from ingest.faithfulness import FaithfulnessJob, run_faithfulness
    from ssl_wc.faithfulness.protocol import DeletionProtocol
    from ssl_wc.lake.catalog import read_manifests
    from ssl_wc.models.extract import forward_kwargs
    from ssl_wc.models.loading import load_model
    from ssl_wc.models.preprocess import PreprocessConfig, preprocess_batch
    from ssl_wc.models.registry import build_random_model

    quiet_hf()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wh = demo_warehouse(root, args.images)
        if args.layout == "base":
            spec = real_layout_model(args.model, root / "model")
        else:
            spec = build_random_model(args.model, root / "model", seed=0, grid=8,
                                      hidden_size=64, num_layers=4, num_heads=4)
        specs = {spec.key: spec}
        ingest_attention(wh, AttentionJob(models=[spec.key], specs=specs, methods=("cls",),
                                          layers=layers, heads=[], device=args.device,
                                          progress=False, features=False))
        t = time.perf_counter()
        model = load_model(spec, device=args.device).model
        load_s = time.perf_counter() - t
        rows = _image_rows(wh)
        pre = PreprocessConfig.from_spec(spec)
        ims = [Image.open(p).convert("RGB") for _, p in rows]
        pixels = torch.from_numpy(np.asarray(preprocess_batch(ims, pre)[0])).to(
            next(model.parameters()).device)
        gh, gw = spec.grid

        def bare() -> float:
            t0 = time.perf_counter()
            with torch.inference_mode():
                for s in range(0, len(pixels), args.batch):
                    px = pixels[s:s + args.batch]
                    model(pixel_values=px, **forward_kwargs(model, gh * gw, px.shape[0]))
            return time.perf_counter() - t0

        bare()  # warm-up
        ref1 = bare()
        checks = ("deletion", "mprt") if args.mprt else ("deletion",)
        job = FaithfulnessJob(models=[spec.key], layers=layers, checks=checks, specs=specs,
                              device=args.device, batch_size=args.batch, controls=False,
                              deletion=DeletionProtocol(steps=16), progress=False,
                              summaries=False)
        t0 = time.perf_counter()
        res = run_faithfulness(wh, job)
        job_s = time.perf_counter() - t0
        ref2 = bare()
        ref = min(ref1, ref2) / len(rows)
        summ = next(m for m in read_manifests(wh).manifests
                    if m["kind"] == "faithfulness")["summary"]
        dele = summ["deletion"]
        n_maps = dele["rows"] - len(rows)  # rows include one random control per image
        per_image = dele["seconds"] / len(rows)
        fwd_per_image = dele["forwards"] / len(rows)
        print(json.dumps({"status": [r.status for r in res]}))
        print(f"model: {spec.key} (random weights, {args.model} {args.layout} layout: "
              f"{spec.num_layers} layers, {spec.hidden_size} wide, grid {gh}x{gw} = "
              f"{gh * gw} cells); {len(rows)} images; batch {args.batch}; CPU fp32, torch "
              f"{torch.__version__}, {torch.get_num_threads()} threads")
        print(f"model load (excluded): {load_s:.2f} s; whole job incl. load, commit and "
              f"catalog swap: {job_s:.2f} s")
        print(f"(a) bare forward: {ref1:.2f} s and {ref2:.2f} s for {len(rows)} images -> "
              f"{ref * 1000:.1f} ms/image")
        print(f"(b) deletion + insertion (16 steps, ROAD, random control) of {n_maps // len(rows)}"
              f" map(s) per image: {per_image * 1000:.0f} ms/image, {fwd_per_image:.1f} "
              f"forwards/image (formula 2 + 15 + 30 x maps = "
              f"{2 + 15 + 30 * (n_maps // len(rows))}); ROAD solver: up to "
              f"{dele['road_max_iterations']} iterations, worst relative residual "
              f"{dele['road_max_rel_residual']:.1e}")
        print(f"ratio job / bare forward, per image: {per_image / ref:.1f}  (forwards run: "
              f"{fwd_per_image:.1f}; of which the map's deletion + insertion: "
              f"{2 + 30 * (n_maps // len(rows))}, goal about 35)")
        if args.mprt:
            m = summ["mprt"]
            print(f"(c) randomisation cascade: {m['seconds'] / len(rows) * 1000:.0f} ms/image for "
                  f"{m['steps']} steps ({m['seconds'] / len(rows) / ref:.1f} bare forwards)")
        print(f"peak RSS: {peak_rss_mb():.0f} MiB")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def lean(args: argparse.Namespace, layers: list[int]) -> None:
    """The deletion scorer and the cascade timed against bare forwards, no warehouse."""
    import numpy as np
    import torch

    from benchmarks.common import real_layout_model
    from ssl_wc.faithfulness.deletion import CurveScorer, ImageRequest, random_order, rank_cells
    from ssl_wc.faithfulness.protocol import DeletionProtocol
    from ssl_wc.faithfulness.randomisation import (
        CascadeRandomiser,
        init_std,
        parameter_stages,
    )
    from ssl_wc.faithfulness.similarity import spearman_rows
    from ssl_wc.models.extract import block_modules, extract_batch, forward_kwargs
    from ssl_wc.models.loading import load_model
    from ssl_wc.models.registry import build_random_model

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.layout == "base":
            spec = real_layout_model(args.model, Path(tmp) / "model")
        else:
            spec = build_random_model(args.model, Path(tmp) / "model", seed=0, grid=8,
                                      hidden_size=64, num_layers=4, num_heads=4)
        model = load_model(spec, device=args.device, dtype=args.dtype).model
    dev = next(model.parameters()).device
    gh, gw = spec.grid
    h, w = spec.input_hw
    g = torch.Generator().manual_seed(0)  # smooth random "photos", normalised
    x = torch.nn.functional.avg_pool2d(torch.randn(args.images, 3, h + 8, w + 8, generator=g),
                                       9, stride=1) * 3
    x = x.to(dev)

    def bare() -> float:
        _sync(args.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            for s in range(0, len(x), args.batch):
                px = x[s:s + args.batch]
                model(pixel_values=px, **forward_kwargs(model, gh * gw, px.shape[0]))
        _sync(args.device)
        return (time.perf_counter() - t0) / len(x)

    bare()
    ref1 = bare()
    layers1 = sorted({(v % spec.num_layers) + 1 for v in layers})
    res = extract_batch(model, spec, x, methods=("cls",), layers=layers1, heads=None,
                        fuse=("mean",), features=False)
    maps = res.maps

    def embed(batch: torch.Tensor) -> torch.Tensor:
        out = extract_batch(model, spec, batch, methods=(), heads=None, fuse=(),
                            features=True, feature_layers=[])
        assert out.features is not None
        return torch.from_numpy(out.features.vectors)

    proto = DeletionProtocol(steps=16, imputation=args.imputation)
    scorer = CurveScorer(embed, proto, (gh, gw), (h, w), [1.0 / s for s in spec.std],
                         batch_size=args.batch)
    requests = []
    for i in range(len(x)):
        tie = random_order(f"img{i}", gh * gw)
        orders = {f"cls|{li}": rank_cells(maps.select(image=i, layer=li).values[0], tie)
                  for li in layers1}
        requests.append(ImageRequest(f"img{i}", x[i], orders, [tie]))
    _sync(args.device)
    t0 = time.perf_counter()
    for s in range(0, len(requests), 8):
        scorer.score(requests[s:s + 8])
    _sync(args.device)
    per_image = (time.perf_counter() - t0) / len(x)
    ref = min(ref1, bare())
    m = len(layers1)
    print(f"model: {spec.key} ({args.model} {args.layout} layout: {spec.num_layers} layers, "
          f"{spec.hidden_size} wide, grid {gh}x{gw}); {len(x)} images; batch {args.batch}; "
          f"device {dev}, weights {next(model.parameters()).dtype}; torch {torch.__version__}")
    print(f"(a) bare forward: {ref * 1000:.2f} ms/image")
    print(f"(b) deletion + insertion scorer (16 steps, {args.imputation} removal, random "
          f"control), {m} map(s) per "
          f"image: {per_image * 1000:.2f} ms/image, {scorer.forwards / len(x):.1f} forwards/"
          f"image (2 + 15 + 30 x {m} = {2 + 15 + 30 * m}); ROAD: up to "
          f"{scorer.stats.iterations} iterations, worst residual "
          f"{scorer.stats.max_rel_residual:.1e}, unsolved {scorer.stats.unsolved}")
    print(f"ratio scorer / bare forward, per image: {per_image / ref:.1f}  (the map's own "
          f"deletion + insertion: {2 + 30 * m} forwards; goal about 35 per map)")
    if args.mprt:
        blocks = block_modules(model)
        probe = x[:1]
        stages = parameter_stages(model, blocks, lambda: model(
            pixel_values=probe, **forward_kwargs(model, gh * gw, 1)))
        cascade = CascadeRandomiser(model, stages, seed=42, std=init_std(model))
        trained = maps.values
        _sync(args.device)
        t0 = time.perf_counter()
        rhos = []
        while cascade.step < cascade.num_steps:
            cascade.advance()
            now = extract_batch(model, spec, x, methods=("cls",), layers=layers1, heads=None,
                                fuse=("mean",), features=False).maps.values
            rhos.append(float(np.nanmean(np.abs(spearman_rows(trained, now)))))
        _sync(args.device)
        cas = (time.perf_counter() - t0) / len(x)
        print(f"(c) randomisation cascade ({cascade.num_steps} steps, cls maps, Spearman): "
              f"{cas * 1000:.2f} ms/image = {cas / ref:.1f} bare forwards; mean |rho| by step: "
              + " ".join(f"{r:.2f}" for r in rhos))


if __name__ == "__main__":
    main()
