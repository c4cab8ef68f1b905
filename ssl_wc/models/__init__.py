"""Backbones, loading, preprocessing and attention/feature extraction.

Importing this package is light (no torch): only the registry is re-exported here. Import
the torch-backed modules explicitly.

- ``ssl_wc.models.registry`` (no torch): ``get_spec(key)``, ``list_specs()``,
  ``register(spec)``; keys dinov2, dinov3, mae, clip, siglip2, siglip. It re-exports
  :class:`ModelSpec` (``spec``), ``spec_from_hf_config(key, source, config_dict)``,
  ``user_spec(key, entry)``, ``load_user_specs(path)`` (``user_specs``), and
  ``tiny_config(key)``, ``build_random_model(key, out_dir, seed)`` (``random_models``).
- ``ssl_wc.models.preprocess`` (no torch): ``PreprocessConfig.from_spec(spec)``,
  ``preprocess_image``, ``preprocess_batch``, ``transform_boxes``; whole image resized to
  the model input, no crop, so box fractions hold on the patch grid.
- ``ssl_wc.models.device``: ``choose_device(device="auto", dtype="auto") -> DeviceChoice``.
- ``ssl_wc.models.loading``: ``load_model(spec_or_key, device="auto") -> LoadedModel``
  (eager attention; ``ModelNotAvailable`` when weights cannot be found offline).
- ``ssl_wc.models.extract``: ``extract_batch(model, spec, pixel_values, methods, layers,
  heads, fuse) -> ExtractionResult`` with columnar ``MapBatch`` (image, method, layer,
  head, grid_h, grid_w, values) and ``FeatureBatch``. Heads: ``>= 0`` one head; ``-1``
  mean, ``-2`` max, ``-3`` min over heads. Layers are 1-based blocks.

Typical use (what the ingest job does)::

    from ssl_wc.models.registry import get_spec
    from ssl_wc.models.loading import load_model
    from ssl_wc.models.preprocess import PreprocessConfig, preprocess_batch
    from ssl_wc.models.extract import extract_batch

    loaded = load_model("dinov2")
    cfg = PreprocessConfig.from_spec(loaded.spec)
    pixels, transforms = preprocess_batch(images, cfg)
    result = extract_batch(loaded.model, loaded.spec, pixels, methods=("cls", "rollout"))
    columns = result.maps.to_columns()
"""

from ssl_wc.models.registry import (
    BUILTIN_KEYS,
    ModelSpec,
    NativePreprocess,
    SpecError,
    get_spec,
    list_specs,
    load_user_specs,
    register,
    spec_from_hf_config,
    tiny_config,
)

__all__ = [
    "BUILTIN_KEYS",
    "ModelSpec",
    "NativePreprocess",
    "SpecError",
    "get_spec",
    "list_specs",
    "load_user_specs",
    "register",
    "spec_from_hf_config",
    "tiny_config",
]
