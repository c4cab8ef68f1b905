"""Tiny (or base-size) RANDOM-WEIGHT models with a registered backbone's exact layout.

For tests and benchmarks: the same transformers class, patch size and registers as the
real checkpoint, saved with ``save_pretrained`` so they load through the same code as
real weights. Every such model is marked: a ``RANDOM_WEIGHTS.txt`` file, a
``ssl_wc_random_weights: true`` config key, and a spec with ``random_weights=True`` and key
``<key>-random``.

Public: :func:`tiny_config`, :func:`build_random_model`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ssl_wc.models.spec import RANDOM_WEIGHTS_CONFIG_KEY, RANDOM_WEIGHTS_MARKER, ModelSpec


def tiny_config(
    key: str,
    *,
    grid: tuple[int, int] | int = 3,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
) -> dict[str, Any]:
    """The same architecture as ``key`` at tiny size (same patch size, same registers).

    ``grid`` sets ``image_size = grid * patch`` (square position tables are what the
    checkpoints have; non-square inputs go through each model's position interpolation).
    DINOv2 keeps a larger native table than its input, as the real model (518 vs 224).
    """
    from ssl_wc.models.registry import get_spec

    spec = get_spec(key)
    cfg = dict(spec.config)
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
        cfg["projection_dim"] = hidden_size
    # DINOv2: keep the "trained larger than evaluated" shape of the real checkpoint.
    cfg["image_size"] = (g + 2 if key == "dinov2" else g) * spec.patch_size
    cfg[RANDOM_WEIGHTS_CONFIG_KEY] = True
    return cfg


def build_random_model(
    key: str,
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    *,
    config: Mapping[str, Any] | None = None,
    input_hw: tuple[int, int] | None = None,
    **tiny_kwargs: Any,
) -> ModelSpec:
    """Save a RANDOM-WEIGHT model of ``key``'s architecture to ``out_dir`` and return its spec.

    The model is saved with ``save_pretrained`` so it loads through exactly the same code
    as real weights (``load_model(spec)`` with ``spec.local_dir``). ``config`` (default:
    :func:`tiny_config`) may be a base-size config for benchmarks. The folder gets a
    ``RANDOM_WEIGHTS.txt`` marker, the config a ``ssl_wc_random_weights: true`` key and the
    spec ``random_weights=True`` and key ``<key>-random``: never report these as results.
    """
    import torch
    import transformers

    from ssl_wc.models.registry import get_spec

    base = get_spec(key)
    cfg = dict(config) if config is not None else tiny_config(key, **tiny_kwargs)
    cfg[RANDOM_WEIGHTS_CONFIG_KEY] = True
    model_cls = getattr(transformers, base.architecture)
    hf_config = model_cls.config_class(**{k: v for k, v in cfg.items() if k != "model_type"})
    torch.manual_seed(seed)
    model = model_cls(hf_config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    (out / RANDOM_WEIGHTS_MARKER).write_text(
        f"RANDOM WEIGHTS: {base.architecture} with the {key!r} layout, seed {seed}.\n"
        "Built by ssl_wc.models.registry.build_random_model for tests and benchmarks.\n"
        "Not a trained model: never report maps from it as results.\n"
    )
    if input_hw is None:
        g = tiny_kwargs.get("grid", 3)
        gh, gw = (g, g) if isinstance(g, int) else g
        input_hw = (gh * base.patch_size, gw * base.patch_size)
        if config is not None:
            input_hw = base.input_hw
    return dataclasses.replace(
        base,
        key=f"{key}-random",
        hub_id=None,
        local_dir=str(out.resolve()),
        revision=None,
        config=cfg,
        input_hw=input_hw,
        random_weights=True,
        notes=f"RANDOM WEIGHTS (seed {seed}); layout of {key!r}. {base.notes}".strip(),
    )
