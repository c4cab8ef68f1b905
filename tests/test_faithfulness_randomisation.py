"""The randomisation cascade on tiny random-weight replicas: stages cover every parameter,
re-initialisation is seeded per module, and a map at layer l changes exactly when the
cascade reaches block l (Adebayo et al. 2018's per-layer reading)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssl_wc.faithfulness.randomisation import (
    CascadeRandomiser,
    cascade_parts,
    init_std,
    map_depends,
    parameter_stages,
    probe_forward,
    reinitialise,
)
from ssl_wc.models.extract import extract_batch
from ssl_wc.models.loading import load_model
from ssl_wc.models.registry import BUILTIN_KEYS, build_random_model

LAYERS = 4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("mprt_models")
    return {key: build_random_model(key, root / key, seed=3, grid=3, hidden_size=16,
                                    num_layers=LAYERS, num_heads=2)
            for key in BUILTIN_KEYS}


def _stages(model, spec, hw=None):
    """The stages of the module the cascade randomises (a CNN: the whole classifier)."""
    x = torch.randn(1, 3, *(hw or spec.input_hw))
    root, blocks = cascade_parts(model, spec)
    assert root is model  # the tiny models are bare backbones / the CNN's classifier model
    return parameter_stages(root, blocks, probe_forward(root, spec, x))


@pytest.mark.parametrize("key", BUILTIN_KEYS)
def test_stages_cover_every_parameter_once(tiny, key):
    spec = tiny[key]
    model = load_model(spec, "cpu").model
    st = _stages(model, spec)
    assert len(st.blocks) == LAYERS and all(st.blocks)
    assert st.embed and st.top
    mods = dict(model.named_modules())
    owned = [id(p) for group in (st.embed, st.top, st.unused, *st.blocks) for n in group
             for p in mods[n].parameters(recurse=False)]
    assert sorted(owned) == sorted(id(p) for p in model.parameters())
    if spec.pooled == "map":  # the pooling head (and the projection it uses) is the top
        assert "head.attention.out_proj" in st.top and not st.unused
    if spec.kind == "cnn":  # the stem is the embedding, the ImageNet classifier the top
        assert all(n.startswith("resnet.embedder") for n in st.embed)
        assert st.top == ["classifier.1"] and not st.unused


def test_reinitialisation_depends_only_on_seed_and_name():
    lin = torch.nn.Linear(6, 4)
    norm = torch.nn.LayerNorm(4)
    with torch.no_grad():
        norm.weight.fill_(3.0)
    a = torch.nn.Linear(6, 4)
    reinitialise(lin, "blocks.3.fc", seed=42, std=0.02)
    reinitialise(a, "blocks.3.fc", seed=42, std=0.02)
    assert torch.equal(lin.weight, a.weight) and torch.equal(lin.bias, a.bias)
    reinitialise(a, "blocks.2.fc", seed=42, std=0.02)
    assert not torch.equal(lin.weight, a.weight)
    reinitialise(norm, "norm", seed=42, std=0.02)  # PyTorch's own reset: ones and zeros
    assert torch.equal(norm.weight, torch.ones(4))
    before = torch.random.get_rng_state()
    reinitialise(lin, "x", seed=1, std=0.02)
    assert torch.equal(torch.random.get_rng_state(), before)  # the global RNG is untouched


def test_map_depends():
    assert not map_depends("cls", 1, 2) and map_depends("cls", 2, 2)
    assert map_depends("rollout", 3, 2) and not map_depends("mean", 0, 3)
    assert map_depends("gradcam", 0, 3) and map_depends("map", 3, 3)
    assert map_depends("cls", 0, -1)


def _maps(model, spec, x, methods):
    res = extract_batch(model, spec, x, methods=methods, heads=None, fuse=("mean",),
                        features=False, layers=list(range(1, LAYERS + 1)))
    return {(str(m), int(li) - 1, i): mb.values[r].copy() for mb in res.all_maps()
            for r, (i, m, li) in enumerate(zip(mb.image, mb.method, mb.layer, strict=True))}


@pytest.mark.parametrize("key,methods,hw", [
    ("dinov2", ("cls", "rollout", "mean", "gradcam"), None),
    ("siglip", ("map", "rollout", "mean", "gradcam"), None),
    # NaFlex on a non-square grid (2x4 of its 9-patch budget: one padded patch)
    ("siglip2_naflex", ("map", "rollout", "mean", "gradcam"), (32, 64)),
    # ResNet-50: Grad-CAM at every stage, the cascade over the stages
    ("resnet50", ("gradcam",), None)])
def test_cascade_changes_only_layers_at_or_above_the_randomised_block(tiny, key, methods, hw):
    spec = tiny[key]
    model = load_model(spec, "cpu").model
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(
        (2, 3, *(hw or spec.input_hw))).astype(np.float32))
    trained = _maps(model, spec, x, methods)
    assert {li for _, li, _ in trained} == set(range(LAYERS))
    cascade = CascadeRandomiser(model, _stages(model, spec, hw), seed=42, std=init_std(model))
    assert cascade.num_steps == LAYERS + 1
    seen_changed = set()
    while cascade.step < cascade.num_steps:
        step = cascade.advance()
        first = cascade.randomised_from(step)
        now = _maps(model, spec, x, methods)
        for (method, layer, image), values in now.items():
            same = np.array_equal(values, trained[(method, layer, image)])
            if map_depends(method, layer, first):
                assert not same, (method, layer, image, step)
                seen_changed.add((method, layer, image))
            else:  # below the randomised blocks nothing may move, bit for bit
                assert same, (method, layer, image, step)
    assert cascade.randomised_from(LAYERS + 1) == -1
    assert seen_changed == set(trained)
    with pytest.raises(RuntimeError, match="complete"):
        cascade.advance()


def test_the_same_cascade_twice_gives_the_same_weights(tiny):
    spec = tiny["dinov2"]
    states = []
    for _ in range(2):
        model = load_model(spec, "cpu").model
        cascade = CascadeRandomiser(model, _stages(model, spec), seed=7)
        cascade.advance()
        cascade.advance()
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_batch_norm_reinitialisation_resets_its_running_statistics():
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.fill_(2.0)
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(9.0)
    reinitialise(bn, "resnet.encoder.stages.0.bn", seed=42, std=0.02)
    assert torch.equal(bn.weight, torch.ones(3)) and torch.equal(bn.bias, torch.zeros(3))
    assert torch.equal(bn.running_mean, torch.zeros(3))
    assert torch.equal(bn.running_var, torch.ones(3))
