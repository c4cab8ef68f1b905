"""Tiny (or base-size) RANDOM-WEIGHT models with a backbone spec's exact layout.

For tests, benchmarks and the demo: the same transformers class, patch size, registers,
pooling head, projection and (for ResNet) stage layout as the real checkpoint, saved with
``save_pretrained`` so they load through the same code as real weights. Every such model
is marked: a ``RANDOM_WEIGHTS.txt`` file, a ``ssl_wc_random_weights: true`` config key,
and a spec with ``random_weights=True`` and key ``<key>-random``.

Functions take a spec (``ssl_wc.models.registry`` offers the same by key); this module
imports only ``spec`` (torch and transformers lazily, in :func:`build_random_model`).

Public: :func:`tiny_config`, :func:`build_random_model`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ssl_wc.models.spec import (
    RANDOM_WEIGHTS_CONFIG_KEY,
    RANDOM_WEIGHTS_MARKER,
    AnySpec,
    CnnSpec,
    ModelSpec,
)


def tiny_config(
    spec: AnySpec,
    *,
    grid: tuple[int, int] | int = 3,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
) -> dict[str, Any]:
    """The same architecture as ``spec`` at tiny size (same patch size, same registers).

    ViTs: ``grid`` sets ``image_size = grid * patch`` (square position tables are what the
    checkpoints have; non-square inputs go through each model's position interpolation);
    DINOv2 keeps a larger native table than its input, as the real model (518 vs 224);
    NaFlex models get a ``grid x grid`` position table (``num_patches``). CNNs keep the
    stage layout (bottleneck, 4 stages, 1000 ImageNet classes) with one block per stage
    and narrow stages (widths h/2, h, 2h, 4h with h = ``hidden_size`` rounded down to a
    multiple of 8); ``grid``, ``num_layers`` and ``num_heads`` do not apply.
    """
    cfg = dict(spec.config)
    cfg[RANDOM_WEIGHTS_CONFIG_KEY] = True
    if isinstance(spec, CnnSpec):
        h = max(8, hidden_size // 8 * 8)  # bottleneck widths divide by 4 at every stage
        widths = [h // 2, h, 2 * h, 4 * h][:len(spec.stage_strides)]
        cfg.update(embedding_size=max(4, h // 4), depths=[1] * len(spec.stage_strides),
                   hidden_sizes=widths)
        return cfg
    g = grid if isinstance(grid, int) else max(grid)
    cfg["hidden_size"] = hidden_size
    cfg["num_hidden_layers"] = num_layers
    cfg["num_attention_heads"] = num_heads
    if "intermediate_size" in cfg:
        cfg["intermediate_size"] = 2 * hidden_size
    if "decoder_hidden_size" in cfg:
        cfg.update(decoder_hidden_size=16, decoder_num_hidden_layers=1,
                   decoder_num_attention_heads=2, decoder_intermediate_size=32)
    if "projection_dim" in cfg:
        cfg["projection_dim"] = max(1, hidden_size // 2)  # distinct from the width
    if "num_patches" in cfg:  # NaFlex: a square learned position table, g x g
        cfg["num_patches"] = g * g
    else:
        # DINOv2: keep the "trained larger than evaluated" shape of the real checkpoint.
        cfg["image_size"] = (g + 2 if spec.key == "dinov2" else g) * spec.patch_size
    return cfg


def _default_input_hw(spec: AnySpec, cfg: Mapping[str, Any], grid: Any,
                      explicit_config: bool) -> tuple[int, int]:
    if isinstance(spec, CnnSpec) or explicit_config:
        return spec.input_hw
    gh, gw = (grid, grid) if isinstance(grid, int) else grid
    return gh * spec.patch_size, gw * spec.patch_size


def build_random_model(
    spec: AnySpec,
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    *,
    config: Mapping[str, Any] | None = None,
    input_hw: tuple[int, int] | None = None,
    **tiny_kwargs: Any,
) -> AnySpec:
    """Save a RANDOM-WEIGHT model of ``spec``'s architecture to ``out_dir``; return its spec.

    The model is saved with ``save_pretrained`` so it loads through exactly the same code
    as real weights (``load_model(spec)`` with ``spec.local_dir``); a model with a
    projection is saved as its wrapper class (CLIP: ``CLIPVisionModelWithProjection``), as
    the real checkpoint holds it. ``config`` (default: :func:`tiny_config`) may be a
    base-size config for benchmarks. The folder gets a ``RANDOM_WEIGHTS.txt`` marker, the
    config a ``ssl_wc_random_weights: true`` key and the spec ``random_weights=True`` and
    key ``<key>-random``: never report these as results.
    """
    import torch
    import transformers

    cfg = dict(config) if config is not None else tiny_config(spec, **tiny_kwargs)
    cfg[RANDOM_WEIGHTS_CONFIG_KEY] = True
    class_name = (spec.load_class if isinstance(spec, ModelSpec) else None) or spec.architecture
    model_cls = getattr(transformers, class_name)
    hf_config = model_cls.config_class(**{k: v for k, v in cfg.items() if k != "model_type"})
    torch.manual_seed(seed)
    model = model_cls(hf_config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    (out / RANDOM_WEIGHTS_MARKER).write_text(
        f"RANDOM WEIGHTS: {class_name} with the {spec.key!r} layout, seed {seed}.\n"
        "Built by ssl_wc.models.random_models.build_random_model for tests and benchmarks.\n"
        "Not a trained model: never report maps from it as results.\n"
    )
    if input_hw is None:
        input_hw = _default_input_hw(spec, cfg, tiny_kwargs.get("grid", 3), config is not None)
    extra: dict[str, Any] = {}
    if isinstance(spec, ModelSpec) and spec.max_num_patches is not None:
        extra["max_num_patches"] = int(cfg["num_patches"])
    return dataclasses.replace(
        spec,
        key=f"{spec.key}-random",
        hub_id=None,
        local_dir=str(out.resolve()),
        revision=None,
        config=cfg,
        input_hw=input_hw,
        random_weights=True,
        notes=f"RANDOM WEIGHTS (seed {seed}); layout of {spec.key!r}. {spec.notes}".strip(),
        **extra,
    )
