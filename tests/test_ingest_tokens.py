"""Patch tokens, box-to-patch similarity and map frames through the attention job, the
lake and the plain-duckdb views and macro; metrics of a centre-cropped model (ResNet-50)."""

from __future__ import annotations

import numpy as np
import pytest

from ingest.attention import AttentionJob, ingest_attention
from ssl_wc.models.preprocess import PreprocessConfig, preprocess_batch
from tests.conftest import query_catalog

_q = query_catalog


@pytest.fixture(scope="module")
def token_wh(tmp_path_factory: pytest.TempPathFactory, annotated_wh_template):  # type: ignore[no-untyped-def]
    """Annotated warehouse + a tiny DINOv2 (tokens at every layer) and a tiny ResNet-50
    (its own centre crop, last-stage cells), then metrics."""
    import shutil

    from ingest.metrics import materialise_metrics
    from ssl_wc.models.registry import build_random_model
    from ssl_wc.paths import WarehousePaths

    root = tmp_path_factory.mktemp("tok")
    shutil.copytree(annotated_wh_template, root / "wh")
    wh = WarehousePaths.of(root / "wh")
    d2 = build_random_model("dinov2", root / "d2", seed=3, grid=4, hidden_size=16,
                            num_layers=3, num_heads=2)
    rn = build_random_model("resnet50", root / "rn", seed=3, hidden_size=16)
    specs = {d2.key: d2, rn.key: rn}
    res = ingest_attention(wh, AttentionJob(models=[d2.key], specs=specs, progress=False,
                                            methods=("cls",), device="cpu",
                                            patch_tokens="all"))
    res += ingest_attention(wh, AttentionJob(models=[rn.key], specs=specs, progress=False,
                                             device="cpu"))
    assert [r.status for r in res] == ["committed", "committed"], [r.line() for r in res]
    materialise_metrics(wh, random_trials=5)
    return wh, specs


def _tokens(wh, model: str, layer: int, image: str) -> tuple[np.ndarray, int, int]:  # type: ignore[no-untyped-def]
    rows = _q(wh, f"SELECT patch, \"row\", col, grid_h, grid_w, \"values\" FROM patch_tokens "
                  f"WHERE model = '{model}' AND layer = {layer} AND image_id = '{image}' "
                  f"ORDER BY patch")
    gh, gw = rows[0][3], rows[0][4]
    assert [r[0] for r in rows] == list(range(gh * gw))
    assert all(r[1] * gw + r[2] == r[0] for r in rows)  # row-major, row = y
    return np.asarray([r[5] for r in rows], np.float64), gh, gw


def test_token_table_round_trip(token_wh) -> None:  # type: ignore[no-untyped-def]
    """Stored float16 tokens are the model's tokens, rounded to float16."""
    from PIL import Image

    from ssl_wc.models.extract import extract_batch
    from ssl_wc.models.loading import load_model

    wh, specs = token_wh
    spec = specs["dinov2-random"]
    counts = _q(wh, "SELECT layer, count(*), count(DISTINCT image_id), any_value(dim) FROM "
                    "patch_tokens WHERE model = 'dinov2-random' GROUP BY layer ORDER BY layer")
    assert counts == [(li, 32 * 16, 32, 16) for li in range(3)]  # all layers, 4x4 grid
    image = "Q99100003_wd0.jpg"
    path = _q(wh, f"SELECT path, image_root FROM images WHERE image_id = '{image}'")[0]
    with Image.open(f"{path[1]}/{path[0]}") as im:
        pixels, _ = preprocess_batch([im.convert("RGB")], PreprocessConfig.from_spec(spec))
    import torch

    model = load_model(spec, device="cpu").model
    want = extract_batch(model, spec, torch.from_numpy(pixels), methods=("cls",),
                         features=False, patch_token_layers=(1, 2, 3)).patch_tokens
    for layer in range(3):
        got, gh, gw = _tokens(wh, "dinov2-random", layer, image)
        assert (gh, gw) == (4, 4)
        np.testing.assert_allclose(got, want[layer + 1][0].astype(np.float16), rtol=2e-3,
                                   atol=2e-3)
    cnn = _q(wh, "SELECT DISTINCT layer, grid_h, grid_w, dim FROM patch_tokens WHERE model = "
                 "'resnet50-random'")
    assert cnn == [(3, 7, 7, 64)]  # last stage: 7x7 cells of 4 x 16 channels (tiny widths)


def _direct_similarity(tokens: np.ndarray, gh: int, gw: int,
                       box: tuple[float, float, float, float]) -> np.ndarray:
    """The definition, written out: cells whose centre lies in the closed box (else the
    one holding the box centre), their mean token, cosine of every token to it."""
    x0, y0, x1, y1 = box
    inside = np.zeros((gh, gw), bool)
    for r in range(gh):
        for c in range(gw):
            inside[r, c] = x0 <= (c + 0.5) / gw <= x1 and y0 <= (r + 0.5) / gh <= y1
    if not inside.any():
        inside[min(gh - 1, int((y0 + y1) / 2 * gh)), min(gw - 1, int((x0 + x1) / 2 * gw))] = True
    mean = tokens[inside.ravel()].mean(axis=0)
    return np.asarray([t @ mean / (np.linalg.norm(t) * np.linalg.norm(mean))
                       for t in tokens]).reshape(gh, gw)


def test_box_patch_similarity_macro_against_numpy(token_wh) -> None:  # type: ignore[no-untyped-def]
    wh, _ = token_wh
    boxes = _q(wh, "SELECT image_id, box_index, left_c, top_c, left_c + width_c, "
                   "top_c + height_c, width_c FROM boxes ORDER BY width_c LIMIT 3")
    boxes += _q(wh, "SELECT image_id, box_index, left_c, top_c, left_c + width_c, "
                    "top_c + height_c, width_c FROM boxes ORDER BY width_c DESC LIMIT 3")
    assert min(b[6] for b in boxes) < 1 / 4  # a box narrower than a cell (fallback rule)
    for image, box, *edges, _w in boxes:
        for layer in (0, 2):
            tokens, gh, gw = _tokens(wh, "dinov2-random", layer, image)
            want = _direct_similarity(tokens, gh, gw, tuple(edges))
            rows = _q(wh, f"SELECT \"row\", col, similarity, in_box FROM box_patch_similarity("
                          f"'dinov2-random', 'frozen', {layer}, '{image}', {box}) "
                          f"ORDER BY \"row\", col")
            got = np.asarray([r[2] for r in rows], np.float64).reshape(gh, gw)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
            stored = _q(wh, f"SELECT sim_in, sim_out, n_in, n_out FROM box_similarity WHERE "
                            f"model = 'dinov2-random' AND layer = {layer} AND image_id = "
                            f"'{image}' AND box_index = {box}")
            inside = np.asarray([r[3] for r in rows], bool).reshape(gh, gw)
            sim_in, sim_out, n_in, n_out = stored[0]
            assert (n_in, n_out) == (inside.sum(), (~inside).sum())
            assert sim_in == pytest.approx(want[inside].mean(), abs=1e-9)
            assert sim_out == pytest.approx(want[~inside].mean(), abs=1e-9)


def test_feature_similarity_view(token_wh) -> None:  # type: ignore[no-untyped-def]
    wh, _ = token_wh
    own = _q(wh, "SELECT f.feature_label, f.n_boxes, f.mean_contrast FROM feature_similarity f "
                 "WHERE model = 'dinov2-random' AND layer = 2 AND NOT rollup "
                 "ORDER BY feature_label")
    direct = _q(wh, "SELECT label, count(*), avg(sim_in - sim_out) FROM box_similarity "
                    "WHERE model = 'dinov2-random' AND layer = 2 AND sim_out IS NOT NULL "
                    "GROUP BY label ORDER BY label")
    assert [(a, b) for a, b, _ in own] == [(a, b) for a, b, _ in direct]
    np.testing.assert_allclose([c for *_, c in own], [c for *_, c in direct])
    rolled = _q(wh, "SELECT max(n_boxes) FROM feature_similarity WHERE model = "
                    "'dinov2-random' AND layer = 2 AND rollup")[0][0]
    assert rolled >= max(b for _, b, _ in own)


def test_resnet_frames_and_cropped_boxes(token_wh) -> None:  # type: ignore[no-untyped-def]
    """ResNet-50 sees its centre crop: the frames say where, the area lost is recorded, a
    box wholly outside the crop is not scored, and the metrics use the carried boxes."""
    from ssl_wc.metrics.frames import boxes_in_frame
    from ssl_wc.metrics.kernels import MetricProtocol, score_maps

    wh, _ = token_wh
    frames = _q(wh, "SELECT image_id, orig_h, orig_w, frame_left, frame_top, frame_right, "
                    "frame_bottom, area_lost, input_h, input_w FROM map_frames WHERE model = "
                    "'resnet50-random' ORDER BY image_id")
    assert len(frames) == 32 and all(f[8:] == (224, 224) for f in frames)
    for _i, h, w, *frame, lost, _ih, _iw in frames:
        short = min(h, w)
        rh, rw = (256, int(256 * w / short)) if h <= w else (int(256 * h / short), 256)
        assert lost == pytest.approx(1 - 224 * 224 / (rh * rw))
        assert frame[2] - frame[0] == pytest.approx(224 / rw)
    dino = _q(wh, "SELECT DISTINCT frame_left, frame_top, frame_right, frame_bottom, "
                  "area_lost FROM map_frames WHERE model = 'dinov2-random'")
    assert dino == [(0.0, 0.0, 1.0, 1.0, 0.0)]
    # metrics of one ResNet map, recomputed against the boxes carried into its frame
    image = frames[0][0]
    frame = frames[0][3:7]
    gh, gw, values = _q(wh, f"SELECT grid_h, grid_w, \"values\" FROM attention_maps WHERE "
                            f"model = 'resnet50-random' AND image_id = '{image}'")[0]
    boxes = np.asarray(_q(wh, f"SELECT left_c, top_c, width_c, height_c FROM boxes WHERE "
                              f"image_id = '{image}' ORDER BY box_index"), np.float64)
    moved, kept = boxes_in_frame(boxes, frame)
    tf, pct = score_maps(np.asarray(values).reshape(1, gh, gw), [moved[kept > 0]],
                         MetricProtocol())
    stored = _q(wh, f"SELECT iou_90, coverage FROM image_metrics WHERE model = "
                    f"'resnet50-random' AND image_id = '{image}'")[0]
    assert stored[0] == pytest.approx(float(pct["iou"][0][list(MetricProtocol().percentiles)
                                                          .index(90)]))
    assert stored[1] == pytest.approx(float(tf["coverage"][0]))
    # boxes the crop cut off entirely: no box metrics, no similarity
    cut = _q(wh, "SELECT b.image_id, b.box_index FROM boxes b JOIN map_frames f USING "
                 "(image_id) WHERE f.model = 'resnet50-random' AND (b.left_c + b.width_c <= "
                 "f.frame_left OR b.left_c >= f.frame_right OR b.top_c + b.height_c <= "
                 "f.frame_top OR b.top_c >= f.frame_bottom)")
    for image_id, box in cut:
        m = _q(wh, f"SELECT iou_90, coverage FROM box_metrics WHERE model = 'resnet50-random' "
                   f"AND image_id = '{image_id}' AND box_index = {box}")
        assert m == [(None, None)]
        s = _q(wh, f"SELECT n_in, sim_in FROM box_similarity WHERE model = "
                   f"'resnet50-random' AND image_id = '{image_id}' AND box_index = {box}")
        assert s == [(0, None)]
        sims = _q(wh, f"SELECT count(similarity) FROM box_patch_similarity('resnet50-random', "
                      f"'frozen', 3, '{image_id}', {box})")
        assert sims == [(0,)]


def test_tokens_are_a_unit_of_their_own(token_wh, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Changing the token layers recomputes tokens only; 'none' stores none."""
    import shutil

    from ssl_wc.paths import WarehousePaths

    wh0, specs = token_wh
    shutil.copytree(wh0.root, tmp_path / "wh")
    wh = WarehousePaths.of(tmp_path / "wh")
    maps_before = _q(wh, "SELECT DISTINCT run_id FROM attention_maps WHERE model = "
                         "'dinov2-random'")
    res = ingest_attention(wh, AttentionJob(models=["dinov2-random"], specs=specs,
                                            progress=False, methods=("cls",), device="cpu",
                                            patch_tokens=[1]))
    assert res[0].status == "committed" and res[0].rows["attention_maps"] == 0
    assert _q(wh, "SELECT DISTINCT layer FROM patch_tokens WHERE model = 'dinov2-random'") \
        == [(1,)]
    assert _q(wh, "SELECT DISTINCT run_id FROM attention_maps WHERE model = "
                  "'dinov2-random'") == maps_before
    none = ingest_attention(wh, AttentionJob(models=["dinov2-random"], specs=specs,
                                             progress=False, methods=("cls",), device="cpu",
                                             patch_tokens="none"))
    assert none[0].status == "skipped"
    with pytest.raises(ValueError, match="out of range"):
        ingest_attention(wh, AttentionJob(models=["dinov2-random"], specs=specs, strict=True,
                                          progress=False, methods=("cls",), device="cpu",
                                          patch_tokens=[7]))
