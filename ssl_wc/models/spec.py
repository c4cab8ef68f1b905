"""The :class:`ModelSpec` record: everything the code must know about one backbone.

Token layout (timm's ``num_prefix_tokens`` idea): every sequence is
``[CLS]? [REG] * num_registers  patch(0,0) patch(0,1) ... patch(gh-1, gw-1)``, patches in
row-major order (row = y). Code slices patches with ``spec.num_prefix_tokens``, never with
a hard-coded ``1``: a helper that drops only the CLS folds a model's registers into the grid.

No torch, no transformers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
"""File written next to a random-weight model's ``config.json`` (see ``build_random_model``)."""

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
