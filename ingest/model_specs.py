"""Which backbone a model key names, for every job that takes ``--models`` / ``--model``.

A key is, in this order: an override passed by the caller (tests, the demo), a
registered checkpoint (``ssl-wc models list``), an entry of the user's model file
(``--model-config``), or ``<key>-random``: the demo's tiny RANDOM-WEIGHT replica of a
registered backbone, built once under ``<wh>/artifacts/random_models/<key>`` (never a
result). An unknown key is refused with the list of known ones.

Public: :func:`resolve_spec`, :func:`known_keys`, :func:`demo_specs`, ``TINY``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ssl_wc.options import BadOption, listing
from ssl_wc.paths import WarehousePaths

#: Size of the demo's random-weight replicas (every registered layout at this size).
TINY: dict[str, Any] = {"grid": 8, "hidden_size": 64, "num_layers": 4, "num_heads": 4}
RANDOM_SUFFIX = "-random"


def random_replica(wh: WarehousePaths, base_key: str) -> Any:
    """The tiny random-weight replica of ``base_key`` (deterministic: seed 0, ``TINY``)."""
    from ssl_wc.models.registry import build_random_model

    quiet_hf()
    folder = wh.artifacts / "random_models" / base_key
    return build_random_model(base_key, folder, seed=0, **TINY)


def demo_specs(wh: WarehousePaths, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """Random-weight tiny replicas of every registered backbone (or of ``keys``), by key
    (``*-random``), rebuilt bit for bit from their seed on every call."""
    from ssl_wc.models.registry import BUILTIN_KEYS

    specs = {}
    for key in keys if keys is not None else BUILTIN_KEYS:
        spec = random_replica(wh, key)
        specs[spec.key] = spec
    return specs


def _user_specs(model_config: Path | None) -> dict[str, Any]:
    from ssl_wc.models.registry import load_user_specs

    if model_config is None:
        return {}
    return {s.key: s for s in load_user_specs(model_config)}


def known_keys(model_config: Path | None = None,
               specs: Mapping[str, Any] | None = None) -> list[str]:
    """Every key :func:`resolve_spec` accepts."""
    from ssl_wc.models.registry import BUILTIN_KEYS, list_specs

    keys = [s.key for s in list_specs()] + list(_user_specs(model_config))
    keys += [k + RANDOM_SUFFIX for k in BUILTIN_KEYS] + list(specs or {})
    return list(dict.fromkeys(keys))


def resolve_spec(wh: WarehousePaths, key: str, specs: Mapping[str, Any] | None = None,
                 model_config: Path | None = None, *, option: str = "models") -> Any:
    """The spec of ``key`` (see the module docstring); :class:`BadOption` if unknown."""
    from ssl_wc.models.registry import BUILTIN_KEYS, SpecError, get_spec

    if specs and key in specs:
        return specs[key]
    user = _user_specs(model_config)
    if key in user:
        return user[key]
    try:
        return get_spec(key)
    except SpecError:
        pass
    base = key.removesuffix(RANDOM_SUFFIX)
    if key.endswith(RANDOM_SUFFIX) and base in BUILTIN_KEYS:
        return random_replica(wh, base)
    raise BadOption(option, key, "unknown model key",
                    listing(known_keys(model_config, specs), limit=40))


def quiet_hf() -> None:
    """No download/loading progress bars from transformers or the hub in our output."""
    import contextlib

    with contextlib.suppress(Exception):
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    with contextlib.suppress(Exception):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
