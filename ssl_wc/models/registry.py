"""The backbones: one :class:`ModelSpec` per model key, with the checkpoint's real config.

Each spec pins what the code must never guess: the hub id (or a local folder), the
transformers class, the checkpoint's architecture config as an explicit dict (the library
defaults are *not* these checkpoints: ``DINOv3ViTConfig()`` is a ViT-S without registers,
``CLIPVisionConfig()`` is a B/32), the token layout (CLS, registers, patch size, so the
patch grid for an input size), the preprocessing and the pooled-token rule.

Token layout (timm's ``num_prefix_tokens`` idea): every sequence is
``[CLS]? [REG] * num_registers  patch(0,0) patch(0,1) ... patch(gh-1, gw-1)``, patches in
row-major order (row = y). Code slices patches with ``spec.num_prefix_tokens``, never with
a hard-coded ``1``: a helper that drops only the CLS folds a model's registers into the grid.

Public functions: :func:`get_spec`, :func:`list_specs`, :func:`register`,
:func:`spec_from_hf_config`, :func:`load_user_specs`, :func:`tiny_config`,
:func:`build_random_model`. This module imports neither torch nor transformers at import
time (only :func:`build_random_model` and hub look-ups do, lazily).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

PooledRule = Literal["cls", "map", "mean"]
ResizeMode = Literal["full", "native"]
Interpolation = Literal["bilinear", "bicubic"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)

RANDOM_WEIGHTS_MARKER = "RANDOM_WEIGHTS.txt"
"""File written next to a random-weight model's ``config.json`` (see :func:`build_random_model`)."""

RANDOM_WEIGHTS_CONFIG_KEY = "ssl_wc_random_weights"
"""Extra ``config.json`` key set to ``true`` in random-weight models."""


class SpecError(ValueError):
    """A model spec or a user model file is invalid (what is wrong and where)."""


@dataclass(frozen=True)
class NativePreprocess:
    """The checkpoint's own processor geometry, used only in ``resize_mode="native"``.

    ``short_side``: resize so the short side has this length (aspect kept), then centre-crop
    to ``crop_hw``. ``None`` means the checkpoint resizes the whole image (no crop).
    """

    short_side: int | None = None
    crop_hw: tuple[int, int] | None = None


@dataclass(frozen=True)
class ModelSpec:
    """Everything the loader, the preprocessing and the extraction need about one backbone.

    Attributes:
        key: short model key used in the warehouse (``dinov2``, ``clip``, ...).
        hub_id: Hugging Face hub id, or ``None`` when ``local_dir`` is used.
        local_dir: a local folder holding ``config.json`` and weights (wins over ``hub_id``).
        revision: optional pinned hub revision (commit hash or tag).
        architecture: transformers class name to load (the vision tower for CLIP/SigLIP).
        config: the checkpoint's architecture config as a plain dict (pinned, explicit).
        has_cls: whether token 0 is a CLS token.
        num_registers: register tokens after the CLS, before the patches.
        patch_size: square patch side in pixels.
        input_hw: model input (height, width) in pixels; the whole image is resized to it.
        resize_mode: ``"full"`` (default: whole image resized, no crop, box fractions hold)
            or ``"native"`` (the checkpoint's own short-side resize + centre crop).
        interpolation: resampling filter of the resize.
        mean, std: per-channel normalisation after scaling pixels to [0, 1].
        native: the checkpoint's own processor geometry (for ``resize_mode="native"``).
        pooled: how the model pools: ``"cls"`` (CLS after the final norm), ``"map"``
            (attention-pooling head) or ``"mean"`` (mean patch token).
        default_method: the attention map reported by default (``"cls"`` or ``"map"``).
        random_weights: ``True`` for test/benchmark models with random weights.
        notes: free text shown in reports.
    """

    key: str
    architecture: str
    config: Mapping[str, Any]
    has_cls: bool
    num_registers: int
    patch_size: int
    input_hw: tuple[int, int] = (224, 224)
    hub_id: str | None = None
    local_dir: str | None = None
    revision: str | None = None
    resize_mode: ResizeMode = "full"
    interpolation: Interpolation = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    native: NativePreprocess = field(default_factory=NativePreprocess)
    pooled: PooledRule = "cls"
    default_method: str = "cls"
    random_weights: bool = False
    notes: str = ""

    def __post_init__(self) -> None:
        if self.hub_id is None and self.local_dir is None:
            raise SpecError(f"model {self.key!r}: give a hub id or a local folder")
        if self.patch_size <= 0 or self.num_registers < 0:
            raise SpecError(f"model {self.key!r}: bad patch size or register count")
        h, w = self.input_hw
        if h % self.patch_size or w % self.patch_size:
            raise SpecError(
                f"model {self.key!r}: input {h}x{w} is not a multiple of patch {self.patch_size}"
            )
        if self.pooled == "map" and self.default_method != "map":
            raise SpecError(f"model {self.key!r}: a MAP-pooled model defaults to method 'map'")
        if self.default_method == "cls" and not self.has_cls:
            raise SpecError(f"model {self.key!r}: method 'cls' needs a CLS token")

    @property
    def source(self) -> str:
        """Where weights are loaded from: the local folder if set, else the hub id."""
        return self.local_dir if self.local_dir is not None else str(self.hub_id)

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the first patch: CLS (0 or 1) + registers."""
        return int(self.has_cls) + self.num_registers

    @property
    def num_heads(self) -> int:
        return int(self.config["num_attention_heads"])

    @property
    def num_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    @property
    def hidden_size(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid (gh, gw) at the model input size."""
        return self.grid_for(self.input_hw)

    def grid_for(self, hw: tuple[int, int]) -> tuple[int, int]:
        """Patch grid (gh, gw) = (H // patch, W // patch) for an input of (H, W) pixels."""
        return hw[0] // self.patch_size, hw[1] // self.patch_size

    def num_tokens(self, hw: tuple[int, int] | None = None) -> int:
        gh, gw = self.grid_for(hw or self.input_hw)
        return self.num_prefix_tokens + gh * gw

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary stored with each run (no weights, no secrets)."""
        return {
            "key": self.key,
            "hub_id": self.hub_id,
            "local_dir": self.local_dir,
            "revision": self.revision,
            "architecture": self.architecture,
            "has_cls": self.has_cls,
            "num_registers": self.num_registers,
            "num_prefix_tokens": self.num_prefix_tokens,
            "patch_size": self.patch_size,
            "input_hw": list(self.input_hw),
            "grid": list(self.grid),
            "pooled": self.pooled,
            "default_method": self.default_method,
            "random_weights": self.random_weights,
            "config": dict(self.config),
        }


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


# --------------------------------------------------------------------------------------
# User-added checkpoints
# --------------------------------------------------------------------------------------

# model_type -> (vision class to load, has_cls, pooled rule, mean, std)
_Triple = tuple[float, float, float]
_FAMILIES: dict[str, tuple[str, bool, PooledRule, _Triple, _Triple]] = {
    "dinov2": ("Dinov2Model", True, "cls", IMAGENET_MEAN, IMAGENET_STD),
    "dinov2_with_registers": (
        "Dinov2WithRegistersModel", True, "cls", IMAGENET_MEAN, IMAGENET_STD),
    "dinov3_vit": ("DINOv3ViTModel", True, "cls", IMAGENET_MEAN, IMAGENET_STD),
    "vit_mae": ("ViTMAEModel", True, "cls", IMAGENET_MEAN, IMAGENET_STD),
    "vit": ("ViTModel", True, "cls", HALF, HALF),
    "clip": ("CLIPVisionModel", True, "cls", CLIP_MEAN, CLIP_STD),
    "clip_vision_model": ("CLIPVisionModel", True, "cls", CLIP_MEAN, CLIP_STD),
    "siglip": ("SiglipVisionModel", False, "map", HALF, HALF),
    "siglip_vision_model": ("SiglipVisionModel", False, "map", HALF, HALF),
}

_COMPOSITE_TYPES = {"clip": "clip_vision_model", "siglip": "siglip_vision_model"}


def _as_hw(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise SpecError(f"{what} must be an int or [height, width], got {value!r}")


def _vision_part(config_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The vision config of a composite (text + image) config, else the config itself."""
    vision = config_dict.get("vision_config")
    if isinstance(vision, Mapping):
        out = dict(vision)
        parent = str(config_dict.get("model_type", ""))
        out.setdefault("model_type", _COMPOSITE_TYPES.get(parent, parent))
        return out
    return dict(config_dict)


def spec_from_hf_config(
    key: str,
    source: str,
    config_dict: Mapping[str, Any],
    *,
    architecture: str | None = None,
    revision: str | None = None,
    **overrides: Any,
) -> ModelSpec:
    """Build a :class:`ModelSpec` from a checkpoint's ``config.json`` contents.

    ``source`` is a hub id or a local folder (a folder if it exists on disk). The layout is
    read from the config: ``patch_size``, ``num_register_tokens`` (0 if absent), the model
    family (CLS or not, pooling rule, default normalisation) from ``model_type``. Composite
    CLIP/SigLIP configs use their ``vision_config``. Any :class:`ModelSpec` field can be
    overridden by keyword (for example ``input_hw=(224, 224)``, ``mean=...``).
    """
    cfg = _vision_part(config_dict)
    model_type = str(cfg.get("model_type", ""))
    family = _FAMILIES.get(model_type)
    if architecture is None:
        if family is not None:
            architecture = family[0]
        else:
            archs = config_dict.get("architectures") or []
            candidates = [a for a in archs if isinstance(a, str) and a.endswith("Model")]
            if not candidates:
                raise SpecError(
                    f"model {key!r}: cannot tell which class to load for model_type "
                    f"{model_type!r}; give 'architecture' (a transformers class name)"
                )
            architecture = candidates[0]
    has_cls: bool = True
    pooled: PooledRule = "cls"
    mean: _Triple = IMAGENET_MEAN
    std: _Triple = IMAGENET_STD
    if family is not None:
        _, has_cls, pooled, mean, std = family
    if "patch_size" not in cfg and "patch_size" not in overrides:
        raise SpecError(f"model {key!r}: config has no patch_size; give it explicitly")
    patch = overrides.pop("patch_size", cfg.get("patch_size"))
    if isinstance(patch, list | tuple):
        if len(set(patch)) != 1:
            raise SpecError(f"model {key!r}: only square patches are supported, got {patch}")
        patch = patch[0]
    fields: dict[str, Any] = {
        "key": key,
        "architecture": architecture,
        "config": cfg,
        "has_cls": has_cls,
        "num_registers": int(cfg.get("num_register_tokens", 0) or 0),
        "patch_size": int(patch),
        "revision": revision,
        "mean": tuple(mean),
        "std": tuple(std),
        "pooled": pooled,
        "default_method": "map" if pooled == "map" else "cls",
    }
    if Path(source).expanduser().is_dir():
        fields["local_dir"] = str(Path(source).expanduser().resolve())
    else:
        fields["hub_id"] = source
    image_size = cfg.get("image_size")
    if "input_hw" not in overrides and image_size is not None:
        hw = _as_hw(image_size, "image_size")
        # Models trained at a large size (DINOv2: 518) are evaluated at 224-ish: keep a
        # multiple of the patch size near 224 unless the user says otherwise.
        if hw[0] > 448 or hw[1] > 448:
            p = int(patch)
            hw = ((224 // p) * p, (224 // p) * p)
        fields["input_hw"] = hw
    fields.update(overrides)
    if "mean" in fields:
        fields["mean"] = tuple(float(v) for v in fields["mean"])
    if "std" in fields:
        fields["std"] = tuple(float(v) for v in fields["std"])
    if "input_hw" in fields:
        fields["input_hw"] = _as_hw(fields["input_hw"], "input_hw")
    try:
        return ModelSpec(**fields)
    except TypeError as exc:
        raise SpecError(f"model {key!r}: {exc}") from None


# Accepted keys of one user model entry, with their types (strict: wrong types are refused).
_USER_KEYS: dict[str, tuple[type, ...]] = {
    "source": (str,),
    "hub_id": (str,),
    "local_dir": (str,),
    "architecture": (str,),
    "revision": (str,),
    "input_size": (int, list),
    "interpolation": (str,),
    "mean": (list,),
    "std": (list,),
    "has_cls": (bool,),
    "num_registers": (int,),
    "patch_size": (int,),
    "pooled": (str,),
    "default_method": (str,),
    "resize_mode": (str,),
    "config": (dict,),
    "notes": (str,),
}


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise SpecError(f"{path}: config.json is not a JSON object")
    return data


def _read_source_config(source: str, revision: str | None) -> dict[str, Any] | None:
    """``config.json`` of a local folder, or of a hub id from the local HF cache, else from
    the hub unless offline (``HF_HUB_OFFLINE`` read now). ``None`` if it cannot be found."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        path = folder / "config.json"
        return _read_json(path) if path.exists() else None
    from huggingface_hub import hf_hub_download

    for local_only in (True, False):
        if not local_only and _offline():
            return None
        try:
            found = hf_hub_download(
                source, "config.json", revision=revision, local_files_only=local_only
            )
        except Exception:  # not cached / unreachable / no such repo: try the next source
            continue
        return _read_json(Path(found))
    return None


def _check_user_entry(key: str, entry: Mapping[str, Any], where: str) -> None:
    for name, value in entry.items():
        if name not in _USER_KEYS:
            raise SpecError(
                f"{where}: model {key!r}: unknown field {name!r} "
                f"(allowed: {', '.join(sorted(_USER_KEYS))})"
            )
        types = _USER_KEYS[name]
        if isinstance(value, bool) and bool not in types:
            raise SpecError(f"{where}: model {key!r}: {name} must not be a boolean")
        if not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise SpecError(
                f"{where}: model {key!r}: {name} must be {names}, got {type(value).__name__}"
            )


def user_spec(key: str, entry: Mapping[str, Any], *, where: str = "<dict>") -> ModelSpec:
    """One user entry (a dict as in the TOML/JSON file) to a :class:`ModelSpec`.

    Required: ``source`` (hub id or local folder; or ``hub_id`` / ``local_dir``). The layout
    is read from the checkpoint's ``config.json`` when it can be found (local folder, HF
    cache, or hub when online); otherwise give ``architecture``, ``patch_size``,
    ``has_cls``, ``num_registers`` and a ``config`` dict with at least ``hidden_size``,
    ``num_hidden_layers`` and ``num_attention_heads``.
    """
    _check_user_entry(key, entry, where)
    source = entry.get("source") or entry.get("local_dir") or entry.get("hub_id")
    if not source:
        raise SpecError(f"{where}: model {key!r}: give 'source' (hub id or local folder)")
    revision = entry.get("revision")
    config_dict = entry.get("config") or _read_source_config(str(source), revision)
    if config_dict is None:
        raise SpecError(
            f"{where}: model {key!r}: could not read config.json from {source!r} (not a "
            "folder, not in the HF cache, hub unreachable); add a [config] table with the "
            "checkpoint's config, or download it first"
        )
    overrides: dict[str, Any] = {}
    mapping = {
        "input_size": "input_hw",
        "interpolation": "interpolation",
        "mean": "mean",
        "std": "std",
        "has_cls": "has_cls",
        "num_registers": "num_registers",
        "patch_size": "patch_size",
        "pooled": "pooled",
        "default_method": "default_method",
        "resize_mode": "resize_mode",
        "notes": "notes",
    }
    for name, spec_field in mapping.items():
        if name in entry:
            overrides[spec_field] = entry[name]
    if "pooled" in overrides and "default_method" not in overrides:
        overrides["default_method"] = "map" if overrides["pooled"] == "map" else "cls"
    for name in ("mean", "std"):
        if name in overrides and len(overrides[name]) != 3:
            raise SpecError(f"{where}: model {key!r}: {name} needs 3 values")
    return spec_from_hf_config(
        key,
        str(source),
        config_dict,
        architecture=entry.get("architecture"),
        revision=revision,
        **overrides,
    )


def load_user_specs(
    path: str | os.PathLike[str], *, register_them: bool = False
) -> list[ModelSpec]:
    """Read user model entries from a TOML or JSON file.

    TOML form (JSON: the same structure)::

        [models.dinov2_small]
        source = "facebook/dinov2-small"          # hub id or local folder
        architecture = "Dinov2Model"               # optional, read from config.json
        input_size = [224, 224]                     # optional
        interpolation = "bicubic"                   # optional
        mean = [0.485, 0.456, 0.406]                # optional, family default otherwise

    Unknown fields and wrong types are refused (never coerced). With ``register_them`` the
    specs are added to the registry (an existing key is an error).
    """
    p = Path(path)
    text = p.read_text()
    try:
        doc = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{p}: cannot parse: {exc}") from None
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, dict) or not models:
        raise SpecError(f"{p}: expected a non-empty 'models' table of model entries")
    specs: list[ModelSpec] = []
    for key, entry in models.items():
        if not isinstance(entry, dict):
            raise SpecError(f"{p}: models.{key} must be a table")
        specs.append(user_spec(key, entry, where=str(p)))
    if register_them:
        for spec in specs:
            register(spec)
    return specs


# --------------------------------------------------------------------------------------
# Tiny random-weight models for tests and benchmarks
# --------------------------------------------------------------------------------------

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


def specs_by_key(specs: Iterable[ModelSpec]) -> dict[str, ModelSpec]:
    """Index specs by key (duplicate keys are an error)."""
    out: dict[str, ModelSpec] = {}
    for s in specs:
        if s.key in out:
            raise SpecError(f"duplicate model key {s.key!r}")
        out[s.key] = s
    return out
