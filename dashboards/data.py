"""The only module of the dashboards that runs queries.

Queries run on read-only connections from a :class:`ssl_wc.readers.ReaderPool`: opened
through :func:`ssl_wc.warehouse.open_reader`, reused while the catalog file keeps its
identity and dropped when an ingest swaps in a new one (a cached reader holds the old
file and never blocks the writer). Queries are the named files in ``sql/queries/`` with
``$name`` parameters (never formatted values). Results are cached with
``st.cache_data`` under the warehouse's commit state
(:func:`ssl_wc.warehouse.commit_state`): when an ingest commits, the next rerun sees the
new catalog without restarting the server.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import streamlit as st
from PIL import Image

# The SQL page's connections register the metric UDFs, whose EMD uses POT; POT imports
# torch (and jax, tensorflow, cupy) at import time unless told not to. The dashboards
# never need those backends, and must not pay for (or depend on) torch.
for _backend in ("PYTORCH", "JAX", "TENSORFLOW", "CUPY"):
    os.environ.setdefault(f"POT_BACKEND_DISABLE_{_backend}", "1")

from ssl_wc.paths import WarehousePaths, resolve_warehouse  # noqa: E402
from ssl_wc.readers import ReaderPool  # noqa: E402
from ssl_wc.sqlfiles import named_query  # noqa: E402
from ssl_wc.sqlguard import (  # noqa: E402
    DEFAULT_TIMEOUT_S,
    QueryResult,
    QueryTimeout,
    run_readonly,
)
from ssl_wc.warehouse import WarehouseMissing, commit_state  # noqa: E402

DEMO_HINT = "run `ssl-wc demo` to build a small demo warehouse"
METRICS_HINT = "run `ssl-wc metrics`"
PCT_METRICS = ("iou", "iou_over_max", "corloc")

#: Metric metadata used when the catalogue lacks a metric (or is empty): label,
#: direction, threshold-free. The warehouse's metric_catalogue wins where it has a row.
FALLBACK_METRICS: dict[str, tuple[str, str, bool]] = {
    "iou": ("IoU@p", "higher", False),
    "iou_over_max": ("IoU / max-IoU @p", "higher", False),
    "corloc": ("CorLoc@p", "higher", False),
    "coverage": ("Coverage (energy pointing game)", "higher", True),
    "pointing_t15": ("Pointing game (15 px tolerance)", "higher", True),
    "pointing_t0": ("Pointing game (exact)", "higher", True),
    "topk_pointing": ("Top-k pointing", "higher", True),
    "relevance_rank_acc": ("Relevance rank accuracy", "higher", True),
    "mse": ("MSE to the soft target", "lower", True),
    "kl": ("KL(target || attention)", "lower", True),
    "emd": ("EMD (8x8 Wasserstein-1)", "lower", True),
}


class DataUnavailable(RuntimeError):
    """Something the page needs is not in the warehouse; the message says what to run."""


class NoWarehouse(DataUnavailable):
    """No warehouse at the configured place."""


@dataclass
class QueryRecord:
    """One query as the pages issued it (collected by the benchmark)."""

    name: str
    params: dict[str, Any]


#: When a list, every query the pages issue is appended to it (benchmark hook).
RECORDER: list[QueryRecord] | None = None

#: The dashboards' read-only connections (one pool per server process).
READERS = ReaderPool()


# --------------------------------------------------------------------------- plumbing
def warehouse_root() -> Path:
    """The warehouse folder: ``$SSL_WC_WAREHOUSE`` or ``./warehouse``."""
    return resolve_warehouse()


def state_token(root: Path | None = None) -> str:
    """Changes whenever a new catalog is swapped in ("missing" when there is none)."""
    return commit_state(root or warehouse_root())


def catalog_updated(root: Path | None = None) -> str | None:
    """When the catalog was last swapped in (local time), None if there is none."""
    try:
        mtime = WarehousePaths(root or warehouse_root()).catalog.stat().st_mtime
    except OSError:
        return None
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime))


def warehouse_exists(root: Path | None = None) -> bool:
    return WarehousePaths(root or warehouse_root()).exists()


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _friendly(exc: duckdb.Error, name: str) -> DataUnavailable:
    text = str(exc).splitlines()[0]
    if isinstance(exc, duckdb.CatalogException):
        return DataUnavailable(
            f"the warehouse catalog lacks something the `{name}` query needs ({text}); it "
            f"was probably built by an older ssl-wc: rerun any `ssl-wc` ingest command (or "
            f"`ssl-wc check`) to rebuild it")
    if isinstance(exc, duckdb.IOException):
        return DataUnavailable(f"could not read the warehouse ({text}); run `ssl-wc check`")
    return DataUnavailable(f"the `{name}` query failed: {text}")


def execute(name: str, params: Mapping[str, Any] | None, root: Path) -> pl.DataFrame:
    """Run named query ``name`` on a pooled read-only connection (no result cache)."""
    if not WarehousePaths(root).exists():
        raise NoWarehouse(f"no warehouse at {root}: {DEMO_HINT}, or point SSL_WC_WAREHOUSE "
                          f"at an existing one")
    sql = named_query(name)
    try:
        with READERS.connection(root) as con:
            rel = con.sql(sql, params=dict(params)) if params else con.sql(sql)
            return rel.pl()
    except WarehouseMissing as exc:
        raise NoWarehouse(f"{exc}") from None
    except duckdb.Error as exc:
        raise _friendly(exc, name) from None


@st.cache_data(show_spinner=False, max_entries=2048)
def _cached(name: str, params: tuple[tuple[str, Any], ...], root: str,
            token: str) -> pl.DataFrame:
    del token  # only part of the cache key
    return execute(name, {k: _thaw(v) for k, v in params}, Path(root))


def query(name: str, **params: Any) -> pl.DataFrame:
    """Cached result of named query ``name`` for the current commit state."""
    if RECORDER is not None:
        RECORDER.append(QueryRecord(name, dict(params)))
    root = warehouse_root()
    frozen = tuple(sorted((k, _freeze(v)) for k, v in params.items()))
    return _cached(name, frozen, str(root), state_token(root))


def clear_caches() -> None:
    """Forget every cached result and pooled connection (tests and the benchmark)."""
    st.cache_data.clear()
    READERS.clear()


def is_baseline(model: str, method: str | None = None) -> bool:
    """Baselines are models ``baseline:<name>`` (method ``baseline``)."""
    return model.startswith(("baseline:", "baseline_")) or method == "baseline"


def display_model(model: str) -> str:
    """``baseline:center_gaussian`` -> ``baseline: center gaussian``."""
    for prefix in ("baseline:", "baseline_"):
        if model.startswith(prefix):
            return "baseline: " + model[len(prefix):].replace("_", " ")
    return model


# --------------------------------------------------------------------------- warehouse
@dataclass(frozen=True)
class Sources:
    """What in the warehouse is synthetic."""

    synthetic: bool = False
    random_weight_models: tuple[str, ...] = ()


def sources() -> Sources:
    df = query("dash_sources")
    if df.height == 0:
        return Sources()
    row = df.row(0, named=True)
    return Sources(bool(row["synthetic"]), tuple(row["random_weight_models"] or ()))


def catalog_info() -> dict[str, str]:
    df = query("dash_catalog_info")
    return dict(zip(df["key"].to_list(), df["value"].to_list(), strict=True))


def protocols() -> pl.DataFrame:
    """Metric protocols, the one with most summaries first."""
    return query("dash_protocols")


@dataclass(frozen=True)
class MetricInfo:
    """One metric: how to label it and which way is better."""

    name: str
    label: str
    direction: str  # higher | lower | info
    threshold_free: bool
    reference: str = ""
    description: str = ""
    percentiles: tuple[int, ...] = field(default_factory=tuple)

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"

    @property
    def arrow(self) -> str:
        return {"higher": "↑", "lower": "↓"}.get(self.direction, "·")

    def title(self, percentile: int | None = None) -> str:
        label = self.label.replace("@p", f"@{percentile}") if percentile else self.label
        return f"{label} {self.arrow}"


def metric_infos(protocol: str | None) -> dict[str, MetricInfo]:
    """Metrics with summaries (in catalogue order), merged with the metric catalogue."""
    cat = {r["metric"]: r for r in query("dash_metric_catalogue").iter_rows(named=True)}
    avail = (query("dash_metrics_available", protocol=protocol) if protocol
             else pl.DataFrame({"metric": [], "percentiles": []}))
    pcts = {r["metric"]: tuple(int(p) for p in r["percentiles"] or ())
            for r in avail.iter_rows(named=True)}
    names = [m for m in FALLBACK_METRICS if m in pcts] + sorted(
        m for m in pcts if m not in FALLBACK_METRICS)
    out: dict[str, MetricInfo] = {}
    for m in names:
        label, direction, tf = FALLBACK_METRICS.get(m, (m, "higher", not pcts.get(m)))
        row = cat.get(m)
        if row is not None:
            label = row["label"] or label
            direction = row["direction"] or direction
            tf = bool(row["threshold_free"]) if row["threshold_free"] is not None else tf
        out[m] = MetricInfo(m, label, direction, tf and not pcts.get(m),
                            (row or {}).get("reference") or "",
                            (row or {}).get("description") or "", pcts.get(m, ()))
    return out


def warehouse_summary() -> pl.DataFrame:
    return query("dash_warehouse_summary")


def runs() -> pl.DataFrame:
    return query("dash_runs")


def ingest_errors() -> pl.DataFrame:
    return query("dash_ingest_errors")


# --------------------------------------------------------------------------- annotations
def gallery() -> pl.DataFrame:
    """Every annotated image with styles, features and file (one row per image)."""
    return query("dash_gallery")


def image_boxes(image_id: str) -> pl.DataFrame:
    return query("dash_image_boxes", image=image_id)


def image_file(row: Mapping[str, Any]) -> Path | None:
    """Absolute path of an image row's file (None when the image has no file)."""
    if not row.get("has_file") or not row.get("path"):
        return None
    p = Path(row["path"])
    if not p.is_absolute():
        p = Path(row.get("image_root") or "") / p
    return p


@st.cache_data(show_spinner=False, max_entries=512)
def _load_photo(path: str, mtime_ns: int, max_side: int) -> np.ndarray:
    del mtime_ns
    with Image.open(path) as src:
        rgb: Image.Image = src.convert("RGB")
    scale = min(1.0, max_side / max(rgb.size))
    if scale < 1.0:
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                         Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def photo(row: Mapping[str, Any], max_side: int = 768) -> np.ndarray | None:
    """The image as RGB, longer side at most ``max_side`` (None if its file is missing)."""
    p = image_file(row)
    if p is None:
        return None
    try:
        mtime = p.stat().st_mtime_ns
    except OSError:
        return None
    try:
        return _load_photo(str(p), mtime, max_side)
    except OSError:
        return None


# --------------------------------------------------------------------------- maps
def map_sources() -> pl.DataFrame:
    return query("dash_map_sources")


def map_index(image_id: str) -> pl.DataFrame:
    """(model, variant, method, layer, head, grid) of every map of one image."""
    return query("dash_map_index", image=image_id)


def attention_grid(model: str, variant: str, method: str, layer: int, head: int,
                   image_id: str) -> np.ndarray | None:
    """One stored map as a (grid_h, grid_w) array, or None when it is not there."""
    df = query("dash_attention_map", model=model, variant=variant, method=method,
               layer=int(layer), head=int(head), image=image_id)
    if df.height == 0:
        return None
    row = df.row(0, named=True)
    gh, gw = int(row["grid_h"]), int(row["grid_w"])
    values = np.asarray(row["values"], dtype=np.float64)
    if values.size != gh * gw:
        raise DataUnavailable(f"the stored map has {values.size} values, not {gh}x{gw}; run "
                              f"`ssl-wc check`")
    return values.reshape(gh, gw)


@dataclass(frozen=True)
class MapFrame:
    """The part of an image a model's maps cover (fractions), and the area lost."""

    left: float = 0.0
    top: float = 0.0
    right: float = 1.0
    bottom: float = 1.0
    area_lost: float = 0.0
    resize_mode: str = "full"

    @property
    def is_full(self) -> bool:
        return (self.left, self.top, self.right, self.bottom) == (0.0, 0.0, 1.0, 1.0)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return self.left, self.top, self.right, self.bottom


def map_frame(model: str, variant: str, image_id: str) -> MapFrame:
    """The frame of one model's maps of one image (the whole image when none is stored)."""
    df = query("dash_map_frame", model=model, variant=variant, image=image_id)
    if df.height == 0:
        return MapFrame()
    r = df.row(0, named=True)
    return MapFrame(float(r["frame_left"]), float(r["frame_top"]), float(r["frame_right"]),
                    float(r["frame_bottom"]), float(r["area_lost"] or 0.0),
                    str(r["resize_mode"] or "full"))


def token_layers(model: str, variant: str, image_id: str) -> list[int]:
    """Layers with stored patch tokens for one model, variant and image."""
    return [int(v) for v in query("dash_token_layers", model=model, variant=variant,
                                  image=image_id)["layer"].to_list()]


def box_similarity_grid(model: str, variant: str, layer: int, image_id: str,
                        box: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(similarity (gh, gw), in-box mask (gh, gw)) of one box, from the SQL macro; None
    without tokens; similarity all NaN for a box outside the map's frame."""
    df = query("dash_box_patch_similarity", model=model, variant=variant, layer=int(layer),
               image=image_id, box=int(box))
    if df.height == 0:
        return None
    gh, gw = int(df["grid_h"][0]), int(df["grid_w"][0])
    if df.height != gh * gw:
        raise DataUnavailable(f"{df.height} patch tokens stored, not {gh}x{gw}; run "
                              "`ssl-wc check`")
    sim = np.asarray(df["similarity"].fill_null(float("nan")).to_list(), np.float64)
    inside = np.asarray(df["in_box"].to_list(), bool)
    return sim.reshape(gh, gw), inside.reshape(gh, gw)


def box_similarity_stats(model: str, variant: str, layer: int, image_id: str,
                         box: int) -> dict[str, Any] | None:
    """Stored in-box / out-of-box similarity of one box and its feature type's mean."""
    df = query("dash_box_similarity", model=model, variant=variant, layer=int(layer),
               image=image_id, box=int(box))
    return df.row(0, named=True) if df.height else None


def model_defaults() -> dict[str, str]:
    """The method each model is ranked by (from its map sources; baselines: baseline)."""
    out: dict[str, str] = {}
    for model, method in map_sources().select("model", "default_method").iter_rows():
        if method and model not in out:
            out[model] = method
    return out


# --------------------------------------------------------------------------- metrics
def image_metric_long(model: str, variant: str, method: str, head: int, image_id: str,
                      protocol: str) -> pl.DataFrame:
    """Every metric of one image (union and each box) at every layer."""
    return query("dash_image_metric_long", model=model, variant=variant, method=method,
                 head=int(head), image=image_id, protocol=protocol)


def layer_means(model: str, variant: str, method: str, head: int,
                protocol: str) -> pl.DataFrame:
    """Dataset mean and CI of every metric at every layer for one map source."""
    return query("dash_map_layer_means", model=model, variant=variant, method=method,
                 head=int(head), protocol=protocol)


def progression(metric: str, percentile: int | None, protocol: str,
                head: int = -1) -> pl.DataFrame:
    """Per-layer mean and CI of one metric for every model, variant and method."""
    return query("dash_progression", metric=metric, percentile=percentile, protocol=protocol,
                 head=int(head))


def target_values(ml: pl.DataFrame, box: int, layer: int | None = None) -> pl.DataFrame:
    """Rows of the long metrics for the union (box -1) or one box, optionally one layer."""
    target = "image" if box < 0 else "box"
    out = ml.filter((pl.col("target") == target) & (pl.col("box_index") == box))
    if layer is not None:
        out = out.filter(pl.col("layer") == layer)
    return out


def metric_value(rows: pl.DataFrame, metric: str, percentile: int | None) -> float | None:
    """The value of one metric in rows of one layer (percentile for the IoU family)."""
    sel = rows.filter(pl.col("metric") == metric)
    if metric in PCT_METRICS:
        sel = sel.filter(pl.col("percentile") == percentile)
    if sel.height == 0:
        return None
    v = sel["value"][0]
    return None if v is None else float(v)


def _metric_params(metric: str, percentile: int | None) -> dict[str, Any]:
    return {"metric": metric, "percentile": percentile if metric in PCT_METRICS else None}


def style_breakdown(model: str, variant: str, method: str, layer: int, metric: str,
                    percentile: int | None, protocol: str, head: int = -1) -> pl.DataFrame:
    return query("dash_style_breakdown", model=model, variant=variant, method=method,
                 layer=int(layer), head=int(head), protocol=protocol,
                 **_metric_params(metric, percentile))


def feature_breakdown(model: str, variant: str, method: str, layer: int, metric: str,
                      percentile: int | None, protocol: str, head: int = -1) -> pl.DataFrame:
    return query("dash_feature_breakdown", model=model, variant=variant, method=method,
                 layer=int(layer), head=int(head), protocol=protocol,
                 **_metric_params(metric, percentile))


def head_ranking(model: str, variant: str, method: str, metric: str, percentile: int | None,
                 protocol: str) -> pl.DataFrame:
    """Heads ranked within each image (by the metric catalogue's direction), per layer."""
    return query("dash_head_ranking", model=model, variant=variant, method=method,
                 protocol=protocol, **_metric_params(metric, percentile))


def head_feature_matrix(model: str, variant: str, method: str, layer: int, metric: str,
                        percentile: int | None, protocol: str) -> pl.DataFrame:
    return query("dash_head_feature_matrix", model=model, variant=variant, method=method,
                 layer=int(layer), protocol=protocol, **_metric_params(metric, percentile))


# --------------------------------------------------------------------------- SQL page
def relations() -> pl.DataFrame:
    """Views and tables people may query, with their columns."""
    return query("dash_relations")


def run_user_sql(sql: str, *, limit: int = 10_000,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> QueryResult:
    """Run ``sql`` through the read-only SQL door that ``ssl-wc sql`` uses
    (:mod:`ssl_wc.sqlguard`: one SELECT, a connection that cannot write, a time limit).

    Raises :class:`ssl_wc.sqlguard.QueryRefused` with the reason for anything refused, and
    :class:`DataUnavailable` when the query fails or runs past ``timeout_s``.
    """
    if RECORDER is not None:
        RECORDER.append(QueryRecord("<sql page>", {"sql": sql}))
    root = warehouse_root()
    if not WarehousePaths(root).exists():
        raise NoWarehouse(f"no warehouse at {root}: {DEMO_HINT}")
    try:
        return run_readonly(sql, root, limit=limit, timeout_s=timeout_s)
    except QueryTimeout as exc:
        raise DataUnavailable(str(exc).replace(" (raise it with --timeout)", "")) from None
    except WarehouseMissing as exc:
        raise NoWarehouse(str(exc)) from None
    except duckdb.Error as exc:
        raise DataUnavailable(str(exc).strip()) from None


# --------------------------------------------------------------------------- helpers
def describe_protocol(protocol_json: str | None) -> str:
    """A one-line summary of a metric protocol's JSON."""
    if not protocol_json:
        return ""
    try:
        obj = json.loads(protocol_json)
    except ValueError:
        return protocol_json[:80]
    if not isinstance(obj, dict):
        return str(obj)[:80]
    return ", ".join(f"{k}={v}" for k, v in list(obj.items())[:6])


def env_warehouse_hint() -> str:
    """Where the warehouse comes from, for messages."""
    return "SSL_WC_WAREHOUSE" if os.environ.get("SSL_WC_WAREHOUSE") else "./warehouse"


# --------------------------------------------------------------------------- embeddings
def feature_sources() -> pl.DataFrame:
    """Stored feature sources: model, variant, kind, layers, images, dimension."""
    return query("dash_feature_sources")


def feature_matrix(model: str, variant: str, layer: int, kind: str
                   ) -> tuple[list[str], list[str], np.ndarray]:
    """(image ids, first listed style of each, (n, d) float64 features) of one source."""
    df = query("dash_features", model=model, variant=variant, layer=int(layer), kind=kind)
    if df.height == 0:
        return [], [], np.zeros((0, 0))
    return (df["image_id"].to_list(), df["style_name"].to_list(),
            np.asarray(df["values"].to_list(), dtype=np.float64))


def neighbors(model: str, variant: str, layer: int, kind: str, image_id: str,
              k: int) -> pl.DataFrame:
    """The ``k`` most similar images to one image in one feature source (cosine)."""
    return query("dash_neighbors", model=model, variant=variant, layer=int(layer), kind=kind,
                 image=image_id, k=int(k))


def knn_agreement(k: int, kind: str, layer_rule: str) -> pl.DataFrame:
    """Mean Jaccard index of the k-NN sets of every two feature sources of one kind."""
    return query("dash_knn_agreement", k=int(k), kind=kind, layer_rule=layer_rule)
