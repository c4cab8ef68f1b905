"""The backbones: one :class:`ModelSpec` per model key, with the checkpoint's real config.

Each spec pins what the code must never guess: the hub id (or a local folder), the
transformers class, the checkpoint's architecture config as an explicit dict (the library
defaults are *not* these checkpoints: ``DINOv3ViTConfig()`` is a ViT-S without registers,
``CLIPVisionConfig()`` is a B/32), the token layout (CLS, registers, patch size, so the
patch grid for an input size), the preprocessing and the pooled-token rule.

Public here: :func:`get_spec`, :func:`list_specs`, :func:`register`, ``BUILTIN_KEYS``,
and, re-exported from their modules, :class:`ModelSpec` (``spec``),
:func:`spec_from_hf_config`, :func:`user_spec`, :func:`load_user_specs` (``user_specs``),
:func:`tiny_config`, :func:`build_random_model` (``random_models``). This module imports
neither torch nor transformers (only ``build_random_model`` and hub look-ups do, lazily).
"""

from __future__ import annotations

from collections.abc import Iterable
from types import MappingProxyType
from typing import Any

from ssl_wc.models.random_models import build_random_model, tiny_config
from ssl_wc.models.spec import (
    CLIP_MEAN,
    CLIP_STD,
    HALF,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RANDOM_WEIGHTS_CONFIG_KEY,
    RANDOM_WEIGHTS_MARKER,
    Interpolation,
    ModelSpec,
    NativePreprocess,
    PooledRule,
    ResizeMode,
    SpecError,
)
from ssl_wc.models.user_specs import load_user_specs, spec_from_hf_config, user_spec

__all__ = [
    "BUILTIN_KEYS",
    "CLIP_MEAN",
    "CLIP_STD",
    "HALF",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RANDOM_WEIGHTS_CONFIG_KEY",
    "RANDOM_WEIGHTS_MARKER",
    "Interpolation",
    "ModelSpec",
    "NativePreprocess",
    "PooledRule",
    "ResizeMode",
    "SpecError",
    "build_random_model",
    "get_spec",
    "list_specs",
    "load_user_specs",
    "register",
    "spec_from_hf_config",
    "specs_by_key",
    "tiny_config",
    "user_spec",
]


# --------------------------------------------------------------------------------------
# The pinned checkpoints. Values from the public model cards / config.json files; the
# loader checks the layout fields against the loaded config and refuses a mismatch.
# --------------------------------------------------------------------------------------

_DINOV2_CONFIG: dict[str, Any] = {
    "model_type": "dinov2_with_registers",
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "mlp_ratio": 4,
    "patch_size": 14,
    "image_size": 518,
    "num_channels": 3,
    "num_register_tokens": 4,
    "layerscale_value": 1.0,
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "drop_path_rate": 0.0,
    "use_swiglu_ffn": False,
    "initializer_range": 0.02,
}

_DINOV3_CONFIG: dict[str, Any] = {
    "model_type": "dinov3_vit",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "patch_size": 16,
    "image_size": 224,
    "num_channels": 3,
    "num_register_tokens": 4,
    "rope_theta": 100.0,
    "layerscale_value": 1.0,
    "layer_norm_eps": 1e-5,
    "hidden_act": "gelu",
    "query_bias": True,
    "key_bias": False,
    "value_bias": True,
    "proj_bias": True,
    "mlp_bias": True,
    "use_gated_mlp": False,
    "attention_dropout": 0.0,
    "drop_path_rate": 0.0,
    "pos_embed_shift": None,
    "pos_embed_jitter": None,
    "pos_embed_rescale": 2.0,
    "initializer_range": 0.02,
}

_MAE_CONFIG: dict[str, Any] = {
    "model_type": "vit_mae",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "patch_size": 16,
    "image_size": 224,
    "num_channels": 3,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,  # the HF checkpoint's value (config.json), not the paper's 1e-6
    "qkv_bias": True,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "mask_ratio": 0.0,  # the checkpoint says 0.75 (pre-training); analysis keeps every patch
    "decoder_hidden_size": 512,
    "decoder_num_hidden_layers": 8,
    "decoder_num_attention_heads": 16,
    "decoder_intermediate_size": 2048,
    "norm_pix_loss": False,
    "initializer_range": 0.02,
}

_CLIP_CONFIG: dict[str, Any] = {
    "model_type": "clip_vision_model",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "patch_size": 16,
    "image_size": 224,
    "num_channels": 3,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "attention_dropout": 0.0,
    "projection_dim": 512,
    "initializer_range": 0.02,
    "initializer_factor": 1.0,
}

_SIGLIP_CONFIG: dict[str, Any] = {
    "model_type": "siglip_vision_model",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "patch_size": 16,
    "image_size": 224,
    "num_channels": 3,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "attention_dropout": 0.0,
    "vision_use_head": True,
}

_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add ``spec`` to the registry; refuses to overwrite a key unless ``replace``."""
    if spec.key in _REGISTRY and not replace:
        raise SpecError(f"model key {spec.key!r} is already registered")
    _REGISTRY[spec.key] = spec
    return spec


def get_spec(key: str) -> ModelSpec:
    """The registered spec for ``key``; a clear error lists the known keys."""
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise SpecError(f"unknown model key {key!r}; known: {known}") from None


def list_specs() -> list[ModelSpec]:
    """All registered specs, in registration order."""
    return list(_REGISTRY.values())


BUILTIN_KEYS = ("dinov2", "dinov3", "mae", "clip", "siglip2", "siglip")

register(ModelSpec(
    key="dinov2",
    hub_id="facebook/dinov2-with-registers-base",
    architecture="Dinov2WithRegistersModel",
    config=MappingProxyType(_DINOV2_CONFIG),
    has_cls=True,
    num_registers=4,
    patch_size=14,
    input_hw=(224, 224),
    interpolation="bicubic",
    native=NativePreprocess(short_side=256, crop_hw=(224, 224)),
    notes="Trained at 518 px; position embeddings are interpolated to the 16x16 input grid.",
))
register(ModelSpec(
    key="dinov3",
    hub_id="facebook/dinov3-vitb16-pretrain-lvd1689m",
    architecture="DINOv3ViTModel",
    config=MappingProxyType(_DINOV3_CONFIG),
    has_cls=True,
    num_registers=4,
    patch_size=16,
    interpolation="bilinear",
    notes="Gated on the hub: accept the licence and log in before downloading. RoPE positions.",
))
register(ModelSpec(
    key="mae",
    hub_id="facebook/vit-mae-base",
    architecture="ViTMAEModel",
    config=MappingProxyType(_MAE_CONFIG),
    has_cls=True,
    num_registers=0,
    patch_size=16,
    interpolation="bicubic",
    notes="Loaded with mask_ratio=0 and identity noise (no shuffling of patches).",
))
register(ModelSpec(
    key="clip",
    hub_id="openai/clip-vit-base-patch16",
    architecture="CLIPVisionModel",
    config=MappingProxyType(_CLIP_CONFIG),
    has_cls=True,
    num_registers=0,
    patch_size=16,
    interpolation="bicubic",
    mean=CLIP_MEAN,
    std=CLIP_STD,
    native=NativePreprocess(short_side=224, crop_hw=(224, 224)),
    notes="Vision tower only (CLIPVisionModel) from the full CLIP checkpoint.",
))
register(ModelSpec(
    key="siglip2",
    hub_id="google/siglip2-base-patch16-224",
    architecture="SiglipVisionModel",
    config=MappingProxyType(_SIGLIP_CONFIG),
    has_cls=False,
    num_registers=0,
    patch_size=16,
    interpolation="bilinear",
    mean=HALF,
    std=HALF,
    pooled="map",
    default_method="map",
    notes="Fixed-resolution SigLIP 2 (model_type 'siglip'); no CLS, attention-pooling head.",
))
register(ModelSpec(
    key="siglip",
    hub_id="google/siglip-base-patch16-224",
    architecture="SiglipVisionModel",
    config=MappingProxyType(_SIGLIP_CONFIG),
    has_cls=False,
    num_registers=0,
    patch_size=16,
    interpolation="bicubic",
    mean=HALF,
    std=HALF,
    pooled="map",
    default_method="map",
    notes="No CLS; attention-pooling (MAP) head.",
))


def specs_by_key(specs: Iterable[ModelSpec]) -> dict[str, ModelSpec]:
    """Index specs by key (duplicate keys are an error)."""
    out: dict[str, ModelSpec] = {}
    for s in specs:
        if s.key in out:
            raise SpecError(f"duplicate model key {s.key!r}")
        out[s.key] = s
    return out
