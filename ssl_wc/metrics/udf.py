"""DuckDB Python UDFs over stored patch grids (Arrow-vectorised).

``register_udfs(con)`` adds, with the default protocol's evaluation size (224 x 224):

- ``iou_at(values FLOAT[], grid_h INTEGER, grid_w INTEGER, boxes FLOAT[][], p DOUBLE)``
- ``coverage(values, grid_h, grid_w, boxes)``
- ``pointing_hit(values, grid_h, grid_w, boxes, tol DOUBLE)`` (1.0 / 0.0)
- ``soft_mse``, ``soft_kl``, ``soft_emd`` ``(values, grid_h, grid_w, boxes)``

``values`` is the row-major patch grid, ``boxes`` a list of [left, top, width, height]
fractions. All return DOUBLE; NULL for an empty box list (never a hit or a zero), for
a NULL argument, or an invalid map. UDFs live in the connection, not in the database
file: register them on every connection that needs them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from duckdb.func import FunctionNullHandling, PythonUDFType
from duckdb.sqltypes import DOUBLE, INTEGER

from ssl_wc.metrics.kernels import score_maps
from ssl_wc.metrics.protocol import MetricProtocol

_PROTOCOL = MetricProtocol()


def _as_array(col: Any) -> pa.Array:
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _decode(
    values: Any, grid_h: Any, grid_w: Any, boxes: Any
) -> tuple[list[np.ndarray | None], list[np.ndarray], np.ndarray]:
    """Rows -> (grid map or None, (k, 4) boxes, null mask)."""
    vals = _as_array(values)
    gh = _as_array(grid_h).to_numpy(zero_copy_only=False)
    gw = _as_array(grid_w).to_numpy(zero_copy_only=False)
    bx = _as_array(boxes)
    n = len(vals)
    null = np.asarray(vals.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    null |= np.asarray(bx.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    null |= np.isnan(np.asarray(gh, dtype=np.float64)) | np.isnan(np.asarray(gw, dtype=np.float64))
    offsets = vals.offsets.to_numpy()
    flat = vals.values.to_numpy(zero_copy_only=False).astype(np.float64)
    maps: list[np.ndarray | None] = []
    targets: list[np.ndarray] = []
    for i in range(n):
        if null[i]:
            maps.append(None)
            targets.append(np.zeros((0, 4)))
            continue
        h, w = int(gh[i]), int(gw[i])
        cells = flat[offsets[i] : offsets[i + 1]]
        if h < 1 or w < 1 or cells.size != h * w:
            raise ValueError(
                f"row {i}: {cells.size} values do not fill a {h} x {w} grid (grid_h * grid_w)"
            )
        maps.append(cells.reshape(h, w))
        row_boxes = bx[i].as_py() or []
        if any(b is None or len(b) != 4 for b in row_boxes):
            raise ValueError(f"row {i}: every box must be [left, top, width, height]")
        targets.append(np.array(row_boxes, dtype=np.float64).reshape(-1, 4))
    return maps, targets, null


def _evaluate(
    maps: list[np.ndarray | None],
    targets: list[np.ndarray],
    protocols: list[MetricProtocol],
    family: str,
    column: Callable[[dict[str, np.ndarray], dict[str, np.ndarray]], np.ndarray],
) -> np.ndarray:
    """Score rows grouped by (grid shape, protocol); NaN for skipped rows."""
    out = np.full(len(maps), np.nan)
    groups: dict[tuple[tuple[int, int], MetricProtocol], list[int]] = {}
    for i, m in enumerate(maps):
        if m is not None:
            groups.setdefault((m.shape, protocols[i]), []).append(i)
    for (_, proto), rows in groups.items():
        stack = np.stack([maps[i] for i in rows])  # type: ignore[misc]
        tf, pp = score_maps(stack, [targets[i] for i in rows], proto, families=[family])
        out[rows] = column(tf, pp)
    return out


def _result(values: np.ndarray, null: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.float64(), mask=null | np.isnan(values))


def _per_row_protocol(arg: Any, field: str, null: np.ndarray) -> list[MetricProtocol]:
    raw = np.asarray(_as_array(arg).to_numpy(zero_copy_only=False), dtype=np.float64)
    null |= np.isnan(raw)
    cache: dict[float, MetricProtocol] = {}
    protos = []
    for i, v in enumerate(raw):
        if null[i]:
            protos.append(_PROTOCOL)
            continue
        if v not in cache:
            if field == "percentiles":
                cache[v] = replace(_PROTOCOL, percentiles=(float(v),))
            else:
                cache[v] = replace(_PROTOCOL, pointing_tolerances_px=(float(v),))
        protos.append(cache[v])
    return protos


def iou_at(values: Any, grid_h: Any, grid_w: Any, boxes: Any, p: Any) -> pa.Array:
    """IoU@p of each row (exact top-k, see kernels.score_maps)."""
    maps, targets, null = _decode(values, grid_h, grid_w, boxes)
    protos = _per_row_protocol(p, "percentiles", null)
    maps = [None if null[i] else m for i, m in enumerate(maps)]
    res = _evaluate(maps, targets, protos, "topk", lambda tf, pp: pp["iou"][:, 0])
    return _result(res, null)


def pointing_hit(values: Any, grid_h: Any, grid_w: Any, boxes: Any, tol: Any) -> pa.Array:
    """Pointing game with Euclidean tolerance ``tol`` pixels at 224 x 224 (1.0 / 0.0)."""
    maps, targets, null = _decode(values, grid_h, grid_w, boxes)
    protos = _per_row_protocol(tol, "tolerance", null)
    maps = [None if null[i] else m for i, m in enumerate(maps)]

    def pick(tf: dict[str, np.ndarray], pp: dict[str, np.ndarray]) -> np.ndarray:
        (col,) = [c for c in tf if c.startswith("pointing_t")]
        return tf[col]

    return _result(_evaluate(maps, targets, protos, "pointing", pick), null)


def _simple(family: str, col: str) -> Callable[..., pa.Array]:
    def udf(values: Any, grid_h: Any, grid_w: Any, boxes: Any) -> pa.Array:
        maps, targets, null = _decode(values, grid_h, grid_w, boxes)
        protos = [_PROTOCOL] * len(maps)
        res = _evaluate(maps, targets, protos, family, lambda tf, pp: tf[col])
        return _result(res, null)

    udf.__name__ = col
    udf.__doc__ = f"{col} of each row against its boxes (see kernels.score_maps)."
    return udf


coverage = _simple("coverage", "coverage")
soft_mse = _simple("mse", "mse")
soft_kl = _simple("kl", "kl")
soft_emd = _simple("emd", "emd")

_GRID = [duckdb.list_type(DOUBLE), INTEGER, INTEGER, duckdb.list_type(duckdb.list_type(DOUBLE))]
UDFS: dict[str, tuple[Callable[..., pa.Array], list[Any]]] = {
    "iou_at": (iou_at, [*_GRID, DOUBLE]),
    "coverage": (coverage, _GRID),
    "pointing_hit": (pointing_hit, [*_GRID, DOUBLE]),
    "soft_mse": (soft_mse, _GRID),
    "soft_kl": (soft_kl, _GRID),
    "soft_emd": (soft_emd, _GRID),
}


def register_udfs(con: duckdb.DuckDBPyConnection) -> None:
    """Register the metric UDFs on ``con`` (re-registering on ``con`` replaces them).

    Python UDFs belong to the database instance, which every connection to the same
    file in one process shares: when another live connection (a long-lived reader) has
    registered them already, they are used as they are.
    """
    for name, (fn, params) in UDFS.items():
        with contextlib.suppress(duckdb.Error):
            con.remove_function(name)
        try:
            con.create_function(
                name,
                fn,
                params,
                DOUBLE,
                type=PythonUDFType.ARROW,
                null_handling=FunctionNullHandling.SPECIAL,  # NULL for empty targets
            )
        except duckdb.CatalogException as exc:
            # another open connection of this process to the same file registered it
            # (DuckDB shares one database per file within a process): the same function
            if "already exists" not in str(exc):
                raise
