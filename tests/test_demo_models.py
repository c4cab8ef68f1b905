"""The demo's ResNet-50 and SigLIP 2 NaFlex replicas flow through every metric view, the
statistics and the dashboards' queries, non-square NaFlex grids included."""

from __future__ import annotations

import pytest

from tests.conftest import query_catalog
from tests.test_dashboard_apptest import APP, charts, decode

MODELS = ("resnet50-random", "siglip2_naflex-random")
METRIC_VIEWS = ("image_metrics", "image_iou", "box_metrics", "metric_long", "feature_metrics",
                "style_metrics", "layer_progression", "leaderboard", "baseline_gap",
                "box_similarity", "feature_similarity", "map_frames", "patch_tokens",
                "features", "map_sources")
HEAD_VIEWS = ("head_ranking", "head_feature_matrix")  # single heads: a CNN has none


@pytest.fixture(scope="module")
def demo_wh(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The demo (synthetic data, its own replicas and settings) for the two models."""
    from ingest.demo import build_demo
    from ssl_wc.paths import WarehousePaths

    wh = WarehousePaths.of(tmp_path_factory.mktemp("demo") / "wh")
    results = build_demo(wh, echo=lambda _s: None, finetune=False, random_trials=5,
                         model_keys=[m.removesuffix("-random") for m in MODELS])
    assert not [r.line() for r in results if r.status == "failed"]
    return wh


@pytest.mark.parametrize("view", METRIC_VIEWS)
def test_every_metric_view_has_rows_for_both(demo_wh, view: str) -> None:  # type: ignore[no-untyped-def]
    rows = dict(query_catalog(demo_wh, f"SELECT model, count(*) FROM {view} WHERE model IN "
                                       f"{MODELS} GROUP BY model"))
    assert set(rows) == set(MODELS), rows


@pytest.mark.parametrize("view", HEAD_VIEWS)
def test_head_views_have_the_naflex_heads(demo_wh, view: str) -> None:  # type: ignore[no-untyped-def]
    rows = dict(query_catalog(demo_wh, f"SELECT model, count(*) FROM {view} WHERE model IN "
                                       f"{MODELS} GROUP BY model"))
    assert set(rows) == {"siglip2_naflex-random"}


def test_comparisons_and_probes_include_both(demo_wh) -> None:  # type: ignore[no-untyped-def]
    pairs = query_catalog(demo_wh, "SELECT count(*) FROM model_comparisons WHERE "
                                   "model_a = 'resnet50-random' AND model_b = "
                                   "'siglip2_naflex-random' OR model_b = 'resnet50-random' AND "
                                   "model_a = 'siglip2_naflex-random'")
    assert pairs[0][0] > 0
    probes = dict(query_catalog(demo_wh, "SELECT model, count(*) FROM probe_results GROUP BY 1"))
    assert set(probes) == set(MODELS)


def test_naflex_grids_are_non_square_and_scored(demo_wh) -> None:  # type: ignore[no-untyped-def]
    grids = query_catalog(demo_wh, "SELECT DISTINCT grid_h, grid_w FROM attention_maps WHERE "
                                   "model = 'siglip2_naflex-random' ORDER BY ALL")
    assert grids == [(7, 9), (9, 7)]  # landscape and portrait facades, 64-patch budget
    scored = query_catalog(demo_wh, "SELECT count(DISTINCT a.image_id) FROM attention_maps a "
                                    "JOIN image_metrics m USING (model, variant, method, layer, "
                                    "head, image_id) WHERE a.model = 'siglip2_naflex-random' "
                                    "AND a.grid_h <> a.grid_w AND m.iou_90 IS NOT NULL")
    assert scored[0][0] == 32
    gradcam = query_catalog(demo_wh, "SELECT DISTINCT method, layer, head, grid_h, grid_w FROM "
                                     "attention_maps WHERE model = 'resnet50-random'")
    assert gradcam == [("gradcam", 3, -1, 7, 7)]
    defaults = dict(query_catalog(demo_wh, "SELECT model, default_method FROM model_defaults"))
    assert defaults["resnet50-random"] == "gradcam"
    assert defaults["siglip2_naflex-random"] == "map"


def test_dashboard_queries_for_both(demo_wh, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The Image page's data: frames (ResNet's crop), token layers, similarity grids."""
    import numpy as np

    from dashboards import data

    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(demo_wh.root))
    data.clear_caches()
    image = query_catalog(demo_wh, "SELECT image_id FROM images ORDER BY image_id LIMIT 1")[0][0]
    box = query_catalog(demo_wh, f"SELECT min(box_index) FROM boxes WHERE image_id = "
                                 f"'{image}'")[0][0]
    frame = data.map_frame("resnet50-random", "frozen", image)
    assert not frame.is_full and 0 < frame.area_lost < 1
    assert data.map_frame("siglip2_naflex-random", "frozen", image).is_full
    for model, layer in (("siglip2_naflex-random", 3), ("resnet50-random", 3)):
        assert data.token_layers(model, "frozen", image) == [layer]
        got = data.box_similarity_grid(model, "frozen", layer, image, box)
        assert got is not None
        sim, inside = got
        assert sim.shape == inside.shape and inside.any()
        grid = data.attention_grid(model, "frozen", "gradcam" if model.startswith("resnet")
                                   else "map", layer, -1, image)
        assert grid is not None and grid.shape == sim.shape  # tokens and maps share the grid
        finite = sim[np.isfinite(sim)]
        assert finite.size == 0 or (finite <= 1 + 1e-6).all()


# ------------------------------------------------------------------ the Image / Compare pages
def _run_page(demo_wh, monkeypatch: pytest.MonkeyPatch, page: str, **params: str):  # type: ignore[no-untyped-def]
    """The page through the app (as test_dashboard_apptest does), on the demo warehouse,
    with a longer timeout: the demo holds real (tiny) models' maps and tokens."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(demo_wh.root))
    at = AppTest.from_file(APP, default_timeout=240)
    at.query_params.update(params)
    at = at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_image_page_similarity_mode(demo_wh, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from dashboards import data, heatmap

    image = query_catalog(demo_wh, "SELECT image_id FROM images ORDER BY image_id LIMIT 1")[0][0]
    box = query_catalog(demo_wh, f"SELECT min(box_index) FROM boxes WHERE image_id = "
                                 f"'{image}'")[0][0]
    at = _run_page(demo_wh, monkeypatch, "pages/image.py", image=image,
                   model="siglip2_naflex-random", view="similarity", box=str(box))
    fig = charts(at)["overlay"]
    heat = next(t for t in fig["data"] if t.get("type") == "heatmap")
    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(demo_wh.root))
    data.clear_caches()
    got = data.box_similarity_grid("siglip2_naflex-random", "frozen", 3, image, box)
    assert got is not None
    np.testing.assert_allclose(decode(heat["z"]), heatmap.normalise(got[0]), atol=1e-6)
    gh, gw = decode(heat["z"]).shape
    assert gh != gw  # the NaFlex grid of a non-square image
    labels = {str(m.label) for m in at.metric}
    assert {"in box", "outside", "contrast"} <= labels
    assert "cosine similarity" in " ".join(str(c.value) for c in at.caption)


def test_image_page_draws_resnet_on_its_crop(demo_wh, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    image = query_catalog(demo_wh, "SELECT image_id FROM map_frames WHERE model = "
                                   "'resnet50-random' AND area_lost > 0.2 LIMIT 1")[0][0]
    at = _run_page(demo_wh, monkeypatch, "pages/image.py", image=image,
                   model="resnet50-random", method="gradcam")
    fig = charts(at)["overlay"]
    rects = [s for s in fig["layout"].get("shapes", []) if s.get("type") == "rect"]
    assert len(rects) == 1 and rects[0]["line"]["dash"] == "dash"  # the crop
    heat = next(t for t in fig["data"] if t.get("type") == "heatmap")
    assert decode(heat["z"]).shape == (7, 7) and heat["x0"] > rects[0]["x0"]
    assert "centre crop" in " ".join(str(c.value) for c in at.caption)
    cmp = _run_page(demo_wh, monkeypatch, "pages/compare.py", image=image,
                    models="resnet50-random@frozen,siglip2_naflex-random@frozen")
    assert "different parts of the image" in " ".join(str(c.value) for c in cmp.caption)
    assert "difference" not in charts(cmp)
