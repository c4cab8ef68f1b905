"""The faithfulness sections of the Leaderboard and Image pages (Streamlit AppTest) on a
warehouse with both checks, and their message when the checks have not run."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ingest.faithfulness import FaithfulnessJob, run_faithfulness
from ssl_wc.faithfulness.protocol import DeletionProtocol
from ssl_wc.paths import WarehousePaths
from tests.conftest import query_catalog
from tests.test_dashboard_apptest import charts, decode, run_page, texts, trace


@pytest.fixture(scope="module")
def faith_wh(tmp_path_factory: pytest.TempPathFactory, scored_wh_template: Path,
             tiny_models) -> WarehousePaths:
    specs, _ = tiny_models
    dst = tmp_path_factory.mktemp("faith_dash") / "wh"
    shutil.copytree(scored_wh_template, dst)
    wh = WarehousePaths.of(dst)
    ids = [r[0] for r in query_catalog(wh, "SELECT image_id FROM images ORDER BY 1")[:3]]
    res = run_faithfulness(wh, FaithfulnessJob(
        models=["dinov2-random", "siglip-random"], methods=["cls", "map", "rollout"],
        layers=[0, 1, 6, 11], images=ids, specs=specs, device="cpu", progress=False,
        deletion=DeletionProtocol(steps=4), batch_size=64))
    assert {r.status for r in res} == {"committed"}, [r.line() for r in res]
    return wh


@pytest.fixture()
def use_faith(faith_wh: WarehousePaths, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(faith_wh.root))
    yield


def test_leaderboard_shows_ranking_scatter_and_cascade(faith_wh, use_faith):
    at = run_page("pages/leaderboard.py", metric="coverage", fmetric="deletion_gain",
                  cmodel="dinov2-random")
    assert not at.exception
    found = charts(at)
    assert {"faith_ranking", "faith_scatter", "faith_cascade"} <= set(found), sorted(found)
    # the cascade: one panel per method of the chosen model, one line per layer
    cascade = found["faith_cascade"]
    names = {t["name"] for t in cascade["data"]}
    assert names == {"layer 0", "layer 1", "layer 6", "layer 11"}
    xs = set()
    for t in cascade["data"]:
        xs |= set(t["x"])
    assert "all" in xs and "1" in xs and len(xs) == 13
    # the scatter's y values are the layer_progression means of deletion_gain
    want = {round(v, 6) for (v,) in query_catalog(faith_wh, """
        SELECT mean FROM layer_progression WHERE metric = 'deletion_gain' AND head = -1
          AND variant = 'frozen'""")}
    got = set()
    for t in found["faith_scatter"]["data"]:
        got |= {round(float(v), 6) for v in decode(t["y"])}
    assert got == want
    assert "Survives randomisation" in texts(at) or "No method's map survives" in \
        "\n".join(str(s.value) for s in at.success)
    # switching the metric to the randomisation test re-ranks on it
    at.selectbox(key="qp_fmetric").set_value("mprt_spearman_abs").run()
    assert not at.exception and at.query_params["fmetric"] == "mprt_spearman_abs"
    rank = trace(charts(at)["faith_ranking"], "scatter")
    assert len(decode(rank["x"])) == 2


def test_image_page_draws_the_maps_curves_and_controls(faith_wh, use_faith):
    image = query_catalog(faith_wh, "SELECT min(image_id) FROM faithfulness_metrics")[0][0]
    at = run_page("pages/image.py", image=image, model="dinov2-random", method="cls",
                  layer="11", head="-1")
    found = charts(at)
    assert "faith_curves" in found, sorted(found)
    names = {t["name"] for t in found["faith_curves"]["data"]}
    assert {"cls · layer 11", "random order", "centre Gaussian", "Sobel edges"} <= names
    mine = [t for t in found["faith_curves"]["data"] if t["name"] == "cls · layer 11"]
    dele = decode(mine[0]["y"])
    ref = [v for (v,) in query_catalog(faith_wh, f"""
        SELECT value FROM faithfulness_curves WHERE model = 'dinov2-random'
          AND method = 'cls' AND layer = 11 AND image_id = '{image}' AND curve = 'deletion'
          AND score = 'cosine' ORDER BY step""")]
    assert np.allclose(dele, ref)
    tiles = {str(m.label): str(m.value) for m in at.metric}
    assert "Deletion AUC ↓" in tiles and tiles["Deletion AUC ↓"] != "n/a"
    assert "faith_cascade" in found


def test_sections_say_what_to_run_without_checks(scored_wh, monkeypatch):
    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(scored_wh.root))
    at = run_page("pages/leaderboard.py")
    assert "No faithfulness checks yet: run `ssl-wc faithfulness`" in texts(at)
    assert not [w for w in at.warning if not str(w.value).startswith("Not real")]
