"""Registry: pinned configs, token layouts, user-added checkpoints, tiny configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssl_wc.models.registry import (
    BUILTIN_KEYS,
    RANDOM_WEIGHTS_CONFIG_KEY,
    RANDOM_WEIGHTS_MARKER,
    ModelSpec,
    SpecError,
    build_random_model,
    get_spec,
    list_specs,
    load_user_specs,
    spec_from_hf_config,
    tiny_config,
    user_spec,
)

# key -> (has_cls, registers, patch, grid at 224, tokens at 224, default method)
LAYOUTS = {
    "dinov2": (True, 4, 14, (16, 16), 261, "cls"),
    "dinov3": (True, 4, 16, (14, 14), 201, "cls"),
    "mae": (True, 0, 16, (14, 14), 197, "cls"),
    "clip": (True, 0, 16, (14, 14), 197, "cls"),
    "siglip2": (False, 0, 16, (14, 14), 196, "map"),
    "siglip": (False, 0, 16, (14, 14), 196, "map"),
}


def test_every_builtin_is_registered() -> None:
    keys = [s.key for s in list_specs()]
    for key in BUILTIN_KEYS:
        assert key in keys


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_token_layout_at_224(key: str) -> None:
    spec = get_spec(key)
    has_cls, regs, patch, grid, tokens, method = LAYOUTS[key]
    assert spec.has_cls is has_cls
    assert spec.num_registers == regs
    assert spec.num_prefix_tokens == int(has_cls) + regs
    assert spec.patch_size == patch == spec.config["patch_size"]
    assert spec.input_hw == (224, 224)
    assert spec.grid == grid
    assert spec.num_tokens() == tokens
    assert spec.default_method == method
    assert spec.resize_mode == "full"  # no centre crop by default


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_pinned_config_is_base_size_and_builds(key: str) -> None:
    import transformers

    spec = get_spec(key)
    assert (spec.hidden_size, spec.num_layers, spec.num_heads) == (768, 12, 12)
    cls = getattr(transformers, spec.architecture)
    cfg = cls.config_class(**{k: v for k, v in spec.config.items() if k != "model_type"})
    assert cfg.patch_size == spec.patch_size
    assert getattr(cfg, "num_register_tokens", 0) == spec.num_registers


def test_pinned_configs_are_not_library_defaults() -> None:
    import transformers

    # The traps the brief measured: defaults are other checkpoints.
    assert transformers.DINOv3ViTConfig().num_register_tokens == 0
    assert get_spec("dinov3").config["num_register_tokens"] == 4
    assert transformers.CLIPVisionConfig().patch_size == 32
    assert get_spec("clip").config["patch_size"] == 16
    assert transformers.Dinov2WithRegistersConfig().patch_size == 16
    assert get_spec("dinov2").config["patch_size"] == 14
    assert get_spec("dinov2").config["image_size"] == 518
    assert get_spec("mae").config["mask_ratio"] == 0.0


def test_spec_validation() -> None:
    with pytest.raises(SpecError, match="multiple of patch"):
        ModelSpec(key="x", architecture="ViTModel", config={}, has_cls=True, num_registers=0,
                  patch_size=16, input_hw=(200, 224), hub_id="a/b")
    with pytest.raises(SpecError, match="CLS"):
        ModelSpec(key="x", architecture="ViTModel", config={}, has_cls=False, num_registers=0,
                  patch_size=16, hub_id="a/b")
    with pytest.raises(SpecError, match="hub id or a local folder"):
        ModelSpec(key="x", architecture="ViTModel", config={}, has_cls=True, num_registers=0,
                  patch_size=16)
    with pytest.raises(SpecError, match="unknown model key"):
        get_spec("nope")


def test_grid_for_non_square_input() -> None:
    spec = get_spec("dinov2")
    assert spec.grid_for((28, 42)) == (2, 3)  # rows = y = height
    assert spec.num_tokens((28, 42)) == 5 + 6


def test_spec_from_composite_clip_config() -> None:
    cfg = {
        "model_type": "clip",
        "architectures": ["CLIPModel"],
        "vision_config": {"hidden_size": 768, "patch_size": 16, "image_size": 224,
                          "num_hidden_layers": 12, "num_attention_heads": 12},
    }
    spec = spec_from_hf_config("myclip", "openai/clip-vit-base-patch16", cfg)
    assert spec.architecture == "CLIPVisionModel"
    assert spec.hub_id == "openai/clip-vit-base-patch16" and spec.local_dir is None
    assert spec.has_cls and spec.num_registers == 0 and spec.grid == (14, 14)
    assert spec.config["model_type"] == "clip_vision_model"


def test_spec_from_siglip_and_dinov2_configs() -> None:
    sig = spec_from_hf_config("s", "google/x", {"model_type": "siglip", "vision_config": {
        "patch_size": 16, "image_size": 256}})
    assert not sig.has_cls and sig.pooled == "map" and sig.default_method == "map"
    assert sig.grid == (16, 16) and sig.mean == (0.5, 0.5, 0.5)
    d2 = spec_from_hf_config("d", "facebook/dinov2-small", {
        "model_type": "dinov2", "patch_size": 14, "image_size": 518})
    assert d2.architecture == "Dinov2Model" and d2.input_hw == (224, 224)
    assert d2.num_registers == 0
    with pytest.raises(SpecError, match="architecture"):
        spec_from_hf_config("u", "x/y", {"model_type": "weird", "patch_size": 16})
    other = spec_from_hf_config("u", "x/y", {"model_type": "weird", "patch_size": 16,
                                             "architectures": ["WeirdModel"]})
    assert other.architecture == "WeirdModel"


def test_tiny_config_keeps_layout() -> None:
    for key in BUILTIN_KEYS:
        spec = get_spec(key)
        cfg = tiny_config(key)
        assert cfg["patch_size"] == spec.patch_size
        assert cfg.get("num_register_tokens", 0) == spec.num_registers
        assert cfg["hidden_size"] == 32 and cfg["num_hidden_layers"] == 2
        assert cfg[RANDOM_WEIGHTS_CONFIG_KEY] is True


@pytest.fixture(scope="module")
def saved_dinov2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = build_random_model("dinov2", tmp_path_factory.mktemp("m") / "d2", seed=1)
    assert spec.local_dir is not None
    return Path(spec.local_dir)


def test_build_random_model_is_marked(saved_dinov2: Path) -> None:
    assert (saved_dinov2 / RANDOM_WEIGHTS_MARKER).exists()
    cfg = json.loads((saved_dinov2 / "config.json").read_text())
    assert cfg[RANDOM_WEIGHTS_CONFIG_KEY] is True
    assert cfg["num_register_tokens"] == 4 and cfg["patch_size"] == 14


def test_user_specs_toml_reads_layout_from_folder(saved_dinov2: Path, tmp_path: Path) -> None:
    f = tmp_path / "models.toml"
    f.write_text(
        f'[models.mine]\nsource = "{saved_dinov2}"\ninput_size = [28, 42]\n'
        'interpolation = "bilinear"\n'
    )
    (spec,) = load_user_specs(f)
    assert spec.key == "mine" and spec.local_dir == str(saved_dinov2.resolve())
    assert spec.architecture == "Dinov2WithRegistersModel"
    assert spec.num_registers == 4 and spec.has_cls and spec.patch_size == 14
    assert spec.grid == (2, 3) and spec.interpolation == "bilinear"


def test_user_specs_json_and_explicit_config(tmp_path: Path) -> None:
    f = tmp_path / "models.json"
    f.write_text(json.dumps({"models": {"vit": {
        "source": "someone/vit-offline", "architecture": "ViTModel",
        "config": {"model_type": "vit", "patch_size": 16, "image_size": 224,
                   "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12},
    }}}))
    (spec,) = load_user_specs(f)
    assert spec.hub_id == "someone/vit-offline" and spec.num_prefix_tokens == 1


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('source = "a/b"\ncolour = "red"\n', "unknown field"),
        ('source = "a/b"\ninput_size = "224"\n', "input_size must be"),
        ('source = "a/b"\nnum_registers = true\n', "must not be a boolean"),
        ('input_size = 224\n', "source"),
    ],
)
def test_user_specs_are_strict(tmp_path: Path, body: str, match: str) -> None:
    f = tmp_path / "m.toml"
    f.write_text("[models.x]\n" + body)
    with pytest.raises(SpecError, match=match):
        load_user_specs(f)


def test_user_spec_without_config_offline_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SpecError, match=r"could not read config\.json"):
        user_spec("ghost", {"source": "ssl-wc-test/does-not-exist"})
