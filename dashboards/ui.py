"""Shared page furniture: URL-backed controls, the page guard, missing-data messages.

Page state lives in the URL (``st.query_params``) so that a view can be shared: each
control reads its initial value from its query parameter (when the value is still a
valid option) and writes its current value back after every run. Widget keys are
``qp_<param>``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import polars as pl
import streamlit as st

from dashboards import data, heatmap, navigation

T = TypeVar("T")

PERCENTILES = (50, 60, 70, 75, 80, 85, 90, 95)
HEAD_NAMES = {-1: "mean over heads", -2: "max over heads", -3: "min over heads"}


# --------------------------------------------------------------------------- app frame
def ensure_app() -> None:
    """Run a page through the app's navigation even when Streamlit runs it on its own.

    Until some session has called ``st.navigation``, Streamlit treats a ``pages/``
    folder next to the entry point as a legacy multipage app and runs a deep link such
    as ``/image?image=...`` (a shared view, right after a server start) as that page
    file alone: no page config, no menu. Each page calls this first; outside the app it
    runs the app (which runs this page inside it) and stops the outer run.
    """
    if navigation.in_app():
        return
    navigation.run_app()
    st.stop()


# --------------------------------------------------------------------------- URL state
def _tok(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def url_get(key: str) -> str | None:
    """The raw value of query parameter ``key`` (None when absent)."""
    value = st.query_params.get(key)
    return value if isinstance(value, str) else None


def url_set(key: str, value: Any) -> None:
    """Write ``value`` to the URL (only when it changed, so reruns stay quiet)."""
    tok = _tok(value)
    if st.query_params.get(key) != tok:
        st.query_params[key] = tok


def url_drop(*keys: str) -> None:
    """Remove query parameters that no longer apply."""
    for key in keys:
        if key in st.query_params:
            del st.query_params[key]


def url_notice(key: str, raw: str, shown: Any, valid: str, where: Any = None) -> None:
    """Say that the URL's value of ``key`` cannot be shown and what is shown instead
    (never fall back silently: a shared link must not look like it was honoured)."""
    (where or st).warning(f"The link asks for {key} = `{raw}`, which is not available "
                          f"here ({valid}); showing `{_tok(shown)}` instead.",
                          icon=":material/link_off:")


def _valid_text(toks: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(toks[:limit]) + (", ..." if len(toks) > limit else "")
    return f"valid: {shown}"


def _seed(key: str, options: Sequence[T], default: T | None, where: Any = None) -> None:
    """Put a valid value under the widget key before the widget is created; a URL value
    that is not an option is reported (:func:`url_notice`)."""
    wkey = f"qp_{key}"
    current = st.session_state.get(wkey, None)
    if wkey in st.session_state and current in options:
        return
    toks = [_tok(o) for o in options]
    raw = url_get(key)
    if raw is not None and raw in toks:
        st.session_state[wkey] = options[toks.index(raw)]
        return
    if default is not None and default in options:
        st.session_state[wkey] = default
    else:
        st.session_state[wkey] = options[0]
    if raw is not None:
        url_notice(key, raw, st.session_state[wkey], _valid_text(toks), where)


def _options(key: str, options: Sequence[T], default: T | None,
             where: Any = None) -> list[T] | None:
    """The options of a URL-backed control, its state seeded; None (and ``key`` dropped
    from the URL) when there are none."""
    opts = list(options)
    if not opts:
        url_drop(key)
        return None
    _seed(key, opts, default, where)
    return opts


def select(label: str, options: Sequence[T], key: str, *, default: T | None = None,
           format_func: Callable[[Any], str] = str, where: Any = None,
           help: str | None = None) -> T | None:
    """A selectbox whose value lives in query parameter ``key`` (None: no options)."""
    opts = _options(key, options, default, where)
    if opts is None:
        return None
    box = (where or st).selectbox(label, opts, key=f"qp_{key}", format_func=format_func,
                                  help=help)
    url_set(key, box)
    return box


def metric_and_percentile(
    infos: dict[str, data.MetricInfo], *, metric_where: Any = None, pct_where: Any = None,
    pct_format: Callable[[Any], str] = str,
) -> tuple[str, data.MetricInfo, int | None]:
    """The metric selectbox (URL key ``metric``) and, for percentile metrics, the
    percentile slider (URL key ``pct``, default 90); threshold-free metrics drop ``pct``."""
    metric = select("Metric", list(infos), "metric", default="iou", where=metric_where,
                    format_func=lambda m: infos[m].title())
    assert metric is not None
    info = infos[metric]
    pct: int | None = None
    if info.percentiles:
        pct = select_slider("Percentile", list(info.percentiles), "pct",
                            default=90 if 90 in info.percentiles else info.percentiles[-1],
                            where=pct_where, format_func=pct_format)
    else:
        url_drop("pct")
    return metric, info, pct


def radio(label: str, options: Sequence[T], key: str, *, default: T | None = None,
          format_func: Callable[[Any], str] = str, where: Any = None,
          horizontal: bool = True, help: str | None = None) -> T | None:
    """Radio buttons backed by query parameter ``key``."""
    opts = _options(key, options, default, where)
    if opts is None:
        return None
    value = (where or st).radio(label, opts, key=f"qp_{key}", format_func=format_func,
                                horizontal=horizontal, help=help)
    url_set(key, value)
    return value


def select_slider(label: str, options: Sequence[T], key: str, *, default: T | None = None,
                  format_func: Callable[[Any], str] = str, where: Any = None,
                  help: str | None = None) -> T | None:
    """A select slider (e.g. layers, percentiles) backed by query parameter ``key``."""
    opts = _options(key, options, default, where)
    if opts is None:
        return None
    if len(opts) == 1:
        (where or st).caption(f"{label}: {format_func(opts[0])} (the only one stored)")
        url_set(key, opts[0])
        return opts[0]
    value = (where or st).select_slider(label, opts, key=f"qp_{key}", format_func=format_func,
                                        help=help)
    url_set(key, value)
    return value


def slider(label: str, lo: float, hi: float, key: str, *, default: float, step: float,
           where: Any = None, help: str | None = None) -> float:
    """A float slider backed by query parameter ``key`` (out-of-range values ignored)."""
    wkey = f"qp_{key}"
    if wkey not in st.session_state:
        raw = url_get(key)
        try:
            value = float(raw) if raw is not None else default
        except ValueError:
            value = float("nan")
        ok = lo <= value <= hi
        st.session_state[wkey] = value if ok else default
        if raw is not None and not ok:
            url_notice(key, raw, default, f"a number from {lo:g} to {hi:g}", where)
    value = (where or st).slider(label, lo, hi, key=wkey, step=step, help=help)
    url_set(key, round(float(value), 4))
    return float(value)


def int_slider(label: str, lo: int, hi: int, key: str, *, default: int, where: Any = None,
               help: str | None = None) -> int:
    """An integer slider backed by query parameter ``key``."""
    wkey = f"qp_{key}"
    if wkey not in st.session_state or not lo <= st.session_state[wkey] <= hi:
        raw = url_get(key)
        try:
            value = int(raw) if raw is not None else default
        except ValueError:
            value = lo - 1
        fallback = min(max(default, lo), hi)
        ok = lo <= value <= hi
        st.session_state[wkey] = value if ok else fallback
        if raw is not None and not ok:
            url_notice(key, raw, fallback, f"a whole number from {lo} to {hi}", where)
    if lo == hi:
        url_set(key, lo)
        return lo
    value = (where or st).slider(label, lo, hi, key=wkey, step=1, help=help)
    url_set(key, int(value))
    return int(value)


def toggle(label: str, key: str, *, default: bool, where: Any = None,
           help: str | None = None) -> bool:
    """A toggle backed by query parameter ``key`` (1/0)."""
    wkey = f"qp_{key}"
    if wkey not in st.session_state:
        raw = url_get(key)
        st.session_state[wkey] = default if raw not in ("0", "1") else raw == "1"
        if raw is not None and raw not in ("0", "1"):
            url_notice(key, raw, default, "1 or 0", where)
    value = bool((where or st).toggle(label, key=wkey, help=help))
    url_set(key, value)
    return value


def text(label: str, key: str, *, default: str = "", where: Any = None,
         placeholder: str | None = None, help: str | None = None) -> str:
    """A text input backed by query parameter ``key`` (empty: parameter removed)."""
    wkey = f"qp_{key}"
    if wkey not in st.session_state:
        st.session_state[wkey] = url_get(key) or default
    value = (where or st).text_input(label, key=wkey, placeholder=placeholder, help=help)
    if value:
        url_set(key, value)
    else:
        url_drop(key)
    return str(value)


def multiselect(label: str, options: Sequence[T], key: str, *, default: Sequence[T] = (),
                format_func: Callable[[Any], str] = str, where: Any = None,
                max_selections: int | None = None, help: str | None = None) -> list[T]:
    """A multiselect backed by query parameter ``key`` (comma-separated)."""
    opts = list(options)
    toks = [_tok(o) for o in opts]
    wkey = f"qp_{key}"
    current = st.session_state.get(wkey)
    if wkey not in st.session_state or not all(c in opts for c in current or []):
        raw = url_get(key)
        if raw is not None:
            chosen = [opts[toks.index(t)] for t in raw.split(",") if t in toks]
            unknown = [t for t in raw.split(",") if t and t not in toks]
            if unknown:
                url_notice(key, ",".join(unknown), ",".join(_tok(c) for c in chosen) or "none",
                           _valid_text(toks), where)
        else:
            chosen = [d for d in default if d in opts]
        st.session_state[wkey] = chosen[:max_selections] if max_selections else chosen
    value = list((where or st).multiselect(label, opts, key=wkey, format_func=format_func,
                                           max_selections=max_selections, help=help))
    if value:
        url_set(key, ",".join(_tok(v) for v in value))
    else:
        url_drop(key)
    return value


def set_control(key: str, value: Any) -> None:
    """Change a URL-backed control from a callback (before its widget is drawn)."""
    st.session_state[f"qp_{key}"] = value
    url_set(key, value)


# --------------------------------------------------------------------------- labels
def head_label(head: int) -> str:
    return HEAD_NAMES.get(int(head), f"head {int(head)}" if head >= 0 else f"fusion {head}")


def model_label(model: str, variant: str | None = None) -> str:
    """Model name for people, flagged when its weights are random."""
    name = data.display_model(model)
    if variant and variant != "frozen":
        name += f" · {variant}"
    try:
        rnd = model in data.sources().random_weight_models
    except data.DataUnavailable:
        rnd = False
    return name + " (random weights)" if rnd else name


def heads_in_order(heads: list[int]) -> list[int]:
    """Fused heads first (mean, max, min), then single heads in order."""
    return sorted(set(heads), key=lambda h: (0, -h) if h < 0 else (1, h))


def photo_or_placeholder(row: dict[str, Any], max_side: int = 768) -> tuple[np.ndarray, bool]:
    """The image, or a grey canvas of its size when the file is missing."""
    pic = data.photo(row, max_side=max_side)
    if pic is not None:
        return pic, True
    w, h = int(row.get("width") or 640), int(row.get("height") or 480)
    w, h = heatmap.fit_size(w, h, max_side)
    return heatmap.placeholder(w, h), False


def fmt(value: Any, digits: int = 3) -> str:
    """A metric value for display (legible at IoU scale: three decimals)."""
    if value is None:
        return "n/a"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if v != v:  # NaN
        return "n/a"
    return f"{v:.{digits}f}"


def p_value_text(column: str) -> pl.Expr:
    """A p-value column as text for tables: ``3.20e-05``, or ``—`` where there is no
    test (never the word "None")."""
    col = pl.col(column)
    return (pl.when(col.is_null() | col.is_nan()).then(pl.lit(NO_VALUE))
            .otherwise(col.map_elements(lambda v: f"{v:.2e}", return_dtype=pl.String))
            .alias(column))


NO_VALUE = "—"


# --------------------------------------------------------------------------- messages
def missing(what: str, command: str | None = None, note: str | None = None) -> None:
    """A clear "this is not in the warehouse yet" message with the command to run."""
    st.info(f"{what}" + (f": run `{command}`" if command else "") + (f" ({note})" if note
                                                                      else ""),
            icon=":material/info:")


def synthetic_banner() -> None:
    """Say so when the annotations are synthetic or some models have random weights."""
    try:
        src = data.sources()
    except data.DataUnavailable:
        return
    notes = []
    if src.synthetic:
        notes.append("the annotations are **synthetic** (demo data, not WikiChurches)")
    if src.random_weight_models:
        names = ", ".join(src.random_weight_models)
        notes.append(f"**random weights** (no pretrained checkpoint): {names}")
    if notes:
        st.warning("Not real results: " + "; ".join(notes) + ".", icon=":material/science:")


def annotated_gallery() -> pl.DataFrame | None:
    """The annotated images (``data.gallery()``), or None after saying how to ingest them."""
    gal = data.gallery()
    if gal.height == 0:
        missing("No annotated images in the warehouse yet",
                "ssl-wc ingest annotations building_parts.json")
        return None
    return gal


def metric_protocol() -> str | None:
    """:func:`protocol_choice`, or None after saying that ``ssl-wc metrics`` is needed."""
    protocol = protocol_choice()
    if protocol is None:
        missing("No metrics in the warehouse yet", "ssl-wc metrics")
    return protocol


def metric_summaries() -> tuple[str, dict[str, data.MetricInfo]] | None:
    """The protocol and its summarised metrics (``data.metric_infos``), or None after
    saying that ``ssl-wc metrics`` is needed."""
    protocol = metric_protocol()
    if protocol is None:
        return None
    infos = data.metric_infos(protocol)
    if not infos:
        missing("No per-layer metric summaries yet", "ssl-wc metrics")
        return None
    return protocol, infos


def protocol_choice() -> str | None:
    """The metric protocol to show (a sidebar choice only when there are several)."""
    df = data.protocols()
    if df.height == 0:
        return None
    hashes = df["protocol_hash"].to_list()
    if len(hashes) == 1:
        return str(hashes[0])
    desc = dict(zip(hashes, df["protocol_json"].to_list(), strict=True))
    return select("Metric protocol", hashes, "protocol", where=st.sidebar,
                  format_func=lambda h: f"{h[:8]} ({data.describe_protocol(desc[h])[:40]})",
                  help="Metrics computed under different protocols are never mixed.")


@contextmanager
def guard() -> Iterator[None]:
    """Turn missing data and failures into messages instead of tracebacks."""
    try:
        yield
    except data.NoWarehouse as exc:
        st.info(f"{exc}.", icon=":material/database:")
        st.markdown("Build one with `ssl-wc demo` (synthetic, a minute on a laptop), or "
                    "run the pipeline on WikiChurches with `ssl-wc run`, then reload.")
    except data.DataUnavailable as exc:
        st.warning(str(exc), icon=":material/warning:")
    except Exception as exc:  # a page must never show a traceback
        st.warning(f"This view could not be drawn ({type(exc).__name__}: {exc}). Try other "
                   f"controls, or run `ssl-wc check` to verify the warehouse.",
                   icon=":material/warning:")


def page(title: str, caption: str | None = None) -> None:
    """Page title, caption and the synthetic-data banner."""
    st.title(title)
    if caption:
        st.caption(caption)
    if data.warehouse_exists():
        synthetic_banner()


def chart_config() -> dict[str, Any]:
    """Plotly config shared by every chart."""
    return {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2}}
