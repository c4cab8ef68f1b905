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
