"""A linear classification head on a backbone's pooled token.

The pooled token is computed exactly as the attention extraction computes it
(:func:`ssl_wc.models.extract._pooled` with :func:`ssl_wc.models.extract.forward_kwargs`):
the CLS token after the final norm for DINOv2/v3, MAE and CLIP (CLIP's
``post_layernorm`` output), and the attention-pooling (MAP) head's output for SigLIP. The
same forward keyword arguments are passed (MAE gets identity ``noise`` so no patch is
shuffled or dropped), so the head is trained on the token the Grad-CAM target of the
fine-tuned variant is later computed from.

The backbone may be wrapped by peft (LoRA); attribute look-ups that decide the pooling
(``post_layernorm``, ``head``) and the forward signature are read from the wrapped base
model.

Public: :class:`LinearHead`, :class:`StyleClassifier`, :func:`unwrap`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ssl_wc.models.extract import _pooled, forward_kwargs
from ssl_wc.models.registry import ModelSpec


def unwrap(backbone: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (the module itself otherwise)."""
    get_base = getattr(backbone, "get_base_model", None)
    if callable(get_base):
        base = get_base()
        if isinstance(base, nn.Module):
            return base
    return backbone


class LinearHead(nn.Linear):
    """``logits = W pooled + b``: weights drawn N(0, 0.01^2), bias 0 (seeded by the caller).

    Always float32, whatever the backbone's dtype (the input is cast up).
    """

    def __init__(self, in_features: int, n_classes: int) -> None:
        super().__init__(in_features, n_classes)
        nn.init.normal_(self.weight, std=0.01)
        nn.init.zeros_(self.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return super().forward(pooled.to(self.weight.dtype))


class StyleClassifier(nn.Module):
    """Backbone + linear head: ``pixel_values -> logits`` over the style classes."""

    def __init__(self, backbone: nn.Module, head: LinearHead, spec: ModelSpec) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.spec = spec

    @property
    def base(self) -> nn.Module:
        """The backbone's transformers model (under any peft wrapper)."""
        return unwrap(self.backbone)

    def pooled(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The pooled token, exactly as ``ssl_wc.models.extract`` computes it."""
        base = self.base
        p = self.spec.patch_size
        n_patches = (pixel_values.shape[2] // p) * (pixel_values.shape[3] // p)
        kwargs: dict[str, Any] = forward_kwargs(base, n_patches, pixel_values.shape[0])
        out = self.backbone(pixel_values=pixel_values, **kwargs)
        return _pooled(base, out, self.spec)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(pixel_values))  # type: ignore[no-any-return]
