"""The read-only SQL door under attack.

Every attempt below is run through ``ssl-wc sql`` (with and without ``--allow-files``)
and through the SQL dashboard page (``?q=`` on page load, as a shared link would): none
may succeed, each refusal is one line with exit code 2, and afterwards every file of
the warehouse is byte-identical and nothing new exists anywhere (the targets outside
the warehouse included).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssl_wc.paths import WarehousePaths
from ssl_wc.sqlguard import QueryRefused, check_query, run_readonly
from tests.conftest import ROOT, SSL_WC, cli_env


def attempts(wh: Path, out: Path) -> list[str]:
    """Adversarial queries; ``{...}`` paths point into the warehouse ``wh`` and a scratch
    folder ``out`` (which must stay empty but for the planted files)."""
    lake_file = next((wh / "lake" / "ann_boxes").rglob("*.parquet")).as_posix()
    lake = (wh / "lake").as_posix()
    cat = (wh / "ssl_wc.duckdb").as_posix()
    manifest = next((wh / "manifests").glob("*.json")).as_posix()
    tmpdir = (wh / ".tmp").as_posix()
    link = (out / "link.parquet").as_posix()      # a symlink to a committed lake file
    o = out.as_posix()
    empty = "(SELECT * FROM _raw_ann_boxes WHERE false)"
    copy_lake = f"COPY {empty} TO '{lake_file}' (FORMAT parquet)"
    wipe = (f"COPY (SELECT 1 AS a, 'x' AS p) TO '{lake}/attention_maps' "
            f"(FORMAT parquet, PARTITION_BY (p), OVERWRITE)")
    return [
        # EXPLAIN ANALYZE executes what it wraps: every spelling
        f"EXPLAIN ANALYZE {copy_lake}",
        f"explain analyze {copy_lake}",
        f"Explain Analyse {copy_lake}",
        f"EXPLAIN /* looks harmless */ ANALYZE {copy_lake}",
        f"EXPLAIN -- comment\nANALYZE {copy_lake}",
        f"/* lead */ EXPLAIN ANALYZE {copy_lake}",
        f"  \n\tEXPLAIN\n\tANALYZE\n{copy_lake}",
        f"EXPLAIN ANALYZE {wipe}",
        f"EXPLAIN (ANALYZE) {copy_lake}",
        f"EXPLAIN (ANALYZE, FORMAT json) {copy_lake}",
        "EXPLAIN (FORMAT json) SELECT 1",
        "EXPLAIN ANALYZE SELECT count(*) FROM boxes",
        "EXPLAIN ANALYZE INSERT INTO _runs (run_id) VALUES ('x')",
        "EXPLAIN ANALYZE CREATE TEMP TABLE t AS SELECT 1",
        "EXPLAIN ANALYZE CREATE TEMP MACRO m() AS 1",
        "EXPLAIN ANALYZE LOAD httpfs",
        "EXPLAIN ANALYZE CHECKPOINT",
        f"EXPLAIN {copy_lake}",
        f"EXPLAIN EXPLAIN ANALYZE {copy_lake}",
        f"EXPLAIN ANALYZE EXPORT DATABASE '{o}/exported'",
        # COPY / EXPORT / IMPORT in every direction
        copy_lake,
        wipe,
        f"COPY {empty} TO '{lake_file}' (FORMAT parquet, USE_TMP_FILE false)",
        f"COPY (SELECT 1) TO '{o}/out.csv'",
        f"COPY (SELECT 1) TO '{cat}'",
        f"COPY (SELECT 1) TO '{tmpdir}/x.parquet' (FORMAT parquet)",
        f"COPY (SELECT 1) TO '{link}' (FORMAT parquet, USE_TMP_FILE false)",
        f"COPY boxes FROM '{o}/in.csv'",
        f"EXPORT DATABASE '{o}/exported'",
        f"IMPORT DATABASE '{o}/exported'",
        # ATTACH / DETACH / USE
        "ATTACH ':memory:' AS m",
        f"ATTACH '{o}/new.duckdb' AS n",
        f"ATTACH '{cat}' AS w (READ_WRITE)",
        "DETACH ssl_wc",
        "USE memory",
        # extensions
        "INSTALL httpfs",
        "FORCE INSTALL httpfs",
        "LOAD httpfs",
        f"LOAD '{o}/evil.duckdb_extension'",
        "SELECT * FROM read_parquet('https://example.com/x.parquet')",
        # settings
        "SET threads = 1",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "SET lock_configuration = false",
        "RESET allowed_paths",
        "SET GLOBAL temp_directory = '/tmp'",
        "SET VARIABLE ssl_wc_root = '/'",
        f"SET profile_output = '{o}/profile.txt'",
        f"SET log_query_path = '{o}/log.txt'",
        # PRAGMA / CALL / maintenance
        "PRAGMA enable_profiling",
        "PRAGMA version",
        "CALL pragma_version()",
        "CALL checkpoint()",
        "CHECKPOINT",
        "FORCE CHECKPOINT",
        "VACUUM",
        "SELECT * FROM checkpoint()",
        "SELECT * FROM force_checkpoint()",
        # DDL / DML
        "CREATE TABLE t (x INT)",
        "CREATE TEMP TABLE t AS SELECT 1",
        "CREATE TEMP MACRO m() AS 1",
        "CREATE VIEW v AS SELECT 1",
        "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "DROP VIEW boxes",
        "ALTER VIEW boxes RENAME TO b2",
        "INSERT INTO _runs (run_id) VALUES ('x')",
        "UPDATE _runs SET status = 'x'",
        "DELETE FROM _runs",
        "TRUNCATE _runs",
        "BEGIN TRANSACTION",
        "PREPARE p AS SELECT 1",
        # multi-statement tricks
        f"SELECT 1; {copy_lake}",
        f"SELECT 1;{copy_lake}",
        "SELECT ';'; DROP VIEW boxes",
        "SELECT 1 /* ; */; DROP VIEW boxes",
        f"SELECT 1;; {wipe}",
        "SELECT 1; ATTACH ':memory:' AS m",
        # writes hidden in CTEs and subqueries
        "WITH x AS (DELETE FROM _runs RETURNING *) SELECT count(*) FROM x",
        "WITH x AS (UPDATE _runs SET status = 'x' RETURNING *) SELECT * FROM x",
        "WITH x AS (INSERT INTO _runs (run_id) VALUES ('x') RETURNING *) SELECT * FROM x",
        "SELECT * FROM (INSERT INTO _runs (run_id) VALUES ('x') RETURNING *)",
        "SELECT (WITH x AS (DELETE FROM _runs RETURNING run_id) SELECT min(run_id) FROM x)",
        "SELECT * FROM boxes WHERE image_id IN "
        "(WITH x AS (DELETE FROM _runs RETURNING run_id) SELECT run_id FROM x)",
        f"WITH x AS ({copy_lake}) SELECT 1",
        # SQL run from text
        f"SELECT * FROM query('{copy_lake.replace(chr(39), chr(39) * 2)}')",
        "SELECT * FROM query('SELECT 1')",
        # files: reads and listings outside the lake, the catalog, traversal, symlinks
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        f"SELECT * FROM read_blob('{cat}')",
        f"SELECT * FROM read_json('{manifest}')",
        "SELECT * FROM glob('/*')",
        f"SELECT * FROM glob('{lake}/**')",
        f"SELECT * FROM glob('{wh.as_posix()}/*')",
        "SELECT * FROM sniff_csv('/etc/passwd')",
        f"SELECT * FROM parquet_metadata('{lake}/../ssl_wc.duckdb')",
        f"SELECT * FROM read_parquet('{lake}/ann_boxes/../../ssl_wc.duckdb')",
        f"SELECT * FROM read_text('{tmpdir}/*')",
        "SELECT * FROM read_csv('/etc/*', union_by_name = true)",
        # junk and tricks of the tongue
        "",
        ";",
        "SELEC nonsense",
        "\u200bEXPLAIN ANALYZE CHECKPOINT",
        "PIVOT boxes ON label USING count(*)",
    ]


#: Attempts that only read or list files outside the lake: refused without
#: --allow-files; with it they may read what they name (what the flag is for), or fail
#: when the file is not of the format they ask for, but never write.
READS = ("SELECT * FROM read_", "SELECT * FROM glob(", "SELECT * FROM sniff_csv(",
         "SELECT * FROM parquet_metadata(")


def _fingerprint(*folders: Path) -> dict[str, str]:
    """sha256 of every file under ``folders`` (locks excluded: their content is a pid)."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_symlink() or p.is_file():
                if ".locks" in p.parts:
                    continue
                key = p.as_posix()
                out[key] = ("link:" + os.readlink(p)) if p.is_symlink() else \
                    hashlib.sha256(p.read_bytes()).hexdigest()
    return out


DRIVER = r'''
import contextlib, io, json, sys
from ssl_wc.cli import main
results = []
for args in json.loads(sys.stdin.read()):
    out, err = io.StringIO(), io.StringIO()
    code = 0
    sys.argv = ["ssl-wc", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    results.append({"code": code, "out": out.getvalue(), "err": err.getvalue()})
json.dump(results, sys.stdout)
'''


def run_cli_batch(argvs: list[list[str]]) -> list[dict]:
    """Run many ``ssl-wc`` command lines through the real entry point (``main``) in one
    process (each attempt as a new process costs a second of start-up)."""
    proc = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(argvs), cwd=ROOT,
                          env=cli_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture()
def target(annotated_wh: WarehousePaths, tmp_path: Path):
    out = tmp_path / "targets"
    out.mkdir()
    lake_file = next((annotated_wh.lake / "ann_boxes").rglob("*.parquet"))
    (out / "link.parquet").symlink_to(lake_file)
    (out / "in.csv").write_text("image_id\nx\n")
    return annotated_wh, out


def test_attack_list_is_large_and_distinct(target):
    wh, out = target
    items = attempts(wh.root, out)
    assert len(items) >= 80 and len(set(items)) == len(items)


def test_cli_refuses_every_attempt_and_changes_nothing(target):
    wh, out = target
    items = attempts(wh.root, out)
    before = _fingerprint(wh.root, out)
    argvs = [["-w", str(wh.root), "sql", q, *extra] for extra in ([], ["--allow-files"])
             for q in items]
    results = run_cli_batch(argvs)
    reads = 0
    for argv, res in zip(argvs, results, strict=True):
        q, with_files = argv[3], "--allow-files" in argv
        assert "Traceback" not in res["err"], (q, res["err"])
        if with_files and q.startswith(READS) and "https://" not in q:
            reads += res["code"] == 0
            assert res["code"] in (0, 1, 2), (q, res)
            continue
        assert res["code"] == 2, (argv, res)
        lines = res["err"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (q, res["err"])
        assert not res["out"].strip(), (q, res)
    assert reads >= 5  # --allow-files does read the files a query names
    assert _fingerprint(wh.root, out) == before
    assert sorted(p.name for p in out.iterdir()) == ["in.csv", "link.parquet"]


def test_a_few_attempts_as_real_processes(target):
    """The same refusals from separate ``ssl-wc`` processes (exit code, one line)."""
    wh, out = target
    before = _fingerprint(wh.root, out)
    items = attempts(wh.root, out)
    for q in (items[0], items[7], items[75]):
        proc = subprocess.run([*SSL_WC, "-w", str(wh.root), "sql", q, "--allow-files"],
                              cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert _fingerprint(wh.root, out) == before


def test_sql_page_refuses_every_attempt_from_a_link(target, monkeypatch):
    """Opening ``?q=<attack>`` (a shared link) runs nothing harmful."""
    from streamlit.testing.v1 import AppTest

    wh, out = target
    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(wh.root))
    app = str(ROOT / "dashboards" / "app.py")
    before = _fingerprint(wh.root, out)
    shown = 0
    for q in attempts(wh.root, out):
        if not q.strip():
            continue  # an empty ?q= shows the example query
        at = AppTest.from_file(app, default_timeout=90)
        at.query_params["q"] = q
        at.switch_page("pages/sql.py")
        at.run()
        assert not at.exception, (q, [e.value for e in at.exception])
        tables = [df.value for df in at.dataframe if "kind" not in df.value.columns]
        assert not tables, q
        assert at.error or at.warning, q
        shown += 1
    assert shown >= 80
    assert _fingerprint(wh.root, out) == before


# ------------------------------------------------------------------- what does work
def test_reads_work_and_explain_is_plain(annotated_wh):
    res = run_readonly("SELECT count(*) AS n FROM boxes", annotated_wh.root)
    assert res.frame["n"][0] == 134 and not res.truncated
    plan = run_readonly("EXPLAIN SELECT count(*) FROM boxes", annotated_wh.root)
    assert plan.frame.height >= 1
    assert check_query("EXPLAIN SELECT 1") == "EXPLAIN SELECT 1"
    for q in ("DESCRIBE boxes", "SUMMARIZE styles", "SHOW TABLES", "FROM styles",
              "WITH x AS (SELECT 1 AS a) SELECT a FROM x", "VALUES (1), (2)",
              "SELECT 1 -- trailing comment", "/* lead */ SELECT 2;"):
        run_readonly(q, annotated_wh.root)
    lake_file = next((annotated_wh.lake / "ann_boxes").rglob("*.parquet")).as_posix()
    direct = run_readonly(f"SELECT count(*) AS n FROM read_parquet('{lake_file}')",
                          annotated_wh.root)
    assert direct.frame["n"][0] == 134


def test_allow_files_reads_named_files_only(annotated_wh, tmp_path):
    csv = tmp_path / "x.csv"
    csv.write_text("a\n1\n")
    with pytest.raises(QueryRefused, match="--allow-files"):
        run_readonly(f"SELECT * FROM read_csv('{csv}')", annotated_wh.root)
    res = run_readonly(f"SELECT * FROM read_csv('{csv}')", annotated_wh.root, allow_files=True)
    assert res.frame.rows() == [(1,)]
    # a path computed at run time is not "named": still refused
    with pytest.raises(QueryRefused):
        run_readonly(f"SELECT * FROM read_csv('{tmp_path.as_posix()}' || '/x.csv')",
                     annotated_wh.root, allow_files=True)


def test_time_limit(annotated_wh):
    from ssl_wc.sqlguard import QueryTimeout

    slow = "SELECT count(*) FROM range(100000000000) a"
    with pytest.raises(QueryTimeout, match=r"time limit of 0\.5 s"):
        run_readonly(slow, annotated_wh.root, timeout_s=0.5)


def test_cli_formats_and_options(annotated_wh):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SSL_WC, "-w", str(annotated_wh.root), "sql", *args], cwd=ROOT,
                              env=cli_env(), capture_output=True, text=True, timeout=60)

    ok = run("SELECT count(*) AS n FROM images", "--format", "csv")
    assert ok.returncode == 0 and ok.stdout.strip().splitlines() == ["n", "32"]
    nested = run("SELECT [1, 2] AS l, {'a': 1} AS s, 'x' AS t", "--format", "csv")
    assert nested.returncode == 0, nested.stderr
    assert nested.stdout.strip().splitlines()[1] == '"[1, 2]","{""a"": 1}",x'
    js = run("SELECT image_id FROM images ORDER BY 1 LIMIT 1", "--format", "json")
    assert js.returncode == 0 and '"image_id"' in js.stdout
    slow = run("SELECT count(*) FROM range(100000000000) a", "--timeout", "0.5")
    assert slow.returncode == 1 and "time limit" in slow.stderr
    bad = run("SELECT 1", "--timeout", "0")
    assert bad.returncode == 2 and "--timeout" in bad.stderr
