"""ResNet-50 Grad-CAM through transformers' ResNet classes, at tiny width (saved, reloaded
by load_model): the geometry probe, the formula, the target, stage grids, features and the
checkpoint's own centre crop."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from ssl_wc.models.cnn import extract_cnn_batch
from ssl_wc.models.extract import HEAD_MEAN, extract_batch
from ssl_wc.models.loading import ConfigMismatch, load_model
from ssl_wc.models.preprocess import PreprocessConfig, plan_transform, transform_boxes
from ssl_wc.models.registry import CnnSpec, build_random_model, get_spec


@pytest.fixture(scope="module")
def resnet(tmp_path_factory: pytest.TempPathFactory) -> tuple[CnnSpec, nn.Module]:
    spec = build_random_model("resnet50", tmp_path_factory.mktemp("rn") / "m", seed=2,
                              hidden_size=16)
    assert isinstance(spec, CnnSpec) and spec.key == "resnet50-random"
    loaded = load_model(spec, device="cpu")
    assert loaded.provenance["kind"] == "cnn" and loaded.provenance["random_weights"]
    return spec, loaded.model


def _pixels(h: int, w: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, h, w, generator=g)


@pytest.mark.parametrize(("r", "c"), [(2, 6), (5, 0)])
def test_geometry_probe_planted_activation(resnet: tuple[CnnSpec, nn.Module], r: int,
                                           c: int) -> None:
    """One channel of the last stage active at cell (r, c) of a non-square 7x9 grid, the
    classifier reading only that channel: the Grad-CAM map is that cell, exactly."""
    spec, base = resnet
    model = copy.deepcopy(base)  # the fixture's model stays untouched
    k = 3
    fc = model.classifier[1]
    with torch.no_grad():
        fc.weight.zero_()
        fc.bias.zero_()
        fc.weight[7, k] = 1.0  # class 7 reads channel k: it is the top-1 class

    def plant(_m: nn.Module, _a: Any, out: torch.Tensor) -> torch.Tensor:
        new = torch.zeros_like(out)
        new[:, k, r, c] = 5.0
        return new

    h = model.resnet.encoder.stages[-1].register_forward_hook(plant)
    try:
        res = extract_batch(model, spec, _pixels(224, 288), features=False)
    finally:
        h.remove()
    assert (res.maps.grid_h, res.maps.grid_w) == (7, 9)  # rows = y: 224 / 32, 288 / 32
    expected = np.zeros((7, 9), np.float32)
    expected[r, c] = 5.0 / 63.0  # alpha_k = w / (h * w cells), times the activation
    for rec in res.maps.records():
        assert rec.method == "gradcam" and rec.head == HEAD_MEAN and rec.layer == 4
        np.testing.assert_allclose(rec.map, expected, rtol=1e-5, atol=1e-8)


def test_gradcam_formula_against_autograd(resnet: tuple[CnnSpec, nn.Module]) -> None:
    """alpha_c = mean_ij dy/dA_c, map = ReLU(sum_c alpha_c A_c), y = top-1 logit."""
    spec, model = resnet
    x = _pixels(224, 224, seed=1)
    store: dict[str, torch.Tensor] = {}

    def keep(_m: nn.Module, _a: Any, out: torch.Tensor) -> None:
        out.retain_grad()
        store["a"] = out

    h = model.resnet.encoder.stages[-1].register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(pixel_values=x.requires_grad_(True)).logits
            top = logits.argmax(dim=-1)
            logits.gather(1, top[:, None]).sum().backward()
    finally:
        h.remove()
        model.zero_grad(set_to_none=True)
    a, g = store["a"].detach(), store["a"].grad
    assert g is not None
    want = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1)).numpy()
    got = extract_batch(model, spec, x, features=False).maps.maps()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    same = extract_cnn_batch(model, spec, x, target_class=top.tolist(), features=False)
    np.testing.assert_allclose(same.maps.maps(), got, rtol=1e-6)
    other = extract_cnn_batch(model, spec, x, target_class=int(top[0]) + 1, features=False)
    assert not np.allclose(other.maps.maps(), got)
    assert all(p.grad is None for p in model.parameters())


def test_a_fine_tuned_head_is_the_target(resnet: tuple[CnnSpec, nn.Module]) -> None:
    spec, model = resnet
    x = _pixels(224, 224, seed=2)
    head = nn.Linear(spec_width(model), 4)
    torch.manual_seed(0)
    nn.init.normal_(head.weight)
    res = extract_batch(model, spec, x, classifier=head, features=False)
    assert res.info["gradcam_target"] == "classifier logit"
    with torch.no_grad():
        pooled = model.resnet(pixel_values=x).pooler_output.flatten(1)
    chosen = head(pooled).argmax(dim=-1).tolist()
    np.testing.assert_allclose(
        res.maps.values,
        extract_cnn_batch(model, spec, x, classifier=head, target_class=chosen,
                          features=False).maps.values, rtol=1e-6)


def spec_width(model: nn.Module) -> int:
    return int(model.config.hidden_sizes[-1])


def test_stage_grids_features_and_tokens(resnet: tuple[CnnSpec, nn.Module]) -> None:
    spec, model = resnet
    x = _pixels(224, 224, seed=3)
    res = extract_batch(model, spec, x, layers=[1, 2, 3, 4], patch_token_layers=[4],
                        feature_layers=[0, 1, 2, 3, 4])
    grids = [(m.grid_h, m.grid_w) for m in res.all_maps()]
    assert grids == [(7, 7), (14, 14), (28, 28), (56, 56)]  # deepest stage first
    assert all((m.values >= 0).all() for m in res.all_maps())  # ReLU
    fb = res.features
    assert fb is not None
    widths = model.config.hidden_sizes
    for stage in range(1, 5):
        assert fb.get("patch_mean", stage).shape == (2, widths[stage - 1])
    with torch.no_grad():
        want = model.resnet(pixel_values=x).pooler_output.flatten(1).numpy()
    np.testing.assert_allclose(fb.get("pooled", 4), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fb.get("pooled", 4), fb.get("patch_mean", 4), rtol=1e-5)
    assert res.patch_tokens[4].shape == (2, 49, widths[-1])
    with pytest.raises(ValueError, match="only method 'gradcam'"):
        extract_batch(model, spec, x, methods=("cls",))


def test_resnet_crop_carries_boxes_and_records_area_lost() -> None:
    """Short side 256, centre crop 224 (the checkpoint's processor); boxes through it."""
    spec = get_spec("resnet50")
    cfg = PreprocessConfig.from_spec(spec)
    assert cfg.resize_mode == "native" and cfg.native_short_side == 256
    t = plan_transform((300, 450), cfg)  # landscape 2:3
    assert t.resized_hw == (256, 384) and t.crop == (16, 80, 224, 224)
    assert t.area_lost == pytest.approx(1 - 224 * 224 / (256 * 384))
    np.testing.assert_allclose(t.frame, (80 / 384, 16 / 256, 304 / 384, 240 / 256))
    boxes, kept = transform_boxes([[0.0, 0.0, 0.1, 1.0], [0.4, 0.4, 0.6, 0.6]], t)
    assert kept[0] == 0.0  # the left 10 % of a 2:3 image is cut off
    np.testing.assert_allclose(boxes[1], [(0.4 * 384 - 80) / 224, (0.4 * 256 - 16) / 224,
                                          (0.6 * 384 - 80) / 224, (0.6 * 256 - 16) / 224])


def test_layout_mismatch_names_the_stage_key(tmp_path: Any) -> None:
    spec = build_random_model("resnet50", tmp_path / "m", seed=0)
    wrong = dataclasses.replace(spec, config={**spec.config, "depths": [3, 4, 6, 3]})
    with pytest.raises(ConfigMismatch, match=r"first mismatch: depths: pinned \[3, 4, 6, 3\]"):
        load_model(wrong, device="cpu")
