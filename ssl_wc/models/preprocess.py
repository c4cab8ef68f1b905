"""Image preprocessing with PIL and numpy (no torchvision, no HF image processors).

Default (``resize_mode="full"``): the whole image is converted to RGB and resized to the
model input (H, W) with PIL's resampling filter (``bicubic`` or ``bilinear``, per model;
PIL filters antialias when downscaling), scaled to [0, 1] and normalised per channel,
``x = (pixel / 255 - mean) / std``. Nothing is cropped, so a box given as fractions of the
original image has the same fractions on the patch grid (the aspect ratio changes; the
fractions do not).

Optional ``resize_mode="native"``: the checkpoint's own geometry (short side to S with the
aspect kept, ``long = int(S * long / short)``, then a centre crop with
``top = (H' - h) // 2``, ``left = (W' - w) // 2``). The crop cuts off part of the image;
:func:`transform_boxes` carries boxes through the same transform and each
:class:`ImageTransform` records the area lost and the frame (the part of the original
image the model input covers, see ``ssl_wc.metrics.frames``).

``resize_mode="aspect"`` (SigLIP 2 NaFlex): the aspect ratio is kept under a patch budget
(:func:`aspect_size`): each side becomes ``max(p, ceil(s * side / p) * p)`` for the largest
scale ``s`` whose grid has at most ``max_num_patches`` patches (found by bisection over
``s`` in ``[1e-6, 100]`` to within ``1e-5``, as the checkpoint's ``Siglip2ImageProcessor``
does). Nothing is cropped, so box fractions hold, and images of different shapes get
different grids (batch them by :func:`group_by_input_size`).

Transform record (``PreprocessConfig.to_dict()``, stored with each run)::

    {"resize_mode": "full", "input_hw": [224, 224], "interpolation": "bicubic",
     "mean": [...], "std": [...], "native_short_side": null, "crop": null,
     "area_lost": 0.0, "library": "PIL 11.x"}

(``crop`` is ``"center"`` and ``area_lost`` ``null`` (per image) in native mode.) Per image,
``ImageTransform.to_dict()`` adds ``orig_hw``, ``resized_hw``, the crop box
``[top, left, height, width]`` in resized pixels (or ``null``) and ``area_lost`` (the
fraction of the original image outside the model input: 0 for ``full``).

Each checkpoint's own resampling filter is used (``spec.interpolation``: bilinear for MAE,
DINOv3 and SigLIP 2, bicubic for DINOv2, CLIP, SigLIP and ResNet-50).

Sizes are (height, width) throughout. Boxes are ``[left, top, right, bottom]`` fractions of
the image (x = column, y = row). This module imports neither torch nor transformers.

Public: :class:`PreprocessConfig`, :class:`ImageTransform`, :func:`plan_transform`,
:func:`aspect_size`, :func:`group_by_input_size`, :func:`preprocess_image`,
:func:`preprocess_batch`, :func:`transform_boxes`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL
from PIL import Image

from ssl_wc.metrics.frames import FULL_FRAME, boxes_in_frame

if TYPE_CHECKING:  # pragma: no cover
    from ssl_wc.models.spec import AnySpec

RESIZE_MODES = ("full", "native", "aspect")

_FILTERS = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
}


@dataclass(frozen=True)
class PreprocessConfig:
    """How images become model inputs (one per run and model)."""

    input_hw: tuple[int, int]
    resize_mode: str = "full"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    native_short_side: int | None = None
    patch_size: int | None = None
    max_num_patches: int | None = None

    def __post_init__(self) -> None:
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}, not "
                             f"{self.resize_mode!r}")
        if self.interpolation not in _FILTERS:
            raise ValueError(f"interpolation must be one of {sorted(_FILTERS)}")
        if self.resize_mode == "native" and self.native_short_side is not None and (
            self.native_short_side < min(self.input_hw)
        ):
            raise ValueError("native short side is smaller than the crop")
        if self.resize_mode == "aspect" and not (self.patch_size and self.max_num_patches):
            raise ValueError("resize_mode 'aspect' needs patch_size and max_num_patches")

    @classmethod
    def from_spec(cls, spec: AnySpec, resize_mode: str | None = None) -> PreprocessConfig:
        """The spec's preprocessing; ``resize_mode`` overrides the spec's.

        In native mode the crop is the spec's native crop (else the model input) and the
        short side the spec's native short side; a checkpoint whose own processor resizes
        the whole image (no native short side: DINOv3, MAE, SigLIP) gets ``full``. Aspect
        mode needs a variable-resolution spec (``max_num_patches``).
        """
        mode = resize_mode or spec.resize_mode
        input_hw = tuple(spec.input_hw)
        short = None
        if mode == "native" and spec.native.short_side is None:
            mode = "full"  # the checkpoint's own processor resizes the whole image
        if mode == "native":
            if spec.native.crop_hw is not None:
                input_hw = tuple(spec.native.crop_hw)
            short = spec.native.short_side
        budget = spec.max_num_patches if mode == "aspect" else None
        if mode == "aspect" and budget is None:
            raise ValueError(f"model {spec.key!r} has a fixed resolution: resize_mode "
                             "'aspect' needs a variable-resolution (NaFlex) model")
        return cls(
            input_hw=(int(input_hw[0]), int(input_hw[1])),
            resize_mode=mode,
            interpolation=spec.interpolation,
            mean=tuple(float(v) for v in spec.mean),  # type: ignore[arg-type]
            std=tuple(float(v) for v in spec.std),  # type: ignore[arg-type]
            native_short_side=short,
            patch_size=int(spec.patch_size) if mode == "aspect" else None,
            max_num_patches=budget,
        )

    def to_dict(self) -> dict[str, Any]:
        """The run-level transform record (see the module docstring)."""
        native = self.resize_mode == "native"
        out = {
            "resize_mode": self.resize_mode,
            "input_hw": list(self.input_hw),
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
            "native_short_side": self._short_side() if native else None,
            "crop": "center" if native else None,
            "area_lost": None if native else 0.0,
            "library": f"PIL {PIL.__version__}",
        }
        if self.resize_mode == "aspect":
            out.update(input_hw=None, patch_size=self.patch_size,
                       max_num_patches=self.max_num_patches)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PreprocessConfig:
        """Inverse of :meth:`to_dict` (the geometry; mean/std default when absent)."""
        hw = d.get("input_hw") or (1, 1)  # aspect mode: sizes are per image
        return cls(
            input_hw=(int(hw[0]), int(hw[1])),
            resize_mode=d["resize_mode"],
            interpolation=d.get("interpolation", "bicubic"),
            mean=tuple(d.get("mean") or cls.mean),  # type: ignore[arg-type]
            std=tuple(d.get("std") or cls.std),  # type: ignore[arg-type]
            native_short_side=d.get("native_short_side"),
            patch_size=d.get("patch_size"),
            max_num_patches=d.get("max_num_patches"),
        )

    def _short_side(self) -> int:
        return self.native_short_side or min(self.input_hw)


@dataclass(frozen=True)
class ImageTransform:
    """What happened to one image: original size, resized size, crop box, area lost."""

    orig_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    crop: tuple[int, int, int, int] | None  # (top, left, height, width) in resized pixels
    input_hw: tuple[int, int]
    area_lost: float
    resize_mode: str = "full"

    @property
    def frame(self) -> tuple[float, float, float, float]:
        """The part of the original image the model input covers, as (left, top, right,
        bottom) fractions: the crop's rectangle, or the whole image."""
        if self.crop is None:
            return FULL_FRAME
        rh, rw = self.resized_hw
        top, left, ch, cw = self.crop
        return left / rw, top / rh, (left + cw) / rw, (top + ch) / rh

    def to_dict(self) -> dict[str, Any]:
        return {
            "resize_mode": self.resize_mode,
            "orig_hw": list(self.orig_hw),
            "resized_hw": list(self.resized_hw),
            "crop": list(self.crop) if self.crop is not None else None,
            "input_hw": list(self.input_hw),
            "area_lost": self.area_lost,
            "frame": list(self.frame),
        }


def aspect_size(height: int, width: int, patch: int, max_patches: int,
                tol: float = 1e-5) -> tuple[int, int]:
    """(H, W), multiples of ``patch``, for an image of ``height x width`` under a budget of
    ``max_patches`` patches, aspect ratio kept (SigLIP 2 NaFlex; see the module docstring).

    Side ``n`` at scale ``s`` is ``max(patch, ceil(s * n / patch) * patch)``; the scale is
    the bisection limit over ``[tol / 10, 100]`` of the largest one whose grid fits.
    """
    if height <= 0 or width <= 0 or patch <= 0 or max_patches <= 0:
        raise ValueError(f"bad size {height}x{width}, patch {patch} or budget {max_patches}")

    def cells(scale: float, n: int) -> int:
        return max(1, math.ceil(n * scale / patch))

    low, high = tol / 10, 100.0
    while high - low >= tol:
        mid = (low + high) / 2
        if cells(mid, height) * cells(mid, width) <= max_patches:
            low = mid
        else:
            high = mid
    return cells(low, height) * patch, cells(low, width) * patch


def plan_transform(orig_hw: tuple[int, int], cfg: PreprocessConfig) -> ImageTransform:
    """The geometry for an image of ``orig_hw`` = (height, width) under ``cfg``."""
    h0, w0 = int(orig_hw[0]), int(orig_hw[1])
    if h0 <= 0 or w0 <= 0:
        raise ValueError(f"empty image {orig_hw}")
    if cfg.resize_mode == "full":
        return ImageTransform((h0, w0), cfg.input_hw, None, cfg.input_hw, 0.0, "full")
    if cfg.resize_mode == "aspect":
        assert cfg.patch_size is not None and cfg.max_num_patches is not None
        hw = aspect_size(h0, w0, cfg.patch_size, cfg.max_num_patches)
        return ImageTransform((h0, w0), hw, None, hw, 0.0, "aspect")
    short = cfg._short_side()
    if h0 <= w0:
        rh, rw = short, int(short * w0 / h0)
    else:
        rh, rw = int(short * h0 / w0), short
    ch, cw = cfg.input_hw
    if ch > rh or cw > rw:
        raise ValueError(f"crop {cfg.input_hw} larger than the resized image {(rh, rw)}")
    top, left = (rh - ch) // 2, (rw - cw) // 2
    lost = 1.0 - (ch * cw) / (rh * rw)
    return ImageTransform((h0, w0), (rh, rw), (top, left, ch, cw), (ch, cw), lost, "native")


def _to_rgb(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, np.ndarray):
        arr = image
        if arr.dtype != np.uint8:
            raise ValueError("numpy images must be uint8 (H, W) or (H, W, C)")
        image = Image.fromarray(arr)
    return image.convert("RGB") if image.mode != "RGB" else image


def preprocess_image(
    image: Image.Image | np.ndarray, cfg: PreprocessConfig
) -> tuple[np.ndarray, ImageTransform]:
    """One image to a normalised float32 array (3, H, W) and its :class:`ImageTransform`."""
    rgb = _to_rgb(image)
    t = plan_transform((rgb.height, rgb.width), cfg)
    rh, rw = t.resized_hw
    resized = rgb.resize((rw, rh), resample=_FILTERS[cfg.interpolation])
    if t.crop is not None:
        top, left, ch, cw = t.crop
        resized = resized.crop((left, top, left + cw, top + ch))
    arr = np.asarray(resized, dtype=np.float32) / 255.0
    mean = np.asarray(cfg.mean, dtype=np.float32)
    std = np.asarray(cfg.std, dtype=np.float32)
    arr = (arr - mean) / std
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), t


def preprocess_batch(
    images: Sequence[Image.Image | np.ndarray], cfg: PreprocessConfig
) -> tuple[np.ndarray, list[ImageTransform]]:
    """Several images to one float32 array (B, 3, H, W) plus one transform per image.

    In ``aspect`` mode every image of a batch must get the same input size (batch them
    with :func:`group_by_input_size`); a mixed batch is refused.
    """
    arrays: list[np.ndarray] = []
    transforms: list[ImageTransform] = []
    for img in images:
        a, t = preprocess_image(img, cfg)
        arrays.append(a)
        transforms.append(t)
    if not arrays:
        h, w = cfg.input_hw
        return np.zeros((0, 3, h, w), np.float32), []
    sizes = {t.input_hw for t in transforms}
    if len(sizes) > 1:
        raise ValueError(f"images of different input sizes {sorted(sizes)} in one batch; "
                         "group them with group_by_input_size first")
    return np.stack(arrays), transforms


def group_by_input_size(orig_hws: Sequence[tuple[int, int]],
                        cfg: PreprocessConfig) -> dict[tuple[int, int], list[int]]:
    """Indices of the images (given by original (height, width)) per model input size, in
    order of first appearance (one group in ``full``/``native`` mode)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, hw in enumerate(orig_hws):
        groups.setdefault(plan_transform(hw, cfg).input_hw, []).append(i)
    return groups


def transform_boxes(
    boxes: np.ndarray | Sequence[Sequence[float]],
    transform: ImageTransform | PreprocessConfig | Mapping[str, Any],
    orig_size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Carry boxes (``[left, top, right, bottom]`` fractions of the original image) onto the
    model input; return ``(boxes_on_input, kept)``.

    ``kept`` is the fraction of each box's area that survives the crop (1 everywhere for
    ``full`` resizing, where the boxes come back unchanged; 0 for a box entirely cut off,
    whose coordinates then collapse onto the crop border). ``orig_size`` = (height, width)
    is needed when ``transform`` is a run-level config rather than an :class:`ImageTransform`.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if isinstance(transform, Mapping):
        transform = PreprocessConfig.from_dict(transform)
    if isinstance(transform, PreprocessConfig):
        if orig_size is None:
            if transform.resize_mode in ("full", "aspect"):
                orig_size = (1, 1)
            else:
                raise ValueError("orig_size (height, width) is needed for a native crop")
        transform = plan_transform(orig_size, transform)
    ltwh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    if (ltwh[:, 2:] < 0).any():
        raise ValueError("boxes must be [left, top, right, bottom] with right >= left, "
                         "bottom >= top")
    moved, kept = boxes_in_frame(ltwh, transform.frame)
    return np.concatenate([moved[:, :2], moved[:, :2] + moved[:, 2:]], axis=1), kept
