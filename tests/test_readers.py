"""The cached reader pool: reused while the catalog is unchanged, swapped when a new one
is renamed in, never in a writer's way."""

from __future__ import annotations

import threading

import duckdb
import pytest

from ssl_wc.lake.catalog import rebuild_catalog
from ssl_wc.lake.runs import Run
from ssl_wc.readers import ReaderPool


def _errors(pool: ReaderPool, wh) -> int:
    with pool.connection(wh) as con:
        return int(con.sql("SELECT count(*) FROM ingest_errors").fetchall()[0][0])


def _commit_error(wh, item: str) -> None:
    """A small committed run (one ingest error row): the catalog is rebuilt and renamed in."""
    with Run(wh, "probe-run", {"item": item}) as run:
        run.log_error("test", item, "synthetic")
        run.commit()


def test_one_connection_serves_many_queries(annotated_wh):
    pool = ReaderPool()
    for _ in range(5):
        assert _errors(pool, annotated_wh) >= 0
    assert pool.opened == 1


def test_a_new_catalog_gets_a_new_connection(annotated_wh):
    pool = ReaderPool()
    before = _errors(pool, annotated_wh)
    _commit_error(annotated_wh, "a.jpg")
    assert _errors(pool, annotated_wh) == before + 1  # the new catalog, not the cached one
    assert pool.opened == 2
    assert _errors(pool, annotated_wh) == before + 1
    assert pool.opened == 2


def test_a_held_reader_never_blocks_a_writer(annotated_wh):
    pool = ReaderPool()
    before = _errors(pool, annotated_wh)
    with pool.connection(annotated_wh) as con:  # checked out across two commits
        _commit_error(annotated_wh, "b.jpg")
        rebuild_catalog(annotated_wh)
        # the held connection keeps its consistent (old) snapshot
        assert con.sql("SELECT count(*) FROM ingest_errors").fetchall()[0][0] == before
    assert _errors(pool, annotated_wh) == before + 1
    # the retired connection was closed when it came back
    with pytest.raises(duckdb.Error):
        con.sql("SELECT 1").fetchall()


def test_threads_share_the_pool(annotated_wh):
    pool = ReaderPool()
    expected = _errors(pool, annotated_wh)
    failures: list[str] = []

    def work() -> None:
        try:
            for _ in range(10):
                if _errors(pool, annotated_wh) != expected:
                    failures.append("wrong count")
        except Exception as exc:  # pragma: no cover - reported below
            failures.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert pool.opened <= 6


def test_a_connection_that_failed_is_not_reused(annotated_wh):
    pool = ReaderPool()
    with pytest.raises(duckdb.Error), pool.connection(annotated_wh) as con:
        con.sql("SELECT * FROM no_such_view").fetchall()
    assert _errors(pool, annotated_wh) >= 0
    assert pool.opened == 2


def test_the_sql_page_shares_the_instance_of_the_pooled_readers(scored_wh, monkeypatch):
    """Python UDFs belong to the database instance that the pool keeps open: the SQL
    page's sandboxed connections find them registered and working, query after query."""
    from dashboards import data

    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(scored_wh.root))
    data.READERS.clear()
    try:
        assert data.execute("dash_catalog_info", None, scored_wh.root).height > 0
        sql = ("SELECT count(*) AS n, min(coverage(m.\"values\", m.grid_h, m.grid_w, "
               "[[0.1, 0.1, 0.5, 0.5]])) >= 0 AS ok FROM attention_maps m "
               "WHERE m.layer = 0 AND m.head = -1")
        for _ in range(2):
            res = data.run_user_sql(sql)
            assert res.frame.row(0)[0] > 0 and res.frame.row(0)[1] is True
        assert data.execute("dash_catalog_info", None, scored_wh.root).height > 0
    finally:
        data.READERS.clear()
