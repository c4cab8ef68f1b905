"""Streamlit AppTest tests of every dashboard page on the synthetic fixture warehouse.

Each page must render without an exception and show its main elements; controls must
change what is drawn, checked on the decoded Plotly figure specs (heatmap z values,
marker positions, line values), not only on widget state. Page state must round-trip
through the URL, partial or missing warehouses must give clear messages, and a new
commit must show up without restarting (cache keyed on the commit state).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_fixture import BuiltWarehouse, FixtureSpec, build_warehouse

from ssl_wc.lake.runs import Run
from ssl_wc.paths import WarehousePaths

APP = str(Path(__file__).resolve().parents[1] / "dashboards" / "app.py")
TIMEOUT = 90


# --------------------------------------------------------------------------- helpers
def decode(value: Any) -> np.ndarray:
    """A Plotly JSON array (plain list or typed ``{"dtype", "bdata", "shape"}``)."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            dims = [int(s) for s in str(shape).split(",")]
            arr = arr.reshape(dims)
        return arr.astype(float)
    return np.asarray(value, dtype=float)


def charts(at: AppTest) -> dict[str, dict[str, Any]]:
    """Plotly figure specs on the page, by their ``layout.meta.chart`` name."""
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        name = (spec.get("layout", {}).get("meta") or {}).get("chart", "?")
        out[name] = spec
    return out


def trace(spec: dict[str, Any], kind: str, index: int = 0) -> dict[str, Any]:
    found = [t for t in spec["data"] if t.get("type") == kind]
    kinds = [t.get("type") for t in spec["data"]]
    assert len(found) > index, f"no {kind} trace #{index} in {kinds}"
    return found[index]


def run_page(page: str, **params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts: list[str] = []
    for kind in ("markdown", "caption", "info", "warning", "error", "title", "subheader"):
        parts += [str(getattr(e, "value", "")) for e in at.get(kind)]
    return "\n".join(parts)


def assert_clean(at: AppTest) -> None:
    """No exception, no error box, and no warning other than the synthetic-data banner."""
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    warnings = [str(w.value) for w in at.warning if not str(w.value).startswith("Not real")]
    assert not warnings, warnings


def metric_tiles(at: AppTest) -> dict[str, str]:
    return {str(m.label): str(m.value) for m in at.metric}


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def wh(tmp_path_factory: pytest.TempPathFactory) -> BuiltWarehouse:
    return build_warehouse(tmp_path_factory.mktemp("dash_wh"), FixtureSpec(seed=1))


@pytest.fixture(autouse=True)
def use_wh(wh: BuiltWarehouse, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(wh.root))
    yield


def first_with_file(wh: BuiltWarehouse) -> str:
    return next(i for i in wh.image_ids if i in wh.files)


# --------------------------------------------------------------------------- Gallery
def test_gallery_lists_images_and_filters(wh: BuiltWarehouse) -> None:
    at = run_page("pages/gallery.py")
    assert_clean(at)
    n = len(wh.image_ids)
    assert any(f"{n} of {n} annotated images" in c.value for c in at.caption)
    links = at.get("page_link")
    assert links and all("image=" in link.proto.query_string for link in links)
    assert links[0].proto.page.endswith("image")
    style_counts: dict[str, int] = {}
    for tags in wh.styles.values():
        for s in tags:
            style_counts[s] = style_counts.get(s, 0) + 1
    at.selectbox(key="qp_style").set_value("Gothic").run()
    gothic = style_counts.get("Q176483", 0)
    assert any(f"{gothic} of {n} annotated images" in c.value for c in at.caption)
    assert at.query_params["style"] == "Gothic"


def test_gallery_feature_filter_rolls_up_the_ontology(wh: BuiltWarehouse) -> None:
    at = run_page("pages/gallery.py", feature="Window")
    windows = {wh.feature_names.index(n) for n in
               ("Window", "Round Arch Window", "Pointed Arch Window", "Tracery Rose Window")}
    expected = sum(1 for i in wh.image_ids if windows & set(wh.box_labels[i]))
    assert any(c.value.startswith(f"{expected} of ") for c in at.caption), \
        [c.value for c in at.caption]
    at.text_input(key="qp_q").input("no-such-image").run()
    assert any("No image matches" in i.value for i in at.info)


def test_gallery_links_open_the_image_page_on_that_image(wh: BuiltWarehouse) -> None:
    at = run_page("pages/gallery.py")
    targets = [parse_qs(link.proto.query_string)["image"][0] for link in at.get("page_link")]
    for image in targets[1:3]:  # one session: gallery -> image -> gallery -> other image
        at.switch_page("pages/image.py")
        at.query_params.clear()
        at.query_params["image"] = image
        at.run()
        assert not at.exception
        assert at.selectbox(key="qp_image").value == image
        at.switch_page("pages/gallery.py")
        at.query_params.clear()
        at.run()


# --------------------------------------------------------------------------- Image
def test_image_page_draws_heatmap_boxes_and_metrics(wh: BuiltWarehouse) -> None:
    image = first_with_file(wh)
    at = run_page("pages/image.py", image=image, model="dinov2", layer="2")
    assert_clean(at)
    # the page ran inside the app's frame (menu, sidebar status line)
    assert any("Warehouse" in c.value for c in at.sidebar.caption)
    specs = charts(at)
    assert {"overlay", "image_progression"} <= set(specs)
    heat = decode(trace(specs["overlay"], "heatmap")["z"])
    assert heat.shape == (16, 16)  # dinov2's grid
    assert heat.min() == pytest.approx(0.0) and heat.max() == pytest.approx(1.0, abs=1e-6)
    n_boxes = len(wh.boxes[image])
    box_traces = [t for t in specs["overlay"]["data"]
                  if t.get("type") == "scatter" and t.get("fill") == "toself"]
    assert len(box_traces) == n_boxes
    tiles = metric_tiles(at)
    assert any(k.startswith("IoU@90") for k in tiles)
    assert all(v != "n/a" for v in tiles.values()), tiles

    # the layer changes the heatmap values
    at.select_slider(key="qp_layer").set_value(0).run()
    heat0 = decode(trace(charts(at)["overlay"], "heatmap")["z"])
    assert not np.allclose(heat, heat0)
    assert at.query_params["layer"] == "0"
    # a single head instead of the fused mean changes them too
    at.selectbox(key="qp_head").set_value(1).run()
    heat_h1 = decode(trace(charts(at)["overlay"], "heatmap")["z"])
    assert not np.allclose(heat0, heat_h1)
    # boxes off: no box traces
    at.toggle(key="qp_boxes").set_value(False).run()
    assert not [t for t in charts(at)["overlay"]["data"] if t.get("fill") == "toself"]


def test_image_page_box_choice_switches_the_metrics(wh: BuiltWarehouse) -> None:
    image = first_with_file(wh)
    at = run_page("pages/image.py", image=image, model="dinov2")
    union = metric_tiles(at)
    assert any("all boxes (union)" in s.value for s in at.subheader)
    at.selectbox(key="qp_box").set_value(0).run()
    assert any("box #0" in s.value for s in at.subheader)
    assert metric_tiles(at) != union
    # the chosen box is drawn highlighted
    spec = charts(at)["overlay"]
    widths = [t["line"]["width"] for t in spec["data"] if t.get("fill") == "toself"]
    assert sorted(widths)[-1] > sorted(widths)[0]
    # progression follows the metric choice
    y_iou = decode(trace(charts(at)["image_progression"], "scatter")["y"])
    at.selectbox(key="qp_metric").set_value("kl").run()
    y_kl = decode(trace(charts(at)["image_progression"], "scatter")["y"])
    assert y_kl.mean() > 1.0 > y_iou.mean()


def test_image_page_restores_state_from_the_url(wh: BuiltWarehouse) -> None:
    image = wh.image_ids[2] if wh.image_ids[2] in wh.files else first_with_file(wh)
    at = run_page("pages/image.py", image=image, model="clip", method="rollout", layer="1",
                  head="0", pct="75", cmap="viridis", opacity="0.3")
    assert at.selectbox(key="qp_image").value == image
    assert at.selectbox(key="qp_model").value == "clip"
    assert at.selectbox(key="qp_method").value == "rollout"
    assert at.select_slider(key="qp_layer").value == 1
    assert at.selectbox(key="qp_head").value == 0
    assert at.select_slider(key="qp_pct").value == 75
    assert at.slider(key="qp_opacity").value == pytest.approx(0.3)
    title = charts(at)["overlay"]["layout"]["title"]["text"]
    assert "rollout" in title and "layer 1" in title and "head 0" in title
    assert any(k.startswith("IoU@75") for k in metric_tiles(at))
    # an invalid value falls back to a valid one, with a notice naming it (never silently)
    at2 = run_page("pages/image.py", image=image, model="no-such-model", layer="99",
                   opacity="2.5", boxes="maybe")
    assert not at2.exception and not at2.error
    notices = [str(w.value) for w in at2.warning if not str(w.value).startswith("Not real")]
    for key, raw in (("model", "no-such-model"), ("layer", "99"), ("opacity", "2.5"),
                     ("boxes", "maybe")):
        assert any(f"{key} = `{raw}`" in n and "showing" in n for n in notices), (key, notices)
    assert len(notices) == 4, notices
    assert at2.selectbox(key="qp_model").value in ("clip", "dinov2", "siglip")
    # the URL now holds what is shown: a rerun says nothing more
    at2.run()
    assert [w for w in at2.warning if not str(w.value).startswith("Not real")] == []


def test_image_page_says_what_is_missing(wh: BuiltWarehouse) -> None:
    # siglip has no rollout maps in the fixture
    at = run_page("pages/image.py", image=first_with_file(wh), model="siglip",
                  method="rollout")
    assert "ssl-wc ingest attention --models siglip --methods rollout" in texts(at)
    assert "random weights" in at.selectbox(key="qp_model").format_func("siglip")
    # an annotated image without a file: grey canvas and the images command
    missing = next(i for i in wh.image_ids if i not in wh.files)
    at = run_page("pages/image.py", image=missing)
    assert "ssl-wc ingest images" in texts(at)


# --------------------------------------------------------------------------- Compare
def test_compare_models_and_difference(wh: BuiltWarehouse) -> None:
    image = first_with_file(wh)
    at = run_page("pages/compare.py", image=image, models="dinov2@frozen,clip@frozen")
    assert_clean(at)
    specs = charts(at)
    assert {"overlay:dinov2@frozen", "overlay:clip@frozen", "difference"} <= set(specs)
    diff = decode(trace(specs["difference"], "heatmap")["z"])
    assert diff.shape == (224, 224) and diff.min() < 0 < diff.max()
    assert any("grids differ" in c.value for c in at.caption)  # 16x16 vs 14x14
    at.select_slider(key="qp_layer").set_value(0).run()
    diff0 = decode(trace(charts(at)["difference"], "heatmap")["z"])
    assert not np.allclose(diff, diff0)
    at.multiselect(key="qp_models").select("siglip@frozen").run()
    assert "difference" not in charts(at)


def test_compare_variant_mode_shows_gain(wh: BuiltWarehouse) -> None:
    at = run_page("pages/compare.py", image=first_with_file(wh), mode="variant")
    assert_clean(at)
    specs = charts(at)
    assert "difference" in specs
    bar = trace(specs["difference"], "heatmap")["colorbar"]
    assert "gained by fine-tuning" in " ".join(bar["ticktext"])
    assert "gained by fine-tuning" in texts(at)
    assert any("same 14x14 grid" in c.value for c in at.caption)


# --------------------------------------------------------------------------- Leaderboard
def test_leaderboard_ranks_and_reacts_to_the_metric(wh: BuiltWarehouse) -> None:
    at = run_page("pages/leaderboard.py")
    assert_clean(at)
    specs = charts(at)
    assert {"ranking", "leaderboard_progression", "styles", "features"} <= set(specs)
    rank = trace(specs["ranking"], "scatter")
    labels = rank["y"]
    assert any(lbl.startswith("baseline:") for lbl in labels)
    x_iou = decode(rank["x"])
    assert 0.0 < x_iou.max() < 0.5  # IoU scale
    assert "higher is better" in texts(at)
    # progression: CI bands (fill) and one line per model, baselines as dashed lines
    prog = specs["leaderboard_progression"]["data"]
    assert sum(1 for t in prog if t.get("fill") == "toself") >= 3
    assert sum(1 for t in prog if (t.get("line") or {}).get("dash") == "dash") == 4

    at.selectbox(key="qp_metric").set_value("kl").run()
    kl = trace(charts(at)["ranking"], "scatter")
    x_kl = decode(kl["x"])
    assert x_kl.min() > 1.0 and not np.allclose(np.sort(x_kl), np.sort(x_iou))
    assert "lower is better" in texts(at)
    assert list(x_kl) == sorted(x_kl)  # lower is better: best (smallest) first
    assert "pct" not in at.query_params

    at.selectbox(key="qp_metric").set_value("iou").run()
    at.select_slider(key="qp_pct").set_value(50).run()
    x_50 = decode(trace(charts(at)["ranking"], "scatter")["x"])
    assert not np.allclose(np.sort(x_50), np.sort(x_iou))


def test_leaderboard_rule_baselines_and_features(wh: BuiltWarehouse) -> None:
    at = run_page("pages/leaderboard.py", baselines="0")
    labels = trace(charts(at)["ranking"], "scatter")["y"]
    assert not any(lbl.startswith("baseline") for lbl in labels)
    default = decode(trace(charts(at)["ranking"], "scatter")["x"])
    at.radio(key="qp_rank").set_value("best").run()
    best = decode(trace(charts(at)["ranking"], "scatter")["x"])
    assert np.sort(best)[-1] >= np.sort(default)[-1]
    feats = charts(at)["features"]
    own = trace(feats, "bar")["y"]
    at.radio(key="qp_rollup").set_value("with descendants").run()
    rolled = trace(charts(at)["features"], "bar")["y"]
    assert "Window" in rolled and "Window" not in own
    at.slider(key="qp_min_boxes").set_value(20).run()
    strict = trace(charts(at)["features"], "bar")["y"] if "features" in charts(at) else []
    assert len(strict) < len(rolled)
    at.text_input(key="qp_fq").input("no-such-feature").run()
    assert any("No feature type matches" in i.value for i in at.info)


# --------------------------------------------------------------------------- Heads
def test_heads_ranking_and_feature_matrix(wh: BuiltWarehouse) -> None:
    at = run_page("pages/heads.py", model="dinov2")
    assert_clean(at)
    specs = charts(at)
    assert {"head_layer", "head_scores", "head_feature"} <= set(specs)
    z = decode(trace(specs["head_layer"], "heatmap")["z"])
    assert z.shape == (3, 2)  # layers x single heads
    bars2 = decode(trace(specs["head_scores"], "bar")["y"])
    at.select_slider(key="qp_layer").set_value(0).run()
    bars0 = decode(trace(charts(at)["head_scores"], "bar")["y"])
    assert not np.allclose(np.sort(bars0), np.sort(bars2))
    assert any("best head" in m.value for m in at.markdown)
    at.selectbox(key="qp_metric").set_value("coverage").run()
    z_cov = decode(trace(charts(at)["head_layer"], "heatmap")["z"])
    assert not np.allclose(z, z_cov)


# --------------------------------------------------------------------------- Runs, SQL
def test_runs_history_and_errors(wh: BuiltWarehouse) -> None:
    at = run_page("pages/runs.py")
    assert_clean(at)
    spec = charts(at)["runs"]
    statuses = {t["name"] for t in spec["data"]}
    assert {"committed", "failed", "partial"} <= statuses
    assert "weights not found" in texts(at)
    assert any(df.value.shape[0] >= 1 and "item" in df.value.columns for df in at.dataframe)
    at.multiselect(key="qp_status").set_value(["failed"]).run()
    assert {t["name"] for t in charts(at)["runs"]["data"]} == {"failed"}


def results(at: AppTest) -> list[Any]:
    """Query result tables on the SQL page (not the list of views)."""
    return [df.value for df in at.dataframe if "kind" not in df.value.columns]


def test_sql_page_runs_reads_and_refuses_writes(wh: BuiltWarehouse, tmp_path: Path) -> None:
    at = run_page("pages/sql.py")
    assert_clean(at)
    views = [df.value for df in at.dataframe if "kind" in df.value.columns]
    assert views and "leaderboard" in set(views[0]["name"])
    assert results(at) and results(at)[0].shape[0] > 0
    assert at.get("download_button")
    at.text_area(key="qp_q").input("SELECT count(*) AS n FROM images").run()
    assert int(results(at)[0]["n"][0]) == len(wh.image_ids)
    assert at.query_params["q"] == "SELECT count(*) AS n FROM images"
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    for bad in ("DROP VIEW images", "CREATE TABLE t AS SELECT 1", "ATTACH 'x.duckdb' AS x",
                "COPY images TO 'out.csv'", "SET threads = 1", "INSTALL httpfs",
                "PRAGMA version"):
        at.text_area(key="qp_q").input(bad).run()
        assert at.error and "Refused" in at.error[0].value, bad
        assert not results(at)
    at.text_area(key="qp_q").input(f"SELECT * FROM read_csv('{secret}')").run()
    assert not results(at) and (at.error or at.warning)
    at.text_area(key="qp_q").input("SELEC nonsense").run()
    assert at.error or any("failed" in w.value for w in at.warning)


# --------------------------------------------------------------------------- robustness
@pytest.mark.parametrize("page", ["gallery", "image", "compare", "leaderboard", "heads",
                                  "runs", "sql"])
def test_missing_warehouse_says_run_demo(page: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(tmp_path / "nowhere"))
    at = run_page(f"pages/{page}.py")
    assert "ssl-wc demo" in texts(at)
    assert not at.error


@pytest.fixture(scope="module")
def partial_wh(tmp_path_factory: pytest.TempPathFactory) -> BuiltWarehouse:
    spec = FixtureSpec(seed=2, n_images=5).only(maps=False, metrics=False, summaries=False,
                                                history=False)
    return build_warehouse(tmp_path_factory.mktemp("partial_wh"), spec)


@pytest.mark.parametrize(("page", "hint"), [
    ("gallery", None), ("image", "ssl-wc ingest attention"),
    ("compare", "ssl-wc ingest attention"), ("leaderboard", "ssl-wc metrics"),
    ("heads", "ssl-wc metrics"), ("runs", None), ("sql", None)])
def test_partial_warehouse_names_the_missing_step(page: str, hint: str | None,
                                                  partial_wh: BuiltWarehouse,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(partial_wh.root))
    at = run_page(f"pages/{page}.py")
    assert not at.error
    if hint:
        assert hint in texts(at)


def test_new_commit_shows_without_restart(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    built = build_warehouse(tmp_path / "wh", FixtureSpec(seed=4, n_images=4).only(
        maps=False, metrics=False, summaries=False, history=False))
    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(built.root))
    at = run_page("pages/runs.py")
    before = len(charts(at)["runs"]["data"][0]["x"])
    # a writer commits while the app is "open" and holds pooled readers: the new catalog
    # is renamed in beside the one they hold, and the next rerun reads it
    from dashboards import data

    assert data.READERS.opened > 0
    with Run(WarehousePaths(built.root), "images", {"rescan": True}) as run:
        run.write("ingest_errors", pa.table({"step": ["images"], "item": ["late.jpg"],
                                             "error": ["cannot decode"]}), unit_key="late")
        run.commit()
    at.run()
    spec = charts(at)["runs"]
    after = sum(len(t["x"]) for t in spec["data"])
    assert after == before + 1
    assert "late.jpg" in str([df.value for df in at.dataframe])


def test_dashboards_never_import_torch_models_or_ingest(wh: BuiltWarehouse) -> None:
    """Render every page in a fresh interpreter and list the heavy modules it loaded."""
    code = f"""
import os, sys
os.environ["SSL_WC_WAREHOUSE"] = {str(wh.root)!r}
from streamlit.testing.v1 import AppTest
for page in ("gallery", "image", "compare", "leaderboard", "heads", "runs", "sql"):
    at = AppTest.from_file({APP!r}, default_timeout=120)
    at.switch_page(f"pages/{{page}}.py")
    at.run()
    assert not at.exception, (page, [e.value for e in at.exception])
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "ingest")
             or m.startswith("ssl_wc.models"))
print("FORBIDDEN:", bad)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=Path(APP).parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "FORBIDDEN: []" in out.stdout, out.stdout[-2000:]


@pytest.mark.parametrize("page", ["gallery", "image", "compare", "leaderboard", "heads",
                                  "runs", "sql"])
def test_corrupt_parquet_does_not_crash_a_page(page: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A truncated committed file is found by `ssl-wc check`; the pages keep running and
    show a message instead of a traceback."""
    import shutil

    from ssl_wc.lake.catalog import read_manifests
    from ssl_wc.lake.integrity import check_lake

    src = build_warehouse(tmp_path / "src", FixtureSpec(seed=5, n_images=4))
    root = tmp_path / "wh"
    shutil.copytree(src.root, root)
    wh = WarehousePaths.of(root)
    for m in read_manifests(wh).manifests:
        for f in m["files"]:
            if f["table"] in ("metrics_map", "attention_maps", "ann_images"):
                p = root / f["path"]
                p.write_bytes(p.read_bytes()[: f["bytes"] // 2])
    assert {p.kind for p in check_lake(wh)} >= {"size"}
    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(root))
    at = run_page(f"pages/{page}.py")
    assert not at.exception
