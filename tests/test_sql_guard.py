"""`ssl-wc sql` is read-only: writes, DDL, ATTACH, COPY, INSTALL, SET and outside files
are refused; --allow-files lifts only the file fence."""

from __future__ import annotations

import subprocess

import pytest

from ssl_wc.sqlguard import QueryRefused, run_readonly
from tests.conftest import ROOT, SSL_WC, cli_env

REFUSED = [
    "CREATE TABLE t (x INT)",
    "INSERT INTO _runs (run_id) VALUES ('x')",
    "DROP VIEW images",
    "ATTACH '/tmp/other.duckdb' AS o",
    "COPY (SELECT 1) TO '/tmp/out.csv'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET threads = 1",
    "PRAGMA threads = 1",
    "SELECT 1; DROP VIEW boxes",
    "CALL pragma_version()",
    "EXPORT DATABASE '/tmp/x'",
]


@pytest.mark.parametrize("sql", REFUSED)
def test_refused_statements(annotated_wh, sql):
    with pytest.raises(QueryRefused):
        run_readonly(sql, annotated_wh.root)


def test_outside_files_need_allow_files(annotated_wh, tmp_path):
    import duckdb

    csv = tmp_path / "x.csv"
    csv.write_text("a\n1\n")
    with pytest.raises(duckdb.PermissionException):
        run_readonly(f"SELECT * FROM read_csv('{csv}')", annotated_wh.root).fetchall()
    rel = run_readonly(f"SELECT * FROM read_csv('{csv}')", annotated_wh.root, allow_files=True)
    assert rel.fetchall() == [(1,)]


def test_settings_are_locked(annotated_wh):
    rel = run_readonly("SELECT count(*) FROM boxes", annotated_wh.root)
    assert rel.fetchall() == [(134,)]


def test_cli_exit_codes(annotated_wh):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*SSL_WC, "-w", str(annotated_wh.root), "sql", *args], cwd=ROOT,
                              env=cli_env(), capture_output=True, text=True, timeout=60)

    ok = run("SELECT count(*) AS n FROM images", "--format", "csv")
    assert ok.returncode == 0 and ok.stdout.strip().splitlines() == ["n", "32"]
    bad = run("DELETE FROM _runs")
    assert bad.returncode == 2 and "read-only" in bad.stderr
    files = run("SELECT * FROM read_text('/etc/hostname')")
    assert files.returncode == 2 and "--allow-files" in files.stderr
    js = run("SELECT image_id FROM images ORDER BY 1 LIMIT 1", "--format", "json")
    assert js.returncode == 0 and '"image_id"' in js.stdout
