"""Attention maps and features from a ViT backbone, one batch at a time, as numpy columns.

Entry point::

    extract_batch(model, spec, pixel_values, methods=None, layers=None, heads="all",
                  fuse=("mean",), *, features=True, feature_layers=None,
                  patch_token_layers=(), classifier=None, target_class=None)
        -> ExtractionResult(maps: MapBatch, features: FeatureBatch | None,
                            patch_tokens: dict[int, np.ndarray], info: dict)

Token layout: ``[CLS]? [REG] * r  patches (row-major, row = y)``; ``p0 = spec.num_prefix_tokens``
tokens precede the ``P = gh * gw`` patches, ``(gh, gw) = (H // patch, W // patch)`` of the
batch's pixel size. Every map is restricted to the patch columns (keys) ``p0 .. p0+P-1``:
CLS and registers never enter a map. A NaFlex model (SigLIP 2, ``spec.variable_grid``)
takes patchified inputs padded to its budget, padding *after* the ``P`` real patches,
with ``pixel_attention_mask`` (:func:`naflex_inputs`): padded keys get no attention, and
every map, mean and feature reads only the real rows and columns ``p0 .. p0+P-1``. A
:class:`CnnSpec` is handled by ``ssl_wc.models.cnn`` (Grad-CAM per stage).

Layers are numbered 1..L (block ``l`` is ``encoder.layer[l-1]``; this matches the index of
Hugging Face's ``hidden_states`` tuple, whose entry 0 is the embedding output).

Methods (``A`` = one layer's post-softmax attention, shape (B, heads, N, N)):

- ``cls``: ``A[:, h, 0, p0:]``, the CLS query's attention over patch keys, per head. Rows
  over all keys sum to 1; over patches to ``<= 1`` (the rest went to CLS and registers).
- ``mean``: attention received by each patch, averaged over the patch queries:
  ``mean_q A[:, h, p0+q, p0+k]`` (a proxy for models without a CLS token).
- ``rollout``: attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in
  Transformers"): per layer ``Ā = fuse_heads(A)``, ``Â = 0.5 Ā + 0.5 I`` with rows
  renormalised to sum 1, ``R_l = Â_l Â_{l-1} ... Â_1``. The map at layer ``l`` is the CLS row
  ``R_l[0, p0:]``; for models without a CLS token, the mean over patch query rows
  ``mean_q R_l[p0+q, p0:]``. Registers (and the CLS) are kept in the product (attention
  does flow through them) and excluded only from the final map, which is not renormalised
  (its sum is the share of the flow that ends on patches). One rollout per fusion.
- ``map``: for attention-pooling (MAP) models (SigLIP), the learned probe's attention over
  patch tokens in ``model.head.attention`` (an ``nn.MultiheadAttention`` that transformers
  calls without weights): a forward hook re-runs it with ``need_weights=True,
  average_attn_weights=False``. Per head the row sums to 1 over patches. Stored with
  ``layer = L`` (the probe reads the output of the last block).
- ``gradcam``: Grad-CAM (Selvaraju et al. 2017) adapted to ViTs: with ``T`` the tokens
  entering block ``l`` (the residual stream before block ``l``; at the *output* of the last
  block the CLS-pooled models' gradient on patch tokens is exactly 0), and ``y`` the target,
  ``alpha_d = mean_p dy/dT[p, d]`` and ``map[p] = ReLU(sum_d alpha_d T[p, d])`` over patch
  tokens. Target: ``y = ||pooled||_2`` (class-agnostic; pooled = CLS after the final norm, or
  the MAP head output), or, when a ``classifier`` (pooled -> logits) is given, the logit of
  ``target_class`` (default: the predicted class). One extra forward + backward pass. For
  gradient x attention relevance see Chefer et al. 2021 (not implemented here).

Head encoding: ``head >= 0`` is one attention head. Negative sentinels mark maps over all
heads: ``-1`` (:data:`HEAD_MEAN`) mean fusion, ``-2`` (:data:`HEAD_MAX`) max, ``-3``
(:data:`HEAD_MIN`) min. ``rollout`` has only fused rows (its fusion of heads is per layer,
inside the product); ``gradcam`` has no heads and uses ``-1``.

Output format (:class:`MapBatch`, columnar, ready for Parquet): one row per (image, method,
layer, head), rows ordered by image, then method (in the order asked), layer, head
(per-head ascending, then -1, -2, -3). Columns: ``image`` int32 (index in the batch),
``method`` str, ``layer`` int16, ``head`` int16, ``grid_h``/``grid_w`` int16, ``values``
float32 (n, gh*gw) row-major (``values[i, y * gw + x]``). Features (:class:`FeatureBatch`):
rows (image, layer, kind) with ``kind`` in ``cls`` (raw CLS token after block ``layer``),
``patch_mean`` (mean patch token after block ``layer``; layer 0 = embeddings) and ``pooled``
(the model's own pooled output: CLS after the final norm, or the MAP head output; layer L).

Memory: attention is read inside forward hooks, layer by layer, and only the analysed rows
are kept (plus one (B, N, N) rollout product per fusion); the full (B, heads, N, N) tensors
are never retained. MAE is run with ``noise = arange(P)`` so the patch order is the identity
and runs are reproducible. After the forward pass, one attention tensor per layer must have
come back, else :class:`AttentionNotReturned` (the transformers 5.x ``sdpa`` trap).

Features: ``pooled_proj`` = ``projection(pooled)`` when the checkpoint's joint-embedding
projection is given (CLIP's ``visual_projection``: the 512-d image embedding).

Public: :func:`extract_batch`, :func:`gradcam_maps`, :func:`fuse_heads`,
:func:`rollout_step`, :func:`attention_modules`, :func:`block_modules`,
:func:`forward_kwargs`, :func:`naflex_inputs`, :func:`model_inputs`, :func:`unwrap_model`,
and (from ``outputs``) :class:`MapBatch`, :class:`FeatureBatch`, :class:`ExtractionResult`,
:class:`MapRecord`, the ``HEAD_*`` constants.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ssl_wc.models.outputs import (
    FEATURE_KINDS,
    FUSION_HEAD,
    HEAD_FUSION,
    HEAD_MAX,
    HEAD_MEAN,
    HEAD_MIN,
    ExtractionResult,
    FeatureBatch,
    MapBatch,
    MapRecord,
)
from ssl_wc.models.passes import frozen_params, installed, target_score
from ssl_wc.models.spec import AnySpec, CnnSpec, ModelSpec

__all__ = [
    "FEATURE_KINDS", "FUSION_HEAD", "HEAD_FUSION", "HEAD_MAX", "HEAD_MEAN", "HEAD_MIN",
    "METHODS", "AttentionNotReturned", "ExtractionError", "ExtractionResult",
    "FeatureBatch", "MapBatch", "MapRecord", "attention_modules", "block_modules",
    "extract_batch", "forward_kwargs", "fuse_heads", "gradcam_maps", "model_inputs",
    "rollout_step", "unwrap_model",
]

METHODS = ("cls", "rollout", "mean", "map", "gradcam")


class ExtractionError(RuntimeError):
    """Extraction cannot produce correct maps for this model/input (with the reason)."""


class AttentionNotReturned(ExtractionError):
    """The attention modules returned no weights (sdpa/flash attention instead of eager)."""


# --------------------------------------------------------------------------------------
# Model plumbing (generic over transformers ViT-style models)
# --------------------------------------------------------------------------------------


def _recorded_target(model: nn.Module, key: str) -> Any:
    """The module class (or class-name suffix) transformers records for ``key``."""
    rec = getattr(type(model), "_can_record_outputs", None) or {}
    target = rec.get(key)
    if isinstance(target, list):
        target = target[0] if target else None
    if target is not None and not isinstance(target, type | str):
        target = getattr(target, "target_class", None) or getattr(target, "class_name", None)
    if target is None:
        raise ExtractionError(
            f"{type(model).__name__} does not declare which modules produce {key!r} "
            "(no _can_record_outputs); only transformers ViT-style models are supported"
        )
    return target


def _find_modules(model: nn.Module, target: Any) -> list[nn.Module]:
    found = []
    for name, module in model.named_modules():
        if name == "head" or name.startswith("head."):
            continue  # the MAP head's attention is handled separately
        if (isinstance(target, type) and isinstance(module, target)) or (
            isinstance(target, str) and type(module).__name__.endswith(target)
        ):
            found.append(module)
    return found


def _one_per_layer(model: nn.Module, output: str, what: str) -> list[nn.Module]:
    """The modules that record ``output`` (one per block, in depth order), checked
    against the config's layer count."""
    mods = _find_modules(model, _recorded_target(model, output))
    n = getattr(getattr(model, "config", None), "num_hidden_layers", len(mods))
    if len(mods) != n:
        raise ExtractionError(f"found {len(mods)} {what} for {n} layers")
    return mods


def attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention module of each block, in depth order (block 1 first)."""
    return _one_per_layer(model, "attentions", "attention modules")


def block_modules(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks, in depth order (block 1 first)."""
    return _one_per_layer(model, "hidden_states", "blocks")


def unwrap_model(model: nn.Module, architecture: str | None = None) -> nn.Module:
    """The backbone inside a wrapper: a PEFT model (``get_base_model()``; its LoRA layers
    stay in place) and/or a task model (``*ForImageClassification``, whose ``base_model``
    is the backbone). With ``architecture`` (the spec's class name) the first candidate of
    that class wins; a plain backbone is returned as is. (``base_model`` alone is not
    enough: for DINOv3 it is the encoder inside the backbone.)
    """
    candidates = [model]
    get_base = getattr(model, "get_base_model", None)
    if callable(get_base) and isinstance(inner := get_base(), nn.Module):
        candidates.append(inner)
    for c in list(candidates):
        base = getattr(c, "base_model", None)
        if isinstance(base, nn.Module) and base is not c:
            candidates.append(base)
    if architecture is not None:
        for c in candidates:
            if type(c).__name__ == architecture:
                return c
    return candidates[1] if len(candidates) > 1 and callable(get_base) else model


def _map_head_attention(model: nn.Module) -> nn.MultiheadAttention | None:
    head = getattr(model, "head", None)
    attn = getattr(head, "attention", None)
    return attn if isinstance(attn, nn.MultiheadAttention) else None


def _model_dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def forward_kwargs(model: nn.Module, num_patches: int, batch: int) -> dict[str, Any]:
    """Keyword arguments every forward pass gets.

    ``interpolate_pos_encoding=True`` where the model takes it (CLIP, SigLIP, MAE: inputs
    other than the config's square size; a no-op at that size). MAE (``noise`` argument):
    ``noise = arange(P)`` so the kept patches stay in identity order (transformers 5.x
    shuffles patches on every forward otherwise, even with ``mask_ratio=0``).
    """
    params = inspect.signature(model.forward).parameters
    kw: dict[str, Any] = {}
    if "interpolate_pos_encoding" in params:
        kw["interpolate_pos_encoding"] = True
    if "noise" in params:
        ratio = float(getattr(model.config, "mask_ratio", 0.0) or 0.0)
        if ratio != 0.0:
            raise ExtractionError(
                f"MAE model has mask_ratio={ratio}: patches would be dropped; load it with "
                "mask_ratio=0 (ssl_wc.models.loading.load_model does)"
            )
        device = _model_device(model)
        kw["noise"] = torch.arange(num_patches, device=device).expand(batch, -1)
    return kw


def naflex_inputs(pixel_values: torch.Tensor, patch: int,
                  max_num_patches: int) -> dict[str, torch.Tensor]:
    """A batch of same-size images (B, 3, H, W) as a NaFlex model's inputs.

    ``pixel_values`` (B, max_num_patches, patch * patch * 3): patches in row-major grid
    order, each flattened as (row in patch, column in patch, channel), then zero patches
    up to the budget; ``pixel_attention_mask`` (B, max_num_patches) 1 for the
    ``gh * gw`` real patches (first), 0 for padding; ``spatial_shapes`` (B, 2) = (gh, gw).
    The layout of the checkpoint's ``Siglip2ImageProcessor``.
    """
    b, c, h, w = pixel_values.shape
    gh, gw = h // patch, w // patch
    n = gh * gw
    if n > max_num_patches:
        raise ValueError(f"a {gh}x{gw} grid has {n} patches, more than the model's budget "
                         f"of {max_num_patches}")
    tiles = pixel_values.reshape(b, c, gh, patch, gw, patch).permute(0, 2, 4, 3, 5, 1)
    flat = tiles.reshape(b, n, patch * patch * c)
    padded = flat.new_zeros((b, max_num_patches, patch * patch * c))
    padded[:, :n] = flat
    mask = torch.zeros((b, max_num_patches), dtype=torch.long, device=pixel_values.device)
    mask[:, :n] = 1
    shapes = torch.tensor([[gh, gw]] * b, dtype=torch.long, device=pixel_values.device)
    return {"pixel_values": padded, "pixel_attention_mask": mask, "spatial_shapes": shapes}


def model_inputs(model: nn.Module, spec: ModelSpec, x: torch.Tensor) -> dict[str, Any]:
    """Everything a forward pass over ``x`` (B, 3, H, W) takes: the images and
    :func:`forward_kwargs`, or for a NaFlex model (``spec.variable_grid``) the patchified,
    padded, masked form of :func:`naflex_inputs`."""
    p = spec.patch_size
    gh, gw = x.shape[2] // p, x.shape[3] // p
    if spec.variable_grid:
        assert spec.max_num_patches is not None
        return naflex_inputs(x, p, spec.max_num_patches)
    return {"pixel_values": x, **forward_kwargs(model, gh * gw, x.shape[0])}


def num_tokens(spec: ModelSpec, grid: tuple[int, int]) -> int:
    """Sequence length of a forward pass over ``grid``: prefix + patches, or for NaFlex
    the padded budget (real patches first, padding after)."""
    if spec.variable_grid:
        assert spec.max_num_patches is not None
        return spec.num_prefix_tokens + spec.max_num_patches
    return spec.num_prefix_tokens + grid[0] * grid[1]


def _pooled(model: nn.Module, out: Any, spec: ModelSpec) -> torch.Tensor:
    """The model's pooled token by ``spec.pooled``.

    ``map``: the attention-pooling head's output (``pooler_output``). ``cls``: the CLS after
    the final norm: ``last_hidden_state[:, 0]`` (DINOv2/v3, MAE, ViT), except for models that
    normalise only the pooled CLS (CLIP: ``post_layernorm``; its ``last_hidden_state`` is
    before the norm), whose ``pooler_output`` is that CLS. ``mean``: mean patch token.
    """
    last = out.last_hidden_state
    pooler = getattr(out, "pooler_output", None)
    if spec.pooled == "map":
        if pooler is None:
            raise ExtractionError(f"model {spec.key!r}: MAP pooling but no pooler_output")
        return pooler  # type: ignore[no-any-return]
    if spec.pooled == "cls":
        post = getattr(model, "post_layernorm", None)
        cls_only_norm = isinstance(post, nn.LayerNorm) and getattr(model, "head", None) is None
        if pooler is not None and cls_only_norm and pooler.shape == last[:, 0].shape:
            return pooler  # type: ignore[no-any-return]
        return last[:, 0]  # type: ignore[no-any-return]
    return last[:, spec.num_prefix_tokens:].mean(dim=1)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------
# Formulas
# --------------------------------------------------------------------------------------


def _mean_f32(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Mean in float32 (the ``dtype=`` reduction path is ~2x slower on CPU for fp32 input)."""
    return t.mean(dim=dim) if t.dtype == torch.float32 else t.mean(dim=dim, dtype=torch.float32)


def fuse_heads(attn: torch.Tensor, how: str = "mean", dim: int = 1) -> torch.Tensor:
    """Fuse attention heads along ``dim`` in float32: ``mean``, ``max`` or ``min``."""
    if how == "mean":
        return _mean_f32(attn, dim)
    if how == "max":
        return attn.amax(dim=dim).float()
    if how == "min":
        return attn.amin(dim=dim).float()
    raise ValueError(f"unknown head fusion {how!r} (mean, max, min)")


def rollout_step(fused: torch.Tensor, product: torch.Tensor | None) -> torch.Tensor:
    """One rollout step (Abnar & Zuidema 2020): ``Â = rownorm(0.5 Ā + 0.5 I)``, ``R = Â R``.

    ``fused``: head-fused attention (B, N, N); ``product``: the previous ``R`` or ``None``
    for the first layer. Rows of ``Â`` (and so of every ``R``) sum to 1.
    """
    n = fused.shape[-1]
    eye = torch.eye(n, dtype=fused.dtype, device=fused.device)
    a_hat = 0.5 * fused + 0.5 * eye
    a_hat = a_hat / a_hat.sum(dim=-1, keepdim=True)
    return a_hat if product is None else torch.bmm(a_hat, product)


# --------------------------------------------------------------------------------------
# The collector: hooks that read each layer as it runs
# --------------------------------------------------------------------------------------


@dataclass
class _Plan:
    methods: tuple[str, ...]
    layers: tuple[int, ...]
    heads: tuple[int, ...]
    fuse: tuple[str, ...]
    num_layers: int
    num_prefix: int
    has_cls: bool
    num_patches: int  # real patches (the map cells)
    num_tokens: int  # sequence length (prefix + patches, plus NaFlex padding after them)
    feature_layers: tuple[int, ...]
    patch_token_layers: tuple[int, ...]
    features: bool


def _rollout_update(fused: torch.Tensor, product: torch.Tensor | None) -> torch.Tensor:
    """:func:`rollout_step` with fewer kernels (in place on ``fused``, a fresh tensor).

    ``rownorm(0.5 Ā + 0.5 I) = (Ā + I) / (rowsum(Ā) + 1)``.
    """
    fused.diagonal(dim1=-2, dim2=-1).add_(1.0)
    fused.div_(fused.sum(dim=-1, keepdim=True))
    return fused if product is None else torch.bmm(fused, product)


def _copy_f32(t: torch.Tensor) -> torch.Tensor:
    """A float32 copy (never a view: a view would keep the whole source tensor alive)."""
    return t.to(torch.float32, copy=True)


class _Collector:
    """Reads each layer as it runs; keeps only analysed rows (see the module docstring).

    Per layer it does the few reductions that need the full attention tensor (the CLS
    row copy, the mean over patch queries, the rollout update); head selection and head
    fusion run once per batch in :meth:`finish`, over all layers at once.
    """

    def __init__(self, plan: _Plan) -> None:
        self.plan = plan
        self.layer_set = set(plan.layers)
        self.chunks: list[tuple[str, int, list[int], torch.Tensor]] = []
        self.per_head: dict[str, list[tuple[int, torch.Tensor]]] = {}
        self.rollout: dict[str, torch.Tensor | None] = dict.fromkeys(plan.fuse)
        self.seen: dict[int, int] = {}
        self.missing: list[int] = []
        self.feats: list[tuple[int, str, torch.Tensor]] = []
        self.tokens: dict[int, torch.Tensor] = {}

    # -- maps --------------------------------------------------------------------------
    def add_rows(self, method: str, layer: int, per_head: torch.Tensor) -> None:
        """per_head: (B, H, P) float32 rows of one layer, fused later in :meth:`finish`."""
        self.per_head.setdefault(method, []).append((layer, per_head))

    def finish(self) -> None:
        """Selected heads + fused rows, as one (B, K, P) chunk per (method, layer)."""
        heads, fuse = self.plan.heads, self.plan.fuse
        ids = [*heads, *(FUSION_HEAD[how] for how in fuse)]
        for method, rows in self.per_head.items():
            stacked = torch.stack([r for _, r in rows], dim=1)  # (B, Ls, H, P)
            parts: list[torch.Tensor] = []
            if heads:
                if list(heads) == list(range(stacked.shape[2])):
                    parts.append(stacked)
                else:
                    idx = torch.tensor(heads, device=stacked.device)
                    parts.append(stacked.index_select(2, idx))
            parts.extend(fuse_heads(stacked, how, dim=2).unsqueeze(2) for how in fuse)
            block = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)  # (B, Ls, K, P)
            for j, (layer, _) in enumerate(rows):
                self.chunks.append((method, layer, ids, block[:, j]))
        self.per_head.clear()

    def on_attention(self, layer: int, weights: torch.Tensor | None) -> None:
        if weights is None:
            self.missing.append(layer)
            return
        self.seen[layer] = self.seen.get(layer, 0) + 1
        p = self.plan
        n_tokens = weights.shape[-1]
        if n_tokens != p.num_tokens:
            raise ExtractionError(
                f"layer {layer}: {n_tokens} tokens, expected {p.num_prefix} prefix + "
                f"{p.num_patches} patches ({p.num_tokens} in all); the spec's layout "
                "(CLS/registers) or the input geometry does not match the model"
            )
        p0, p1 = p.num_prefix, p.num_prefix + p.num_patches
        want = layer in self.layer_set
        if want and "cls" in p.methods:
            self.add_rows("cls", layer, _copy_f32(weights[:, :, 0, p0:p1]))
        if want and "mean" in p.methods:
            # mean over the patch query rows (a contiguous block), then the patch columns:
            # ~5x faster than reducing the strided (rows x columns) sub-block
            self.add_rows("mean", layer, _mean_f32(weights[:, :, p0:p1], 2)[..., p0:p1])
        if "rollout" in p.methods:
            for how in p.fuse:
                fused = fuse_heads(weights, how)
                if fused.data_ptr() == weights.data_ptr():  # never modify the model's tensor
                    fused = fused.clone()
                prod = _rollout_update(fused, self.rollout[how])
                self.rollout[how] = prod
                if want:
                    row = _copy_f32(prod[:, 0:1, p0:p1]) if p.has_cls else (
                        prod[:, p0:p1].mean(dim=1, keepdim=True)[..., p0:p1])
                    self.chunks.append(("rollout", layer, [FUSION_HEAD[how]], row))

    def on_map_head(self, weights: torch.Tensor) -> None:
        """weights: (B, H, 1, N) probe attention from the MAP head."""
        p0, p1 = self.plan.num_prefix, self.plan.num_prefix + self.plan.num_patches
        self.add_rows("map", self.plan.num_layers, _copy_f32(weights[:, :, 0, p0:p1]))

    # -- features ----------------------------------------------------------------------
    def on_hidden(self, layer: int, hidden: torch.Tensor) -> None:
        p = self.plan
        p0, p1 = p.num_prefix, p.num_prefix + p.num_patches
        if p.features and layer in p.feature_layers:
            if p.has_cls:
                self.feats.append((layer, "cls", _copy_f32(hidden[:, 0])))
            self.feats.append((layer, "patch_mean", _mean_f32(hidden[:, p0:p1], 1)))
        if layer in p.patch_token_layers:
            self.tokens[layer] = _copy_f32(hidden[:, p0:p1])


def _first(output: Any) -> Any:
    return output[0] if isinstance(output, tuple | list) else output


def _install(model: nn.Module, col: _Collector) -> list[torch.utils.hooks.RemovableHandle]:
    plan = col.plan
    handles = []
    needs_attention = any(m in plan.methods for m in ("cls", "mean", "rollout"))
    attn_mods = attention_modules(model)
    for i, mod in enumerate(attn_mods):
        layer = i + 1

        def attn_hook(_m: nn.Module, _a: Any, out: Any, layer: int = layer) -> None:
            w = out[1] if isinstance(out, tuple | list) and len(out) > 1 else None
            col.on_attention(layer, w)

        if needs_attention:
            handles.append(mod.register_forward_hook(attn_hook))
    if "map" in plan.methods:
        mha = _map_head_attention(model)
        if mha is None:
            raise ExtractionError("method 'map' needs an attention-pooling head (model.head)")

        def map_hook(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                     out: Any) -> None:
            names = ("query", "key", "value")
            q, k, v = (args[i] if len(args) > i else kwargs[n] for i, n in enumerate(names))
            # the call's own masks (NaFlex: key_padding_mask over padded patches) apply
            extra = {n: kwargs[n] for n in ("key_padding_mask", "attn_mask") if n in kwargs}
            # .forward bypasses hooks: no recursion. Weights: (B, H, 1, N) per head.
            _, w = m.forward(q, k, v, need_weights=True, average_attn_weights=False, **extra)
            col.on_map_head(w)

        handles.append(mha.register_forward_hook(map_hook, with_kwargs=True))
    if plan.features or plan.patch_token_layers:
        blocks = block_modules(model)
        wanted = set(plan.feature_layers if plan.features else ()) | set(plan.patch_token_layers)
        if 0 in wanted:
            def pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
                h = args[0] if args else kwargs["hidden_states"]
                col.on_hidden(0, h)

            handles.append(blocks[0].register_forward_pre_hook(pre_hook, with_kwargs=True))
        for i, blk in enumerate(blocks):
            if i + 1 not in wanted:
                continue

            def block_hook(_m: nn.Module, _a: Any, out: Any, layer: int = i + 1) -> None:
                col.on_hidden(layer, _first(out))

            handles.append(blk.register_forward_hook(block_hook))
    return handles


# --------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------


def _resolve_layers(
    layers: Sequence[int] | None, n: int, *, allow_zero: bool = False
) -> tuple[int, ...]:
    if layers is None:
        return tuple(range(1, n + 1))
    out = set()
    lo = 0 if allow_zero else 1
    for layer in layers:
        v = n + 1 + layer if layer < 0 else layer
        if not lo <= v <= n:
            raise ValueError(f"layer {layer} out of range {lo}..{n} (negative counts from the end)")
        out.add(int(v))
    return tuple(sorted(out))  # numeric order, never text order


def _resolve_heads(heads: str | Sequence[int] | None, n: int) -> tuple[int, ...]:
    if heads is None:
        return ()
    if isinstance(heads, str):
        if heads != "all":
            raise ValueError("heads must be 'all', None or a list of head indices")
        return tuple(range(n))
    out = tuple(sorted({int(h) for h in heads}))
    if any(not 0 <= h < n for h in out):
        raise ValueError(f"head indices must be in 0..{n - 1}, got {list(heads)}")
    return out


def _as_tensor(pixel_values: torch.Tensor | np.ndarray, model: nn.Module) -> torch.Tensor:
    t = torch.from_numpy(pixel_values) if isinstance(pixel_values, np.ndarray) else pixel_values
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"pixel_values must be (B, 3, H, W), got {tuple(t.shape)}")
    return t.to(device=_model_device(model), dtype=_model_dtype(model))


def _grid(spec: ModelSpec, pixel_values: torch.Tensor) -> tuple[int, int]:
    h, w = int(pixel_values.shape[2]), int(pixel_values.shape[3])
    p = spec.patch_size
    if h % p or w % p:
        raise ValueError(f"input {h}x{w} is not a multiple of the patch size {p}")
    if spec.max_num_patches is not None and (h // p) * (w // p) > spec.max_num_patches:
        raise ValueError(f"input {h}x{w} has {(h // p) * (w // p)} patches, more than the "
                         f"model's budget of {spec.max_num_patches}")
    return h // p, w // p


def gradcam_maps(
    model: nn.Module,
    spec: ModelSpec,
    pixel_values: torch.Tensor | np.ndarray,
    layers: Sequence[int] | None = None,
    *,
    classifier: Callable[[torch.Tensor], torch.Tensor] | None = None,
    target_class: int | Sequence[int] | None = None,
) -> dict[int, torch.Tensor]:
    """Grad-CAM maps (Selvaraju et al. 2017) per layer: ``{layer: (B, P) float32}``.

    ``T`` = tokens entering block ``layer``; ``alpha = mean_p dy/dT[p]``;
    ``map = ReLU(sum_d alpha_d T[p, d])`` over (real, unpadded) patch tokens. ``y`` = sum
    over the batch of
    ``||pooled||_2`` (class-agnostic), or of the ``target_class`` logit of ``classifier(pooled)``
    (default class: the argmax). One forward + backward for all layers; parameters get no
    gradients. Images do not interact (per-token norms), so the batch sum gives per-image maps.
    """
    model = unwrap_model(model, spec.architecture)
    x = _as_tensor(pixel_values, model)
    gh, gw = _grid(spec, x)
    blocks = block_modules(model)
    sel = _resolve_layers(layers, len(blocks))
    store: dict[int, torch.Tensor] = {}
    first = sel[0]
    handles = []
    for layer in sel:
        def pre(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any],
                layer: int = layer) -> Any:
            h = args[0] if args else kwargs["hidden_states"]
            if layer == first:  # graph starts here: nothing before needs gradients
                h = h.detach().requires_grad_(True)
            store[layer] = h
            if layer != first:
                return None
            if args:
                return (h, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": h}

        handles.append(blocks[layer - 1].register_forward_pre_hook(pre, with_kwargs=True))
    p0, p1 = spec.num_prefix_tokens, spec.num_prefix_tokens + gh * gw
    with installed(handles), frozen_params(model), torch.enable_grad():
        out = model(**model_inputs(model, spec, x))
        pooled = _pooled(model, out, spec).float()
        if classifier is None:
            y = pooled.norm(dim=-1).sum()
        else:
            y = target_score(classifier(pooled), target_class)
        grads = torch.autograd.grad(y, [store[layer] for layer in sel], allow_unused=True)
    maps: dict[int, torch.Tensor] = {}
    for layer, g in zip(sel, grads, strict=True):
        t = store[layer].detach().float()[:, p0:p1]
        if g is None:
            maps[layer] = torch.zeros(t.shape[:2], device=t.device)
            continue
        alpha = g.float()[:, p0:p1].mean(dim=1, keepdim=True)
        maps[layer] = torch.relu((alpha * t).sum(dim=-1))
    return maps


def extract_batch(
    model: nn.Module,
    spec: AnySpec,
    pixel_values: torch.Tensor | np.ndarray,
    methods: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    heads: str | Sequence[int] | None = "all",
    fuse: Sequence[str] = ("mean",),
    *,
    features: bool = True,
    feature_layers: Sequence[int] | None = None,
    patch_token_layers: Sequence[int] = (),
    classifier: Callable[[torch.Tensor], torch.Tensor] | None = None,
    target_class: int | Sequence[int] | None = None,
    projection: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> ExtractionResult:
    """Maps (and features) for one batch; see the module docstring for every definition.

    A :class:`CnnSpec` goes to :func:`ssl_wc.models.cnn.extract_cnn_batch` (Grad-CAM per
    stage; ``heads`` and ``fuse`` do not apply).

    Args:
        model: a model from :func:`ssl_wc.models.loading.load_model` (eager attention), or
            a PEFT / task wrapper around one (see :func:`unwrap_model`).
        spec: its :class:`ModelSpec` (token layout, pooling).
        pixel_values: (B, 3, H, W) preprocessed images; H and W multiples of the patch.
        methods: subset of ``cls``, ``rollout``, ``mean``, ``map``, ``gradcam``; default
            ``(spec.default_method,)``.
        layers: 1-based block indices (negative from the end); default every layer.
        heads: ``"all"``, ``None`` (fused rows only) or head indices.
        fuse: head fusions stored as sentinel heads: ``mean`` (-1), ``max`` (-2), ``min`` (-3).
        features: also return CLS / mean-patch vectors per layer and the pooled output.
        feature_layers: layers for features (0 = embeddings); default 1..L.
        patch_token_layers: layers whose patch tokens are returned whole (B, P, D).
        classifier, target_class: Grad-CAM target (see :func:`gradcam_maps`).
        projection: the checkpoint's joint-embedding projection (CLIP's
            ``visual_projection``): adds feature kind ``pooled_proj`` = projection(pooled).
    """
    if isinstance(spec, CnnSpec):
        from ssl_wc.models.cnn import extract_cnn_batch

        return extract_cnn_batch(model, spec, pixel_values, methods, layers,
                                 features=features, feature_layers=feature_layers,
                                 patch_token_layers=patch_token_layers,
                                 classifier=classifier, target_class=target_class)
    methods = tuple(methods) if methods is not None else (spec.default_method,)
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r}; choose from {METHODS}")
    if len(set(methods)) != len(methods):
        raise ValueError(f"repeated method in {methods}")
    if "cls" in methods and not spec.has_cls:
        raise ValueError(f"model {spec.key!r} has no CLS token: use 'map', 'mean' or 'rollout'")
    for how in fuse:
        if how not in FUSION_HEAD:
            raise ValueError(f"unknown fusion {how!r} (mean, max, min)")
    fuse = tuple(sorted(set(fuse), key=lambda f: -FUSION_HEAD[f]))  # mean, max, min
    if "rollout" in methods and not fuse:
        raise ValueError("rollout needs at least one head fusion in 'fuse'")
    model = unwrap_model(model, spec.architecture)
    x = _as_tensor(pixel_values, model)
    gh, gw = _grid(spec, x)
    n_layers = len(attention_modules(model))
    num_heads = int(getattr(model.config, "num_attention_heads", spec.num_heads))
    plan = _Plan(
        methods=methods,
        layers=_resolve_layers(layers, n_layers),
        heads=_resolve_heads(heads, num_heads),
        fuse=fuse,
        num_layers=n_layers,
        num_prefix=spec.num_prefix_tokens,
        has_cls=spec.has_cls,
        num_patches=gh * gw,
        num_tokens=num_tokens(spec, (gh, gw)),
        feature_layers=_resolve_layers(feature_layers, n_layers, allow_zero=True),
        patch_token_layers=_resolve_layers(patch_token_layers, n_layers, allow_zero=True)
        if patch_token_layers else (),
        features=features,
    )
    if not plan.heads and not plan.fuse and any(m in methods for m in ("cls", "mean", "map")):
        raise ValueError("no heads and no fusion selected: nothing to store")
    col = _Collector(plan)
    batch = x.shape[0]
    fwd_methods = [m for m in methods if m != "gradcam"]
    if fwd_methods or features or plan.patch_token_layers:
        with installed(_install(model, col)), torch.inference_mode():
            out = model(**model_inputs(model, spec, x))
            if features:
                pooled = _pooled(model, out, spec)
                col.feats.append((n_layers, "pooled", _copy_f32(pooled)))
                if projection is not None:
                    col.feats.append((n_layers, "pooled_proj", _copy_f32(projection(pooled))))
        if any(m in methods for m in ("cls", "mean", "rollout")):
            _check_attention_count(model, col, n_layers)
        col.finish()
    if "gradcam" in methods:
        cams = gradcam_maps(model, spec, x, plan.layers, classifier=classifier,
                            target_class=target_class)
        for layer, cam in cams.items():
            col.chunks.append(("gradcam", layer, [HEAD_MEAN], cam.unsqueeze(1)))
    maps = _assemble_maps(col, methods, batch, gh, gw)
    feats = _assemble_features(col, batch) if features else None
    tokens = {layer: t.detach().cpu().numpy() for layer, t in sorted(col.tokens.items())}
    info = {
        "model_key": spec.key,
        "grid": [gh, gw],
        "num_prefix_tokens": spec.num_prefix_tokens,
        "num_registers": spec.num_registers,
        "has_cls": spec.has_cls,
        "num_layers": n_layers,
        "num_heads": num_heads,
        "methods": list(methods),
        "layers": list(plan.layers),
        "heads": list(plan.heads),
        "fuse": list(fuse),
        "head_sentinels": dict(FUSION_HEAD),
        "layer_numbering": "1-based blocks; features layer 0 = embeddings",
        "rollout": "Abnar & Zuidema 2020, 0.5A+0.5I, rows renormalised; CLS row "
        "(no CLS: mean of patch rows) over patch columns; prefix tokens kept in the product",
        "gradcam_target": "||pooled||_2" if classifier is None else "classifier logit",
        "dtype": str(_model_dtype(model)).replace("torch.", ""),
        "random_weights": spec.random_weights,
    }
    return ExtractionResult(maps=maps, features=feats, patch_tokens=tokens, info=info)


def _check_attention_count(model: nn.Module, col: _Collector, n_layers: int) -> None:
    got = sum(1 for layer in range(1, n_layers + 1) if col.seen.get(layer) == 1)
    if got != n_layers:
        impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
        raise AttentionNotReturned(
            f"expected one attention tensor per layer ({n_layers}), got {got} "
            f"(layers without weights: {sorted(set(col.missing))}); the model runs "
            f"attn_implementation={impl!r}, which returns no attention weights. Load it with "
            "attn_implementation='eager' (ssl_wc.models.loading.load_model does)."
        )


def _assemble_maps(col: _Collector, methods: Sequence[str], batch: int, gh: int,
                   gw: int) -> MapBatch:
    """One (B, T, P) cat of every chunk, then numpy columns. Chunks already hold their heads
    in the stored order (selected heads ascending, then -1, -2, -3)."""
    order = {m: i for i, m in enumerate(methods)}
    chunks = sorted(col.chunks, key=lambda c: (order[c[0]], c[1]))
    n_cells = gh * gw
    if not chunks:
        empty = np.zeros(0)
        return MapBatch(empty.astype(np.int32), empty.astype(str), empty.astype(np.int16),
                        empty.astype(np.int16), gh, gw, np.zeros((0, n_cells), np.float32))
    values = torch.cat([c[3] for c in chunks], dim=1)  # (B, T, P)
    t = values.shape[1]
    method_col = np.concatenate([np.full(len(c[2]), c[0]) for c in chunks])
    layer_col = np.concatenate([np.full(len(c[2]), c[1], np.int16) for c in chunks])
    head_col = np.concatenate([np.asarray(c[2], np.int16) for c in chunks])
    arr = values.detach().to("cpu", torch.float32).numpy().reshape(batch * t, n_cells)
    return MapBatch(
        image=np.repeat(np.arange(batch, dtype=np.int32), t),
        method=np.tile(method_col, batch),
        layer=np.tile(layer_col, batch),
        head=np.tile(head_col, batch),
        grid_h=gh,
        grid_w=gw,
        values=np.ascontiguousarray(arr),
    )


def _assemble_features(col: _Collector, batch: int) -> FeatureBatch:
    """Rows ordered by image, then layer, then kind (FEATURE_KINDS order)."""
    kind_order = {k: i for i, k in enumerate(FEATURE_KINDS)}
    feats = sorted(col.feats, key=lambda f: (f[0], kind_order[f[1]]))
    per_feat = [f[2].detach().to("cpu", torch.float32).numpy() for f in feats]  # (B, D_f)
    rows = [per_feat[j][i] for i in range(batch) for j in range(len(feats))]
    f = len(feats)
    return FeatureBatch.from_rows(
        image=np.repeat(np.arange(batch, dtype=np.int32), f),
        layer=np.tile(np.asarray([x[0] for x in feats], np.int16), batch),
        kind=np.tile(np.asarray([x[1] for x in feats]), batch),
        rows=rows,
    )
