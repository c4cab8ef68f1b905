"""AppTest of the Embeddings page and of the Gallery filter its selection drives."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_dashboard_apptest as page_tests
from dashboard_fixture import BuiltWarehouse, FixtureSpec, build_warehouse
from test_dashboard_apptest import assert_clean, charts, decode, run_page, texts

from ssl_wc.embeddings import project, unit_rows
from ssl_wc.warehouse import open_reader

# the page tests' fixtures: their warehouse (with features) and SSL_WC_WAREHOUSE set to it
wh = page_tests.wh
use_wh = page_tests.use_wh


def features(wh: BuiltWarehouse, model: str, layer: int, kind: str
             ) -> tuple[list[str], np.ndarray]:
    con = open_reader(wh.root, udfs=False)
    try:
        df = con.sql(f"SELECT image_id, \"values\" FROM features WHERE model = '{model}' AND "
                     f"variant = 'frozen' AND layer = {layer} AND kind = '{kind}' "
                     f"ORDER BY image_id").pl()
    finally:
        con.close()
    return df["image_id"].to_list(), np.asarray(df["values"].to_list(), dtype=np.float64)


def map_points(spec: dict) -> dict[str, tuple[float, float]]:
    out = {}
    for t in spec["data"]:
        if t.get("name") == "query image":
            continue
        for i, x, y in zip(t["customdata"], decode(t["x"]), decode(t["y"]), strict=True):
            out[i] = (float(x), float(y))
    return out


def test_map_shows_the_projected_features(wh: BuiltWarehouse) -> None:
    at = run_page("pages/embeddings.py", model="dinov2", kind="cls", layer="1", proj="pca")
    assert_clean(at)
    spec = charts(at)["embedding_map"]
    ids, x = features(wh, "dinov2", 1, "cls")
    pts = map_points(spec)
    assert sorted(pts) == ids
    ref = project(x, "pca").points
    got = np.asarray([pts[i] for i in ids])
    np.testing.assert_allclose(got, ref, atol=1e-9)
    styles = {t["name"] for t in spec["data"] if t.get("name") != "query image"}
    assert styles <= {"Romanesque", "Gothic", "Renaissance", "Baroque"} and len(styles) >= 2
    assert spec["layout"]["dragmode"] == "lasso"
    assert "knn_agreement" in charts(at)
    assert at.query_params["kind"] == "cls" and at.query_params["layer"] == "1"


def test_tsne_and_layer_controls(wh: BuiltWarehouse) -> None:
    at = run_page("pages/embeddings.py", model="clip", kind="cls", proj="tsne")
    assert_clean(at)
    assert "t-SNE" in charts(at)["embedding_map"]["layout"]["title"]["text"]
    at.radio(key="qp_proj").set_value("pca").run()
    assert "PCA" in charts(at)["embedding_map"]["layout"]["title"]["text"]
    assert at.query_params["proj"] == "pca"


def test_neighbours_are_the_cosine_nearest(wh: BuiltWarehouse) -> None:
    ids, x = features(wh, "dinov2", 2, "pooled")
    image = ids[3]
    at = run_page("pages/embeddings.py", model="dinov2", kind="pooled", image=image, k="4")
    assert_clean(at)
    u = unit_rows(x)
    sim = u @ u[ids.index(image)]
    order = [ids[j] for j in sorted((j for j in range(len(ids)) if ids[j] != image),
                                    key=lambda j: (-sim[j], ids[j]))][:4]
    table = at.dataframe[0].value
    assert table["neighbor_id"].tolist() == order
    np.testing.assert_allclose(table["cosine"].to_numpy(), [sim[ids.index(i)] for i in order],
                               atol=1e-9)
    assert f"The 4 images most similar to **{image}**" in texts(at)


def test_selection_in_the_url_links_to_the_gallery(wh: BuiltWarehouse) -> None:
    ids, _ = features(wh, "dinov2", 2, "pooled")
    chosen = ids[:3]
    at = run_page("pages/embeddings.py", model="dinov2", kind="pooled", ids=",".join(chosen))
    assert_clean(at)
    assert "**3 images selected**" in texts(at)
    link = next(p for p in at.get("page_link") if p.proto.label == "Show them in the Gallery")
    assert link.proto.query_string == "ids=" + "%2C".join(chosen)
    gal = run_page("pages/gallery.py", ids=",".join(chosen))
    assert_clean(gal)
    assert "Showing the 3 images selected on the Embeddings map" in texts(gal)
    n = len(wh.image_ids)
    assert any(f"3 of {n} annotated images" in c.value for c in gal.caption)
    opened = [p.proto.query_string for p in gal.get("page_link")]
    assert sorted(q.split("=", 1)[1] for q in opened) == sorted(chosen)


def test_without_features_the_page_says_what_to_run(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    built = build_warehouse(tmp_path / "wh", FixtureSpec(seed=4, features=False, n_images=4,
                                                         history=False))
    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(built.root))
    at = run_page("pages/embeddings.py")
    assert not at.exception
    assert "No stored features yet: run `ssl-wc ingest attention --models <model>`" in texts(at)
