"""Load a backbone by hub id (local HF cache first) or local folder, always with eager attention.

Why eager: with transformers 5.x's default ``sdpa`` attention the attention modules return
no weights (``output_attentions=True`` gives an empty tuple and logs one warning). Every
model here is loaded with ``attn_implementation="eager"``; the extraction also checks that
one attention tensor per layer came back.

Where weights come from, in order:

1. ``spec.local_dir`` (a folder with ``config.json`` and weights), if set;
2. the local Hugging Face cache (``local_files_only=True``, no network);
3. the hub, unless ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set; the variable is
   read at call time (huggingface_hub reads it once at import).

If none has the weights, :class:`ModelNotAvailable` names the model key, what was looked
for and how to provide it. CLIP and SigLIP load only the vision tower (``SiglipVisionModel``;
for CLIP ``CLIPVisionModelWithProjection``, whose ``vision_model`` is the backbone and whose
``visual_projection`` gives the 512-d joint embedding; the text weights are reported as
unused, harmlessly). MAE loads with ``mask_ratio=0`` (the extraction also fixes the patch
order, see ``extract``). A CNN (:class:`CnnSpec`, ResNet) loads as its ImageNet
classifier (no attention, so no attention implementation).

Every architecture key of the pinned config (:meth:`CheckpointSpec.layout_keys`:
``model_type``, width, depth, heads, patch, image size, epsilons, activation, registers,
pooling head, projection size, stages, ...) is compared with the loaded checkpoint;
:class:`ConfigMismatch` names the first key that differs.

Public: :func:`load_model`, :class:`LoadedModel`, :class:`ModelNotAvailable`,
:class:`ConfigMismatch`, :func:`check_layout`, :func:`offline_mode`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn

from ssl_wc.models.device import DeviceChoice, choose_device
from ssl_wc.models.registry import get_spec
from ssl_wc.models.spec import (
    RANDOM_WEIGHTS_CONFIG_KEY,
    RANDOM_WEIGHTS_MARKER,
    AnySpec,
    ModelSpec,
    SpecError,
)

log = logging.getLogger(__name__)


class ModelNotAvailable(RuntimeError):
    """The weights of a model could not be found (no local folder, no cache, no network)."""

    def __init__(self, key: str, looked_for: str, detail: str, how: str) -> None:
        self.key = key
        self.looked_for = looked_for
        super().__init__(
            f"model {key!r}: weights not available ({looked_for}). {detail}\n"
            f"How to provide them: {how}"
        )


class ConfigMismatch(ValueError):
    """A loaded checkpoint's layout differs from the registry's pinned config."""


@dataclass
class LoadedModel:
    """A model ready for extraction, with the spec and the device record it was loaded with."""

    model: nn.Module
    spec: AnySpec
    device: DeviceChoice
    provenance: dict[str, Any] = field(default_factory=dict)
    projection: nn.Module | None = None  # CLIP: pooled (768) -> joint embedding (512)


def offline_mode() -> bool:
    """``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` as set *now* (not at import time)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return True
    return False


def _how_to_provide(spec: AnySpec) -> str:
    if spec.local_dir is not None:
        return (
            f"put a saved model (config.json + model.safetensors) in {spec.local_dir}, "
            "or point the registry entry at another folder"
        )
    hub = spec.hub_id
    rev = f" --revision {spec.revision}" if spec.revision else ""
    gated = (
        " This repository is gated: accept its licence on huggingface.co and run "
        "`hf auth login` first." if spec.key.startswith("dinov3") else ""
    )
    return (
        f"on a networked machine run `huggingface-cli download {hub}{rev}` (or `hf download "
        f"{hub}`) and copy the Hugging Face cache (~/.cache/huggingface/hub, or $HF_HOME) "
        f"here; or save the model to a folder and set the entry's local_dir; or unset "
        f"HF_HUB_OFFLINE if this machine can reach the hub.{gated}"
    )


def _hub_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [OSError]
    try:
        from huggingface_hub import errors as hub_errors

        errors += [
            getattr(hub_errors, n)
            for n in ("HfHubHTTPError", "LocalEntryNotFoundError", "OfflineModeIsEnabled")
            if hasattr(hub_errors, n)
        ]
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        pass
    return tuple(errors)


def _load_class_name(spec: AnySpec) -> str:
    return (spec.load_class if isinstance(spec, ModelSpec) else None) or spec.architecture


def _model_class(spec: AnySpec) -> type[Any]:
    name = _load_class_name(spec)
    try:
        return getattr(transformers, name)  # type: ignore[no-any-return]
    except AttributeError:
        raise SpecError(
            f"model {spec.key!r}: transformers {transformers.__version__} has no class "
            f"{name!r}"
        ) from None


def _from_pretrained(spec: AnySpec, kwargs: dict[str, Any], local_only: bool | None) -> Any:
    cls = _model_class(spec)
    errors = _hub_errors()
    if spec.local_dir is not None:
        folder = Path(spec.local_dir).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelNotAvailable(
                spec.key,
                f"local folder {folder}",
                "The folder does not exist or has no config.json.",
                _how_to_provide(spec),
            )
        try:
            return cls.from_pretrained(str(folder), local_files_only=True, **kwargs)
        except errors as exc:
            raise ModelNotAvailable(
                spec.key, f"local folder {folder}", f"Loading failed: {exc}",
                _how_to_provide(spec),
            ) from exc
    hub_id = str(spec.hub_id)
    looked = f"hub id {hub_id}" + (f" @ {spec.revision}" if spec.revision else "")
    try:  # the cache first: no network round trips (and no 50 s of retries offline)
        return cls.from_pretrained(
            hub_id, revision=spec.revision, local_files_only=True, **kwargs
        )
    except errors as cache_exc:
        offline = offline_mode() if local_only is None else local_only
        if offline:
            raise ModelNotAvailable(
                spec.key,
                f"{looked} in the local Hugging Face cache",
                "Offline (HF_HUB_OFFLINE is set, or local_files_only) and not in the cache.",
                _how_to_provide(spec),
            ) from cache_exc
    try:
        return cls.from_pretrained(hub_id, revision=spec.revision, **kwargs)
    except errors as exc:
        raise ModelNotAvailable(
            spec.key,
            f"{looked} (cache and hub)",
            f"Not in the cache and the hub did not serve it: {exc}",
            _how_to_provide(spec),
        ) from exc


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, list | tuple) or isinstance(got, list | tuple):
        if isinstance(got, list | tuple) and not isinstance(want, list | tuple):
            return len(set(got)) == 1 and _same(want, got[0])  # patch_size [16, 16] vs 16
        if isinstance(want, list | tuple) and not isinstance(got, list | tuple):
            return False
        return len(want) == len(got) and all(_same(a, b) for a, b in zip(want, got, strict=True))
    if isinstance(want, float) or isinstance(got, float):
        try:
            return float(want) == float(got)
        except (TypeError, ValueError):
            return False
    return bool(want == got)


def check_layout(spec: AnySpec, config: Any) -> None:
    """Refuse a checkpoint whose config differs from ``spec.config`` on any architecture
    key (:meth:`CheckpointSpec.layout_keys`, ``model_type`` first); the error names the
    first key that differs (and how many others do)."""
    diffs: list[str] = []
    for name in spec.layout_keys():
        want = spec.config[name]
        got = getattr(config, name, None)
        if not _same(want, got):
            diffs.append(f"{name}: pinned {want!r}, checkpoint {got!r}")
    if diffs:
        more = f" ({len(diffs) - 1} more key(s) differ)" if len(diffs) > 1 else ""
        raise ConfigMismatch(
            f"model {spec.key!r} ({spec.source}): the checkpoint does not have the pinned "
            f"layout; first mismatch: {diffs[0]}{more}"
        )


def load_model(
    spec: AnySpec | str,
    device: DeviceChoice | str = "auto",
    dtype: str = "auto",
    *,
    local_files_only: bool | None = None,
) -> LoadedModel:
    """Load ``spec`` (or a registry key) for extraction: eager attention, eval mode, on device.

    ``local_files_only``: ``None`` follows ``HF_HUB_OFFLINE``; ``True`` never touches the
    network. Raises :class:`ModelNotAvailable` when the weights cannot be found and
    :class:`ConfigMismatch` when the checkpoint's layout differs from the pinned config.
    The provenance records the hub commit loaded (``commit_hash``; None for a local
    folder).
    """
    if isinstance(spec, str):
        spec = get_spec(spec)
    choice = device if isinstance(device, DeviceChoice) else choose_device(device, dtype)
    kwargs: dict[str, Any] = {"dtype": choice.torch_dtype}
    if isinstance(spec, ModelSpec):
        kwargs["attn_implementation"] = "eager"
    if spec.architecture.startswith("ViTMAE"):
        kwargs["mask_ratio"] = 0.0
    loaded = _from_pretrained(spec, kwargs, local_files_only)
    projection = None
    model = loaded
    if isinstance(spec, ModelSpec) and spec.load_class is not None:
        model = _inner(loaded, spec)
        if spec.projection is not None:
            projection = getattr(loaded, spec.projection, None)
            if not isinstance(projection, nn.Module):
                raise SpecError(f"model {spec.key!r}: {spec.load_class} has no module "
                                f"{spec.projection!r}")
    impl = getattr(model.config, "_attn_implementation", None)
    if isinstance(spec, ModelSpec) and impl != "eager":  # pragma: no cover - kwarg above
        raise RuntimeError(f"model {spec.key!r} loaded with attention {impl!r}, not eager")
    check_layout(spec, model.config)
    model = model.to(choice.torch_device).eval()
    if projection is not None:
        projection = projection.to(choice.torch_device).eval()
    random_weights = bool(getattr(model.config, RANDOM_WEIGHTS_CONFIG_KEY, False)) or (
        spec.local_dir is not None and (Path(spec.local_dir) / RANDOM_WEIGHTS_MARKER).exists()
    )
    if random_weights and not spec.random_weights:
        log.warning("model %r at %s has RANDOM WEIGHTS", spec.key, spec.source)
    provenance = {
        "model_key": spec.key,
        "kind": spec.kind,
        "source": spec.source,
        "revision": spec.revision,
        "commit_hash": _loaded_commit(spec),
        "architecture": spec.architecture,
        "load_class": _load_class_name(spec),
        "attn_implementation": impl if isinstance(spec, ModelSpec) else None,
        "random_weights": random_weights,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "device": choice.to_dict(),
    }
    return LoadedModel(model=model, spec=spec, device=choice, provenance=provenance,
                       projection=projection)


def _loaded_commit(spec: AnySpec) -> str | None:
    """The hub commit just loaded: the pinned commit, else where the cache's
    ``refs/<revision>`` points now (transformers 5 no longer records it on the config);
    None for a local folder (its identity is ``revisions.folder_fingerprint``)."""
    if spec.local_dir is not None:
        return None
    from ssl_wc.models.revisions import resolve_revision

    return resolve_revision(spec, local_files_only=True).commit


def _inner(wrapper: nn.Module, spec: ModelSpec) -> nn.Module:
    """The ``spec.architecture`` module inside a loaded wrapper (CLIP's vision_model)."""
    for _name, module in wrapper.named_children():
        if type(module).__name__ == spec.architecture:
            return module
    raise SpecError(f"model {spec.key!r}: {type(wrapper).__name__} holds no "
                    f"{spec.architecture}")
