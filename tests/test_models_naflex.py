"""SigLIP 2 NaFlex at tiny size (saved, reloaded by load_model): variable aspect-preserving
grids, padded patches masked out of attention and of the MAP head, geometry probes on
non-square grids."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from ssl_wc.models.extract import HEAD_MEAN, attention_modules, extract_batch, naflex_inputs
from ssl_wc.models.loading import load_model
from ssl_wc.models.preprocess import PreprocessConfig, preprocess_batch
from ssl_wc.models.registry import ModelSpec, build_random_model


@pytest.fixture(scope="module")
def naflex(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelSpec, nn.Module]:
    # a 4x4 position table and a 16-patch budget: a 3x5 grid leaves one padded patch
    spec = build_random_model("siglip2_naflex", tmp_path_factory.mktemp("nf") / "m", seed=4,
                              grid=4, hidden_size=32, num_layers=3, num_heads=2)
    assert isinstance(spec, ModelSpec) and spec.max_num_patches == 16
    return spec, load_model(spec, device="cpu").model


def _pixels(gh: int, gw: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, gh * 16, gw * 16, generator=g)


@contextmanager
def _hook(module: nn.Module, fn: Any) -> Iterator[None]:
    h = module.register_forward_hook(fn)
    try:
        yield
    finally:
        h.remove()


def test_non_square_image_gets_a_non_square_grid(naflex: tuple[ModelSpec, nn.Module]) -> None:
    spec, model = naflex
    cfg = PreprocessConfig.from_spec(spec)
    portrait = Image.new("RGB", (200, 300), (90, 120, 150))  # width 200, height 300
    pixels, (t,) = preprocess_batch([portrait], cfg)
    assert t.input_hw == (80, 48) and t.frame == (0.0, 0.0, 1.0, 1.0)
    res = extract_batch(model, spec, torch.from_numpy(pixels), methods=("map", "mean"),
                        fuse=("mean",))
    assert (res.maps.grid_h, res.maps.grid_w) == (5, 3)  # rows = y: taller than wide
    assert res.maps.values.shape[1] == 15 and res.info["grid"] == [5, 3]
    with pytest.raises(ValueError, match="different input sizes"):
        preprocess_batch([portrait, portrait.transpose(Image.Transpose.TRANSPOSE)], cfg)


def test_padding_is_masked_everywhere(naflex: tuple[ModelSpec, nn.Module]) -> None:
    """The same images padded to a larger budget give the same maps and features: padded
    patches receive no attention (encoder and MAP head) and enter no average."""
    spec, model = naflex
    x = _pixels(3, 5)
    methods = ("map", "mean", "rollout", "gradcam")
    a = extract_batch(model, spec, x, methods=methods, fuse=("mean", "max"),
                      patch_token_layers=(-1,))
    wide = dataclasses.replace(spec, max_num_patches=40)  # 25 padded patches, not 1
    b = extract_batch(model, wide, x, methods=methods, fuse=("mean", "max"),
                      patch_token_layers=(-1,))
    np.testing.assert_allclose(a.maps.values, b.maps.values, rtol=1e-4, atol=1e-6)
    assert a.features is not None and b.features is not None
    np.testing.assert_allclose(a.features.values, b.features.values, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.patch_tokens[3], b.patch_tokens[3], rtol=1e-4, atol=1e-5)
    probe = a.maps.select(method="map")
    heads = probe.head >= 0
    np.testing.assert_allclose(probe.values[heads].sum(axis=1), 1.0, atol=1e-5)


def test_naflex_inputs_layout() -> None:
    x = torch.arange(2 * 3 * 32 * 48, dtype=torch.float32).reshape(2, 3, 32, 48)
    inp = naflex_inputs(x, 16, 8)
    assert inp["pixel_values"].shape == (2, 8, 16 * 16 * 3)
    assert inp["pixel_attention_mask"].tolist() == [[1] * 6 + [0] * 2] * 2
    assert inp["spatial_shapes"].tolist() == [[2, 3], [2, 3]]
    # patch (1, 2) = rows 16..31, columns 32..47; flattened (row, column, channel)
    patch = inp["pixel_values"][0, 1 * 3 + 2].reshape(16, 16, 3)
    np.testing.assert_array_equal(patch.permute(2, 0, 1).numpy(), x[0, :, 16:32, 32:48].numpy())
    assert (inp["pixel_values"][:, 6:] == 0).all()
    with pytest.raises(ValueError, match="budget"):
        naflex_inputs(x, 16, 5)


@pytest.mark.parametrize(("r", "c"), [(2, 4), (0, 1)])
def test_geometry_probe_planted_attention(naflex: tuple[ModelSpec, nn.Module], r: int,
                                          c: int) -> None:
    """All of the last block's attention planted on patch (r, c) of a 3x5 grid: the
    'mean' and rollout-free rows peak exactly there (a row/column swap would not)."""
    spec, model = naflex
    gh, gw = 3, 5
    token = r * gw + c

    def plant(_m: nn.Module, _a: Any, out: Any) -> Any:
        w = torch.zeros_like(out[1])
        w[..., token] = 1.0
        return (out[0], w, *out[2:])

    with _hook(attention_modules(model)[-1], plant):
        res = extract_batch(model, spec, _pixels(gh, gw), methods=("mean",), layers=[-1],
                            fuse=("mean",), features=False)
    expected = np.zeros((gh, gw), np.float32)
    expected[r, c] = 1.0
    for rec in res.maps.records():
        np.testing.assert_allclose(rec.map, expected, atol=1e-6)


def _probe_reads_channel_zero(mha: nn.MultiheadAttention) -> None:
    """Make the MAP probe's score of patch p equal to sqrt(head_dim) * h[p, 0]."""
    d = mha.embed_dim
    with torch.no_grad():
        mha.in_proj_weight[:d].zero_()
        mha.in_proj_bias[:d].fill_(1.0)  # q = 1 in every dimension
        mha.in_proj_weight[d:2 * d].zero_()
        mha.in_proj_weight[d:2 * d, 0] = 1.0  # k = h[:, 0] in every dimension
        mha.in_proj_bias[d:2 * d].zero_()


@pytest.mark.parametrize(("r", "c"), [(2, 1), (0, 4)])
def test_geometry_probe_map_head(tmp_path: Any, r: int, c: int) -> None:
    """A planted feature at patch (r, c) of a 3x5 grid makes the MAP probe attend there;
    a larger value planted on the padded patch is ignored (the head's key mask)."""
    spec = build_random_model("siglip2_naflex", tmp_path / "m", seed=5, grid=4,
                              hidden_size=32, num_layers=2, num_heads=2)
    model = load_model(spec, device="cpu").model
    _probe_reads_channel_zero(model.head.attention)
    gh, gw = 3, 5

    def plant(_m: nn.Module, _a: Any, out: torch.Tensor) -> torch.Tensor:
        new = torch.zeros_like(out)
        new[:, r * gw + c, 0] = 30.0
        new[:, gh * gw:, 0] = 60.0  # the padding: must not win
        return new

    with _hook(model.post_layernorm, plant):
        res = extract_batch(model, spec, _pixels(gh, gw), methods=("map",), fuse=("mean",),
                            features=False)
    m = res.maps.get("map", spec.num_layers, HEAD_MEAN)
    assert m.shape == (2, gh, gw)
    for img in m:
        assert np.unravel_index(img.argmax(), img.shape) == (r, c)
        assert img[r, c] > 0.99


def test_geometry_probe_bright_patch(naflex: tuple[ModelSpec, nn.Module]) -> None:
    """A bright patch at (r, c) of a 4x3 grid changes only that cell's layer-0 token."""
    spec, model = naflex
    gh, gw, r, c = 4, 3, 3, 1
    x = torch.zeros(2, 3, gh * 16, gw * 16)
    x[1, :, r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] = 2.0
    res = extract_batch(model, spec, x, methods=("mean",), features=False,
                        patch_token_layers=(0,))
    diff = np.linalg.norm(res.patch_tokens[0][1] - res.patch_tokens[0][0], axis=-1)
    diff = diff.reshape(gh, gw)
    assert diff[r, c] > 1e-3
    diff[r, c] = 0.0
    assert diff.max() < 1e-5
