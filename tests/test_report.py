"""``ssl-wc report``: contents, files, watermark, LaTeX, refusals, all-or-nothing output."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import duckdb
import polars as pl
import pytest
from PIL import Image

from ssl_wc.paths import WarehousePaths
from ssl_wc.report.build import ReportError, ReportOptions, build_report, parse_formats
from ssl_wc.report.tables import Table, latex_escape
from tests.conftest import SSL_WC, cli_env


def test_report_has_the_figures_tables_and_sections(scored_report) -> None:
    r = scored_report
    assert r.html is not None and r.html.is_file()
    assert len(r.figures) >= 12, r.figures
    assert len(r.tables) >= 6, r.tables
    for key in ("dataset", "leaderboard", "progression", "breakdowns", "coverage_iou",
                "comparisons", "finetune", "heads", "overlays", "embeddings", "probe",
                "provenance"):
        assert key in r.sections
    for name in ("leaderboard", "layer_progression", "by_style", "by_feature",
                 "coverage_vs_iou", "model_comparisons", "head_ranking", "overlays",
                 "embedding_map", "neighbor_agreement", "probe_accuracy"):
        assert name in r.figures
    for name in ("leaderboard", "model_comparisons", "runs", "models", "software"):
        assert name in r.tables
    assert "faithfulness" not in r.sections  # no such views in this warehouse: skipped
    assert set(r.skipped) == {"faithfulness_metrics", "sanity_checks"}
    manifest = json.loads((r.out / "manifest.json").read_text())
    assert manifest["figures"] == r.figures and manifest["watermark"]


def test_figure_files_are_valid_images_with_the_watermark(scored_report) -> None:
    mark = json.loads((scored_report.out / "manifest.json").read_text())["watermark"]
    assert "SYNTHETIC DATA" in mark and "NOT RESULTS" in mark
    for name in scored_report.figures:
        png = scored_report.out / "figures" / f"{name}.png"
        with Image.open(png) as im:
            im.verify()
        with Image.open(png) as im:
            assert im.format == "PNG" and min(im.size) > 100
            assert im.text.get("Watermark") == mark  # type: ignore[attr-defined]
            # the stamp is drawn: its red is on the canvas (no chart here uses it so pale)
            rgb = im.convert("RGB")
        svg = (scored_report.out / "figures" / f"{name}.svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        assert 'id="watermark"' in svg and mark in svg
        pdf = (scored_report.out / "figures" / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
        assert rgb.getbbox() is not None


def test_watermark_only_on_synthetic_or_random(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from dashboard_fixture import SMALL_MODELS, FixtureSpec, build_warehouse

    from ssl_wc.report.build import watermark_text
    from ssl_wc.report.source import Source

    real = tuple(m for m in SMALL_MODELS if not m.random_weights)
    built = build_warehouse(tmp_path / "wh", FixtureSpec(synthetic=False, models=real,
                                                         history=False))
    with Source.open(WarehousePaths.of(built.root)) as src:
        assert watermark_text(src, [m.name for m in real]) is None
    built2 = build_warehouse(tmp_path / "wh2", FixtureSpec(synthetic=False, history=False))
    with Source.open(WarehousePaths.of(built2.root)) as src:
        assert watermark_text(src, ["siglip"]) == "RANDOM WEIGHTS · NOT RESULTS"
        assert watermark_text(src, ["clip"]) is None


def test_html_is_self_contained(scored_report) -> None:
    text = scored_report.html.read_text()
    assert "<script" not in text
    for attr in re.findall(r'(?:src|href)="([^"]*)"', text):
        assert attr.startswith(("data:", "#", "figures/", "tables/", "notebook.html")), attr
    assert not re.search(r"url\((?!data:)", text)
    assert "Not real results" in text
    # every linked file exists beside the page
    for rel in re.findall(r'href="((?:figures|tables)/[^"]+)"', text):
        assert (scored_report.out / rel).is_file(), rel
    nb = scored_report.out / "notebook.html"
    assert nb.is_file() and "<script" not in nb.read_text()
    assert "notebook.html" in text


def _well_formed(tex: str) -> None:
    """Balanced braces, booktabs rules in order, every row with the header's cells."""
    depth = 0
    for i, ch in enumerate(tex):
        if ch == "\\":
            continue
        if ch in "{}" and i > 0 and tex[i - 1] == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, tex[max(0, i - 40):i + 1]
    assert depth == 0
    lines = tex.splitlines()
    top, mid, bottom = (lines.index(r) for r in (r"\toprule", r"\midrule", r"\bottomrule"))
    assert top < mid < bottom
    spec = re.search(r"\\begin\{tabular\}\{([lr]+)\}", tex)
    assert spec is not None
    for row in [lines[top + 1], *lines[mid + 1:bottom]]:
        assert row.endswith(r"\\")
        cells = re.split(r"(?<!\\)&", row[:-2])
        assert len(cells) == len(spec.group(1)), row
        # no unescaped special character left in any cell
        for cell in cells:
            assert not re.search(r"(?<!\\)[%#_$](?![^$]*\$)", cell.replace(r"$\uparrow$", "")
                                 .replace(r"$\downarrow$", "").replace(r"$\times$", "")
                                 .replace(r"$\geq$", "").replace(r"$\leq$", "")
                                 .replace(r"$\pm$", "")), cell


def test_latex_tables_are_well_formed_and_escaped(scored_report) -> None:
    for name in scored_report.tables:
        tex = (scored_report.out / "tables" / f"{name}.tex").read_text()
        _well_formed(tex)
        csv = pl.read_csv(scored_report.out / "tables" / f"{name}.csv")
        assert csv.height >= 0


def test_latex_escape_known_answers() -> None:
    assert latex_escape("a_b & 50% #1 $x$ {y} ~ ^ \\") == (
        r"a\_b \& 50\% \#1 \$x\$ \{y\} \textasciitilde{} \textasciicircum{} "
        r"\textbackslash{}")
    assert latex_escape("IoU@90 ↑ − 2 × 3 · d ≥ 0") == (
        r"IoU@90 $\uparrow$ - 2 $\times$ 3 \textperiodcentered{} d $\geq$ 0")
    hostile = pl.DataFrame({"feature_name": ["Rose_window & {tower} #1 ~^\\", "50% arch"],
                            "p_holm": [0.00001234, 0.5], "mean": [0.123456, None],
                            "n": [3, 4]})
    t = Table("hostile", "A table: 100% escaped_ok", hostile)
    tex = t.latex()
    _well_formed(tex)
    assert r"Rose\_window \& \{tower\} \#1 \textasciitilde{}\textasciicircum{}\textbackslash{}" \
        in tex
    assert "1.23e-05" in tex and "0.500" in tex and "0.123" in tex and "–" not in tex.split(
        r"\midrule")[0]
    assert "<td" in t.html() and "&amp; {tower}" in t.html()


def test_faithfulness_views_are_reported_when_present(scored_wh, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl_wc.warehouse as w

    w.ensure_catalog(scored_wh)  # the copy's own catalog first, then a view by hand
    con = duckdb.connect(str(scored_wh.catalog))
    try:
        # the real view's columns (faithfulness_metric_long reads them), made-up rows
        con.sql("""CREATE OR REPLACE VIEW faithfulness_metrics AS
                   SELECT model, variant, 'cls' AS method, 0 AS layer, -1 AS head,
                          'img' AS image_id, 'p' AS protocol_hash, false AS is_control,
                          d AS deletion_auc, 1 - d AS insertion_auc, 1 - 2 * d AS road_gap,
                          0.1 AS deletion_gain, 0.1 AS insertion_gain,
                          CAST(NULL AS DOUBLE) AS deletion_auc_prob,
                          CAST(NULL AS DOUBLE) AS insertion_auc_prob
                   FROM (VALUES ('m1', 'frozen', 0.25), ('m2', 'frozen', 0.5))
                   AS t(model, variant, d)""")
    finally:
        con.close()
    monkeypatch.setattr(w, "ensure_catalog", lambda wh: None)  # keep the hand-made view
    res = build_report(scored_wh, ReportOptions(out=tmp_path / "r", formats=("html", "png"),
                                                notebook=False))
    assert "faithfulness" in res.sections
    assert "faithfulness_metrics" in res.tables and "faithfulness_metrics" in res.figures
    assert res.skipped == ["sanity_checks"]
    assert not list((res.out / "figures").glob("*.svg"))  # only the formats asked for
    assert (res.out / "figures" / "faithfulness_metrics.png").is_file()


def test_bad_options_are_refused_with_exit_2(scored_wh, tmp_path: Path) -> None:
    cases = [
        (["--metric", "nope"], "--metric: 'nope' has no summaries; choose from"),
        (["--percentile", "33"], "--percentile: 33 is not summarised for iou; choose from"),
        (["--format", "html,gif"], "--format: unknown gif; choose from html, png, svg, pdf"),
        (["--models", "resnet"], "--models: unknown resnet; choose from"),
        (["--images", "nope.jpg"], "--images: not annotated images: nope.jpg"),
    ]
    for args, message in cases:
        out = tmp_path / "never"
        p = subprocess.run([*SSL_WC, "-w", str(scored_wh.root), "report", "--out", str(out),
                            *args], capture_output=True, text=True, env=cli_env(), timeout=120)
        assert p.returncode == 2, (args, p.stderr)
        assert message in p.stderr and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert not out.exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    p = subprocess.run([*SSL_WC, "-w", str(scored_wh.root), "report", "--out", str(busy)],
                       capture_output=True, text=True, env=cli_env(), timeout=120)
    assert p.returncode == 2 and "exists and is not empty" in p.stderr
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(ReportError):
        parse_formats("")


def test_a_failed_build_leaves_nothing(scored_wh, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl_wc.report.build as b

    def boom(ctx: object) -> None:
        raise RuntimeError("killed half-way")

    monkeypatch.setattr(b, "section_overlays", boom)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError):
        build_report(scored_wh, ReportOptions(out=out, formats=("html", "png"), notebook=False))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]
    # --force replaces a finished report whole
    monkeypatch.undo()
    (out).mkdir()
    (out / "stale.txt").write_text("old")
    res = build_report(scored_wh, ReportOptions(out=out, formats=("png",), notebook=False,
                                                force=True))
    assert not (out / "stale.txt").exists() and res.html is None
    assert (out / "figures" / "leaderboard.png").is_file()
