"""The pinned built-in checkpoints: one spec per model key, with the checkpoint's real config.

Pure data (imports only ``spec``). Each spec pins what the code must never guess: the hub
id, the transformers class, the checkpoint's architecture config as an explicit dict (the
library defaults are *not* these checkpoints: ``DINOv3ViTConfig()`` is a ViT-S without
registers, ``CLIPVisionConfig()`` is a B/32), the token layout, and the checkpoint's own
preprocessing (resampling filter, normalisation, native crop), as published in each
``config.json`` / ``preprocessor_config.json``. The loader compares every architecture key
of ``config`` with the loaded checkpoint (:meth:`CheckpointSpec.layout_keys`) and refuses a
mismatch.

Built-ins float on the hub's ``main`` unless a revision is pinned (``[models.<key>]
revision = "..."`` in a ``--model-config`` file); the commit each run resolved is recorded
in ``map_sources.commit_hash``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from ssl_wc.models.spec import (
    CLIP_MEAN,
    CLIP_STD,
    HALF,
    AnySpec,
    CnnSpec,
    Interpolation,
    ModelSpec,
    NativePreprocess,
)

# --------------------------------------------------------------------------------------
# The pinned configs. Values from the public config.json files.
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

_SIGLIP2_NAFLEX_CONFIG: dict[str, Any] = {
    "model_type": "siglip2_vision_model",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "patch_size": 16,
    "num_patches": 256,  # the learned 16x16 position table, resized to each image's grid
    "num_channels": 3,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
    "attention_dropout": 0.0,
    "vision_use_head": True,
}

_RESNET50_CONFIG: dict[str, Any] = {
    "model_type": "resnet",
    "num_channels": 3,
    "embedding_size": 64,
    "hidden_sizes": [256, 512, 1024, 2048],
    "depths": [3, 4, 6, 3],
    "layer_type": "bottleneck",
    "hidden_act": "relu",
    "downsample_in_first_stage": False,
    "downsample_in_bottleneck": False,  # v1.5: the stride sits in the 3x3 convolution
    "num_labels": 1000,
}


def _frozen(cfg: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(cfg)


def _siglip(key: str, hub_id: str, interpolation: Interpolation, notes: str) -> ModelSpec:
    """A fixed-resolution SigLIP (or SigLIP 2) vision tower: no CLS, MAP head, mean/std 0.5."""
    return ModelSpec(key=key, hub_id=hub_id, architecture="SiglipVisionModel",
                     config=_frozen(_SIGLIP_CONFIG), has_cls=False, num_registers=0,
                     patch_size=16, interpolation=interpolation, mean=HALF, std=HALF,
                     pooled="map", default_method="map", notes=notes)


BUILTIN_SPECS: tuple[AnySpec, ...] = (
    ModelSpec(
        key="dinov2",
        hub_id="facebook/dinov2-with-registers-base",
        architecture="Dinov2WithRegistersModel",
        config=_frozen(_DINOV2_CONFIG),
        has_cls=True,
        num_registers=4,
        patch_size=14,
        input_hw=(224, 224),
        interpolation="bicubic",
        native=NativePreprocess(short_side=256, crop_hw=(224, 224)),
        notes="Trained at 518 px; position embeddings are interpolated to the 16x16 input "
              "grid. Processor: BitImageProcessor (short side 256, centre crop 224, bicubic).",
    ),
    ModelSpec(
        key="dinov3",
        hub_id="facebook/dinov3-vitb16-pretrain-lvd1689m",
        architecture="DINOv3ViTModel",
        config=_frozen(_DINOV3_CONFIG),
        has_cls=True,
        num_registers=4,
        patch_size=16,
        interpolation="bilinear",
        notes="Gated on the hub: accept the licence and log in before downloading. RoPE "
              "positions. Processor: 224x224, bilinear (antialiased, torchvision).",
    ),
    ModelSpec(
        key="mae",
        hub_id="facebook/vit-mae-base",
        architecture="ViTMAEModel",
        config=_frozen(_MAE_CONFIG),
        has_cls=True,
        num_registers=0,
        patch_size=16,
        interpolation="bilinear",  # the checkpoint's ViTImageProcessor: resample 2
        notes="Loaded with mask_ratio=0 and identity noise (no shuffling of patches).",
    ),
    ModelSpec(
        key="clip",
        hub_id="openai/clip-vit-base-patch16",
        architecture="CLIPVisionModel",
        load_class="CLIPVisionModelWithProjection",
        projection="visual_projection",
        config=_frozen(_CLIP_CONFIG),
        has_cls=True,
        num_registers=0,
        patch_size=16,
        interpolation="bicubic",
        mean=CLIP_MEAN,
        std=CLIP_STD,
        native=NativePreprocess(short_side=224, crop_hw=(224, 224)),
        notes="Vision tower and its projection from the full CLIP checkpoint: features "
              "'pooled' (768-d post-layernorm CLS) and 'pooled_proj' (512-d joint embedding).",
    ),
    _siglip("siglip2", "google/siglip2-base-patch16-224", "bilinear",
            "Fixed-resolution SigLIP 2 (model_type 'siglip'); no CLS, attention-pooling head."),
    _siglip("siglip", "google/siglip-base-patch16-224", "bicubic",
            "No CLS; attention-pooling (MAP) head."),
    ModelSpec(
        key="siglip2_naflex",
        hub_id="google/siglip2-base-patch16-naflex",
        architecture="Siglip2VisionModel",
        config=_frozen(_SIGLIP2_NAFLEX_CONFIG),
        has_cls=False,
        num_registers=0,
        patch_size=16,
        input_hw=(256, 256),
        resize_mode="aspect",
        max_num_patches=256,
        interpolation="bilinear",
        mean=HALF,
        std=HALF,
        pooled="map",
        default_method="map",
        notes="SigLIP 2 NaFlex: each image keeps its aspect ratio (at most 256 patches of "
              "16 px), so its patch grid is its own (e.g. 19x13 rows x columns for a 2:3 "
              "portrait facade); padded patches are masked out of attention and of the "
              "MAP head.",
    ),
    CnnSpec(
        key="resnet50",
        hub_id="microsoft/resnet-50",
        architecture="ResNetForImageClassification",
        config=_frozen(_RESNET50_CONFIG),
        input_hw=(224, 224),
        resize_mode="native",
        interpolation="bicubic",
        native=NativePreprocess(short_side=256, crop_hw=(224, 224)),
        notes="Supervised ImageNet ResNet-50 (v1.5) baseline: Grad-CAM on the last stage "
              "(7x7 at 224 px), target the ImageNet top-1 class. Its own preprocessing: "
              "short side 256, centre crop 224 (boxes carried through the crop, area lost "
              "recorded in map_frames).",
    ),
)

BUILTIN_KEYS: tuple[str, ...] = tuple(s.key for s in BUILTIN_SPECS)


def builtin(key: str) -> AnySpec | None:
    """The built-in spec of ``key`` (None if it is not a built-in)."""
    for s in BUILTIN_SPECS:
        if s.key == key:
            return s
    return None
