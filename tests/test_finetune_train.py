"""Fine-tuning on tiny random-weight models: what each strategy trains, that training
learns, determinism, class weights, the schedule, and checkpoint round trips."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_wc.finetune.data import StyleDataset, class_weights
from ssl_wc.finetune.train import (
    CheckpointError,
    FinetuneConfig,
    load_finetuned,
    lora_target_modules,
    prepare_classifier,
    save_checkpoint,
    train_classifier,
    warmup_cosine,
    weights_fingerprint,
)
from ssl_wc.models.loading import load_model
from ssl_wc.models.preprocess import PreprocessConfig
from ssl_wc.models.registry import BUILTIN_KEYS, build_random_model

TINY: dict[str, Any] = {"grid": 2, "hidden_size": 32, "num_layers": 2, "num_heads": 2}


@pytest.fixture(scope="module")
def tiny_spec(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_random_model("dinov2", tmp_path_factory.mktemp("tiny") / "m", seed=0, **TINY)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory, tiny_spec: Any
             ) -> tuple[StyleDataset, StyleDataset]:
    """A learnable two-class task: reddish vs bluish noisy squares."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    items = []
    for i in range(32):
        y = i % 2
        arr = rng.integers(0, 60, (30, 30, 3)).astype(np.uint8)
        arr[..., 0 if y == 0 else 2] += 150
        path = root / f"im{i:02d}.png"
        Image.fromarray(arr).save(path)
        items.append((str(path), y))
    pre = PreprocessConfig.from_spec(tiny_spec)
    return StyleDataset(items[:24], pre), StyleDataset(items[24:], pre)


def _backbone(spec: Any) -> torch.nn.Module:
    return load_model(spec, "cpu").model


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _train(spec: Any, data: tuple[StyleDataset, StyleDataset], strategy: str,
           **kw: Any) -> tuple[torch.nn.Module, Any]:
    bb = _backbone(spec)
    cfg = FinetuneConfig(strategy=strategy, **{"epochs": 2, "batch_size": 8, "lr_head": 5e-2,
                                               "lr_backbone": 5e-3, "device": "cpu", **kw})
    return bb, train_classifier(bb, spec, data[0], data[1], 2, cfg)


# --------------------------------------------------------------------------- pieces
def test_class_weights_are_inverse_frequency_with_mean_one() -> None:
    w = class_weights([0, 0, 0, 1, 3, 3], 4)
    assert torch.allclose(w, torch.tensor([6 / (3 * 3), 6 / (3 * 1), 0.0, 6 / (3 * 2)]))
    per_sample = w[torch.tensor([0, 0, 0, 1, 3, 3])]
    assert per_sample.mean().item() == pytest.approx(1.0)
    assert w[2] == 0  # an absent class gets no weight
    with pytest.raises(ValueError):
        class_weights([], 2)


def test_warmup_then_cosine() -> None:
    f = warmup_cosine(total_steps=10, warmup_steps=2)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0)
    assert f(6) == pytest.approx(0.5)
    assert f(10) == pytest.approx(0.0, abs=1e-12)
    assert all(f(s) >= f(s + 1) for s in range(2, 10))


@pytest.mark.parametrize("key", [k for k in BUILTIN_KEYS if k not in ("resnet50",
                                                                      "siglip2_naflex")])
def test_lora_targets_are_the_query_and_value_projections(key: str, tmp_path: Path) -> None:
    spec = build_random_model(key, tmp_path / key, seed=0, **TINY)
    model = _backbone(spec)
    targets = lora_target_modules(model)
    assert len(targets) == 2 * TINY["num_layers"]
    assert {t.rsplit(".", 1)[-1] for t in targets} == {"q_proj", "v_proj"}
    assert not any(t.startswith("head") for t in targets)  # never SigLIP's MAP head
    names = dict(model.named_modules())
    assert all(isinstance(names[t], torch.nn.Linear) for t in targets)


# --------------------------------------------------------------------------- strategies
def test_linear_probe_leaves_the_backbone_bit_identical(tiny_spec: Any, datasets: Any) -> None:
    bb = _backbone(tiny_spec)
    before = _snapshot(bb)
    cfg = FinetuneConfig("linear_probe", epochs=2, batch_size=8, lr_head=5e-2, device="cpu")
    res = train_classifier(bb, tiny_spec, datasets[0], datasets[1], 2, cfg)
    after = res.model.backbone.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    head_params = sum(p.numel() for p in res.model.head.parameters())
    assert res.n_trainable == head_params
    assert not any(p.requires_grad for p in res.model.backbone.parameters())
    assert res.epochs[-1].lr_backbone == 0.0


def test_lora_trains_only_adapters_and_head(tiny_spec: Any, datasets: Any) -> None:
    bb = _backbone(tiny_spec)
    cfg = FinetuneConfig("lora", lora_rank=2, lora_alpha=4)
    model, targets = prepare_classifier(bb, tiny_spec, 2, cfg)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert any("lora_A" in n for n in trainable) and any("lora_B" in n for n in trainable)
    assert len([n for n in trainable if "lora_A" in n]) == len(targets)
    # training moves the adapters and head only; the base weights stay bit-identical
    base_before = {k: v for k, v in _snapshot(_backbone(tiny_spec)).items()}
    _, res = _train(tiny_spec, datasets, "lora", lora_rank=2, lora_alpha=4)
    trained = res.model.state_dict()
    base_after = {k.replace("backbone.base_model.model.", "").replace(".base_layer", ""): v
                  for k, v in trained.items() if "lora_" not in k and not k.startswith("head.")}
    assert base_before.keys() == base_after.keys()
    assert all(torch.equal(base_before[k], base_after[k]) for k in base_before)
    assert any(not torch.all(v == 0) for k, v in trained.items() if "lora_B" in k)
    assert 0 < res.n_trainable < res.n_params


def test_full_trains_everything(tiny_spec: Any, datasets: Any) -> None:
    before = _snapshot(_backbone(tiny_spec))
    _, res = _train(tiny_spec, datasets, "full")
    assert res.n_trainable == res.n_params
    assert all(p.requires_grad for p in res.model.parameters())
    after = res.model.backbone.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    assert any("attention.q_proj.weight" in k for k in changed)


def test_loss_goes_down_on_a_learnable_task(tiny_spec: Any, datasets: Any) -> None:
    _, res = _train(tiny_spec, datasets, "full", epochs=4)
    losses = [e.train_loss for e in res.epochs]
    assert losses[-1] < 0.8 * losses[0], losses
    assert res.epochs[-1].train_acc >= 0.75
    assert res.best_val_acc == max(e.val_acc for e in res.epochs)
    assert all(math.isfinite(e.val_loss) and e.seconds > 0 for e in res.epochs)


def test_training_is_deterministic(tiny_spec: Any, datasets: Any) -> None:
    _, a = _train(tiny_spec, datasets, "lora", lora_rank=2, epochs=1)
    _, b = _train(tiny_spec, datasets, "lora", lora_rank=2, epochs=1)
    assert [e.train_loss for e in a.epochs] == [e.train_loss for e in b.epochs]
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.are_deterministic_algorithms_enabled()  # restored afterwards


# --------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("strategy", ["linear_probe", "lora", "full"])
def test_checkpoint_round_trip_gives_identical_logits(strategy: str, tiny_spec: Any,
                                                      datasets: Any, tmp_path: Path) -> None:
    bb = _backbone(tiny_spec)
    fp = weights_fingerprint(bb)
    cfg = FinetuneConfig(strategy=strategy, epochs=1, batch_size=8, lr_head=5e-2,
                         lr_backbone=5e-3, lora_rank=2, device="cpu")
    res = train_classifier(bb, tiny_spec, datasets[0], datasets[1], 2, cfg)
    path = save_checkpoint(res, tmp_path / "ck", {"strategy": strategy,
                                                  "model": tiny_spec.key}, fp)
    x = torch.stack([datasets[1][i][0] for i in range(len(datasets[1]))])
    with torch.no_grad():
        want = res.model(x)
        got = load_finetuned(path, "cpu", merge=False).classifier(x)
        merged = load_finetuned(path, "cpu", merge=True)
        got_merged = merged.classifier(x)
    assert torch.equal(want, got)
    assert torch.allclose(want, got_merged, atol=1e-5)
    assert type(merged.backbone).__name__ == tiny_spec.architecture  # plain, no peft wrapper
    assert merged.manifest["metrics"]["best_epoch"] == res.best_epoch
    # a second save replaces the folder atomically
    save_checkpoint(res, path, {"strategy": strategy, "model": tiny_spec.key}, fp)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ck"]


def test_checkpoint_refuses_other_base_weights(tiny_spec: Any, datasets: Any,
                                               tmp_path: Path) -> None:
    _, res = _train(tiny_spec, datasets, "linear_probe", epochs=1)
    path = save_checkpoint(res, tmp_path / "ck", {"strategy": "linear_probe",
                                                  "model": tiny_spec.key}, "not-the-same")
    with pytest.raises(CheckpointError, match="differ"):
        load_finetuned(path, "cpu")
    (path / "manifest.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not an ssl-wc"):
        load_finetuned(path, "cpu")
