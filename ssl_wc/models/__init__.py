"""Backbones, loading, preprocessing and attention/feature extraction.

Importing this package is light (no torch): only the registry is re-exported here. Import
the torch-backed modules explicitly. Imports point one way: ``registry`` ->
``builtins`` / ``user_specs`` / ``random_models`` -> ``spec``.

- ``ssl_wc.models.spec`` (no torch): :class:`ModelSpec` (ViTs, NaFlex included) and
  :class:`CnnSpec` (ResNet), both :class:`CheckpointSpec` (source, revision, pinned
  config, preprocessing).
- ``ssl_wc.models.builtins`` (no torch): the pinned checkpoints; keys dinov2, dinov3, mae,
  clip, siglip2, siglip, siglip2_naflex, resnet50.
- ``ssl_wc.models.registry`` (no torch): ``get_spec(key)``, ``list_specs()``,
  ``register(spec)``, ``register_user_specs(path)``, ``tiny_config(key)``,
  ``build_random_model(key, out_dir, seed)``; re-exports ``spec_from_hf_config``,
  ``user_spec``, ``load_user_specs`` (``user_specs``: user models, built-in overrides
  such as a pinned revision).
- ``ssl_wc.models.revisions`` (no torch): ``resolve_revision(spec)`` -> the hub commit
  (or local folder fingerprint) a load would use now.
- ``ssl_wc.models.preprocess`` (no torch): ``PreprocessConfig.from_spec(spec)``,
  ``preprocess_image``, ``preprocess_batch``, ``transform_boxes``, ``aspect_size``;
  whole image resized to the model input by default (no crop, box fractions hold),
  ``native`` crops with the frame recorded, ``aspect`` keeps the aspect ratio (NaFlex).
- ``ssl_wc.models.device``: ``choose_device(device="auto", dtype="auto") -> DeviceChoice``.
- ``ssl_wc.models.loading``: ``load_model(spec_or_key, device="auto") -> LoadedModel``
  (eager attention; strict layout check; ``ModelNotAvailable`` when weights cannot be
  found offline; CLIP's ``projection``).
- ``ssl_wc.models.extract``: ``extract_batch(model, spec, pixel_values, methods, layers,
  heads, fuse) -> ExtractionResult`` with columnar ``MapBatch`` (image, method, layer,
  head, grid_h, grid_w, values) and ragged ``FeatureBatch``; a ``CnnSpec`` goes to
  ``ssl_wc.models.cnn`` (Grad-CAM per stage). Heads: ``>= 0`` one head; ``-1`` mean,
  ``-2`` max, ``-3`` min over heads. Layers are 1-based blocks (stages).

Typical use (what the ingest job does)::

    from ssl_wc.models.registry import get_spec
    from ssl_wc.models.loading import load_model
    from ssl_wc.models.preprocess import PreprocessConfig, preprocess_batch
    from ssl_wc.models.extract import extract_batch

    loaded = load_model("dinov2")
    cfg = PreprocessConfig.from_spec(loaded.spec)
    pixels, transforms = preprocess_batch(images, cfg)
    result = extract_batch(loaded.model, loaded.spec, pixels, methods=("cls", "rollout"),
                           projection=loaded.projection)
    columns = result.maps.to_columns()
"""

from ssl_wc.models.registry import (
    BUILTIN_KEYS,
    CnnSpec,
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
    "CnnSpec",
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
