"""``ssl-wc export``: valid COCO JSON, heatmap PNGs, and values that round-trip."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from ssl_wc.export import ExportError, ExportOptions, export_selection, heatmap_png
from ssl_wc.metrics.heatmap import heatmap
from ssl_wc.warehouse import open_reader
from tests.conftest import SSL_WC, cli_env


def _q(wh, sql: str) -> pl.DataFrame:
    con = open_reader(wh, udfs=False)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


@pytest.fixture(scope="module")
def exported(scored_wh_template: Path, tmp_path_factory: pytest.TempPathFactory):
    from ssl_wc.paths import WarehousePaths

    wh = WarehousePaths.of(scored_wh_template)
    out = tmp_path_factory.mktemp("export") / "coco"
    res = export_selection(wh, ExportOptions(out=out, layer="last", max_side=96))
    return wh, res, json.loads((out / "labels.json").read_text())


def test_coco_file_is_valid(exported) -> None:
    _wh, res, coco = exported
    assert {"info", "licenses", "images", "annotations", "categories",
            "attention_maps"} <= set(coco)
    assert coco["info"]["synthetic"] is True
    ids = [i["id"] for i in coco["images"]]
    assert len(ids) == len(set(ids)) == res.n_images > 0
    cats = {c["id"] for c in coco["categories"]}
    assert len(cats) == len(coco["categories"])
    for im in coco["images"]:
        assert (res.out / "data" / im["file_name"]).is_file()
        with Image.open(res.out / "data" / im["file_name"]) as f:
            assert f.size == (im["width"], im["height"])
    sizes = {i["id"]: (i["width"], i["height"]) for i in coco["images"]}
    ann_ids = [a["id"] for a in coco["annotations"]]
    assert len(ann_ids) == len(set(ann_ids)) == res.n_boxes
    for a in coco["annotations"]:
        assert a["image_id"] in sizes and a["category_id"] in cats and a["iscrowd"] == 0
        w, h = sizes[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        assert x >= 0 and y >= 0 and x + bw <= w + 1e-9 and y + bh <= h + 1e-9
        assert a["area"] == pytest.approx(bw * bh)


def test_boxes_round_trip(exported) -> None:
    wh, _res, coco = exported
    boxes = _q(wh, "SELECT image_id, box_index, label, left_c, top_c, width_c, height_c "
                   "FROM boxes")
    by_key = {(r["image_id"], r["box_index"]): r for r in boxes.iter_rows(named=True)}
    images = {i["id"]: i for i in coco["images"]}
    exported_images = {i["ssl_wc_image_id"] for i in coco["images"]}
    assert len(coco["annotations"]) == boxes.filter(
        pl.col("image_id").is_in(list(exported_images))).height
    for a in coco["annotations"]:
        im = images[a["image_id"]]
        r = by_key[(im["ssl_wc_image_id"], a["box_index"])]
        assert a["category_id"] == r["label"] + 1
        frac = [r["left_c"], r["top_c"], r["width_c"], r["height_c"]]
        assert a["bbox_fraction"] == frac
        assert a["bbox"] == pytest.approx([frac[0] * im["width"], frac[1] * im["height"],
                                           frac[2] * im["width"], frac[3] * im["height"]])


def test_maps_and_heatmaps_round_trip(exported) -> None:
    wh, res, coco = exported
    stored = _q(wh, "SELECT model, variant, method, layer, head, image_id, grid_h, grid_w, "
                    "\"values\" FROM attention_maps WHERE head = -1 AND variant = 'frozen'")
    images = {i["id"]: i for i in coco["images"]}
    defaults = dict(_q(wh, "SELECT model, default_method FROM model_defaults").iter_rows())
    last = {m: int(v) for m, v in stored.group_by("model").agg(pl.col("layer").max())
            .iter_rows()}
    assert res.n_maps == len(coco["attention_maps"]) == len(images) * len(last)
    for m in coco["attention_maps"]:
        image_id = images[m["image_id"]]["ssl_wc_image_id"]
        assert m["method"] == defaults[m["model"]] and m["layer"] == last[m["model"]]
        row = stored.filter((pl.col("model") == m["model"]) & (pl.col("method") == m["method"])
                            & (pl.col("layer") == m["layer"])
                            & (pl.col("image_id") == image_id)).row(0, named=True)
        # the stored float32 values, exactly (JSON floats of float32 round-trip)
        assert np.array_equal(np.asarray(m["values"], dtype=np.float32),
                              np.asarray(row["values"], dtype=np.float32))
        assert (m["grid_h"], m["grid_w"]) == (row["grid_h"], row["grid_w"])
        with Image.open(res.out / m["heatmap"]) as png:
            arr = np.asarray(png)
            assert png.size == tuple(m["heatmap_size"]) and max(png.size) <= 96
        assert arr.dtype == np.uint16
        grid = np.asarray(row["values"], dtype=np.float64).reshape(row["grid_h"],
                                                                   row["grid_w"])
        w, h = m["heatmap_size"]
        expect = heatmap(grid[None], (h, w))[0]
        assert np.abs(arr / 65535.0 - expect).max() <= 0.5 / 65535 + 1e-12
        assert arr.min() == 0  # min-max normalised (the max is 1 - eps/range)


def test_heatmap_png_geometry() -> None:
    """A bright patch in row 0, column 2 of a 2x3 grid lands in the top right."""
    grid = np.zeros((2, 3))
    grid[0, 2] = 1.0
    png = heatmap_png(grid, 20, 30)
    y, x = np.unravel_index(int(png.argmax()), png.shape)
    assert y < 10 and x >= 20 and png.max() == 65535


def test_selection_and_refusals(scored_wh, tmp_path: Path) -> None:
    styles = _q(scored_wh, "SELECT DISTINCT style_name FROM image_styles WHERE style_name "
                           "IS NOT NULL ORDER BY 1")["style_name"].to_list()
    res = export_selection(scored_wh, ExportOptions(out=tmp_path / "s", style=styles[0],
                                                    copy_images=False, max_side=32))
    coco = json.loads((res.out / "labels.json").read_text())
    assert all(styles[0] in i["styles"] for i in coco["images"])
    assert not list((res.out / "data").iterdir())
    with pytest.raises(ExportError, match="--layer"):
        export_selection(scored_wh, ExportOptions(out=tmp_path / "x", layer="99"))
    with pytest.raises(ExportError, match="--style"):
        export_selection(scored_wh, ExportOptions(out=tmp_path / "x", style="Nope"))
    assert not (tmp_path / "x").exists()
    for args, msg in [(["--models", "nope"], "--models: no frozen maps of nope"),
                      (["--layer", "top"], "--layer: 'top'; choose best, last"),
                      (["--method", "gradcam"], "--method:"),
                      (["--images", "x.jpg"], "--images: not annotated images: x.jpg")]:
        p = subprocess.run([*SSL_WC, "-w", str(scored_wh.root), "export", "--out",
                            str(tmp_path / "cli"), *args], capture_output=True, text=True,
                           env=cli_env(), timeout=120)
        assert p.returncode == 2, (args, p.stderr)
        assert msg in p.stderr and "Traceback" not in p.stderr
        assert not (tmp_path / "cli").exists()
    p = subprocess.run([*SSL_WC, "-w", str(scored_wh.root), "export", "--out",
                        str(tmp_path / "cli"), "--max-side", "16"], capture_output=True,
                       text=True, env=cli_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    assert "export:" in p.stdout and (tmp_path / "cli" / "labels.json").is_file()
