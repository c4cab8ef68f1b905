"""User-added checkpoints and overrides of the built-ins, from a small config entry.

An entry names a key and a source (hub id or local folder); the layout (patch size,
registers, CLS, pooling, normalisation) is read from the checkpoint's ``config.json``
(local folder, HF cache, or the hub when online), with explicit overrides. ViTs, SigLIP 2
NaFlex (``siglip2``) and ResNets (``resnet``: a :class:`CnnSpec`) are recognised by
``model_type``. An entry whose key is a built-in (``dinov2``, ``resnet50``, ...) overrides
that built-in instead: it may pin a ``revision``, point it at another ``hub_id`` or a
``local_dir`` (still checked against the pinned config) or change the preprocessing.
Files are TOML or JSON, validated strictly: unknown fields and wrong types are refused.

Public: :func:`spec_from_hf_config`, :func:`user_spec`, :func:`load_user_specs`.
Imports only ``spec`` and ``builtins``; no torch, no transformers.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ssl_wc.models.builtins import builtin
from ssl_wc.models.spec import (
    CLIP_MEAN,
    CLIP_STD,
    HALF,
    IMAGENET_MEAN,
    IMAGENET_STD,
    AnySpec,
    CnnSpec,
    ModelSpec,
    NativePreprocess,
    PooledRule,
    SpecError,
)

# model_type -> (vision class to load, has_cls, pooled rule, mean, std)
_Triple = tuple[float, float, float]
_FAMILIES: dict[str, tuple[str, bool, PooledRule, _Triple, _Triple]] = {
    "dinov2": ("Dinov2Model", True, "cls", IMAGENET_MEAN, IMAGENET_STD),
    "dinov2_with_registers": (
        "Dinov2WithRegistersModel", True, "cls", IMAGENET_MEAN, IMAGENET_STD),
    "dinov3_vit": ("DINOv3ViTModel", True, "cls", IMAGENET_MEAN, IMAGENET_STD),
    "vit_mae": ("ViTMAEModel", True, "cls", IMAGENET_MEAN, IMAGENET_STD),
    "vit": ("ViTModel", True, "cls", HALF, HALF),
    "clip": ("CLIPVisionModel", True, "cls", CLIP_MEAN, CLIP_STD),
    "clip_vision_model": ("CLIPVisionModel", True, "cls", CLIP_MEAN, CLIP_STD),
    "siglip": ("SiglipVisionModel", False, "map", HALF, HALF),
    "siglip_vision_model": ("SiglipVisionModel", False, "map", HALF, HALF),
    "siglip2": ("Siglip2VisionModel", False, "map", HALF, HALF),
    "siglip2_vision_model": ("Siglip2VisionModel", False, "map", HALF, HALF),
}
_NAFLEX_TYPES = {"siglip2", "siglip2_vision_model"}
_CNN_TYPES = {"resnet"}

_COMPOSITE_TYPES = {"clip": "clip_vision_model", "siglip": "siglip_vision_model",
                    "siglip2": "siglip2_vision_model"}


def _as_hw(value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise SpecError(f"{what} must be an int or [height, width], got {value!r}")


def _vision_part(config_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The vision config of a composite (text + image) config, else the config itself."""
    vision = config_dict.get("vision_config")
    if isinstance(vision, Mapping):
        out = dict(vision)
        parent = str(config_dict.get("model_type", ""))
        out.setdefault("model_type", _COMPOSITE_TYPES.get(parent, parent))
        return out
    return dict(config_dict)


def _cnn_spec_from_config(key: str, source: str, cfg: dict[str, Any], *,
                          architecture: str | None, revision: str | None,
                          **overrides: Any) -> CnnSpec:
    """A ResNet checkpoint: the microsoft/resnet-* processor geometry (short side 256,
    centre crop 224, bicubic, ImageNet mean/std) unless overridden."""
    fields: dict[str, Any] = {
        "key": key,
        "architecture": architecture or "ResNetForImageClassification",
        "config": cfg,
        "revision": revision,
        "resize_mode": "native",
        "native": NativePreprocess(short_side=256, crop_hw=(224, 224)),
    }
    fields.update(_source_fields(source))
    for name in ("has_cls", "num_registers", "patch_size", "pooled"):
        if name in overrides:
            raise SpecError(f"model {key!r}: {name!r} does not apply to a CNN")
    spec = _build(CnnSpec, key, fields, overrides)
    assert isinstance(spec, CnnSpec)
    return spec


def _build(cls: type[ModelSpec] | type[CnnSpec], key: str, fields: dict[str, Any],
           overrides: Mapping[str, Any]) -> AnySpec:
    """``cls(**fields, **overrides)`` with lists made tuples; a bad field is a SpecError."""
    fields = {**fields, **overrides}
    _tuples(fields)
    try:
        return cls(**fields)
    except TypeError as exc:
        raise SpecError(f"model {key!r}: {exc}") from None


def _source_fields(source: str) -> dict[str, Any]:
    if Path(source).expanduser().is_dir():
        return {"local_dir": str(Path(source).expanduser().resolve())}
    return {"hub_id": source}


def _tuples(fields: dict[str, Any]) -> None:
    for name in ("mean", "std"):
        if name in fields:
            fields[name] = tuple(float(v) for v in fields[name])
    if "input_hw" in fields:
        fields["input_hw"] = _as_hw(fields["input_hw"], "input_hw")


def spec_from_hf_config(
    key: str,
    source: str,
    config_dict: Mapping[str, Any],
    *,
    architecture: str | None = None,
    revision: str | None = None,
    **overrides: Any,
) -> AnySpec:
    """Build a spec from a checkpoint's ``config.json`` contents.

    ``source`` is a hub id or a local folder (a folder if it exists on disk). The layout is
    read from the config: ``patch_size``, ``num_register_tokens`` (0 if absent), the model
    family (CLS or not, pooling rule, default normalisation) from ``model_type``. Composite
    CLIP/SigLIP configs use their ``vision_config``; SigLIP 2 NaFlex gets the ``aspect``
    resize mode with ``num_patches`` as its patch budget; ``resnet`` gives a
    :class:`CnnSpec`. Any spec field can be overridden by keyword (for example
    ``input_hw=(224, 224)``, ``mean=...``).
    """
    cfg = _vision_part(config_dict)
    model_type = str(cfg.get("model_type", ""))
    if model_type in _CNN_TYPES:
        return _cnn_spec_from_config(key, source, cfg, architecture=architecture,
                                     revision=revision, **overrides)
    family = _FAMILIES.get(model_type)
    if architecture is None:
        if family is not None:
            architecture = family[0]
        else:
            archs = config_dict.get("architectures") or []
            candidates = [a for a in archs if isinstance(a, str) and a.endswith("Model")]
            if not candidates:
                raise SpecError(
                    f"model {key!r}: cannot tell which class to load for model_type "
                    f"{model_type!r}; give 'architecture' (a transformers class name)"
                )
            architecture = candidates[0]
    has_cls: bool = True
    pooled: PooledRule = "cls"
    mean: _Triple = IMAGENET_MEAN
    std: _Triple = IMAGENET_STD
    if family is not None:
        _, has_cls, pooled, mean, std = family
    if "patch_size" not in cfg and "patch_size" not in overrides:
        raise SpecError(f"model {key!r}: config has no patch_size; give it explicitly")
    patch = overrides.pop("patch_size", cfg.get("patch_size"))
    if isinstance(patch, list | tuple):
        if len(set(patch)) != 1:
            raise SpecError(f"model {key!r}: only square patches are supported, got {patch}")
        patch = patch[0]
    fields: dict[str, Any] = {
        "key": key,
        "architecture": architecture,
        "config": cfg,
        "has_cls": has_cls,
        "num_registers": int(cfg.get("num_register_tokens", 0) or 0),
        "patch_size": int(patch),
        "revision": revision,
        "mean": tuple(mean),
        "std": tuple(std),
        "pooled": pooled,
        "default_method": "map" if pooled == "map" else "cls",
        **_source_fields(source),
    }
    if model_type in _NAFLEX_TYPES:
        budget = int(cfg.get("num_patches", 256))
        side = round(budget ** 0.5) * int(patch)
        fields.update(resize_mode="aspect", max_num_patches=budget, input_hw=(side, side),
                      interpolation="bilinear")
    image_size = cfg.get("image_size")
    if "input_hw" not in overrides and "input_hw" not in fields and image_size is not None:
        hw = _as_hw(image_size, "image_size")
        # Models trained at a large size (DINOv2: 518) are evaluated at 224-ish: keep a
        # multiple of the patch size near 224 unless the user says otherwise.
        if hw[0] > 448 or hw[1] > 448:
            p = int(patch)
            hw = ((224 // p) * p, (224 // p) * p)
        fields["input_hw"] = hw
    return _build(ModelSpec, key, fields, overrides)


# Accepted keys of one user model entry, with their types (strict: wrong types are refused).
_USER_KEYS: dict[str, tuple[type, ...]] = {
    "source": (str,),
    "hub_id": (str,),
    "local_dir": (str,),
    "architecture": (str,),
    "revision": (str,),
    "input_size": (int, list),
    "interpolation": (str,),
    "mean": (list,),
    "std": (list,),
    "has_cls": (bool,),
    "num_registers": (int,),
    "patch_size": (int,),
    "pooled": (str,),
    "default_method": (str,),
    "resize_mode": (str,),
    "config": (dict,),
    "notes": (str,),
}


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise SpecError(f"{path}: config.json is not a JSON object")
    return data


def _read_source_config(source: str, revision: str | None) -> dict[str, Any] | None:
    """``config.json`` of a local folder, or of a hub id from the local HF cache, else from
    the hub unless offline (``HF_HUB_OFFLINE`` read now). ``None`` if it cannot be found."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        path = folder / "config.json"
        return _read_json(path) if path.exists() else None
    from huggingface_hub import hf_hub_download

    for local_only in (True, False):
        if not local_only and _offline():
            return None
        try:
            found = hf_hub_download(
                source, "config.json", revision=revision, local_files_only=local_only
            )
        except Exception:  # not cached / unreachable / no such repo: try the next source
            continue
        return _read_json(Path(found))
    return None


def _check_user_entry(key: str, entry: Mapping[str, Any], where: str) -> None:
    for name, value in entry.items():
        if name not in _USER_KEYS:
            raise SpecError(
                f"{where}: model {key!r}: unknown field {name!r} "
                f"(allowed: {', '.join(sorted(_USER_KEYS))})"
            )
        types = _USER_KEYS[name]
        if isinstance(value, bool) and bool not in types:
            raise SpecError(f"{where}: model {key!r}: {name} must not be a boolean")
        if not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise SpecError(
                f"{where}: model {key!r}: {name} must be {names}, got {type(value).__name__}"
            )


def _check_normalisation(key: str, name: str, values: list[Any], where: str) -> None:
    """``mean`` / ``std``: three finite numbers, ``std`` above zero (a zero or NaN here
    turns every map into NaN)."""
    if len(values) != 3:
        raise SpecError(f"{where}: model {key!r}: {name} needs 3 values, got {values!r}")
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
             for v in values)
    if not ok:
        raise SpecError(f"{where}: model {key!r}: {name} must be 3 finite numbers, "
                        f"got {values!r}")
    if name == "std" and min(values) <= 0:
        raise SpecError(f"{where}: model {key!r}: std must be above 0, got {values!r}")



_BUILTIN_OVERRIDES = ("revision", "hub_id", "local_dir", "resize_mode", "interpolation",
                      "input_size", "notes")
"""Fields an entry for a built-in key may set (the layout stays the pinned one)."""


def _override_builtin(base: AnySpec, entry: Mapping[str, Any], where: str) -> AnySpec:
    """A built-in spec with an entry's overrides (revision pin, source, preprocessing)."""
    bad = [n for n in entry if n not in _BUILTIN_OVERRIDES]
    if bad:
        raise SpecError(
            f"{where}: model {base.key!r} is a built-in: an entry for it may only set "
            f"{', '.join(_BUILTIN_OVERRIDES)} (not {', '.join(bad)}); give a new key for "
            "another checkpoint")
    changes: dict[str, Any] = {}
    for name in ("revision", "resize_mode", "interpolation", "notes"):
        if name in entry:
            changes[name] = entry[name]
    if "input_size" in entry:
        changes["input_hw"] = _as_hw(entry["input_size"], "input_size")
    if "local_dir" in entry:
        folder = Path(str(entry["local_dir"])).expanduser()
        changes.update(local_dir=str(folder.resolve()), hub_id=None)
    elif "hub_id" in entry:
        changes.update(hub_id=entry["hub_id"], local_dir=None)
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}: model {base.key!r}: {exc}") from None


def user_spec(key: str, entry: Mapping[str, Any], *, where: str = "<dict>") -> AnySpec:
    """One user entry (a dict as in the TOML/JSON file) to a spec.

    For a built-in key the entry overrides the built-in (see :data:`_BUILTIN_OVERRIDES`;
    e.g. ``revision = "<commit>"`` pins it). Otherwise ``source`` (hub id or local folder;
    or ``hub_id`` / ``local_dir``) is required. The layout is read from the checkpoint's
    ``config.json`` when it can be found (local folder, HF cache, or hub when online);
    otherwise give ``architecture``, ``patch_size``, ``has_cls``, ``num_registers`` and a
    ``config`` dict with at least ``hidden_size``, ``num_hidden_layers`` and
    ``num_attention_heads``.
    """
    _check_user_entry(key, entry, where)
    base = builtin(key)
    if base is not None:
        return _override_builtin(base, entry, where)
    source = entry.get("source") or entry.get("local_dir") or entry.get("hub_id")
    if not source:
        raise SpecError(f"{where}: model {key!r}: give 'source' (hub id or local folder)")
    revision = entry.get("revision")
    config_dict = entry.get("config") or _read_source_config(str(source), revision)
    if config_dict is None:
        raise SpecError(
            f"{where}: model {key!r}: could not read config.json from {source!r} (not a "
            "folder, not in the HF cache, hub unreachable); add a [config] table with the "
            "checkpoint's config, or download it first"
        )
    overrides: dict[str, Any] = {}
    mapping = {
        "input_size": "input_hw",
        "interpolation": "interpolation",
        "mean": "mean",
        "std": "std",
        "has_cls": "has_cls",
        "num_registers": "num_registers",
        "patch_size": "patch_size",
        "pooled": "pooled",
        "default_method": "default_method",
        "resize_mode": "resize_mode",
        "notes": "notes",
    }
    for name, spec_field in mapping.items():
        if name in entry:
            overrides[spec_field] = entry[name]
    if "pooled" in overrides and "default_method" not in overrides:
        overrides["default_method"] = "map" if overrides["pooled"] == "map" else "cls"
    for name in ("mean", "std"):
        if name in overrides:
            _check_normalisation(key, name, overrides[name], where)
    return spec_from_hf_config(
        key,
        str(source),
        config_dict,
        architecture=entry.get("architecture"),
        revision=revision,
        **overrides,
    )


def load_user_specs(path: str | os.PathLike[str]) -> list[AnySpec]:
    """Read user model entries from a TOML or JSON file.

    TOML form (JSON: the same structure)::

        [models.dinov2_small]
        source = "facebook/dinov2-small"          # hub id or local folder
        architecture = "Dinov2Model"               # optional, read from config.json
        input_size = [224, 224]                     # optional
        interpolation = "bicubic"                   # optional
        mean = [0.485, 0.456, 0.406]                # optional, family default otherwise

        [models.dinov2]                             # a built-in key: an override
        revision = "<commit hash>"                  # pin the hub revision

    Unknown fields and wrong types are refused (never coerced). Registering them is the
    registry's job (``ssl_wc.models.registry.register_user_specs``).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{p}: no such model file") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SpecError(f"{p}: cannot read the model file ({reason})") from None
    try:
        doc = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"{p}: cannot parse: {exc}") from None
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, dict) or not models:
        raise SpecError(f"{p}: expected a non-empty 'models' table of model entries")
    specs: list[AnySpec] = []
    for key, entry in models.items():
        if not isinstance(entry, dict):
            raise SpecError(f"{p}: models.{key} must be a table")
        specs.append(user_spec(key, entry, where=str(p)))
    return specs
