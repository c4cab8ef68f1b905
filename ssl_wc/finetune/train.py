"""Fine-tuning strategies, the training loop, checkpoints and their reload.

Strategies (``FinetuneConfig.strategy``):

- ``linear_probe``: the backbone is frozen (``requires_grad=False``, eval mode, never
  given to the optimiser), so its weights stay bit-identical; the pooled tokens of the
  training and validation images are computed once and the head is trained on them.
- ``lora``: LoRA (Hu et al. 2022, "LoRA: Low-Rank Adaptation of Large Language Models",
  ICLR 2022) through peft on the query and value projections of every self-attention
  block: ``W x + (alpha / r) B A x`` with ``A`` (r x d) Kaiming-initialised and ``B``
  zero-initialised, so training starts from the frozen model. Only the adapters and the
  head are trainable. Module names are found in the loaded model (see
  :func:`lora_target_modules`); in transformers 5.24 every supported architecture
  (DINOv2 with and without registers, DINOv3, MAE, ViT, CLIP, SigLIP) names them
  ``q_proj``/``v_proj``; older ``query``/``value`` names are recognised too.
- ``full``: every parameter trainable.

Optimisation: AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization")
with separate learning rates for backbone parameters (``lr_backbone``: the adapters for
LoRA) and the head (``lr_head``), no weight decay on biases and norm parameters; linear
warm-up over the first ``warmup_fraction`` of the steps then cosine decay to 0
(Loshchilov & Hutter 2017, SGDR); gradient clipping at ``grad_clip`` (global L2 norm);
class-weighted cross-entropy (:func:`ssl_wc.finetune.data.class_weights`).

Determinism: ``random``, numpy and torch are seeded, the loader shuffles with its own
seeded generator, and on CPU ``torch.use_deterministic_algorithms(True, warn_only=True)``
is on during training (restored afterwards): the same inputs and seed give the same
weights. CUDA runs are seeded but not guaranteed bit-reproducible.

Model selection: the epoch with the best validation accuracy (ties: lower validation
loss) is kept; the returned model holds its weights.

Checkpoint folder (:func:`save_checkpoint`): ``manifest.json`` (format, model spec,
strategy, classes, split, config, code version, metrics, fingerprint of the base
weights), ``head.safetensors``, and ``adapter/`` (LoRA, peft ``save_pretrained``) or
``backbone/`` (full, transformers ``save_pretrained``). :func:`load_finetuned` rebuilds
the classifier with identical logits; for extraction LoRA is merged into the base weights
(``merge_and_unload``), which changes logits only by float rounding.

Public: :class:`FinetuneConfig`, :class:`EpochStats`, :class:`TrainResult`,
:class:`FinetunedModel`, :func:`prepare_classifier`, :func:`train_classifier`,
:func:`evaluate`, :func:`lora_target_modules`, :func:`save_checkpoint`,
:func:`load_finetuned`, :func:`read_manifest`, :func:`spec_to_dict`,
:func:`spec_from_dict`, :func:`weights_fingerprint`, :func:`deterministic`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ssl_wc.finetune import STRATEGIES
from ssl_wc.finetune.data import StyleDataset, class_weights, make_loader
from ssl_wc.finetune.heads import LinearHead, StyleClassifier, unwrap
from ssl_wc.models.device import DeviceChoice, choose_device
from ssl_wc.models.registry import ModelSpec, NativePreprocess

CHECKPOINT_FORMAT = "ssl-wc-finetune/1"
DEFAULT_LR_BACKBONE = {"linear_probe": 0.0, "lora": 5e-4, "full": 1e-5}
"""Backbone learning rate per strategy when none is given (LoRA adapters learn faster)."""

# architecture -> (query, value) projection names in transformers 5.24 (checked against
# the loaded model by lora_target_modules; the first pair found in every block wins)
LORA_PAIRS: dict[str, tuple[str, str]] = {
    "Dinov2Model": ("q_proj", "v_proj"),
    "Dinov2WithRegistersModel": ("q_proj", "v_proj"),
    "DINOv3ViTModel": ("q_proj", "v_proj"),
    "ViTMAEModel": ("q_proj", "v_proj"),
    "ViTModel": ("q_proj", "v_proj"),
    "CLIPVisionModel": ("q_proj", "v_proj"),
    "SiglipVisionModel": ("q_proj", "v_proj"),
    "Siglip2VisionModel": ("q_proj", "v_proj"),
}
_FALLBACK_PAIRS = (("q_proj", "v_proj"), ("query", "value"), ("q", "v"))


class CheckpointError(RuntimeError):
    """A checkpoint is missing, malformed, or does not match its base weights."""


class LoraTargetError(RuntimeError):
    """The query/value projections of a model's attention blocks could not be found."""


@dataclass(frozen=True)
class FinetuneConfig:
    """Hyper-parameters of one fine-tuning run (JSON-ready via :meth:`to_dict`)."""

    strategy: str
    epochs: int = 3
    batch_size: int = 16
    lr_backbone: float | None = None  # None: DEFAULT_LR_BACKBONE[strategy]
    lr_head: float = 1e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.1
    grad_clip: float = 1.0
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto (bf16 autocast on CUDA if supported) | fp32 | bf16
    num_workers: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose from "
                             f"{', '.join(STRATEGIES)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.lora_rank < 1:
            raise ValueError("lora_rank must be at least 1")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError("warmup_fraction must be in [0, 1)")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError("precision must be auto, fp32 or bf16")

    @property
    def backbone_lr(self) -> float:
        if self.strategy == "linear_probe":
            return 0.0
        return DEFAULT_LR_BACKBONE[self.strategy] if self.lr_backbone is None \
            else float(self.lr_backbone)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["lr_backbone"] = self.backbone_lr
        if self.strategy != "lora":
            for k in ("lora_rank", "lora_alpha", "lora_dropout"):
                d.pop(k)
        return d

    def identity(self) -> dict[str, Any]:
        """What determines the result (device, precision and workers excluded)."""
        d = self.to_dict()
        for k in ("device", "num_workers"):
            d.pop(k)
        return d


@dataclass
class EpochStats:
    """One epoch: losses are class-weighted means over samples; accuracies plain."""

    epoch: int
    train_loss: float
    val_loss: float
    train_acc: float
    val_acc: float
    val_balanced_acc: float
    lr_head: float
    lr_backbone: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What :func:`train_classifier` returns; ``model`` holds the best epoch's weights."""

    model: StyleClassifier
    epochs: list[EpochStats]
    best_epoch: int
    best_val_acc: float
    best_val_loss: float
    best_confusion: list[list[int]]
    n_trainable: int
    n_params: int
    class_weights: list[float]
    precision: str
    lora_targets: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_val_acc": self.best_val_acc,
                "best_val_loss": self.best_val_loss, "best_confusion": self.best_confusion,
                "n_trainable": self.n_trainable, "n_params": self.n_params,
                "class_weights": self.class_weights, "precision": self.precision,
                "epochs": [e.to_dict() for e in self.epochs]}


# --------------------------------------------------------------------------- plumbing
@contextlib.contextmanager
def deterministic(seed: int, device: str = "cpu") -> Iterator[None]:
    """Seed ``random``, numpy and torch; deterministic kernels on CPU (restored after)."""
    was_on = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_on, warn_only=was_warn)


def _autocast_dtype(cfg: FinetuneConfig, choice: DeviceChoice) -> torch.dtype | None:
    if not choice.device.startswith("cuda"):
        return None
    if cfg.precision == "fp32":
        return None
    if cfg.precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def _autocast(device: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def lora_target_modules(model: nn.Module) -> list[str]:
    """Full module names of the query and value projections of every attention block.

    Blocks are found as the extraction finds them (the modules transformers records
    attention from; a SigLIP MAP head is not a block), so adapters never land on the
    pooling head or an MLP. Raises :class:`LoraTargetError` listing what was found when a
    block lacks a recognised pair.
    """
    from ssl_wc.models.extract import attention_modules

    base = unwrap(model)
    blocks = attention_modules(base)
    names = {id(m): n for n, m in base.named_modules()}
    preferred = LORA_PAIRS.get(type(base).__name__)
    pairs = ((preferred,) if preferred else ()) + _FALLBACK_PAIRS
    out: list[str] = []
    for block in blocks:
        prefix = names[id(block)]
        linears = {n.rsplit(".", 1)[-1]: f"{prefix}.{n}" for n, m in block.named_modules()
                   if n and isinstance(m, nn.Linear)}
        for q, v in pairs:
            if q in linears and v in linears:
                out += [linears[q], linears[v]]
                break
        else:
            raise LoraTargetError(
                f"{type(base).__name__}: no query/value projections in block {prefix!r} "
                f"(linear layers there: {sorted(linears)}); add the pair to LORA_PAIRS")
    return out


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return (sum(p.numel() for p in params if p.requires_grad),
            sum(p.numel() for p in params))


def prepare_classifier(backbone: nn.Module, spec: ModelSpec, n_classes: int,
                       cfg: FinetuneConfig) -> tuple[StyleClassifier, list[str]]:
    """Wrap ``backbone`` for ``cfg.strategy``; returns the classifier and LoRA targets.

    Seeded: the head is drawn from ``torch.manual_seed(cfg.seed)`` and the LoRA ``A``
    matrices from ``cfg.seed + 1``.
    """
    hidden = int(getattr(getattr(backbone, "config", None), "hidden_size", spec.hidden_size))
    torch.manual_seed(cfg.seed)
    head = LinearHead(hidden, n_classes)
    targets: list[str] = []
    if cfg.strategy == "linear_probe":
        backbone.requires_grad_(False)
        backbone.eval()
    elif cfg.strategy == "lora":
        from peft import LoraConfig, get_peft_model

        targets = lora_target_modules(backbone)
        lcfg = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                          lora_dropout=cfg.lora_dropout, target_modules=targets, bias="none")
        torch.manual_seed(cfg.seed + 1)
        with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            backbone = get_peft_model(backbone, lcfg)  # freezes every non-adapter weight
    else:
        backbone.requires_grad_(True)
    model = StyleClassifier(backbone, head, spec)
    return model, targets


def _param_groups(model: StyleClassifier, cfg: FinetuneConfig) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for part, lr in ((model.backbone, cfg.backbone_lr), (model.head, cfg.lr_head)):
        decay = [p for p in part.parameters() if p.requires_grad and p.ndim > 1]
        no_decay = [p for p in part.parameters() if p.requires_grad and p.ndim <= 1]
        name = "head" if part is model.head else "backbone"
        if decay:
            groups.append({"params": decay, "lr": lr, "weight_decay": cfg.weight_decay,
                           "name": name})
        if no_decay:
            groups.append({"params": no_decay, "lr": lr, "weight_decay": 0.0, "name": name})
    return groups


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimiser step ``s`` (0-based).

    Linear warm-up ``(s + 1) / warmup`` for ``s < warmup``, then cosine decay
    ``0.5 (1 + cos(pi * progress))`` with ``progress`` from 0 to 1 at the last step.
    """
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return f


def _group_lr(opt: torch.optim.Optimizer, name: str) -> float:
    for g in opt.param_groups:
        if g.get("name") == name:
            return float(g["lr"])
    return 0.0


def _trainable_state(model: StyleClassifier, strategy: str) -> dict[str, torch.Tensor]:
    """CPU copy of what the strategy trains (the best epoch's snapshot)."""
    if strategy == "linear_probe":
        sd = {f"head.{k}": v for k, v in model.head.state_dict().items()}
    elif strategy == "lora":
        sd = {k: v for k, v in model.state_dict().items()
              if k.startswith("head.") or "lora_" in k}
    else:
        sd = model.state_dict()
    return {k: v.detach().to("cpu", copy=True) for k, v in sd.items()}


@dataclass
class _Eval:
    loss: float
    acc: float
    balanced_acc: float
    confusion: list[list[int]]


def _confusion_stats(y: np.ndarray, pred: np.ndarray, n_classes: int) -> tuple[float, float,
                                                                                list[list[int]]]:
    conf = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(conf, (y, pred), 1)
    acc = float((y == pred).mean()) if y.size else math.nan
    rows = conf.sum(axis=1)
    recall = [conf[i, i] / rows[i] for i in range(n_classes) if rows[i] > 0]
    bal = float(np.mean(recall)) if recall else math.nan
    return acc, bal, conf.tolist()


def _weighted_loss(logits: torch.Tensor, y: torch.Tensor,
                   weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of w_i * CE_i, sum of w_i) for one batch."""
    ce = nn.functional.cross_entropy(logits.float(), y, reduction="none")
    w = weights[y]
    return (w * ce).sum(), w.sum()


@torch.no_grad()
def evaluate(model: StyleClassifier | nn.Module, loader: DataLoader[Any], weights: torch.Tensor,
             n_classes: int, device: torch.device,
             autocast: torch.dtype | None = None) -> _Eval:
    """Class-weighted loss, accuracy, balanced accuracy and confusion over a loader."""
    was_training = model.training
    model.eval()
    num = den = 0.0
    ys: list[np.ndarray] = []
    preds: list[np.ndarray] = []
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with _autocast(device.type, autocast):
            logits = model(x)
        s, w = _weighted_loss(logits, y, weights)
        num += float(s)
        den += float(w)
        ys.append(y.cpu().numpy())
        preds.append(logits.argmax(dim=1).cpu().numpy())
    model.train(was_training)
    y_all = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    p_all = np.concatenate(preds) if preds else np.zeros(0, np.int64)
    acc, bal, conf = _confusion_stats(y_all, p_all, n_classes)
    return _Eval(num / den if den > 0 else math.nan, acc, bal, conf)


@torch.no_grad()
def _pooled_features(model: StyleClassifier, loader: DataLoader[Any], device: torch.device,
                     autocast: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    feats, labels = [], []
    for x, y in loader:
        with _autocast(device.type, autocast):
            f = model.pooled(x.to(device))
        feats.append(f.float().cpu())
        labels.append(torch.as_tensor(y))
    return torch.cat(feats), torch.cat(labels)


# --------------------------------------------------------------------------- training
def train_classifier(backbone: nn.Module, spec: ModelSpec, train_ds: StyleDataset,
                     val_ds: StyleDataset, n_classes: int, cfg: FinetuneConfig,
                     choice: DeviceChoice | None = None,
                     echo: Callable[[str], None] | None = None) -> TrainResult:
    """Train ``backbone`` + a linear head under ``cfg`` (see the module docstring).

    ``backbone`` is modified in place (LoRA wraps it). Returns the model at its best
    epoch with every epoch's statistics.
    """
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise ValueError(f"empty split: {len(train_ds)} training, {len(val_ds)} validation "
                         "images")
    choice = choice or choose_device(cfg.device, "float32")
    device = choice.torch_device
    amp = _autocast_dtype(cfg, choice)
    with deterministic(cfg.seed, choice.device):
        model, targets = prepare_classifier(backbone, spec, n_classes, cfg)
        model.to(device)
        weights = class_weights(train_ds.labels, n_classes).to(device)
        pin = choice.device.startswith("cuda")
        train_loader = make_loader(train_ds, cfg.batch_size, shuffle=True, seed=cfg.seed,
                                   num_workers=cfg.num_workers, pin_memory=pin)
        val_loader = make_loader(val_ds, cfg.batch_size, shuffle=False, seed=cfg.seed,
                                 num_workers=cfg.num_workers, pin_memory=pin)
        probe = cfg.strategy == "linear_probe"
        if probe:  # frozen backbone: pooled tokens once, then the head alone
            model.backbone.eval()
            tr_x, tr_y = _pooled_features(model, train_loader, device, amp)
            va_x, va_y = _pooled_features(model, val_loader, device, amp)
            gen = torch.Generator()
            gen.manual_seed(cfg.seed)
            train_loader = DataLoader(TensorDataset(tr_x, tr_y),  # type: ignore[arg-type]
                                      batch_size=cfg.batch_size, shuffle=True, generator=gen)
            val_loader = DataLoader(TensorDataset(va_x, va_y),  # type: ignore[arg-type]
                                    batch_size=cfg.batch_size)
            step_model: nn.Module = model.head
        else:
            step_model = model
        opt = torch.optim.AdamW(_param_groups(model, cfg))
        steps_per_epoch = len(train_loader)
        total = steps_per_epoch * cfg.epochs
        warm = round(cfg.warmup_fraction * total)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total, warm))
        trainable = [p for p in model.parameters() if p.requires_grad]
        n_trainable, n_params = count_parameters(model)
        history: list[EpochStats] = []
        best: tuple[float, float] | None = None
        best_state: dict[str, torch.Tensor] = {}
        best_epoch, best_conf = 0, [[0]]
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.monotonic()
            if not probe:
                model.train()
            model.head.train()
            num = den = 0.0
            correct = seen = 0
            for x, y in train_loader:
                x, y = x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
                with _autocast(device.type, amp):
                    logits = step_model(x)
                s, w = _weighted_loss(logits, y, weights)
                loss = s / w.clamp_min(1e-12)
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
                opt.step()
                sched.step()
                num += float(s.detach())
                den += float(w.detach())
                correct += int((logits.argmax(dim=1) == y).sum())
                seen += int(y.numel())
            lr_head = _group_lr(opt, "head")
            lr_bb = _group_lr(opt, "backbone")
            ev = evaluate(step_model, val_loader, weights, n_classes, device, amp)
            stats = EpochStats(epoch, num / den if den else math.nan, ev.loss,
                               correct / max(seen, 1), ev.acc, ev.balanced_acc, lr_head,
                               lr_bb, time.monotonic() - t0)
            history.append(stats)
            key = (ev.acc, -ev.loss if math.isfinite(ev.loss) else -math.inf)
            if best is None or key > best:
                best, best_epoch, best_conf = key, epoch, ev.confusion
                best_state = _trainable_state(model, cfg.strategy)
            if echo is not None:
                echo(f"  epoch {epoch}/{cfg.epochs}: train loss {stats.train_loss:.4f} "
                     f"acc {stats.train_acc:.3f} | val loss {stats.val_loss:.4f} "
                     f"acc {stats.val_acc:.3f} (balanced {stats.val_balanced_acc:.3f}) "
                     f"| {stats.seconds:.1f}s")
        model.load_state_dict(best_state, strict=False)
        model.eval()
    assert best is not None
    return TrainResult(model=model, epochs=history, best_epoch=best_epoch,
                       best_val_acc=history[best_epoch - 1].val_acc,
                       best_val_loss=history[best_epoch - 1].val_loss,
                       best_confusion=best_conf, n_trainable=n_trainable, n_params=n_params,
                       class_weights=[float(v) for v in weights.cpu()],
                       precision="bf16-autocast" if amp is not None else "fp32",
                       lora_targets=targets)


# --------------------------------------------------------------------------- checkpoints
def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """Every field of a :class:`ModelSpec` as JSON (so a checkpoint is self-contained)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(spec):
        v = getattr(spec, f.name)
        if f.name == "config":
            v = dict(v)
        elif isinstance(v, NativePreprocess):
            v = {"short_side": v.short_side,
                 "crop_hw": list(v.crop_hw) if v.crop_hw is not None else None}
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def spec_from_dict(d: dict[str, Any]) -> ModelSpec:
    """Inverse of :func:`spec_to_dict`."""
    kw = dict(d)
    for k in ("input_hw", "mean", "std"):
        if k in kw and kw[k] is not None:
            kw[k] = tuple(kw[k])
    nat = kw.get("native") or {}
    crop = nat.get("crop_hw")
    kw["native"] = NativePreprocess(short_side=nat.get("short_side"),
                                    crop_hw=tuple(crop) if crop is not None else None)
    return ModelSpec(**kw)


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 (16 hex) over the names, dtypes, shapes and bytes of every tensor."""
    h = hashlib.sha256()
    for name, t in sorted(unwrap(model).state_dict().items()):
        arr = t.detach().to("cpu").contiguous()
        h.update(f"{name}|{arr.dtype}|{tuple(arr.shape)}|".encode())
        h.update(arr.view(torch.uint8).numpy().tobytes() if arr.numel() else b"")
    return h.hexdigest()[:16]


def save_checkpoint(result: TrainResult, path: Path, manifest: dict[str, Any],
                    base_fingerprint: str) -> Path:
    """Write the best model of ``result`` to ``path`` atomically (temp folder + rename).

    An existing folder at ``path`` is replaced. Returns ``path``.
    """
    from safetensors.torch import save_file

    model = result.model
    strategy = manifest["strategy"]
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    head = {k: v.detach().to("cpu").contiguous() for k, v in model.head.state_dict().items()}
    save_file(head, str(tmp / "head.safetensors"))
    if strategy == "lora":
        model.backbone.save_pretrained(str(tmp / "adapter"))  # type: ignore[operator]
    elif strategy == "full":
        model.backbone.save_pretrained(str(tmp / "backbone"))  # type: ignore[operator]
        from ssl_wc.models.registry import RANDOM_WEIGHTS_MARKER

        marker = Path(model.spec.local_dir or "") / RANDOM_WEIGHTS_MARKER
        if model.spec.local_dir and marker.exists():
            shutil.copy2(marker, tmp / "backbone" / RANDOM_WEIGHTS_MARKER)
    full = {"format": CHECKPOINT_FORMAT, **manifest, "spec": spec_to_dict(model.spec),
            "head": {"in_features": model.head.in_features,
                     "out_features": model.head.out_features},
            "base_fingerprint": base_fingerprint, "metrics": result.metrics(),
            "lora_targets": result.lora_targets}
    (tmp / "manifest.json").write_text(json.dumps(full, indent=1, sort_keys=True,
                                                  default=str))
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    if path.exists():
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The ``manifest.json`` of a checkpoint folder (:class:`CheckpointError` if unusable)."""
    p = Path(path) / "manifest.json"
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{p}: cannot read the checkpoint manifest ({exc})") from None
    if not isinstance(m, dict) or m.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p}: not an ssl-wc fine-tuning checkpoint "
                              f"(format {m.get('format') if isinstance(m, dict) else None!r})")
    return m


@dataclass
class FinetunedModel:
    """A reloaded checkpoint: the classifier (eval mode) and its manifest."""

    classifier: StyleClassifier
    manifest: dict[str, Any]
    path: Path

    @property
    def backbone(self) -> nn.Module:
        return self.classifier.backbone

    @property
    def head(self) -> LinearHead:
        return self.classifier.head

    @property
    def spec(self) -> ModelSpec:
        return self.classifier.spec

    @property
    def strategy(self) -> str:
        return str(self.manifest["strategy"])


def _floating(model: nn.Module) -> bool:
    return all(p.dtype == torch.float32 for p in model.parameters())


def load_finetuned(path: str | Path, device: DeviceChoice | str = "auto", *,
                   merge: bool = True, spec: ModelSpec | None = None,
                   check_base: bool = True) -> FinetunedModel:
    """Rebuild a saved classifier (eager attention, eval mode) on ``device``.

    ``linear_probe``: the base weights plus the head; ``lora``: the base weights with the
    adapter loaded through peft, merged into the weights (``merge=True``, a plain
    transformers model for extraction) or kept as a ``PeftModel`` (identical logits to
    training); ``full``: the saved backbone. ``spec`` overrides the manifest's spec (for
    a base model that moved). With ``check_base`` the base weights must have the
    fingerprint recorded at training time (checked when loaded in float32).
    """
    from safetensors.torch import load_file

    from ssl_wc.models.loading import load_model

    path = Path(path)
    m = read_manifest(path)
    spec = spec or spec_from_dict(m["spec"])
    choice = device if isinstance(device, DeviceChoice) else choose_device(device)
    strategy = m["strategy"]
    if strategy == "full":
        local = dataclasses.replace(spec, local_dir=str(path / "backbone"), hub_id=None,
                                    revision=None)
        backbone = load_model(local, choice).model
    else:
        backbone = load_model(spec, choice).model
        if check_base and _floating(backbone):
            got = weights_fingerprint(backbone)
            if got != m.get("base_fingerprint"):
                raise CheckpointError(
                    f"{path}: the base weights of {spec.key!r} ({spec.source}) differ from "
                    f"those it was trained on (fingerprint {got} != "
                    f"{m.get('base_fingerprint')}); load the same checkpoint/revision")
        if strategy == "lora":
            from peft import PeftModel

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
                peft_model = PeftModel.from_pretrained(backbone, str(path / "adapter"))
            backbone = peft_model.merge_and_unload() if merge else peft_model
    head = LinearHead(int(m["head"]["in_features"]), int(m["head"]["out_features"]))
    head.load_state_dict(load_file(str(path / "head.safetensors")))
    clf = StyleClassifier(backbone, head, spec)
    clf.head.to(choice.torch_device)
    clf.eval()
    return FinetunedModel(clf, m, path)


def class_index(classes: Sequence[str], style_id: str) -> int:
    """Label index of ``style_id`` (a clear error for a style outside the classes)."""
    try:
        return list(classes).index(style_id)
    except ValueError:
        raise ValueError(f"style {style_id!r} is not one of the classes {list(classes)}") \
            from None
