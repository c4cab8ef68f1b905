"""Registry: pinned configs, token layouts, user-added checkpoints, tiny configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ssl_wc.models.registry import (
    BUILTIN_KEYS,
    RANDOM_WEIGHTS_CONFIG_KEY,
    RANDOM_WEIGHTS_MARKER,
    CnnSpec,
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
FIXED_VIT_KEYS = tuple(LAYOUTS)
VIT_KEYS = (*FIXED_VIT_KEYS, "siglip2_naflex")


def test_every_builtin_is_registered() -> None:
    keys = [s.key for s in list_specs()]
    for key in BUILTIN_KEYS:
        assert key in keys
    assert set(BUILTIN_KEYS) == {*VIT_KEYS, "resnet50"}


@pytest.mark.parametrize("key", FIXED_VIT_KEYS)
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


@pytest.mark.parametrize("key", VIT_KEYS)
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
    for key in VIT_KEYS:
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


# ------------------------------------------------------------- checkpoint preprocessing

# The resampling filter of each checkpoint's own preprocessor_config.json.
RESAMPLING = {"dinov2": "bicubic", "dinov3": "bilinear", "mae": "bilinear", "clip": "bicubic",
              "siglip2": "bilinear", "siglip": "bicubic", "siglip2_naflex": "bilinear",
              "resnet50": "bicubic"}


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_each_checkpoint_resamples_as_its_processor(key: str) -> None:
    assert get_spec(key).interpolation == RESAMPLING[key]


def test_naflex_spec_is_variable_resolution() -> None:
    spec = get_spec("siglip2_naflex")
    assert isinstance(spec, ModelSpec) and spec.variable_grid
    assert spec.architecture == "Siglip2VisionModel" and spec.hub_id == \
        "google/siglip2-base-patch16-naflex"
    assert spec.resize_mode == "aspect" and spec.max_num_patches == 256
    assert spec.config["model_type"] == "siglip2_vision_model"
    assert spec.config["num_patches"] == 256 and spec.pooled == "map"
    assert not spec.has_cls and spec.default_method == "map"
    with pytest.raises(SpecError, match="max_num_patches"):
        ModelSpec(key="x", architecture="Siglip2VisionModel", config={}, has_cls=False,
                  num_registers=0, patch_size=16, pooled="map", default_method="map",
                  resize_mode="aspect", hub_id="a/b")


def test_resnet50_is_a_cnn_spec_with_its_own_crop() -> None:
    spec = get_spec("resnet50")
    assert isinstance(spec, CnnSpec) and spec.kind == "cnn"
    assert spec.architecture == "ResNetForImageClassification"
    assert spec.hub_id == "microsoft/resnet-50"
    assert spec.config["depths"] == [3, 4, 6, 3]
    assert spec.config["hidden_sizes"] == [256, 512, 1024, 2048]
    assert spec.resize_mode == "native" and spec.native.short_side == 256
    assert spec.native.crop_hw == (224, 224) and spec.grid == (7, 7)
    assert spec.grid_for((224, 224), 0) == (56, 56) and spec.grid_for((224, 288)) == (7, 9)
    assert spec.num_layers == 4 and spec.num_heads == 0 and spec.hidden_size == 2048
    assert spec.default_method == "gradcam" and not spec.has_cls
    assert spec.mean == (0.485, 0.456, 0.406)
    with pytest.raises(SpecError, match="Grad-CAM"):
        CnnSpec(key="r", architecture="ResNetForImageClassification", config={},
                hub_id="a/b", default_method="cls")


def test_resnet50_pinned_config_builds_the_real_layout() -> None:
    import transformers

    spec = get_spec("resnet50")
    cfg = transformers.ResNetConfig(**{k: v for k, v in spec.config.items()
                                       if k != "model_type"})
    model = transformers.ResNetForImageClassification(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    assert 25_500_000 < n_params < 25_600_000  # ResNet-50: 25.56 M parameters
    tiny = tiny_config("resnet50")
    assert tiny["depths"] == [1, 1, 1, 1] and tiny["layer_type"] == "bottleneck"
    assert tiny["num_labels"] == 1000 and tiny[RANDOM_WEIGHTS_CONFIG_KEY] is True


def test_clip_loads_its_projection() -> None:
    spec = get_spec("clip")
    assert spec.load_class == "CLIPVisionModelWithProjection"
    assert spec.projection == "visual_projection" and spec.config["projection_dim"] == 512


def test_builtin_entry_pins_a_revision(tmp_path: Path) -> None:
    f = tmp_path / "pins.toml"
    commit = "0123456789abcdef0123456789abcdef01234567"
    f.write_text(f'[models.dinov2]\nrevision = "{commit}"\n\n'
                 '[models.resnet50]\nrevision = "v1.0"\nresize_mode = "full"\n')
    d2, rn = load_user_specs(f)
    assert d2.revision == commit and d2.config == get_spec("dinov2").config
    assert d2.hub_id == "facebook/dinov2-with-registers-base"
    assert isinstance(rn, CnnSpec) and rn.revision == "v1.0" and rn.resize_mode == "full"
    f.write_text('[models.dinov2]\npatch_size = 16\n')
    with pytest.raises(SpecError, match="built-in: an entry for it may only set"):
        load_user_specs(f)


def test_spec_from_naflex_and_resnet_configs() -> None:
    nf = spec_from_hf_config("nf", "x/naflex", {"model_type": "siglip2", "vision_config": {
        "patch_size": 16, "num_patches": 256, "hidden_size": 768, "num_hidden_layers": 12,
        "num_attention_heads": 12}})
    assert isinstance(nf, ModelSpec) and nf.variable_grid and nf.max_num_patches == 256
    assert nf.architecture == "Siglip2VisionModel" and nf.resize_mode == "aspect"
    rn = spec_from_hf_config("rn", "x/resnet", {"model_type": "resnet", "depths": [3, 4, 6, 3],
                                                "hidden_sizes": [256, 512, 1024, 2048]})
    assert isinstance(rn, CnnSpec) and rn.architecture == "ResNetForImageClassification"
    assert rn.native.short_side == 256 and rn.resize_mode == "native"


def test_registry_imports_point_one_way() -> None:
    """registry -> builtins / user_specs / random_models -> spec; nothing imports back."""
    import ast

    root = Path(__file__).resolve().parents[1] / "ssl_wc" / "models"
    for name in ("spec", "builtins", "user_specs", "random_models"):
        tree = ast.parse((root / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                    and n.module}
        assert "ssl_wc.models.registry" not in imported, name
    assert "ssl_wc.models.user_specs" not in str(ast.dump(ast.parse(
        (root / "random_models.py").read_text())))
