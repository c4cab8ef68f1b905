"""Loading: eager attention, local folders, offline errors, layout checks, device choice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from ssl_wc.models.device import choose_device
from ssl_wc.models.loading import ConfigMismatch, ModelNotAvailable, load_model, offline_mode
from ssl_wc.models.registry import build_random_model, get_spec


@pytest.fixture(scope="module")
def tiny_mae(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return build_random_model("mae", tmp_path_factory.mktemp("m") / "mae", seed=0)


def test_load_local_folder_eager_eval_and_provenance(tiny_mae) -> None:  # type: ignore[no-untyped-def]
    loaded = load_model(tiny_mae, device="cpu")
    model = loaded.model
    assert model.config._attn_implementation == "eager"
    assert not model.training
    assert model.config.mask_ratio == 0.0
    assert loaded.provenance["random_weights"] is True
    assert loaded.provenance["attn_implementation"] == "eager"
    assert loaded.device.device == "cpu" and loaded.device.dtype == "float32"
    assert tiny_mae.random_weights and tiny_mae.key == "mae-random"


def test_offline_missing_hub_model_names_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert offline_mode()
    spec = dataclasses.replace(get_spec("dinov2"), hub_id="ssl-wc-test/no-such-model")
    with pytest.raises(ModelNotAvailable) as err:
        load_model(spec, device="cpu")
    msg = str(err.value)
    assert "'dinov2'" in msg and "ssl-wc-test/no-such-model" in msg
    assert "huggingface-cli download ssl-wc-test/no-such-model" in msg
    assert "local_dir" in msg and "HF_HUB_OFFLINE" in msg
    assert err.value.key == "dinov2"


def test_gated_model_message_mentions_login(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = dataclasses.replace(get_spec("dinov3"), hub_id="ssl-wc-test/no-such-dinov3")
    with pytest.raises(ModelNotAvailable, match="gated"):
        load_model(spec, device="cpu")


def test_missing_local_folder(tmp_path: Path) -> None:
    spec = dataclasses.replace(get_spec("clip"), hub_id=None, local_dir=str(tmp_path / "nope"))
    with pytest.raises(ModelNotAvailable, match=r"'clip'.*local folder"):
        load_model(spec, device="cpu")


def test_layout_mismatch_is_refused(tmp_path: Path) -> None:
    spec = build_random_model("dinov2", tmp_path / "d2", seed=0)
    wrong = dataclasses.replace(spec, config={**spec.config, "num_register_tokens": 0},
                                num_registers=0)
    with pytest.raises(ConfigMismatch, match="num_register_tokens"):
        load_model(wrong, device="cpu")


def test_choose_device_cpu_and_errors() -> None:
    cpu = choose_device("cpu")
    assert cpu.torch_device == torch.device("cpu") and cpu.torch_dtype == torch.float32
    assert cpu.to_dict()["attention_dtype"] == "float32"
    auto = choose_device()
    if not torch.cuda.is_available():
        assert auto.device in ("cpu", "mps") and auto.dtype == "float32"
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            choose_device("cuda")
    with pytest.raises(ValueError, match="half precision"):
        choose_device("cpu", "float16")
    with pytest.raises(ValueError, match="unknown device"):
        choose_device("tpu")


@pytest.fixture(scope="module")
def tiny_siglip(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return build_random_model("siglip", tmp_path_factory.mktemp("m") / "sig", seed=0)


@pytest.mark.parametrize(
    ("key", "value"),
    [("model_type", "siglip2_vision_model"), ("layer_norm_eps", 1e-5),
     ("hidden_act", "gelu"), ("image_size", 512), ("vision_use_head", False),
     ("intermediate_size", 128), ("patch_size", 14)],
)
def test_strict_layout_names_the_key(tiny_siglip, key: str, value: object) -> None:  # type: ignore[no-untyped-def]
    """A checkpoint that differs from the pinned config on any architecture key is
    refused, and the error names that key with both values."""
    wrong = dataclasses.replace(tiny_siglip, config={**tiny_siglip.config, key: value})
    with pytest.raises(ConfigMismatch) as err:
        load_model(wrong, device="cpu")
    msg = str(err.value)
    assert f"first mismatch: {key}: pinned {value!r}, checkpoint " in msg
    assert "siglip-random" in msg


def test_first_mismatch_comes_first_in_the_pinned_order(tiny_siglip) -> None:  # type: ignore[no-untyped-def]
    wrong = dataclasses.replace(tiny_siglip, config={**tiny_siglip.config, "hidden_act": "gelu",
                                                     "model_type": "vit"})
    with pytest.raises(ConfigMismatch, match=r"first mismatch: model_type: .*\(1 more key"):
        load_model(wrong, device="cpu")
    # dropouts and initialisers do not change an eval-mode model: not compared
    fine = dataclasses.replace(tiny_siglip, config={**tiny_siglip.config,
                                                    "attention_dropout": 0.3})
    load_model(fine, device="cpu")


def test_clip_projection_gives_the_joint_embedding(tmp_path: Path) -> None:
    import numpy as np

    from ssl_wc.models.extract import extract_batch

    spec = build_random_model("clip", tmp_path / "clip", seed=0, hidden_size=32)
    loaded = load_model(spec, device="cpu")
    assert type(loaded.model).__name__ == "CLIPVisionModel"  # the backbone, unwrapped
    proj = loaded.projection
    assert isinstance(proj, torch.nn.Linear) and (proj.in_features, proj.out_features) == (32, 16)
    x = torch.randn(2, 3, 48, 48)
    res = extract_batch(loaded.model, spec, x, methods=("cls",), projection=proj)
    assert res.features is not None
    pooled = res.features.get("pooled", spec.num_layers)
    joint = res.features.get("pooled_proj", spec.num_layers)
    assert pooled.shape == (2, 32) and joint.shape == (2, 16)
    with torch.no_grad():
        want = proj(torch.from_numpy(pooled)).numpy()
    np.testing.assert_allclose(joint, want, rtol=1e-5, atol=1e-6)
