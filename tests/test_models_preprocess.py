"""Preprocessing: whole-image resize (no crop), normalisation, native crop and boxes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ssl_wc.models.preprocess import (
    PreprocessConfig,
    plan_transform,
    preprocess_batch,
    preprocess_image,
    transform_boxes,
)
from ssl_wc.models.registry import get_spec


def test_full_resize_shape_normalisation_and_record() -> None:
    cfg = PreprocessConfig.from_spec(get_spec("dinov2"))
    img = Image.new("RGB", (640, 480), (255, 0, 128))  # PIL size is (width, height)
    arr, t = preprocess_image(img, cfg)
    assert arr.shape == (3, 224, 224) and arr.dtype == np.float32
    mean, std = np.array(cfg.mean), np.array(cfg.std)
    want = (np.array([255, 0, 128]) / 255.0 - mean) / std
    np.testing.assert_allclose(arr[:, 100, 100], want, rtol=1e-5)
    assert t.orig_hw == (480, 640) and t.crop is None and t.area_lost == 0.0
    rec = cfg.to_dict()
    assert rec["resize_mode"] == "full" and rec["crop"] is None and rec["area_lost"] == 0.0
    assert rec["input_hw"] == [224, 224] and rec["interpolation"] == "bicubic"
    assert rec["mean"] == list(cfg.mean)


def test_full_resize_keeps_box_fractions_rows_are_y() -> None:
    # A wide image, bright in the top-right quarter: it stays top-right (rows = y).
    h, w = 100, 300
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, w // 2 :] = 255
    cfg = PreprocessConfig(input_hw=(64, 96), interpolation="bilinear",
                           mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    arr, _ = preprocess_image(a, cfg)
    gray = arr.mean(axis=0)
    assert gray.shape == (64, 96)
    assert gray[:28, 52:].min() > 0.95 and gray[36:, :].max() < 0.05 and gray[:, :44].max() < 0.05
    boxes, kept = transform_boxes([[0.5, 0.0, 1.0, 0.5]], cfg, (h, w))
    np.testing.assert_allclose(boxes, [[0.5, 0.0, 1.0, 0.5]])
    np.testing.assert_allclose(kept, [1.0])


def test_grayscale_rgba_and_batch() -> None:
    cfg = PreprocessConfig(input_hw=(32, 48))
    gray = Image.new("L", (50, 40), 10)
    rgba = Image.new("RGBA", (20, 30), (1, 2, 3, 0))
    batch, ts = preprocess_batch([gray, rgba, np.zeros((7, 9), np.uint8)], cfg)
    assert batch.shape == (3, 3, 32, 48) and len(ts) == 3
    with pytest.raises(ValueError, match="uint8"):
        preprocess_image(np.zeros((4, 4, 3), np.float32), cfg)


def test_native_crop_geometry_and_area_lost() -> None:
    spec = get_spec("dinov2")
    cfg = PreprocessConfig.from_spec(spec, resize_mode="native")
    t = plan_transform((300, 400), cfg)  # landscape
    assert t.resized_hw == (256, 341)
    assert t.crop == ((256 - 224) // 2, (341 - 224) // 2, 224, 224)
    assert t.area_lost == pytest.approx(1 - 224 * 224 / (256 * 341))
    assert cfg.to_dict()["crop"] == "center" and cfg.to_dict()["area_lost"] is None
    arr, t2 = preprocess_image(Image.new("RGB", (400, 300)), cfg)
    assert arr.shape == (3, 224, 224) and t2 == t
    portrait = plan_transform((400, 300), cfg)
    assert portrait.resized_hw == (341, 256)


def test_transform_boxes_through_native_crop() -> None:
    cfg = PreprocessConfig(input_hw=(100, 100), resize_mode="native", native_short_side=100)
    t = plan_transform((100, 200), cfg)  # resized 100x200, crop columns 50..150
    assert t.crop == (0, 50, 100, 100) and t.area_lost == pytest.approx(0.5)
    boxes = [
        [0.25, 0.0, 0.75, 1.0],  # exactly the crop
        [0.0, 0.1, 0.2, 0.2],  # entirely cut off on the left
        [0.125, 0.0, 0.375, 1.0],  # half cut off
    ]
    out, kept = transform_boxes(boxes, t)
    np.testing.assert_allclose(out[0], [0, 0, 1, 1])
    assert kept[1] == 0.0
    np.testing.assert_allclose(out[2], [0.0, 0.0, 0.25, 1.0])
    assert kept[2] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="orig_size"):
        transform_boxes(boxes, cfg)
    out2, _ = transform_boxes(boxes, cfg.to_dict(), (100, 200))
    np.testing.assert_allclose(out2, out)


def test_native_mode_of_a_full_resize_checkpoint_is_full() -> None:
    cfg = PreprocessConfig.from_spec(get_spec("siglip"), resize_mode="native")
    assert cfg.resize_mode == "full" and cfg.mean == (0.5, 0.5, 0.5)
    clip = PreprocessConfig.from_spec(get_spec("clip"), resize_mode="native")
    assert clip.resize_mode == "native" and clip.native_short_side == 224
