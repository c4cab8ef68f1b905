"""Benchmark: the attention ingest job vs a bare forward pass, on a base-size ViT.

Builds a RANDOM-WEIGHT model with the real DINOv2-with-registers base layout (768 wide,
12 layers, 12 heads, 4 registers, 16x16 patches at 224 px) through the same loading code
as real weights, and a warehouse holding N synthetic demo images. Then, in one process:

(a) reference: a bare forward pass with ``output_attentions=True`` over the same images
    (already preprocessed, batch size B), timed twice (before and after the ingest; the
    faster counts, since load from other processes only ever adds time);
(b) ``ssl-wc ingest attention`` for that model with ``cls``, ``rollout`` and ``mean`` at
    every layer and every head plus the fused mean (and features), i.e. reading the JPEGs,
    preprocessing, extraction, streaming Parquet writes, the commit and the catalog swap.
    Model loading is excluded from both and printed separately.

Prints the ratio (b)/(a) (goal <= 1.10), maps written, throughput and peak RSS.

    .venv/bin/python benchmarks/bench_ingest.py [--images 48] [--batch 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssl_wc.resources import peak_rss_mb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()

    import numpy as np
    import torch
    from base_setup import base_vit_warehouse
    from PIL import Image

    from ingest.attention import AttentionJob, _image_rows, ingest_attention
    from ssl_wc.lake.catalog import read_manifests
    from ssl_wc.models.extract import forward_kwargs
    from ssl_wc.models.loading import load_model
    from ssl_wc.models.preprocess import PreprocessConfig, preprocess_batch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wh, spec = base_vit_warehouse(root, args.images)
        t = time.perf_counter()
        model = load_model(spec, device="cpu").model
        load_s = time.perf_counter() - t

        rows = _image_rows(wh)
        pre = PreprocessConfig.from_spec(spec)
        batches = []
        for s in range(0, len(rows), args.batch):
            ims = [Image.open(p).convert("RGB") for _, p in rows[s:s + args.batch]]
            batches.append(torch.from_numpy(np.asarray(preprocess_batch(ims, pre)[0])))
        n_patches = spec.grid[0] * spec.grid[1]

        def bare() -> float:
            t0 = time.perf_counter()
            with torch.inference_mode():
                for px in batches:
                    out = model(pixel_values=px, output_attentions=True,
                                **forward_kwargs(model, n_patches, px.shape[0]))
                    assert len(out.attentions) == spec.num_layers
            return time.perf_counter() - t0

        bare()  # warm-up
        ref1 = bare()
        rss_bare = peak_rss_mb()
        job = AttentionJob(models=[spec.key], specs={spec.key: spec},
                           methods=("cls", "rollout", "mean"), batch_size=args.batch,
                           device="cpu", progress=False, force=True,
                           model_factory=lambda _s, _d: model)
        t0 = time.perf_counter()
        res = ingest_attention(wh, job)
        ingest_s = time.perf_counter() - t0
        ref2 = bare()
        ref = min(ref1, ref2)
        summary = next(m for m in read_manifests(wh).manifests
                       if m["kind"] == "attention")["summary"]
        maps = summary["maps"]
        lake_mb = sum(p.stat().st_size for p in wh.lake.rglob("*.parquet")) / 2**20
        print(json.dumps({"status": res[0].status}))
        print(f"model: {spec.key} (random weights, dinov2 base layout: 12 layers x 12 heads, "
              f"grid {spec.grid[0]}x{spec.grid[1]}, 4 registers); {len(rows)} images, "
              f"batch {args.batch}, CPU fp32, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads")
        print(f"model load (excluded from both): {load_s:.2f} s")
        print(f"(a) bare forward + attentions: {ref1:.2f} s and {ref2:.2f} s -> {ref:.2f} s "
              f"({ref / len(rows) * 1000:.0f} ms/image)")
        print(f"(b) ingest job (read, preprocess, extract cls+rollout+mean, every layer and "
              f"head + fused, features, write, commit): {ingest_s:.2f} s; "
              f"{maps} maps ({maps / len(rows):.0f} per image), lake {lake_mb:.1f} MiB")
        print(f"    of which forward + extraction: {summary['seconds_model']:.2f} s")
        print(f"ratio ingest / bare forward: {ingest_s / ref:.3f}  (goal <= 1.10)")
        print(f"peak RSS: {rss_bare:.0f} MiB after the bare passes, {peak_rss_mb():.0f} MiB "
              f"after the ingest")


if __name__ == "__main__":
    main()
