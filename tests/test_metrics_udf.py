"""DuckDB UDFs through a real in-memory connection agree with score_maps."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from ssl_wc.metrics.kernels import MetricProtocol, score_maps
from ssl_wc.metrics.udf import register_udfs


def make_rows() -> list[tuple]:
    rng = np.random.default_rng(0)
    rows = []
    boxes = [[[0.1, 0.2, 0.3, 0.25]], [[0.5, 0.5, 0.2, 0.2], [0.0, 0.0, 0.1, 0.1]], []]
    for i in range(6):
        g = 14 if i < 4 else 16
        rows.append((i, rng.random(g * g).astype(np.float32).tolist(), g, boxes[i % 3]))
    return rows


ROWS = make_rows()


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    register_udfs(c)
    register_udfs(c)  # idempotent
    c.execute("CREATE TABLE maps (id INTEGER, v FLOAT[], g INTEGER, boxes FLOAT[][])")
    c.executemany("INSERT INTO maps VALUES (?, ?, ?, ?)", ROWS)
    return c


def expected(rows, protocol=MetricProtocol()):
    out = {}
    for i, v, g, b in rows:
        m = np.asarray(v, dtype=np.float32).astype(np.float64).reshape(1, g, g)
        out[i] = score_maps(
            m, [np.asarray(b, dtype=np.float32).astype(np.float64).reshape(-1, 4)], protocol
        )
    return out


def test_udfs_match_score_maps(con) -> None:
    got = con.sql(
        "SELECT id, iou_at(v, g, g, boxes, 90), coverage(v, g, g, boxes), "
        "pointing_hit(v, g, g, boxes, 15), soft_mse(v, g, g, boxes), "
        "soft_kl(v, g, g, boxes), soft_emd(v, g, g, boxes), iou_at(v, g, g, boxes, 50) "
        "FROM maps ORDER BY id"
    ).fetchall()
    want = expected(ROWS)
    for row in got:
        tf, pp = want[row[0]]
        ref = [
            pp["iou"][0, 6],
            tf["coverage"][0],
            tf["pointing_t15"][0],
            tf["mse"][0],
            tf["kl"][0],
            tf["emd"][0],
            pp["iou"][0, 0],
        ]
        for value, w in zip(row[1:], ref, strict=True):
            if np.isnan(w):
                assert value is None  # empty target -> NULL, never a hit or a zero
            else:
                assert value == pytest.approx(w, abs=1e-12)


def test_null_inputs_and_tolerance_zero(con) -> None:
    got = con.sql(
        "SELECT pointing_hit(NULL, 14, 14, [[0.1, 0.1, 0.2, 0.2]]::FLOAT[][], 0), "
        "coverage(v, g, g, NULL), pointing_hit(v, g, g, boxes, 0) FROM maps WHERE id = 0"
    ).fetchall()
    assert got[0][0] is None and got[0][1] is None
    tf, _ = expected(ROWS)[0]
    assert got[0][2] == tf["pointing_t0"][0]


def test_wrong_grid_size_is_an_error(con) -> None:
    with pytest.raises(duckdb.Error, match="do not fill"):
        con.sql("SELECT coverage(v, 10, 10, boxes) FROM maps WHERE id = 0").fetchall()
