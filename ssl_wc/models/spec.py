"""Model spec records: everything the code must know about one backbone. No torch.

Two kinds share :class:`CheckpointSpec` (where the weights come from, the pinned config,
the preprocessing):

- :class:`ModelSpec` (``kind = "vit"``): a ViT. Token layout (timm's
  ``num_prefix_tokens`` idea): every sequence is
  ``[CLS]? [REG] * num_registers  patch(0,0) patch(0,1) ... patch(gh-1, gw-1)``, patches
  in row-major order (row = y). Code slices patches with ``spec.num_prefix_tokens``, never
  with a hard-coded ``1``: a helper that drops only the CLS folds a model's registers into
  the grid. A variable-resolution ("NaFlex") ViT has ``max_num_patches`` set and resize
  mode ``"aspect"``: each image keeps its aspect ratio, so its patch grid is its own.
- :class:`CnnSpec` (``kind = "cnn"``): a convolutional network (ResNet): no CLS, no heads,
  no blocks beyond its stages; the spatial map of a stage has ``ceil(H / stride)`` rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

PooledRule = Literal["cls", "map", "mean"]
ResizeMode = Literal["full", "native", "aspect"]
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

NON_ARCHITECTURE_KEYS = frozenset({
    "initializer_range", "initializer_factor", "hidden_dropout_prob",
    "attention_probs_dropout_prob", "attention_dropout", "drop_path_rate", "dropout",
    "id2label", "label2id", RANDOM_WEIGHTS_CONFIG_KEY,
    # generic keys every transformers config.json carries (a user entry's config is the
    # whole file): bookkeeping and output switches, not architecture
    "architectures", "dtype", "torch_dtype", "transformers_version", "return_dict",
    "output_attentions", "output_hidden_states", "problem_type", "chunk_size_feed_forward",
    "is_encoder_decoder", "use_cache", "tie_word_embeddings", "auto_map", "name_or_path",
})
"""Config keys that do not change what a loaded model computes in eval mode (dropouts,
initialisers, label names, bookkeeping; also any key starting with ``_``); every other
pinned key is checked against the checkpoint."""


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


@dataclass(frozen=True, kw_only=True)
class CheckpointSpec:
    """What every backbone spec holds: the weights' source, the pinned config, preprocessing.

    Attributes:
        key: short model key used in the warehouse (``dinov2``, ``resnet50``, ...).
        architecture: transformers class name of the backbone (for CLIP/SigLIP the vision
            tower; for ResNet the ImageNet classifier, whose head gives the Grad-CAM target).
        config: the checkpoint's architecture config as a plain dict (pinned, explicit).
        hub_id: Hugging Face hub id, or ``None`` when ``local_dir`` is used.
        local_dir: a local folder holding ``config.json`` and weights (wins over ``hub_id``).
        revision: optional pinned hub revision (commit hash, branch or tag); ``None`` loads
            ``main`` and the resolved commit is recorded with every run.
        input_hw: model input (height, width) in pixels for ``resize_mode="full"``.
        resize_mode: ``"full"`` (whole image resized to ``input_hw``, no crop, box
            fractions hold), ``"native"`` (the checkpoint's own short-side resize + centre
            crop; boxes are carried through the crop) or ``"aspect"`` (variable-resolution
            ViTs: aspect ratio kept under a patch budget, no crop).
        interpolation: resampling filter of the resize (the checkpoint processor's own).
        mean, std: per-channel normalisation after scaling pixels to [0, 1].
        native: the checkpoint's own processor geometry (for ``resize_mode="native"``).
        default_method: the attention map reported by default.
        random_weights: ``True`` for test/benchmark models with random weights.
        notes: free text shown in reports.
    """

    kind: ClassVar[str] = ""

    key: str
    architecture: str
    config: Mapping[str, Any]
    hub_id: str | None = None
    local_dir: str | None = None
    revision: str | None = None
    input_hw: tuple[int, int] = (224, 224)
    resize_mode: ResizeMode = "full"
    interpolation: Interpolation = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    native: NativePreprocess = field(default_factory=NativePreprocess)
    default_method: str = "cls"
    random_weights: bool = False
    notes: str = ""

    def __post_init__(self) -> None:
        if self.hub_id is None and self.local_dir is None:
            raise SpecError(f"model {self.key!r}: give a hub id or a local folder")
        if self.resize_mode not in ("full", "native", "aspect"):
            raise SpecError(f"model {self.key!r}: resize_mode must be full, native or aspect, "
                            f"not {self.resize_mode!r}")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise SpecError(f"model {self.key!r}: interpolation must be bilinear or bicubic, "
                            f"not {self.interpolation!r}")

    @property
    def source(self) -> str:
        """Where weights are loaded from: the local folder if set, else the hub id."""
        return self.local_dir if self.local_dir is not None else str(self.hub_id)

    def layout_keys(self) -> tuple[str, ...]:
        """The pinned config keys a loaded checkpoint must match (``model_type`` first):
        every key of :attr:`config` except :data:`NON_ARCHITECTURE_KEYS`."""
        keys = [k for k in self.config
                if k not in NON_ARCHITECTURE_KEYS and not k.startswith("_")
                and not isinstance(self.config[k], Mapping)]
        keys.sort(key=lambda k: k != "model_type")
        return tuple(keys)

    def _common(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "hub_id": self.hub_id,
            "local_dir": self.local_dir,
            "revision": self.revision,
            "architecture": self.architecture,
            "input_hw": list(self.input_hw),
            "resize_mode": self.resize_mode,
            "interpolation": self.interpolation,
            "default_method": self.default_method,
            "random_weights": self.random_weights,
            "config": dict(self.config),
        }


@dataclass(frozen=True, kw_only=True)
class ModelSpec(CheckpointSpec):
    """A ViT backbone: token layout, pooling, optional variable resolution and projection.

    Attributes (besides :class:`CheckpointSpec`'s):
        has_cls: whether token 0 is a CLS token.
        num_registers: register tokens after the CLS, before the patches.
        patch_size: square patch side in pixels.
        pooled: how the model pools: ``"cls"`` (CLS after the final norm), ``"map"``
            (attention-pooling head) or ``"mean"`` (mean patch token).
        max_num_patches: variable-resolution (NaFlex) models only: the patch budget of
            ``resize_mode="aspect"`` (inputs are padded to it, with a patch mask).
        load_class: the transformers class ``from_pretrained`` loads when it is not
            ``architecture`` itself but a wrapper holding it (CLIP:
            ``CLIPVisionModelWithProjection``, whose ``vision_model`` is the backbone).
        projection: attribute of the loaded wrapper mapping the pooled token to the joint
            embedding (CLIP: ``visual_projection``, 768 -> 512); stored as feature kind
            ``pooled_proj`` next to ``pooled``.
    """

    kind: ClassVar[str] = "vit"

    has_cls: bool
    num_registers: int
    patch_size: int
    pooled: PooledRule = "cls"
    max_num_patches: int | None = None
    load_class: str | None = None
    projection: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
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
        if self.resize_mode == "aspect" and not self.max_num_patches:
            raise SpecError(f"model {self.key!r}: resize_mode 'aspect' needs max_num_patches")
        if self.max_num_patches is not None and self.max_num_patches <= 0:
            raise SpecError(f"model {self.key!r}: max_num_patches must be positive")
        if self.projection is not None and self.load_class is None:
            raise SpecError(f"model {self.key!r}: a projection needs the wrapper class that "
                            "holds it (load_class)")

    @property
    def variable_grid(self) -> bool:
        """True for NaFlex models: every image has its own (aspect-preserving) grid."""
        return self.max_num_patches is not None

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
        """Patch grid (gh, gw) at the model input size (``resize_mode="full"``)."""
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
            **self._common(),
            "has_cls": self.has_cls,
            "num_registers": self.num_registers,
            "num_prefix_tokens": self.num_prefix_tokens,
            "patch_size": self.patch_size,
            "grid": list(self.grid),
            "pooled": self.pooled,
            "max_num_patches": self.max_num_patches,
            "load_class": self.load_class,
            "projection": self.projection,
        }


@dataclass(frozen=True, kw_only=True)
class CnnSpec(CheckpointSpec):
    """A convolutional backbone with an ImageNet classifier (ResNet).

    ``layer`` in the warehouse is the 0-based stage index (ResNet-50: stages 0..3 with
    strides 4, 8, 16, 32: 56, 28, 14 and 7 cells at 224 px). The model is loaded as
    ``architecture`` (``ResNetForImageClassification``): ``backbone`` names its feature
    extractor (``resnet``) and ``classifier`` its head (pooled -> ImageNet logits, the
    Grad-CAM target). Maps: ``gradcam`` only; features: the global-average-pooled stage
    outputs (``patch_mean``) and the pooled output (``pooled``).
    """

    kind: ClassVar[str] = "cnn"

    stage_strides: tuple[int, ...] = (4, 8, 16, 32)
    backbone: str = "resnet"
    classifier: str = "classifier"
    default_method: str = "gradcam"
    pooled: PooledRule = "mean"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.default_method != "gradcam":
            raise SpecError(f"model {self.key!r}: a CNN has Grad-CAM maps only")
        if self.resize_mode == "aspect":
            raise SpecError(f"model {self.key!r}: resize_mode 'aspect' is for NaFlex ViTs")
        depths = self.config.get("depths")
        if depths is not None and len(depths) != len(self.stage_strides):
            raise SpecError(f"model {self.key!r}: {len(depths)} stages in the config, "
                            f"{len(self.stage_strides)} strides")

    has_cls: ClassVar[bool] = False
    num_registers: ClassVar[int] = 0
    num_prefix_tokens: ClassVar[int] = 0
    variable_grid: ClassVar[bool] = False
    max_num_patches: ClassVar[None] = None
    projection: ClassVar[None] = None

    @property
    def num_layers(self) -> int:
        """Stages (the warehouse's ``layer`` for a CNN)."""
        return len(self.stage_strides)

    @property
    def num_heads(self) -> int:
        return 0

    @property
    def hidden_size(self) -> int:
        """Channels of the last stage (the pooled feature's size)."""
        return int(self.config["hidden_sizes"][-1])

    @property
    def patch_size(self) -> int:
        """Output stride of the last stage (one map cell covers this many pixels)."""
        return int(self.stage_strides[-1])

    def model_input_hw(self) -> tuple[int, int]:
        """What the network sees: the native crop in ``native`` mode, else ``input_hw``."""
        if self.resize_mode == "native" and self.native.crop_hw is not None:
            return self.native.crop_hw
        return self.input_hw

    @property
    def grid(self) -> tuple[int, int]:
        """Last-stage grid at the model input (7x7 at 224 px)."""
        return self.grid_for(self.model_input_hw())

    def grid_for(self, hw: tuple[int, int], stage: int = -1) -> tuple[int, int]:
        """Cells of stage ``stage`` (0-based, -1 = last) for an (H, W) input:
        ``ceil(H / stride)`` (each stride-2 layer pads, so sizes round up)."""
        s = self.stage_strides[stage]
        return math.ceil(hw[0] / s), math.ceil(hw[1] / s)

    def describe(self) -> dict[str, Any]:
        return {
            **self._common(),
            "stage_strides": list(self.stage_strides),
            "grid": list(self.grid),
            "pooled": self.pooled,
            "backbone": self.backbone,
            "classifier": self.classifier,
        }


AnySpec = ModelSpec | CnnSpec
"""Either kind of backbone spec."""
