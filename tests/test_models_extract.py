"""Extraction on every registered backbone at tiny size (saved, reloaded by load_model).

Known answers: planted attention lands in the planted cell (non-square grids, registers
present), rollout identities, probe rows summing to 1, MAE reproducibility, the sdpa trap.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers
from torch import nn

from ssl_wc.models.extract import (
    HEAD_MAX,
    HEAD_MEAN,
    HEAD_MIN,
    AttentionNotReturned,
    ExtractionError,
    attention_modules,
    extract_batch,
    forward_kwargs,
    rollout_step,
)
from ssl_wc.models.loading import load_model
from ssl_wc.models.registry import BUILTIN_KEYS, ModelSpec, build_random_model, get_spec

# fixed-resolution ViTs (NaFlex and ResNet-50 have test_models_naflex / test_models_cnn)
VIT_KEYS = [k for k in BUILTIN_KEYS if get_spec(k).kind == "vit" and not get_spec(k).variable_grid]
CLS_KEYS = [k for k in VIT_KEYS if not k.startswith("siglip")]
MAP_KEYS = [k for k in VIT_KEYS if k.startswith("siglip")]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[ModelSpec, nn.Module]]:
    root = tmp_path_factory.mktemp("models")
    out = {}
    for i, key in enumerate(VIT_KEYS):
        spec = build_random_model(key, root / key, seed=i)
        out[key] = (spec, load_model(spec, device="cpu").model)
    return out


def _pixels(spec: ModelSpec, gh: int, gw: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, gh * spec.patch_size, gw * spec.patch_size, generator=g)


@contextmanager
def planted_attention(module: nn.Module, make: Any) -> Iterator[None]:
    """Replace the attention weights a module returns with ``make(weights)``."""

    def hook(_m: nn.Module, _a: Any, out: Any) -> Any:
        return (out[0], make(out[1]), *out[2:])

    h = module.register_forward_hook(hook)
    try:
        yield
    finally:
        h.remove()


def _all_on_token(token: int) -> Any:
    def make(w: torch.Tensor) -> torch.Tensor:
        new = torch.zeros_like(w)
        new[..., token] = 1.0
        return new

    return make


# ------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("key", VIT_KEYS)
def test_shapes_and_columns(models: dict, key: str) -> None:
    spec, model = models[key]
    x = _pixels(spec, 2, 3)
    methods = ("cls", "rollout", "mean") if spec.has_cls else ("map", "rollout", "mean")
    res = extract_batch(model, spec, x, methods=methods, fuse=("mean", "max"),
                        patch_token_layers=(0, -1))
    m = res.maps
    heads, layers = spec.num_heads, spec.num_layers
    per_image = 2 * layers * (heads + 2) + layers * 2 if spec.has_cls else (
        (heads + 2) + layers * 2 + layers * (heads + 2))
    assert len(m) == 2 * per_image
    assert (m.grid_h, m.grid_w) == (2, 3) and m.values.shape == (len(m), 6)
    assert m.values.dtype == np.float32 and m.maps().shape == (len(m), 2, 3)
    cols = m.to_columns()
    assert cols["head"].dtype == np.int16 and cols["layer"].dtype == np.int16
    assert cols["image"].dtype == np.int32 and set(cols["grid_w"]) == {3}
    assert list(np.unique(m.image)) == [0, 1]
    assert set(m.layer[m.method == "rollout"]) == set(range(1, layers + 1))
    assert set(m.head[m.method == "rollout"]) == {HEAD_MEAN, HEAD_MAX}
    assert np.isfinite(m.values).all()
    f = res.features
    assert f is not None
    assert f.get("pooled", layers).shape == (2, spec.hidden_size)
    assert f.get("patch_mean", 1).shape == (2, spec.hidden_size)
    assert res.patch_tokens[0].shape == (2, 6, spec.hidden_size)
    assert set(res.patch_tokens) == {0, layers}
    assert res.info["grid"] == [2, 3] and res.info["num_prefix_tokens"] == spec.num_prefix_tokens


def test_row_order_and_head_encoding(models: dict) -> None:
    spec, model = models["dinov2"]
    res = extract_batch(model, spec, _pixels(spec, 2, 2), methods=("mean", "cls"),
                        layers=[2, 1], heads=[1], fuse=("min", "mean", "max"), features=False)
    m = res.maps
    assert res.features is None
    first = m.select(image=0)
    assert list(first.method[:8]) == ["mean"] * 8  # methods in the order asked
    assert list(first.layer[:8]) == [1, 1, 1, 1, 2, 2, 2, 2]  # numeric layer order
    assert list(first.head[:4]) == [1, HEAD_MEAN, HEAD_MAX, HEAD_MIN]
    allh = extract_batch(model, spec, _pixels(spec, 2, 2), methods=("cls",), layers=[-1],
                         fuse=("mean", "max", "min"), features=False).maps
    per_head = np.stack([allh.get("cls", 2, h) for h in range(spec.num_heads)])
    np.testing.assert_allclose(allh.get("cls", 2, HEAD_MEAN), per_head.mean(0), rtol=1e-5)
    np.testing.assert_allclose(allh.get("cls", 2, HEAD_MAX), per_head.max(0), rtol=1e-6)
    np.testing.assert_allclose(allh.get("cls", 2, HEAD_MIN), per_head.min(0), rtol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        extract_batch(model, spec, _pixels(spec, 2, 2), layers=[3])


def test_method_errors(models: dict) -> None:
    sspec, smodel = models["siglip"]
    with pytest.raises(ValueError, match="no CLS"):
        extract_batch(smodel, sspec, _pixels(sspec, 2, 2), methods=("cls",))
    dspec, dmodel = models["dinov2"]
    with pytest.raises(ExtractionError, match="attention-pooling head"):
        extract_batch(dmodel, dspec, _pixels(dspec, 2, 2), methods=("map",))
    with pytest.raises(ValueError, match="unknown method"):
        extract_batch(dmodel, dspec, _pixels(dspec, 2, 2), methods=("attn",))
    with pytest.raises(ValueError, match="multiple of the patch"):
        extract_batch(dmodel, dspec, torch.zeros(1, 3, 30, 28))


# -------------------------------------------------------------------- geometry probes


@pytest.mark.parametrize("key", VIT_KEYS)
@pytest.mark.parametrize(("r", "c"), [(1, 2), (0, 1)])
def test_geometry_probe_planted_attention(models: dict, key: str, r: int, c: int) -> None:
    """All attention of the last layer planted on patch (r, c) of a 2x3 grid: the maps of
    every head peak exactly there (a CLS-only offset, a register folded into the grid or a
    row/column swap would land elsewhere)."""
    spec, model = models[key]
    gh, gw = 2, 3
    token = spec.num_prefix_tokens + r * gw + c
    last = attention_modules(model)[-1]
    methods = ("cls", "mean") if spec.has_cls else ("mean",)
    with planted_attention(last, _all_on_token(token)):
        res = extract_batch(model, spec, _pixels(spec, gh, gw), methods=methods,
                            layers=[-1], fuse=("mean",), features=False)
    expected = np.zeros((gh, gw), np.float32)
    expected[r, c] = 1.0
    for rec in res.maps.records():
        np.testing.assert_allclose(rec.map, expected, atol=1e-6, err_msg=f"{rec[:4]}")


@pytest.mark.parametrize("key", VIT_KEYS)
def test_geometry_probe_bright_patch(models: dict, key: str) -> None:
    """A bright patch at (r, c) changes only the layer-0 token of that cell (patch order is
    row-major and prefix tokens are excluded; MAE keeps the identity order)."""
    spec, model = models[key]
    gh, gw, r, c = 2, 3, 1, 0
    p = spec.patch_size
    x = torch.zeros(2, 3, gh * p, gw * p)
    x[1, :, r * p:(r + 1) * p, c * p:(c + 1) * p] = 2.0
    res = extract_batch(model, spec, x, methods=("mean",), features=False,
                        patch_token_layers=(0,))
    tok = res.patch_tokens[0]
    diff = np.linalg.norm(tok[1] - tok[0], axis=-1).reshape(gh, gw)
    assert diff[r, c] > 1e-3
    diff[r, c] = 0.0
    assert diff.max() < 1e-5


@pytest.mark.parametrize(("key", "grid", "tokens"), [("dinov2", 16, 261), ("dinov3", 14, 201)])
def test_geometry_probe_real_224(tmp_path: Path, key: str, grid: int, tokens: int) -> None:
    """Real geometry: 224 px -> 16x16 (patch 14) or 14x14 (patch 16) behind CLS + 4
    registers, as the real checkpoints; a non-symmetric cell."""
    spec = build_random_model(key, tmp_path / key, seed=3, grid=grid)
    model = load_model(spec, device="cpu").model
    assert spec.input_hw == (224, 224) and spec.num_tokens() == tokens
    r, c = 3, 11
    token = spec.num_prefix_tokens + r * grid + c
    with planted_attention(attention_modules(model)[-1], _all_on_token(token)):
        res = extract_batch(model, spec, _pixels(spec, grid, grid, batch=1),
                            methods=("cls", "mean"), layers=[-1], heads=None, features=False)
    for method in ("cls", "mean"):
        m = res.maps.get(method, spec.num_layers, HEAD_MEAN)[0]
        assert m.shape == (grid, grid)
        assert np.unravel_index(m.argmax(), m.shape) == (r, c)
        assert m[r, c] == pytest.approx(1.0)


@pytest.mark.parametrize("key", MAP_KEYS)
def test_geometry_probe_map_head(models: dict, key: str) -> None:
    """The MAP probe made to look only at one token (identity q/k projections, a planted
    hidden state): every head's map peaks at that cell of a 2x3 grid."""
    spec, base = models[key]
    model = copy.deepcopy(base)
    d = spec.hidden_size
    attn = model.head.attention
    with torch.no_grad():
        attn.in_proj_weight.zero_()
        attn.in_proj_weight[:d] = torch.eye(d)
        attn.in_proj_weight[d:2 * d] = torch.eye(d)
        attn.in_proj_bias.zero_()
        model.head.probe.fill_(1.0)
    gh, gw, r, c = 2, 3, 0, 2

    def plant(_m: nn.Module, args: tuple) -> tuple:
        h = torch.zeros_like(args[0])
        h[:, r * gw + c] = 10.0
        return (h,)

    handle = model.head.register_forward_pre_hook(plant)
    try:
        res = extract_batch(model, spec, _pixels(spec, gh, gw), methods=("map",),
                            features=False)
    finally:
        handle.remove()
    for rec in res.maps.records():
        assert np.unravel_index(rec.map.argmax(), rec.map.shape) == (r, c)
        assert rec.map[r, c] > 0.99


# ------------------------------------------------------------------------ known sums


@pytest.mark.parametrize("key", CLS_KEYS)
def test_cls_rows_over_patches_and_full_rows(models: dict, key: str) -> None:
    spec, model = models[key]
    raw: list[torch.Tensor] = []
    h = attention_modules(model)[-1].register_forward_hook(
        lambda _m, _a, out: raw.append(out[1].detach().clone()))
    try:
        res = extract_batch(model, spec, _pixels(spec, 2, 3), methods=("cls",), layers=[-1],
                            fuse=(), features=False)
    finally:
        h.remove()
    (w,) = raw
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))  # full rows sum to 1
    p0 = spec.num_prefix_tokens
    for head in range(spec.num_heads):
        got = res.maps.get("cls", spec.num_layers, head).reshape(2, -1)
        assert (got.sum(-1) <= 1 + 1e-6).all()
        want = 1.0 - w[:, head, 0, :p0].sum(-1)  # what did not go to CLS/registers
        np.testing.assert_allclose(got.sum(-1), want.numpy(), rtol=1e-5)
        np.testing.assert_allclose(got, w[:, head, 0, p0:].numpy(), rtol=1e-6)


@pytest.mark.parametrize("key", MAP_KEYS)
def test_map_probe_rows_sum_to_one(models: dict, key: str) -> None:
    spec, model = models[key]
    res = extract_batch(model, spec, _pixels(spec, 2, 3), methods=("map",),
                        fuse=("mean",), features=False)
    m = res.maps
    assert set(m.layer) == {spec.num_layers}
    for head in range(spec.num_heads):
        sums = m.get("map", spec.num_layers, head).reshape(2, -1).sum(-1)
        np.testing.assert_allclose(sums, 1.0, rtol=1e-5)
    # the fused map is the mean of per-head probe rows; it sums to 1 too
    np.testing.assert_allclose(m.get("map", spec.num_layers).reshape(2, -1).sum(-1), 1.0,
                               rtol=1e-5)
    # the pooled feature is the MAP head output
    assert res.info["methods"] == ["map"]


# -------------------------------------------------------------------------- rollout


def test_rollout_step_rows_sum_to_one() -> None:
    g = torch.Generator().manual_seed(0)
    prod = None
    for _ in range(5):
        a = torch.softmax(torch.randn(2, 7, 7, generator=g), dim=-1)
        prod = rollout_step(a, prod)
        torch.testing.assert_close(prod.sum(-1), torch.ones(2, 7))
    # first step: 0.5 A + 0.5 I exactly
    a = torch.softmax(torch.randn(1, 4, 4, generator=g), dim=-1)
    torch.testing.assert_close(rollout_step(a, None), 0.5 * a + 0.5 * torch.eye(4))


@pytest.mark.parametrize("key", ["dinov2", "siglip", "clip"])
def test_rollout_matches_reference_from_output_attentions(models: dict, key: str) -> None:
    spec, model = models[key]
    x = _pixels(spec, 2, 3)
    res = extract_batch(model, spec, x, methods=("rollout",), fuse=("mean",), features=False)
    with torch.no_grad():
        out = model(pixel_values=x, output_attentions=True, **forward_kwargs(model, 6, 2))
    p0 = spec.num_prefix_tokens
    n = out.attentions[0].shape[-1]
    prod = torch.eye(n).expand(2, n, n)
    for layer, a in enumerate(out.attentions, start=1):
        a_hat = 0.5 * a.mean(1) + 0.5 * torch.eye(n)
        a_hat = a_hat / a_hat.sum(-1, keepdim=True)
        prod = a_hat @ prod
        want = prod[:, 0, p0:] if spec.has_cls else prod[:, p0:, p0:].mean(1)
        got = res.maps.get("rollout", layer).reshape(2, -1)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-7)


def test_rollout_one_layer_is_half_the_cls_row(tmp_path: Path) -> None:
    spec = build_random_model("dinov2", tmp_path / "d1", seed=5, num_layers=1)
    model = load_model(spec, device="cpu").model
    res = extract_batch(model, spec, _pixels(spec, 2, 3), methods=("rollout", "cls"),
                        heads=None, fuse=("mean",), features=False)
    np.testing.assert_allclose(res.maps.get("rollout", 1), 0.5 * res.maps.get("cls", 1),
                               rtol=1e-5)


@pytest.mark.parametrize("key", ["dinov3", "siglip2"])
def test_rollout_of_identity_attention(models: dict, key: str) -> None:
    """Every token attending only to itself: R = I. CLS row over patches = 0; without a
    CLS, the mean of the patch rows = 1 / P on every patch."""
    spec, model = models[key]

    def eye(w: torch.Tensor) -> torch.Tensor:
        return torch.eye(w.shape[-1]).expand_as(w).clone()

    mods = attention_modules(model)
    handles = [m.register_forward_hook(lambda _m, _a, out: (out[0], eye(out[1]))) for m in mods]
    try:
        res = extract_batch(model, spec, _pixels(spec, 2, 3), methods=("rollout",),
                            fuse=("mean", "max"), features=False)
    finally:
        for h in handles:
            h.remove()
    want = 0.0 if spec.has_cls else 1.0 / 6
    np.testing.assert_allclose(res.maps.values, want, atol=1e-7)


# -------------------------------------------------------------------- MAE and traps


def test_mae_is_deterministic_and_unshuffled(models: dict) -> None:
    spec, model = models["mae"]
    x = _pixels(spec, 3, 3)
    a = extract_batch(model, spec, x, methods=("cls", "rollout"), features=True)
    b = extract_batch(model, spec, x, methods=("cls", "rollout"), features=True)
    np.testing.assert_array_equal(a.maps.values, b.maps.values)
    assert a.features is not None and b.features is not None
    np.testing.assert_array_equal(a.features.vectors, b.features.vectors)
    # the trap itself: without identity noise transformers shuffles the patches, so the
    # same CLS attention comes back permuted
    ordered = a.maps.get("cls", spec.num_layers, HEAD_MEAN).reshape(2, -1)
    torch.manual_seed(0)
    with torch.no_grad():
        att = model(pixel_values=x, output_attentions=True).attentions[-1]
    shuffled = att[:, :, 0, 1:].mean(1).numpy()
    np.testing.assert_allclose(np.sort(shuffled, -1), np.sort(ordered, -1), rtol=1e-5)
    assert not np.allclose(shuffled, ordered)


def test_sdpa_trap_is_caught(models: dict) -> None:
    spec, _ = models["dinov2"]
    model = transformers.Dinov2WithRegistersModel.from_pretrained(
        spec.local_dir, attn_implementation="sdpa").eval()
    with pytest.raises(AttentionNotReturned, match=r"sdpa.*eager"):
        extract_batch(model, spec, _pixels(spec, 2, 2), methods=("cls",))


def test_wrong_layout_is_caught(models: dict) -> None:
    import dataclasses

    spec, model = models["dinov2"]
    no_registers = dataclasses.replace(spec, num_registers=0)  # the "drop index 0" bug
    with pytest.raises(ExtractionError, match="prefix"):
        extract_batch(model, no_registers, _pixels(spec, 2, 2), methods=("cls",))


# -------------------------------------------------------------------------- grad-cam


@pytest.mark.parametrize("key", ["dinov2", "siglip"])
def test_gradcam_shapes_and_target(models: dict, key: str) -> None:
    spec, model = models[key]
    x = _pixels(spec, 2, 3)
    res = extract_batch(model, spec, x, methods=("gradcam",), features=False)
    m = res.maps
    assert set(m.head) == {HEAD_MEAN} and set(m.layer) == set(range(1, spec.num_layers + 1))
    assert (m.values >= 0).all() and m.values.max() > 0
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())  # restored
    head = nn.Linear(spec.hidden_size, 5)
    with_head = extract_batch(model, spec, x, methods=("gradcam",), features=False,
                              classifier=head, target_class=3)
    assert with_head.info["gradcam_target"] == "classifier logit"
    assert with_head.maps.values.shape == m.values.shape
    assert not np.allclose(with_head.maps.values, m.values)


# ------------------------------------------------------------------ pooled / user models


@pytest.mark.parametrize("key", VIT_KEYS)
def test_pooled_feature_is_the_models_own(models: dict, key: str) -> None:
    spec, model = models[key]
    x = _pixels(spec, 2, 3)
    res = extract_batch(model, spec, x, methods=("mean",), heads=None)
    with torch.no_grad():
        out = model(pixel_values=x, **forward_kwargs(model, 6, 2))
    if key == "clip":  # CLIP normalises only the pooled CLS
        want = model.post_layernorm(out.last_hidden_state[:, 0]).detach()
    elif spec.pooled == "map":
        want = out.pooler_output
    else:  # DINOv2/v3, MAE: last_hidden_state is after the final norm
        want = out.last_hidden_state[:, 0]
    assert res.features is not None
    np.testing.assert_allclose(res.features.get("pooled", spec.num_layers), want.numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("cls_name", "config"),
    [
        ("ViTModel", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                      "intermediate_size": 64, "patch_size": 8, "image_size": 24}),
        ("Dinov2Model", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "patch_size": 8, "image_size": 40}),
    ],
)
def test_user_added_checkpoint_from_a_folder(tmp_path: Path, cls_name: str,
                                             config: dict) -> None:
    """Another HF ViT-style checkpoint, added with a two-line entry; layout from config.json."""
    from ssl_wc.models.registry import user_spec

    cls = getattr(transformers, cls_name)
    torch.manual_seed(0)
    cls(cls.config_class(**config)).save_pretrained(tmp_path / "m")
    spec = user_spec("mine", {"source": str(tmp_path / "m"), "input_size": [16, 24]})
    assert spec.architecture == cls_name and spec.num_prefix_tokens == 1
    model = load_model(spec, device="cpu").model
    r, c = 1, 2
    with planted_attention(attention_modules(model)[-1],
                           _all_on_token(spec.num_prefix_tokens + r * 3 + c)):
        res = extract_batch(model, spec, _pixels(spec, 2, 3), methods=("cls", "rollout"),
                            fuse=("mean",), features=True)
    m = res.maps.get("cls", 2, HEAD_MEAN)
    assert m.shape == (2, 2, 3) and (m[:, r, c] == 1).all()


def test_peft_wrapped_model_is_unwrapped(models: dict) -> None:
    """A LoRA fine-tune (PEFT wrapper) extracts through the same code, adapters active."""
    from peft import LoraConfig, get_peft_model

    spec, base = models["dinov2"]
    wrapped = get_peft_model(copy.deepcopy(base),
                             LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    x = _pixels(spec, 2, 3)
    plain = extract_batch(base, spec, x, methods=("cls",), features=False).maps.values
    same = extract_batch(wrapped, spec, x, methods=("cls",), features=False).maps.values
    np.testing.assert_allclose(same, plain, rtol=1e-5)  # LoRA B starts at 0: same maps
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 1.0)
    moved = extract_batch(wrapped, spec, x, methods=("cls", "gradcam"), features=False)
    assert not np.allclose(moved.maps.select(method="cls").values, plain)


def test_task_model_wrapper_is_unwrapped(models: dict) -> None:
    from ssl_wc.models.extract import unwrap_model

    spec, base = models["dinov2"]
    task = transformers.Dinov2WithRegistersForImageClassification(base.config)
    task.dinov2_with_registers = base
    assert unwrap_model(task, spec.architecture) is base
    d3spec, d3 = models["dinov3"]
    assert unwrap_model(d3, d3spec.architecture) is d3  # not its encoder (base_model)
    x = _pixels(spec, 2, 2)
    np.testing.assert_array_equal(
        extract_batch(task, spec, x, methods=("cls",), features=False).maps.values,
        extract_batch(base, spec, x, methods=("cls",), features=False).maps.values)
