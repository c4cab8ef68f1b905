"""Grad-CAM maps and features from a CNN backbone (transformers' ResNet classes).

Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization"): with ``A`` the output of stage ``s`` (B, C, h, w) and ``y``
the target logit, ``alpha_c = mean_{i,j} dy/dA[c, i, j]`` and
``map[i, j] = ReLU(sum_c alpha_c A[c, i, j])``: an (h, w) grid, row = y, stored row-major
like every attention map (method ``gradcam``, head -1). The target is the ImageNet top-1
class of the checkpoint's own classifier (``target_class`` overrides it; a fine-tuned
variant passes its head as ``classifier``). ResNet-50 at 224 px: stages of 56, 28, 14 and
7 cells; the default is the last stage (7x7), the usual Grad-CAM layer.

Layers are 1-based stages here (the warehouse stores ``stage - 1``); layer 0 is the stem
(after the max-pool). Features: ``patch_mean`` per stage = the stage output averaged over
its cells (C_s values: 256, 512, 1024, 2048 for ResNet-50), ``pooled`` = the model's own
global average pool of the last stage (= ``patch_mean`` of the last stage, stored under
the ViT kinds' name so probes and the features view treat every model alike). Patch
tokens: the (h * w, C_s) cells of a stage, row-major.

Images do not interact (batch norm in eval mode), so one backward pass of the summed
targets gives every image's maps. Parameters get no gradients.

Public: :func:`extract_cnn_batch`, :func:`cnn_parts`, :func:`stage_modules`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

import numpy as np
import torch
from torch import nn

from ssl_wc.models.outputs import HEAD_MEAN, ExtractionResult, FeatureBatch, MapBatch
from ssl_wc.models.passes import frozen_params, installed, target_score
from ssl_wc.models.spec import CnnSpec


class CnnExtractionError(RuntimeError):
    """The CNN cannot produce the requested maps (with the reason)."""


def cnn_parts(model: nn.Module, spec: CnnSpec) -> tuple[nn.Module, nn.Module | None]:
    """(feature extractor, ImageNet classifier or None) of a loaded CNN: the classifier
    model's ``spec.backbone`` and ``spec.classifier`` attributes, or a bare backbone."""
    backbone = getattr(model, spec.backbone, None)
    if isinstance(backbone, nn.Module):
        head = getattr(model, spec.classifier, None)
        return backbone, head if isinstance(head, nn.Module) else None
    return model, None


def stage_modules(backbone: nn.Module) -> list[nn.Module]:
    """The stages of a ResNet-style feature extractor (``encoder.stages``), in depth order."""
    encoder = getattr(backbone, "encoder", None)
    stages = getattr(encoder, "stages", None)
    if not isinstance(stages, nn.ModuleList):
        raise CnnExtractionError(f"{type(backbone).__name__} has no encoder.stages: only "
                                 "transformers ResNet-style backbones are supported")
    return list(stages)


def _resolve(layers: Sequence[int] | None, n: int, default: Sequence[int]) -> tuple[int, ...]:
    if layers is None:
        return tuple(default)
    out = set()
    for layer in layers:
        v = n + 1 + layer if layer < 0 else layer
        if not 0 <= v <= n:
            raise ValueError(f"stage {layer} out of range 0..{n} (negative counts from the end)")
        out.add(int(v))
    return tuple(sorted(out))


def extract_cnn_batch(
    model: nn.Module,
    spec: CnnSpec,
    pixel_values: torch.Tensor | np.ndarray,
    methods: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    *,
    features: bool = True,
    feature_layers: Sequence[int] | None = None,
    patch_token_layers: Sequence[int] = (),
    classifier: Callable[[torch.Tensor], torch.Tensor] | None = None,
    target_class: int | Sequence[int] | None = None,
) -> ExtractionResult:
    """Grad-CAM maps per stage (and features) for one batch (B, 3, H, W).

    ``layers``: 1-based stages for maps (default: the last); ``feature_layers``: stages
    for ``patch_mean`` features (0 = stem; default every stage); ``patch_token_layers``:
    stages whose cells are returned whole. ``classifier`` (pooled (B, C) -> logits)
    replaces the checkpoint's head as the target (fine-tuned variants).
    """
    methods = tuple(methods) if methods is not None else ("gradcam",)
    bad = [m for m in methods if m != "gradcam"]
    if bad:
        raise ValueError(f"model {spec.key!r} is a CNN: only method 'gradcam' applies "
                         f"(not {', '.join(bad)})")
    backbone, head = cnn_parts(model, spec)
    target_head = classifier if classifier is not None else head
    if target_head is None:
        raise CnnExtractionError(f"model {spec.key!r}: Grad-CAM needs a classifier (load "
                                 f"{spec.architecture}, or pass a fine-tuned head)")
    stages = stage_modules(backbone)
    n = len(stages)
    map_layers = _resolve(layers, n, (n,)) if methods else ()
    if 0 in map_layers:
        raise ValueError("Grad-CAM maps are per stage (1..n), not the stem")
    feat_layers = _resolve(feature_layers, n, range(1, n + 1)) if features else ()
    token_layers = _resolve(patch_token_layers, n, ()) if patch_token_layers else ()
    param = next(backbone.parameters())
    x = (torch.from_numpy(pixel_values) if isinstance(pixel_values, np.ndarray)
         else pixel_values).to(device=param.device, dtype=param.dtype)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"pixel_values must be (B, 3, H, W), got {tuple(x.shape)}")
    batch = x.shape[0]

    acts: dict[int, torch.Tensor] = {}
    first = min(map_layers) if map_layers else None
    handles = []
    wanted = set(map_layers) | set(feat_layers) | set(token_layers)
    if 0 in wanted:
        def stem_hook(_m: nn.Module, _a: Any, out: torch.Tensor) -> None:
            acts[0] = out

        handles.append(backbone.embedder.register_forward_hook(stem_hook))  # type: ignore[union-attr]
    for s in sorted(wanted - {0}):
        def stage_hook(_m: nn.Module, _a: Any, out: torch.Tensor, s: int = s) -> Any:
            if s in map_layers and (s == first or not out.requires_grad):
                out = out.detach().requires_grad_(True)  # the graph starts here
            acts[s] = out
            return out

        handles.append(stages[s - 1].register_forward_hook(stage_hook))
    with ExitStack() as stack:
        stack.enter_context(installed(handles))
        stack.enter_context(frozen_params(backbone))
        if isinstance(target_head, nn.Module):
            stack.enter_context(frozen_params(target_head))
        stack.enter_context(torch.enable_grad() if map_layers else torch.inference_mode())
        out = backbone(pixel_values=x)
        pooled = torch.flatten(out.pooler_output, 1)
        cams: dict[int, torch.Tensor] = {}
        if map_layers:
            y = target_score(target_head(pooled), target_class)
            grads = torch.autograd.grad(y, [acts[s] for s in map_layers])
            for s, g in zip(map_layers, grads, strict=True):
                a = acts[s].detach().float()
                alpha = g.float().mean(dim=(2, 3), keepdim=True)
                cams[s] = torch.relu((alpha * a).sum(dim=1))  # (B, h, w)
    maps = _cam_batches(cams, batch)
    feats = None
    if features:
        rows_per: list[tuple[int, str, np.ndarray]] = []
        for s in feat_layers:
            gap = acts[s].detach().float().mean(dim=(2, 3))
            rows_per.append((s, "patch_mean", gap.cpu().numpy()))
        rows_per.append((n, "pooled", pooled.detach().float().cpu().numpy()))
        kinds = {"patch_mean": 0, "pooled": 1}
        rows_per.sort(key=lambda r: (r[0], kinds[r[1]]))
        feats = FeatureBatch.from_rows(
            image=np.repeat(np.arange(batch, dtype=np.int32), len(rows_per)),
            layer=np.tile(np.asarray([r[0] for r in rows_per], np.int16), batch),
            kind=np.tile(np.asarray([r[1] for r in rows_per]), batch),
            rows=[r[2][i] for i in range(batch) for r in rows_per])
    tokens = {s: acts[s].detach().float().flatten(2).transpose(1, 2).cpu().numpy()
              for s in token_layers}
    grids = {s: [int(acts[s].shape[2]), int(acts[s].shape[3])] for s in acts}
    info = {
        "model_key": spec.key, "kind": "cnn", "grid": grids.get(max(map_layers, default=n)),
        "stage_grids": grids, "methods": list(methods), "layers": list(map_layers),
        "layer_numbering": "1-based stages; features layer 0 = stem",
        "gradcam_target": "ImageNet top-1 (checkpoint classifier)" if classifier is None
        else "classifier logit", "random_weights": spec.random_weights,
        "dtype": str(param.dtype).replace("torch.", ""),
    }
    return ExtractionResult(maps=maps[0], features=feats, patch_tokens=tokens, info=info,
                            more_maps=maps[1:])


def _cam_batches(cams: dict[int, torch.Tensor], batch: int) -> list[MapBatch]:
    """One :class:`MapBatch` per stage (stages differ in grid), deepest stage first."""
    out = []
    for s in sorted(cams, reverse=True):
        cam = cams[s]
        gh, gw = int(cam.shape[1]), int(cam.shape[2])
        out.append(MapBatch(
            image=np.arange(batch, dtype=np.int32),
            method=np.full(batch, "gradcam"),
            layer=np.full(batch, s, np.int16),
            head=np.full(batch, HEAD_MEAN, np.int16),
            grid_h=gh, grid_w=gw,
            values=np.ascontiguousarray(cam.reshape(batch, gh * gw).cpu().numpy()
                                        .astype(np.float32))))
    if not out:
        out.append(MapBatch(np.zeros(0, np.int32), np.zeros(0, str), np.zeros(0, np.int16),
                            np.zeros(0, np.int16), 0, 0, np.zeros((0, 0), np.float32)))
    return out
