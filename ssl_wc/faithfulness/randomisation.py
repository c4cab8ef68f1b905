"""Cascading model-parameter randomisation (Adebayo, Gilmer, Muelly, Goodfellow, Hardt,
Kim 2018, "Sanity Checks for Saliency Maps", NeurIPS), for any backbone whose blocks
``ssl_wc.models.extract.block_modules`` finds.

Parameters fall in stages, found from the order in which modules run in one forward
pass: ``embed`` (modules that run before the first block: patch and position
embeddings, CLS and register tokens, a pre-norm), one stage per block, ``top`` (modules
that run after the last block: final norm, pooling head; plus an optional classifier),
and ``unused`` (modules that never run). The cascade, for a model of L blocks:

- step k = 1..L: ``top`` and blocks L-k .. L-1 (0-based) re-initialised;
- step L + 1: every parameter (``embed`` and ``unused`` too): the fully random model.

Re-initialisation (:data:`RANDOMISATION_CONVENTIONS` in ``protocol``): a module with
``reset_parameters`` (Linear, LayerNorm, Conv, Embedding, BatchNorm with its running
statistics) is reset by it, as Quantus's MPRT does; any other parameter is drawn from
N(0, std^2) with std the config's ``initializer_range`` (else 0.02). The random values
of a module depend only on (seed, the module's qualified name): each is computed on the
CPU in float32 under its own seed, then copied to the model's device and dtype, so a
block keeps the same random weights at every later step and on every device.

A map at layer l made from the attention inside block l (``cls``, ``mean``, ``rollout``)
depends only on blocks <= l and the embeddings, so it is unchanged until the cascade
reaches block l (:func:`map_depends`). Grad-CAM at layer l weights the activations
entering (ViT) or leaving (CNN) block l by gradients that flow back from the pooled
output through the top (and a CNN's classifier), so it depends on the randomised part
from step 1 on, as does the MAP-head map.

A CNN (ResNet-50, Grad-CAM per stage) runs the same cascade over its stages, with its
ImageNet classifier (the Grad-CAM target) in ``top`` (:func:`cascade_parts`).

Public: :class:`Stages`, :func:`parameter_stages`, :class:`CascadeRandomiser`,
:func:`map_depends`, :func:`cascade_parts`, :func:`probe_forward`, :data:`FORWARD_METHODS`.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ssl_wc.models.cnn import cnn_parts, stage_modules
from ssl_wc.models.extract import block_modules, model_inputs, unwrap_model
from ssl_wc.models.spec import AnySpec, CnnSpec

#: methods whose map at layer l is computed inside block l from the forward pass alone
FORWARD_METHODS: tuple[str, ...] = ("cls", "mean", "rollout")


def map_depends(method: str, layer: int, randomised_from: int) -> bool:
    """Whether a map at 0-based ``layer`` can change when blocks ``randomised_from``..L-1
    (and the top) are re-initialised; ``randomised_from < 0`` means every parameter."""
    if randomised_from < 0:
        return True
    if method in FORWARD_METHODS:
        return layer >= randomised_from
    return True  # gradcam, map: the top (and a CNN's classifier) is random from step 1


def cascade_parts(model: nn.Module, spec: AnySpec) -> tuple[nn.Module, list[nn.Module]]:
    """The module the cascade randomises and its blocks (the warehouse's layers, in depth
    order). A ViT: the backbone inside any wrapper and its transformer blocks. A CNN: the
    whole loaded model, so that the ImageNet classifier Grad-CAM targets runs after the
    last block and falls in ``top``, and the stages of its feature extractor."""
    if isinstance(spec, CnnSpec):
        return model, stage_modules(cnn_parts(model, spec)[0])
    backbone = unwrap_model(model, spec.architecture)
    return backbone, block_modules(backbone)


def probe_forward(root: nn.Module, spec: AnySpec, x: torch.Tensor) -> Callable[[], Any]:
    """One forward pass of ``root`` (from :func:`cascade_parts`) over ``x`` (B, 3, H, W),
    with the inputs the extractor gives it (a NaFlex model: patchified, padded, masked)."""
    p = next(root.parameters())
    x = x.to(device=p.device, dtype=p.dtype)
    if isinstance(spec, CnnSpec):
        return lambda: root(pixel_values=x)
    return lambda: root(**model_inputs(root, spec, x))


@dataclass
class Stages:
    """Modules owning parameters directly, by stage (qualified names, in model order)."""

    embed: list[str] = field(default_factory=list)
    blocks: list[list[str]] = field(default_factory=list)
    top: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {"embed": self.embed, "top": self.top, "unused": self.unused,
                "blocks": len(self.blocks)}


def _owns_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False))


def parameter_stages(model: nn.Module, blocks: Sequence[nn.Module],
                     run_forward: Callable[[], Any]) -> Stages:
    """Assign every module that owns parameters to a stage by running one forward pass.

    ``blocks``: the model's blocks in depth order; ``run_forward``: runs the model once
    (no gradients needed). A module inside a block belongs to that block.
    """
    names = {id(m): n for n, m in model.named_modules()}
    block_of: dict[int, int] = {}
    for b, blk in enumerate(blocks):
        for m in blk.modules():
            block_of[id(m)] = b
    first_call: dict[int, int] = {}
    clock = {"t": 0, "first_block": -1, "after_last": -1}

    def pre(m: nn.Module, _args: Any) -> None:
        clock["t"] += 1
        first_call.setdefault(id(m), clock["t"])
        if m is blocks[0] and clock["first_block"] < 0:
            clock["first_block"] = clock["t"]

    def post_last(_m: nn.Module, _a: Any, _o: Any) -> None:
        clock["t"] += 1
        clock["after_last"] = clock["t"]

    handles = [m.register_forward_pre_hook(pre) for m in model.modules()]
    handles.append(blocks[-1].register_forward_hook(post_last))
    try:
        with torch.no_grad():
            run_forward()
    finally:
        for h in handles:
            h.remove()
    stages = Stages(blocks=[[] for _ in blocks])
    by_name = {n: m for n, m in model.named_modules()}
    for m in model.modules():
        if not _owns_params(m):
            continue
        name = names[id(m)]
        if id(m) in block_of:
            stages.blocks[block_of[id(m)]].append(name)
            continue
        t = first_call.get(id(m))
        parts = name.split(".")
        while t is None and len(parts) > 1:  # a part its parent uses without calling it
            parts = parts[:-1]
            t = first_call.get(id(by_name[".".join(parts)]))
        if t is None:
            stages.unused.append(name)
        elif t < clock["first_block"]:
            stages.embed.append(name)
        elif t > clock["after_last"] >= 0:
            stages.top.append(name)
        else:  # runs between the blocks without belonging to one: treat as embedding
            stages.embed.append(name)
    return stages


def _module_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63)


def reinitialise(module: nn.Module, name: str, *, seed: int, std: float) -> None:
    """Re-initialise the parameters ``module`` owns directly (see the module docstring)."""
    params = dict(module.named_parameters(recurse=False))
    if not params:
        return
    own_reset = callable(getattr(module, "reset_parameters", None)) and not any(
        True for _ in module.children())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_module_seed(seed, name))
        fresh: dict[str, torch.Tensor]
        buffers: dict[str, torch.Tensor] = {}
        if own_reset:
            cpu = copy.deepcopy(module).to(device="cpu", dtype=torch.float32)
            cpu.reset_parameters()  # type: ignore[operator]
            fresh = {k: v.detach() for k, v in cpu.named_parameters(recurse=False)}
            # BatchNorm's reset also resets its running statistics (as Quantus's does)
            buffers = {k: v.detach() for k, v in cpu.named_buffers(recurse=False)}
        else:
            fresh = {k: torch.randn(p.shape, dtype=torch.float32) * std
                     for k, p in sorted(params.items())}
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(fresh[k].to(device=p.device, dtype=p.dtype))
        for k, b in module.named_buffers(recurse=False):
            if k in buffers:
                b.copy_(buffers[k].to(device=b.device, dtype=b.dtype))


class CascadeRandomiser:
    """Applies the cascade to a model in place, one step at a time (see the docstring).

    ``extra_top``: modules run after the backbone (a fine-tuned classifier), randomised
    with the top. The model is modified in place: load a fresh copy for anything else.
    """

    def __init__(self, model: nn.Module, stages: Stages, *, seed: int, std: float = 0.02,
                 extra_top: Sequence[tuple[str, nn.Module]] = ()) -> None:
        self.model = model
        self.stages = stages
        self.seed = int(seed)
        self.std = float(std)
        self.modules = dict(model.named_modules())
        self.extra_top = list(extra_top)
        self.step = 0

    @property
    def num_steps(self) -> int:
        """L block steps plus the fully random step."""
        return len(self.stages.blocks) + 1

    def randomised_from(self, step: int) -> int:
        """First re-initialised block (0-based) after ``step``; -1 when fully random."""
        n_blocks = len(self.stages.blocks)
        return -1 if step > n_blocks else n_blocks - step

    def _reset(self, names: Sequence[str]) -> None:
        for n in names:
            reinitialise(self.modules[n], n, seed=self.seed, std=self.std)

    def advance(self) -> int:
        """Go to the next step; returns it (1..L+1)."""
        if self.step >= self.num_steps:
            raise RuntimeError("the cascade is complete: every parameter is random")
        self.step += 1
        n_blocks = len(self.stages.blocks)
        if self.step == 1:
            self._reset(self.stages.top)
            for name, mod in self.extra_top:
                for sub_name, sub in mod.named_modules():
                    reinitialise(sub, f"{name}.{sub_name}".rstrip("."), seed=self.seed,
                                 std=self.std)
        if self.step <= n_blocks:
            self._reset(self.stages.blocks[n_blocks - self.step])
        else:
            self._reset(self.stages.embed + self.stages.unused)
        return self.step

    def describe(self) -> dict[str, Any]:
        return {"seed": self.seed, "std": self.std, "steps": self.num_steps,
                "stages": self.stages.describe(),
                "extra_top": [n for n, _ in self.extra_top]}


def init_std(model: nn.Module) -> float:
    """The config's ``initializer_range`` (0.02 when there is none)."""
    cfg = getattr(model, "config", None)
    v = getattr(cfg, "initializer_range", None)
    return float(v) if isinstance(v, int | float) and v > 0 else 0.02
