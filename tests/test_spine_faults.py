"""The spine under faults: SIGKILL at random points, a reader querying throughout,
a plain-DuckDB door, a moved warehouse."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, SSL_WC, cli_env, plain_connect
from tests.faults import Reader, kill_rerun_cycles

USER_TABLES = ["images", "boxes", "feature_types", "feature_ancestors", "styles",
               "image_styles", "churches", "image_files"]


def snapshot(catalog: Path, views: list[str]) -> dict[str, list[tuple]]:
    """Contents of each view without run ids, sorted: the state two runs must agree on."""
    con = plain_connect(catalog)
    try:
        out = {}
        for v in views:
            cols = [c[0] for c in con.sql(f"DESCRIBE {v}").fetchall()
                    if c[0] not in ("run_id", "source_run_id", "image_root", "path", "config_hash",
                                 "seconds")]
            sel = ", ".join(f'"{c}"' for c in cols)
            out[v] = sorted(map(repr, con.sql(f"SELECT {sel} FROM {v}").fetchall()))
        return out
    finally:
        con.close()


def _ingest_args(demo) -> list[list[str]]:
    return [["ingest", "annotations", str(demo.building_parts), "--style-names",
             str(demo.style_names), "--churches", str(demo.churches)],
            ["ingest", "images", str(demo.images)]]


PLAIN_READER = (
    "import duckdb, sys\n"
    "con = duckdb.connect('ssl_wc.duckdb', read_only=True)\n"
    "for v in ['images', 'boxes', 'feature_types', 'runs', 'feature_ancestors']:\n"
    "    n = con.sql(f'SELECT count(*) FROM {v}').fetchall()[0][0]\n"
    "    assert n > 0, v\n"
    "print(con.sql('SELECT count(*) FROM boxes').fetchall()[0][0])\n"
    "assert 'ssl_wc' not in sys.modules\n")


def test_plain_duckdb_door(annotated_wh):
    """A process that never imports ssl_wc, started in the warehouse folder, can query
    the views."""
    out = subprocess.run([sys.executable, "-c", PLAIN_READER], capture_output=True, text=True,
                         cwd=annotated_wh.root, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "134"


def test_moved_and_copied_warehouse_still_works(annotated_wh, tmp_path):
    """Moved or copied, a warehouse opens unchanged: through ssl_wc, and from a plain
    duckdb session started in its folder, which reads its own files (the original is
    gone)."""
    import ssl_wc

    moved = tmp_path / "elsewhere" / "wh2"
    shutil.move(str(annotated_wh.root), moved)
    copied = tmp_path / "copy" / "wh3"
    shutil.copytree(moved, copied)
    catalog_before = (copied / "ssl_wc.duckdb").read_bytes()
    shutil.rmtree(moved)
    out = subprocess.run([sys.executable, "-c", PLAIN_READER], capture_output=True, text=True,
                         cwd=copied, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "134"
    df = ssl_wc.query("SELECT count(*) AS n FROM boxes", warehouse=str(copied))
    assert df["n"][0] == 134
    # nothing needed rebuilding: the catalog names files relative to its folder
    assert (copied / "ssl_wc.duckdb").read_bytes() == catalog_before


@pytest.mark.slow
def test_sigkill_annotations_and_images(demo_data, tmp_path, annotated_wh_template):
    """Kill the annotation and image ingests at random points with a reader running;
    each rerun reaches exactly the uninterrupted state; no partial result is ever seen."""
    ref = snapshot(annotated_wh_template / "ssl_wc.duckdb", USER_TABLES)
    n_boxes, n_images = len(ref["boxes"]), len(ref["images"])
    wh = tmp_path / "wh"
    checks = [
        ("boxes", "SELECT count(*) FROM boxes", [0, n_boxes]),
        ("images", "SELECT count(*) FROM images", [0, n_images]),
        ("boxes match images",
         "SELECT count(*) = 0 OR sum(n_boxes) = (SELECT count(*) FROM boxes) FROM images",
         [True]),
        ("files", "SELECT count(*) FROM image_files", [0, 192]),
    ]
    reader = Reader(wh / "ssl_wc.duckdb", checks, tmp_path / "reader.json", seconds=60)
    tallies = []
    try:
        for i, args in enumerate(_ingest_args(demo_data)):
            # --force: every cycle really rewrites, so each kill lands inside the work
            tallies.append(kill_rerun_cycles(args[1], [*args, "--force"], wh, kills=8,
                                             max_delay=3.0, seed=i, fault_sleep="0.15"))
    finally:
        time.sleep(0.3)
        reader.finish(tallies[0])
    for t in tallies:
        print(t.line())
        t.record()
    assert tallies[0].queries > 20
    assert tallies[0].errors == [], tallies[0].errors[:5]
    assert tallies[0].partial == [], tallies[0].partial[:5]
    assert snapshot(wh / "ssl_wc.duckdb", USER_TABLES) == ref
    # no duplicates: each image and box once
    con = plain_connect(wh / "ssl_wc.duckdb")
    assert con.sql("SELECT count(*) - count(DISTINCT (image_id, box_index)) FROM boxes"
                   ).fetchall() == [(0,)]
    con.close()
    chk = subprocess.run([*SSL_WC, "-w", str(wh), "gc"], cwd=ROOT, env=cli_env(),
                         capture_output=True, text=True)
    assert chk.returncode == 0
    chk = subprocess.run([*SSL_WC, "-w", str(wh), "check"], cwd=ROOT, env=cli_env(),
                         capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout


@pytest.mark.parametrize("point", ["write", "publish", "manifest"])
def test_full_disk_during_cli_ingest(annotated_wh, demo_data, point):
    """A write failure ends the job with a clear message; the previous state is intact."""
    before = snapshot(annotated_wh.catalog, USER_TABLES)
    out = subprocess.run([*SSL_WC, "-w", str(annotated_wh.root), *_ingest_args(demo_data)[0],
                          "--force"], cwd=ROOT, env=cli_env(SSL_WC_FAIL_AT=point),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "No space left on device" in out.stderr and "Traceback" not in out.stderr
    assert snapshot(annotated_wh.catalog, USER_TABLES) == before
    chk = subprocess.run([*SSL_WC, "-w", str(annotated_wh.root), "check"], cwd=ROOT,
                         env=cli_env(), capture_output=True, text=True, timeout=120)
    assert chk.returncode == 0, chk.stdout


def test_duckdb_command_line_door(scored_wh, tmp_path):
    """The `duckdb` command line the set-up installs opens the catalog and every view
    works in it: started in the warehouse folder (a copy, to prove nothing is absolute),
    or from elsewhere with the root variable set."""
    duckdb_cli = Path(sys.executable).parent / "duckdb"
    assert duckdb_cli.exists(), "the set-up installs the duckdb command line (duckdb-cli)"
    copy = tmp_path / "copied-wh"
    shutil.copytree(scored_wh.root, copy)
    con = plain_connect(copy / "ssl_wc.duckdb")
    views = [r[0] for r in con.sql("SELECT view_name FROM duckdb_views() WHERE NOT internal "
                                   "AND schema_name = 'main' ORDER BY 1").fetchall()]
    con.close()
    assert len(views) > 40
    script = "".join(f"SELECT '{v}' AS view, count(*) AS n FROM (SELECT * FROM \"{v}\" "
                     f"LIMIT 2);\n" for v in views)
    out = subprocess.run([str(duckdb_cli), "-readonly", "-csv", "-noheader", "ssl_wc.duckdb"],
                         input=script, cwd=copy, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = dict(line.split(",") for line in out.stdout.split())
    assert sorted(seen) == sorted(views)
    for v in ("images", "boxes", "attention_maps", "image_metrics", "layer_progression",
              "leaderboard"):
        assert int(seen[v]) > 0, v
    away = subprocess.run([str(duckdb_cli), "-readonly", "-csv", "-noheader", "-cmd",
                           f"SET VARIABLE ssl_wc_root = '{copy.as_posix()}'",
                           str(copy / "ssl_wc.duckdb"), "SELECT count(*) FROM boxes"],
                          cwd="/", capture_output=True, text=True, timeout=120)
    assert away.returncode == 0 and away.stdout.strip() == "134", away.stderr
