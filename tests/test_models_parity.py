"""Preprocessing parity: each checkpoint's own processor class from transformers, built
locally from the settings of its published ``preprocessor_config.json`` (written out here,
nothing downloaded), against ``ssl_wc.models.preprocess``.

The ``*Pil`` processors resize with PIL, as we do, so they must agree to float rounding.
DINOv3's processor exists only with the torchvision backend (not installable here: it
breaks torch); its steps (rescale to [0, 1], antialiased bilinear resize of the float image,
normalise) are reproduced with ``torch.nn.functional.interpolate(antialias=True)`` (what
torchvision calls for float tensors), and the PIL resize of uint8 pixels differs from that
by the rounding of the resized pixels and the filters' edge handling: the tolerance below.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from ssl_wc.models.preprocess import PreprocessConfig, aspect_size, preprocess_image
from ssl_wc.models.registry import get_spec

BILINEAR, BICUBIC = 2, 3  # PIL resampling codes, as the config files write them
IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
HALF = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
CLIP = {"image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]}
BASE = {"do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True}

# key -> (processor class (PIL backend), its preprocessor_config.json settings)
PROCESSORS = {
    "dinov2": ("BitImageProcessorPil", {  # facebook/dinov2-with-registers-base
        **BASE, **IMAGENET, "size": {"shortest_edge": 256}, "do_center_crop": True,
        "crop_size": {"height": 224, "width": 224}, "resample": BICUBIC,
        "do_convert_rgb": True}),
    "mae": ("ViTImageProcessorPil", {  # facebook/vit-mae-base
        **BASE, **IMAGENET, "size": {"height": 224, "width": 224}, "resample": BILINEAR}),
    "clip": ("CLIPImageProcessorPil", {  # openai/clip-vit-base-patch16
        **BASE, **CLIP, "size": {"shortest_edge": 224}, "do_center_crop": True,
        "crop_size": {"height": 224, "width": 224}, "resample": BICUBIC,
        "do_convert_rgb": True}),
    "siglip": ("SiglipImageProcessorPil", {  # google/siglip-base-patch16-224
        **BASE, **HALF, "size": {"height": 224, "width": 224}, "resample": BICUBIC}),
    "siglip2": ("SiglipImageProcessorPil", {  # google/siglip2-base-patch16-224
        **BASE, **HALF, "size": {"height": 224, "width": 224}, "resample": BILINEAR}),
    "resnet50": ("ConvNextImageProcessorPil", {  # microsoft/resnet-50
        **BASE, **IMAGENET, "size": {"shortest_edge": 224}, "crop_pct": 0.875,
        "resample": BICUBIC}),
}
# checkpoints whose processor crops: our default resizes the whole image instead
CROPPING = {"dinov2", "clip", "resnet50"}
SIZES = [(300, 451), (517, 333), (224, 224), (97, 203)]  # (height, width)


def _image(h: int, w: int, seed: int = 0) -> Image.Image:
    """Smooth gradients plus noise: structure at every scale, so filters differ visibly."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([127 + 100 * np.sin(x / 17.0 + c) * np.cos(y / 23.0 - c)
                     for c in range(3)], axis=-1)
    arr = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def _processor(key: str, **override: object) -> object:
    name, settings = PROCESSORS[key]
    return getattr(transformers, name)(**{**settings, **override})


def _theirs(proc: object, img: Image.Image) -> np.ndarray:
    out = proc(images=img, return_tensors="np")  # type: ignore[operator]
    return np.asarray(out["pixel_values"][0], dtype=np.float64)


def _ours(key: str, img: Image.Image, mode: str | None = None) -> np.ndarray:
    arr, _ = preprocess_image(img, PreprocessConfig.from_spec(get_spec(key), resize_mode=mode))
    return arr.astype(np.float64)


@pytest.mark.parametrize("key", sorted(PROCESSORS))
@pytest.mark.parametrize("hw", SIZES)
def test_checkpoint_geometry_matches_its_processor(key: str, hw: tuple[int, int]) -> None:
    """The checkpoint's own geometry (``native``: its short-side resize and centre crop;
    for the whole-image processors the default mode) equals its processor's output."""
    img = _image(*hw)
    mode = "native" if key in CROPPING else None
    ours, theirs = _ours(key, img, mode), _theirs(_processor(key), img)
    assert ours.shape == theirs.shape == (3, 224, 224)
    np.testing.assert_allclose(ours, theirs, atol=2e-5, err_msg=key)


@pytest.mark.parametrize("key", sorted(CROPPING))
def test_default_whole_image_resize_uses_the_checkpoints_filter(key: str) -> None:
    """Our default (whole image to 224x224, no crop) is the checkpoint's processor with the
    crop turned off and a square size: same filter, same normalisation."""
    img = _image(300, 451, seed=1)
    proc = _processor(key, size={"height": 224, "width": 224}, do_center_crop=False,
                      **({"crop_pct": 1.0} if key == "resnet50" else {}))
    if key == "resnet50":  # ConvNext's resize wants a shortest edge: 384+ warps, no crop
        spec = get_spec(key)
        cfg = PreprocessConfig(input_hw=(384, 384), interpolation=spec.interpolation,
                               mean=spec.mean, std=spec.std)
        ours = preprocess_image(img, cfg)[0].astype(np.float64)
        theirs = _theirs(_processor(key, size={"shortest_edge": 384}), img)
    else:
        ours, theirs = _ours(key, img), _theirs(proc, img)
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_a_different_filter_would_be_caught() -> None:
    """The parity tests can fail: MAE through a bicubic processor differs visibly."""
    img = _image(300, 451)
    theirs = _theirs(_processor("mae", resample=BICUBIC), img)
    assert np.abs(_ours("mae", img) - theirs).max() > 0.05


@pytest.mark.parametrize("hw", [*SIZES, (1000, 120), (40, 900)])
def test_naflex_matches_siglip2_processor(hw: tuple[int, int]) -> None:
    """NaFlex: aspect kept under a 256-patch budget; the processor's patches (row-major,
    each flattened as row-in-patch, column-in-patch, channel), mask and grid shape."""
    from ssl_wc.models.extract import naflex_inputs

    img = _image(*hw, seed=2)
    proc = transformers.Siglip2ImageProcessorPil(**BASE, **HALF, resample=BILINEAR,
                                                  patch_size=16, max_num_patches=256)
    out = proc(images=img, return_tensors="np")
    spec = get_spec("siglip2_naflex")
    arr, t = preprocess_image(img, PreprocessConfig.from_spec(spec))
    gh, gw = t.input_hw[0] // 16, t.input_hw[1] // 16
    assert [gh, gw] == list(out["spatial_shapes"][0])
    assert gh * gw <= 256 and t.crop is None and t.area_lost == 0.0
    mine = naflex_inputs(torch.from_numpy(arr[None]), 16, 256)
    np.testing.assert_array_equal(mine["pixel_attention_mask"][0].numpy(),
                                  out["pixel_attention_mask"][0])
    np.testing.assert_allclose(mine["pixel_values"][0].numpy(), out["pixel_values"][0],
                               atol=2e-5)


def test_aspect_size_matches_the_processors_search() -> None:
    from transformers.models.siglip2.image_processing_pil_siglip2 import (
        get_image_size_for_max_num_patches as theirs,
    )

    rng = np.random.default_rng(0)
    for h, w in rng.integers(8, 3000, size=(300, 2)):
        for budget in (64, 196, 256, 1024):
            assert aspect_size(int(h), int(w), 16, budget) == theirs(int(h), int(w), 16, budget)


def _dinov3_reference(img: Image.Image) -> np.ndarray:
    """DINOv3ViTImageProcessor's steps: rescale, antialiased bilinear resize of the float
    image to 224x224 (torchvision -> interpolate(antialias=True)), ImageNet normalise."""
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    y = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear",
                                        align_corners=False, antialias=True)[0]
    mean = torch.tensor(IMAGENET["image_mean"])[:, None, None]
    std = torch.tensor(IMAGENET["image_std"])[:, None, None]
    return ((y - mean) / std).double().numpy()


@pytest.mark.parametrize("hw", SIZES)
def test_dinov3_matches_its_processors_resize(hw: tuple[int, int]) -> None:
    img = _image(*hw, seed=3)
    ours, ref = _ours("dinov3", img), _dinov3_reference(img)
    diff = np.abs(ours - ref)
    # PIL rounds the resized pixels to uint8 (<= 0.5/255 / std = 0.009); the filters agree
    # inside the image and differ by a fraction of a grey level at its borders
    assert diff.mean() < 0.01 and np.quantile(diff, 0.999) < 0.05, (diff.mean(), diff.max())
    if hw != (224, 224):  # a resize happens: the tolerance tells filters apart
        bicubic = PreprocessConfig(input_hw=(224, 224), interpolation="bicubic")
        other = preprocess_image(img, bicubic)[0].astype(np.float64)
        assert np.abs(other - ref).mean() > 3 * diff.mean()


def test_dinov3_processor_when_torchvision_is_importable() -> None:
    """With torchvision present (not on these machines), the real class must agree too."""
    try:
        proc = transformers.DINOv3ViTImageProcessor(**BASE, **IMAGENET, resample=BILINEAR,
                                                    size={"height": 224, "width": 224})
    except ImportError:
        pytest.skip("DINOv3ViTImageProcessor needs torchvision (not installable here)")
    img = _image(300, 451)
    np.testing.assert_allclose(_theirs(proc, img), _dinov3_reference(img), atol=1e-4)
