"""The model registry: one spec per model key (the built-ins plus what users register).

Imports point one way: ``registry`` -> ``builtins``, ``user_specs``, ``random_models`` ->
``spec``; none of those imports the registry. This module imports neither torch nor
transformers (only ``build_random_model`` does, lazily).

Public here: :func:`get_spec`, :func:`list_specs`, :func:`register`, ``BUILTIN_KEYS``,
:func:`tiny_config` and :func:`build_random_model` (by key), and, re-exported from their
modules, :class:`ModelSpec`, :class:`CnnSpec` (``spec``), :func:`spec_from_hf_config`,
:func:`user_spec`, :func:`load_user_specs` (``user_specs``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from ssl_wc.models import random_models
from ssl_wc.models.builtins import BUILTIN_KEYS, BUILTIN_SPECS
from ssl_wc.models.spec import (
    CLIP_MEAN,
    CLIP_STD,
    HALF,
    IMAGENET_MEAN,
    IMAGENET_STD,
    RANDOM_WEIGHTS_CONFIG_KEY,
    RANDOM_WEIGHTS_MARKER,
    AnySpec,
    CheckpointSpec,
    CnnSpec,
    Interpolation,
    ModelSpec,
    NativePreprocess,
    PooledRule,
    ResizeMode,
    SpecError,
)
from ssl_wc.models.user_specs import load_user_specs, spec_from_hf_config, user_spec

__all__ = [
    "BUILTIN_KEYS",
    "CLIP_MEAN",
    "CLIP_STD",
    "HALF",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RANDOM_WEIGHTS_CONFIG_KEY",
    "RANDOM_WEIGHTS_MARKER",
    "AnySpec",
    "CheckpointSpec",
    "CnnSpec",
    "Interpolation",
    "ModelSpec",
    "NativePreprocess",
    "PooledRule",
    "ResizeMode",
    "SpecError",
    "build_random_model",
    "get_spec",
    "list_specs",
    "load_user_specs",
    "register",
    "register_user_specs",
    "spec_from_hf_config",
    "specs_by_key",
    "tiny_config",
    "user_spec",
]

_REGISTRY: dict[str, AnySpec] = {}


def register(spec: AnySpec, *, replace: bool = False) -> AnySpec:
    """Add ``spec`` to the registry; refuses to overwrite a key unless ``replace``."""
    if spec.key in _REGISTRY and not replace:
        raise SpecError(f"model key {spec.key!r} is already registered")
    _REGISTRY[spec.key] = spec
    return spec


def get_spec(key: str) -> AnySpec:
    """The registered spec for ``key``; a clear error lists the known keys."""
    try:
        return _REGISTRY[key]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise SpecError(f"unknown model key {key!r}; known: {known}") from None


def list_specs() -> list[AnySpec]:
    """All registered specs, in registration order."""
    return list(_REGISTRY.values())


for _spec in BUILTIN_SPECS:
    register(_spec)


def register_user_specs(path: str | os.PathLike[str], *,
                        replace: bool = False) -> list[AnySpec]:
    """Read a user model file (:func:`load_user_specs`) and register its specs."""
    specs = load_user_specs(path)
    for s in specs:
        register(s, replace=replace)
    return specs


def tiny_config(key: str, **tiny_kwargs: Any) -> dict[str, Any]:
    """``key``'s architecture at tiny size (see :func:`random_models.tiny_config`)."""
    return random_models.tiny_config(get_spec(key), **tiny_kwargs)


def build_random_model(key: str, out_dir: str | os.PathLike[str], seed: int = 0, *,
                       config: Mapping[str, Any] | None = None,
                       input_hw: tuple[int, int] | None = None,
                       **tiny_kwargs: Any) -> AnySpec:
    """A RANDOM-WEIGHT replica of ``key`` saved to ``out_dir`` (see
    :func:`random_models.build_random_model`); its spec has key ``<key>-random``."""
    return random_models.build_random_model(get_spec(key), out_dir, seed, config=config,
                                            input_hw=input_hw, **tiny_kwargs)


def specs_by_key(specs: Iterable[AnySpec]) -> dict[str, AnySpec]:
    """Index specs by key (duplicate keys are an error)."""
    out: dict[str, AnySpec] = {}
    for s in specs:
        if s.key in out:
            raise SpecError(f"duplicate model key {s.key!r}")
        out[s.key] = s
    return out
