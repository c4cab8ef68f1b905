"""Faithfulness checks for the model kinds beyond fixed-grid ViTs: SigLIP 2 NaFlex (a grid
per image, patchified inputs) and ResNet-50 (Grad-CAM on its last stage, a centre crop,
the cascade over its stages), on tiny random-weight models and the synthetic demo data."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from ingest.faithfulness import (
    FaithfulnessJob,
    _embedder,
    _image_requests,
    _Loaded,
    _read_image,
    _Scorers,
    _Source,
    run_faithfulness,
)
from ssl_wc.faithfulness.protocol import DeletionProtocol
from tests.conftest import query_catalog

NAFLEX = "siglip2_naflex-random"
RESNET = "resnet50-random"


@pytest.fixture(scope="module")
def kinds_wh(tmp_path_factory, annotated_wh_template):
    """NaFlex (16-patch budget: portrait, landscape and square facades get different
    grids) and ResNet-50 maps of the demo images, checked on 3 images."""
    from ingest.attention import AttentionJob, ingest_attention
    from ssl_wc.models.registry import build_random_model
    from ssl_wc.paths import WarehousePaths

    root = tmp_path_factory.mktemp("faith_kinds") / "wh"
    shutil.copytree(annotated_wh_template, root)
    wh = WarehousePaths.of(root)
    specs = {}
    for key, kw in [("siglip2_naflex", {"grid": 4, "hidden_size": 16, "num_layers": 2,
                                        "num_heads": 2}),
                    ("resnet50", {})]:
        spec = build_random_model(key, wh.artifacts / key, seed=2, **kw)
        specs[spec.key] = spec
    res = ingest_attention(wh, AttentionJob(models=list(specs), methods=("map", "gradcam"),
                                            device="cpu", features=False, specs=specs,
                                            progress=False, strict=True))
    assert {r.status for r in res} == {"committed"}, [r.line() for r in res]
    grids = query_catalog(wh, f"""
        SELECT image_id, any_value(grid_h), any_value(grid_w) FROM attention_maps
        WHERE model = '{NAFLEX}' AND method = 'map' GROUP BY image_id ORDER BY image_id""")
    # up to three images with different grids, a non-square one among them
    chosen: dict[tuple[int, int], str] = {}
    for image_id, gh, gw in grids:
        chosen.setdefault((gh, gw), image_id)
    ids = [i for g, i in sorted(chosen.items(), key=lambda kv: kv[0][0] == kv[0][1])][:3]
    assert len(ids) >= 2 and any(gh != gw for (gh, gw), i in chosen.items() if i in ids)
    job = FaithfulnessJob(models=list(specs), images=ids, specs=specs, device="cpu",
                          progress=False, batch_size=64, deletion=DeletionProtocol(steps=4))
    results = run_faithfulness(wh, job)
    return wh, specs, ids, results


def test_both_kinds_get_deletion_and_randomisation_rows(kinds_wh):
    wh, _, ids, results = kinds_wh
    assert {r.status for r in results} == {"committed"}, [r.line() for r in results]
    # every NaFlex map is scored on its own image's grid
    rows = query_catalog(wh, f"""
        SELECT f.image_id, f.method, f.layer, f.n_cells, any_value(a.grid_h) * any_value(a.grid_w)
        FROM faithfulness_metrics f JOIN attention_maps a
          ON a.model = f.model AND a.image_id = f.image_id AND a.method = f.method
         AND a.layer = f.layer AND a.head = f.head
        WHERE f.model = '{NAFLEX}' GROUP BY ALL""")
    # the MAP head's map (last layer) and Grad-CAM at both layers
    assert len(rows) == len(ids) * 3 and all(r[3] == r[4] for r in rows)
    assert len({r[3] for r in rows}) >= 2  # the grids differ by image
    # ResNet-50: Grad-CAM at its last stage (7x7 at its 224 crop), every control
    cnn = query_catalog(wh, f"""
        SELECT method, layer, n_cells, count(*) FROM faithfulness_metrics
        WHERE model = '{RESNET}' GROUP BY ALL ORDER BY method""")
    assert cnn == [("baseline:center_gaussian", -1, 49, 3), ("baseline:random", -1, 49, 3),
                   ("baseline:saliency_prior", -1, 49, 3), ("baseline:sobel_edges", -1, 49, 3),
                   ("gradcam", 3, 49, 3)]
    # the cascade: 4 stages + the fully random step; Grad-CAM depends on the classifier,
    # which is random from the first step, so every step changes every map
    steps = query_catalog(wh, f"""
        SELECT count(*), count(DISTINCT cascade_step), bool_and(depends), bool_or(unchanged)
        FROM sanity_checks WHERE model = '{RESNET}'""")[0]
    assert steps == (3 * 5, 5, True, False)
    nf = query_catalog(wh, f"""
        SELECT count(DISTINCT cascade_step), count(DISTINCT image_id)
        FROM sanity_checks WHERE model = '{NAFLEX}'""")[0]
    assert nf == (3, len(ids))
    from ssl_wc.lake.catalog import read_manifests

    summ = {m["summary"]["model"]: m["summary"] for m in read_manifests(wh).manifests
            if m["kind"] == "faithfulness"}
    stages = summ[RESNET]["mprt"]["randomisation"]["stages"]
    assert stages["blocks"] == 4 and stages["top"] == ["classifier.1"]
    assert summ[RESNET]["deletion"]["grids"] == ["7x7@224x224"]
    assert len(summ[NAFLEX]["deletion"]["grids"]) == len(ids)
    # the per-layer summaries carry the deletion AUC of both
    lp = query_catalog(wh, """
        SELECT DISTINCT model FROM layer_progression WHERE metric = 'deletion_auc'
        ORDER BY model""")
    assert [r[0] for r in lp] == [RESNET, NAFLEX]


def _loaded(spec):
    from ssl_wc.models.device import choose_device
    from ssl_wc.models.loading import load_model
    from ssl_wc.models.preprocess import PreprocessConfig

    return _Loaded(spec, load_model(spec, "cpu").model, None, choose_device("cpu", "auto"),
                   PreprocessConfig.from_spec(spec))


class _NoRun:
    def log_error(self, *a):  # pragma: no cover - a failure shows in the assertion
        raise AssertionError(a)


def test_naflex_removal_cells_are_the_maps_own_patches(kinds_wh):
    """A one-hot map on a non-square NaFlex grid: deleting its top cell changes exactly
    that patch of the patchified model input, and keeping it keeps exactly that one."""
    from ingest.faithfulness import _images
    from ssl_wc.models.extract import naflex_inputs

    wh, specs, _, _ = kinds_wh
    spec = specs[NAFLEX]
    image_id, gh, gw = next(r for r in query_catalog(wh, f"""
        SELECT image_id, any_value(grid_h), any_value(grid_w) FROM attention_maps
        WHERE model = '{NAFLEX}' AND method = 'map' GROUP BY image_id ORDER BY image_id""")
        if r[1] != r[2])
    loaded = _loaded(spec)
    k = gh * gw
    proto = DeletionProtocol(steps=k, imputation="constant")  # one cell per step
    job = FaithfulnessJob(controls=False, deletion=proto, batch_size=256)
    src = _Source(NAFLEX, "frozen", "", spec.num_layers)
    target = gh * gw - 2  # a cell in the last row (rows are y)
    onehot = np.zeros((gh, gw))
    onehot.flat[target] = 1.0
    image = _read_image(_images(wh)[image_id])
    shaped, meta = _image_requests(_NoRun(), job, src, loaded, image_id, image,  # type: ignore[arg-type]
                                   {("map", 1, (gh, gw), "rid"): onehot}, {("map", 1)})
    assert [s for s, _ in shaped] == [((gh, gw), (gh * spec.patch_size, gw * spec.patch_size))]
    assert meta == {"map|1": ("map", 1, "rid", k)}
    seen: list[torch.Tensor] = []
    embed, _ = _embedder(loaded)

    def capture(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return embed(x)

    (grid, size), req = shaped[0]
    curves = _Scorers(capture, None, job, spec.std).get(grid, size).score([req])[0]
    assert len(curves["map|1"].deletion) == k + 1
    x = torch.cat(seen)
    tokens = naflex_inputs(x, spec.patch_size, spec.max_num_patches)["pixel_values"][:, :k]
    ref = naflex_inputs(req.pixels[None], spec.patch_size,
                        spec.max_num_patches)["pixel_values"][0, :k]
    changed = [frozenset(np.flatnonzero((t != ref).any(dim=-1).numpy()).tolist())
               for t in tokens]
    assert frozenset({target}) in changed  # deletion, step 1
    assert frozenset(set(range(k)) - {target}) in changed  # insertion, step 1
