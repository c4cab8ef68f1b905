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
:class:`ImageTransform` records the area lost.

Transform record (``PreprocessConfig.to_dict()``, stored with each run)::

    {"resize_mode": "full", "input_hw": [224, 224], "interpolation": "bicubic",
     "mean": [...], "std": [...], "native_short_side": null, "crop": null,
     "area_lost": 0.0, "library": "PIL 11.x"}

(``crop`` is ``"center"`` and ``area_lost`` ``null`` (per image) in native mode.) Per image,
``ImageTransform.to_dict()`` adds ``orig_hw``, ``resized_hw``, the crop box
``[top, left, height, width]`` in resized pixels (or ``null``) and ``area_lost`` (the
fraction of the original image outside the model input: 0 for ``full``).

Sizes are (height, width) throughout. Boxes are ``[left, top, right, bottom]`` fractions of
the image (x = column, y = row). This module imports neither torch nor transformers.

Public: :class:`PreprocessConfig`, :class:`ImageTransform`, :func:`plan_transform`,
:func:`preprocess_image`, :func:`preprocess_batch`, :func:`transform_boxes`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import PIL
from PIL import Image

if TYPE_CHECKING:  # pragma: no cover
    from ssl_wc.models.registry import ModelSpec

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

    def __post_init__(self) -> None:
        if self.resize_mode not in ("full", "native"):
            raise ValueError(f"resize_mode must be 'full' or 'native', not {self.resize_mode!r}")
        if self.interpolation not in _FILTERS:
            raise ValueError(f"interpolation must be one of {sorted(_FILTERS)}")
        if self.resize_mode == "native" and self.native_short_side is not None and (
            self.native_short_side < min(self.input_hw)
        ):
            raise ValueError("native short side is smaller than the crop")

    @classmethod
    def from_spec(cls, spec: ModelSpec, resize_mode: str | None = None) -> PreprocessConfig:
        """The spec's preprocessing; ``resize_mode`` overrides the spec's (``full``/``native``).

        In native mode the crop is the spec's native crop (else the model input) and the
        short side the spec's native short side; a checkpoint whose own processor resizes
        the whole image (no native short side: DINOv3, MAE, SigLIP) gets ``full``.
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
        return cls(
            input_hw=(int(input_hw[0]), int(input_hw[1])),
            resize_mode=mode,
            interpolation=spec.interpolation,
            mean=tuple(float(v) for v in spec.mean),  # type: ignore[arg-type]
            std=tuple(float(v) for v in spec.std),  # type: ignore[arg-type]
            native_short_side=short,
        )

    def to_dict(self) -> dict[str, Any]:
        """The run-level transform record (see the module docstring)."""
        native = self.resize_mode == "native"
        return {
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

    def to_dict(self) -> dict[str, Any]:
        return {
            "resize_mode": self.resize_mode,
            "orig_hw": list(self.orig_hw),
            "resized_hw": list(self.resized_hw),
            "crop": list(self.crop) if self.crop is not None else None,
            "input_hw": list(self.input_hw),
            "area_lost": self.area_lost,
        }


def plan_transform(orig_hw: tuple[int, int], cfg: PreprocessConfig) -> ImageTransform:
    """The geometry for an image of ``orig_hw`` = (height, width) under ``cfg``."""
    h0, w0 = int(orig_hw[0]), int(orig_hw[1])
    if h0 <= 0 or w0 <= 0:
        raise ValueError(f"empty image {orig_hw}")
    if cfg.resize_mode == "full":
        return ImageTransform((h0, w0), cfg.input_hw, None, cfg.input_hw, 0.0, "full")
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
    """Several images to one float32 array (B, 3, H, W) plus one transform per image."""
    arrays: list[np.ndarray] = []
    transforms: list[ImageTransform] = []
    for img in images:
        a, t = preprocess_image(img, cfg)
        arrays.append(a)
        transforms.append(t)
    if not arrays:
        h, w = cfg.input_hw
        return np.zeros((0, 3, h, w), np.float32), []
    return np.stack(arrays), transforms


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
        hw = transform["input_hw"]
        transform = PreprocessConfig(
            input_hw=(int(hw[0]), int(hw[1])),
            resize_mode=transform["resize_mode"],
            interpolation=transform.get("interpolation", "bicubic"),
            native_short_side=transform.get("native_short_side"),
        )
    if isinstance(transform, PreprocessConfig):
        if orig_size is None:
            if transform.resize_mode == "full":
                orig_size = (1, 1)
            else:
                raise ValueError("orig_size (height, width) is needed for a native crop")
        transform = plan_transform(orig_size, transform)
    clipped = np.clip(b, 0.0, 1.0)
    if transform.crop is None:
        return clipped, np.ones(len(b))
    rh, rw = transform.resized_hw
    top, left, ch, cw = transform.crop
    x = (clipped[:, [0, 2]] * rw - left) / cw
    y = (clipped[:, [1, 3]] * rh - top) / ch
    out = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
    inside = np.clip(out, 0.0, 1.0)
    area = (clipped[:, 2] - clipped[:, 0]) * rw / cw * (clipped[:, 3] - clipped[:, 1]) * rh / ch
    area_in = (inside[:, 2] - inside[:, 0]) * (inside[:, 3] - inside[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        kept = np.where(area > 0, area_in / np.where(area > 0, area, 1.0), 0.0)
    return inside, kept
