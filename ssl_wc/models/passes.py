"""Pieces of the forward/backward passes shared by the extractors (ViT and CNN): removable
hooks, parameters frozen during a gradient pass, and the Grad-CAM target."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def installed(handles: list[torch.utils.hooks.RemovableHandle]) -> Iterator[None]:
    """Remove ``handles`` when the block ends, however it ends."""
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def frozen_params(model: nn.Module) -> Iterator[None]:
    """No parameter of ``model`` requires gradients inside the block (Grad-CAM needs
    gradients of activations only); the flags are restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def target_score(logits: torch.Tensor, target_class: int | Sequence[int] | None) -> torch.Tensor:
    """Sum over the batch of each image's target logit: ``target_class`` (one class for
    all, or one per image), else the predicted (top-1) class."""
    if target_class is None:
        idx = logits.argmax(dim=-1)
    else:
        idx = torch.as_tensor(target_class, device=logits.device).reshape(-1)
        idx = idx.expand(logits.shape[0]) if idx.numel() == 1 else idx
    return logits.gather(1, idx.view(-1, 1)).sum()
