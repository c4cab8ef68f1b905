"""Time every query the dashboard pages issue, on a full-scale synthetic warehouse,
before and after issue 18, and every page's cold render.

1. Builds (once; reused afterwards) a warehouse with the test fixture builder at full
   scale: 139 images, 7 models x 12 layers x 13 head values (12 heads + fused mean) x
   3 methods, all metric tables, 4 baselines and the summaries written by the metrics
   job's own summaries step (``tests/dashboard_fixture.py``).
2. Renders every page with Streamlit's AppTest from a cold start (no cached result, no
   open connection), recording each named query and its parameters
   (``dashboards.data.RECORDER``) and the render time (goal: < 1 s).
3. Replays each distinct query ``--reps`` times, interleaved, two ways:
   - after: the app's path now: the current named query on a connection from the
     reader pool (``ssl_wc.readers``), fresh for this benchmark (its first query pays
     the open);
   - before: the path before issue 18: that query's text as of ``previous.PREVIOUS``
     (git history) on a new ``open_reader`` connection per query, closed after.
   and prints p50 / p95 per query against the goal (p95 < 50 ms), with the load average.

    python benchmarks/bench_dashboard_queries.py [--warehouse DIR] [--rebuild] [--reps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("STREAMLIT_LOGGER_LEVEL", "error")  # AppTest in bare mode is chatty
sys.path.insert(0, str(REPO))

import streamlit.logger  # noqa: E402

streamlit.logger.set_log_level("error")
for _noisy in ("streamlit.runtime.caching.cache_data_api",
               "streamlit.runtime.scriptrunner_utils.script_run_context"):
    streamlit.logger.get_logger(_noisy).disabled = True  # bare-mode warnings, per call
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from dashboard_fixture import FixtureSpec, build_warehouse  # noqa: E402
from previous import PREVIOUS, previous_tree  # noqa: E402

from dashboards import data  # noqa: E402
from ssl_wc.readers import ReaderPool  # noqa: E402
from ssl_wc.sqlfiles import named_query  # noqa: E402
from ssl_wc.warehouse import open_reader  # noqa: E402

FIXTURE_VERSION = "dashboard-fixture-3"

#: (page, query parameters) rendered to collect the queries the pages issue
PAGE_STATES: list[tuple[str, dict[str, str]]] = [
    ("gallery", {}),
    ("gallery", {"style": "Gothic", "feature": "Window"}),
    ("image", {}),
    ("image", {"model": "dinov3", "layer": "5", "head": "3", "box": "1", "metric": "kl"}),
    ("image", {"model": "siglip", "method": "map", "pct": "75"}),
    ("compare", {}),
    ("compare", {"models": "dinov3@frozen,dinov2@frozen,clip@frozen", "method": "rollout"}),
    ("leaderboard", {}),
    ("leaderboard", {"metric": "kl", "rank": "best", "rollup": "with descendants"}),
    ("heads", {}),
    ("heads", {"model": "dinov3", "metric": "coverage", "layer": "10"}),
    ("runs", {}),
    ("sql", {}),
    ("finetune", {}),
]


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def ensure_warehouse(root: Path, rebuild: bool) -> None:
    marker = root / "FIXTURE"
    if not rebuild and marker.exists() and marker.read_text().strip() == FIXTURE_VERSION:
        print(f"reusing {root}")
        return
    if root.exists():
        shutil.rmtree(root)
    t0 = time.perf_counter()
    print(f"building the full-scale warehouse in {root} (about 1.5 min) ...", flush=True)
    built = build_warehouse(root, FixtureSpec.full_scale())
    marker.write_text(FIXTURE_VERSION + "\n")
    size = sum(p.stat().st_size for p in (root / "lake").rglob("*.parquet"))
    print(f"built {len(built.image_ids)} images, {size / 1e6:.0f} MB of Parquet in "
          f"{time.perf_counter() - t0:.0f} s")


def record_queries(root: Path) -> tuple[list[data.QueryRecord], dict[str, float]]:
    """Render every page state once (cold cache), recording the queries issued."""
    from streamlit.testing.v1 import AppTest

    os.environ["SSL_WC_WAREHOUSE"] = str(root)
    data.RECORDER = []
    page_seconds: dict[str, float] = {}
    for page, params in PAGE_STATES:
        data.clear_caches()
        at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=300)
        for k, v in params.items():
            at.query_params[k] = v
        at.switch_page(f"pages/{page}.py")
        t0 = time.perf_counter()
        at.run()
        label = page + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        page_seconds[label] = time.perf_counter() - t0
        problems = [str(e.value) for e in at.exception] + [str(e.value) for e in at.error]
        if problems:
            print(f"  ! {label}: {problems[:2]}")
    recorded = data.RECORDER
    data.RECORDER = None
    return recorded, page_seconds


def short(params: dict[str, Any]) -> str:
    keep = {k: v for k, v in params.items() if k not in ("protocol", "sql")}
    return ",".join(f"{k}={v}" for k, v in keep.items())[:60]


def _previous_sql(name: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The query's text before issue 18, and its parameters then."""
    path = previous_tree() / "sql" / "queries" / f"{name}.sql"
    sql = path.read_text() if path.exists() else named_query(name)
    params = dict(params)
    if "$lower" in sql and "lower" not in params:  # the old head ranking took the direction
        cat = data.query("dash_metric_catalogue")
        lower = cat.filter(cat["metric"] == params.get("metric"))["direction"].to_list()
        params["lower"] = bool(lower and lower[0] == "lower")
    return sql, params


def time_queries(root: Path, recorded: list[data.QueryRecord], reps: int
                 ) -> list[dict[str, Any]]:
    """Replay each distinct query, after (the app's reader pool, fresh at the start) and
    then before (previous SQL, a new connection each, with the pool closed so that each
    opens the catalog anew as it did); per query name, the variant with the worst p95
    after.

    Repetitions are interleaved (every query once, then again ...) so that load from
    other processes on the machine spreads over all queries alike.
    """
    distinct: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in recorded:
        distinct.setdefault((rec.name, json.dumps(rec.params, sort_keys=True, default=str)),
                            rec.params)
    pool = data.READERS
    pool.clear()
    after: dict[tuple[str, str], list[float]] = defaultdict(list)
    before: dict[tuple[str, str], list[float]] = defaultdict(list)
    rows: dict[tuple[str, str], int] = {}
    old = {key: _previous_sql(key[0], params) for key, params in distinct.items()
           if key[0] != "<sql page>"}
    for _ in range(reps):
        for key, params in distinct.items():
            name = key[0]
            t0 = time.perf_counter()
            if name == "<sql page>":
                n = data.run_user_sql(params["sql"]).frame.height
            else:
                with pool.connection(root) as con:
                    n = con.sql(named_query(name), params=params or None).pl().height
            after[key].append((time.perf_counter() - t0) * 1000)
            rows[key] = n
    with pool.exclusive(root):  # no pooled connection: every open is a cold one
        for _ in range(reps):
            for key in old:
                sql, old_params = old[key]
                t0 = time.perf_counter()
                con = open_reader(root, udfs=False)
                try:
                    con.sql(sql, params=old_params or None).pl()
                finally:
                    con.close()
                before[key].append((time.perf_counter() - t0) * 1000)
    by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, params in distinct.items():
        t, b = after[key], before.get(key) or [float("nan")]
        by_name[key[0]].append({"params": short(params), "rows": rows[key],
                                "p50": statistics.median(t), "p95": percentile(t, 95),
                                "max": max(t), "before_p50": statistics.median(b),
                                "before_p95": percentile(b, 95)})
    out = []
    for name, runs in by_name.items():
        worst = max(runs, key=lambda r: r["p95"])
        out.append({"query": name, "variants": len(runs), **worst})
    return sorted(out, key=lambda r: -r["p95"])


def connection_floor(root: Path, reps: int) -> dict[str, float]:
    """Cost of open_reader + close alone (every query paid it before), and of a pooled
    checkout with a trivial query (what a query pays now)."""
    opened, pooled = [], []
    pool = ReaderPool()
    with data.READERS.exclusive(root):
        for _ in range(reps):
            t0 = time.perf_counter()
            open_reader(root, udfs=False).close()
            opened.append((time.perf_counter() - t0) * 1000)
    for _ in range(reps):
        t0 = time.perf_counter()
        with pool.connection(root) as con:
            con.sql(named_query("dash_catalog_info")).fetchall()
        pooled.append((time.perf_counter() - t0) * 1000)
    pool.clear()
    return {"open_p50": statistics.median(opened), "open_p95": percentile(opened, 95),
            "pooled_p50": statistics.median(pooled), "pooled_p95": percentile(pooled, 95)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", type=Path, default=REPO / "bench_out" / "dashboard_wh")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--goal-ms", type=float, default=50.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    root = args.warehouse.resolve()
    ensure_warehouse(root, args.rebuild)
    recorded, pages = record_queries(root)
    load_before = os.getloadavg()
    floor = connection_floor(root, args.reps)
    results = time_queries(root, recorded, args.reps)
    load_after = os.getloadavg()
    print(f"\n{len(recorded)} queries issued by {len(PAGE_STATES)} page renders; "
          f"{sum(r['variants'] for r in results)} distinct, {args.reps} reps each, "
          f"interleaved")
    print(f"connection: open_reader + close p50 {floor['open_p50']:.1f} ms, p95 "
          f"{floor['open_p95']:.1f} ms (before: every query); pooled checkout + catalog_info "
          f"p50 {floor['pooled_p50']:.2f} ms, p95 {floor['pooled_p95']:.2f} ms (now)")
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before[0]:.1f} before and "
          f"{load_after[0]:.1f} after timing (other processes skew p95 upwards)\n")
    head = (f"{'query':28} {'vars':>4} {'rows':>6} {'before p50':>10} {'before p95':>10} "
            f"{'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  goal")
    print(f"before: the query text at git {PREVIOUS} on a new connection each; now: the "
          f"current text on the reader pool")
    print(head)
    print("-" * len(head))
    slow = 0
    for r in results:
        ok = r["p95"] < args.goal_ms
        slow += not ok
        print(f"{r['query']:28} {r['variants']:>4} {r['rows']:>6} {r['before_p50']:>10.1f} "
              f"{r['before_p95']:>10.1f} {r['p50']:>8.1f} {r['p95']:>8.1f} {r['max']:>8.1f}  "
              f"{'ok' if ok else 'SLOW'}")
    slow_pages = sum(secs >= 1.0 for secs in pages.values())
    print("\npage render, cold start (AppTest: no cached result, no open connection; goal "
          "< 1 s):")
    for label, secs in pages.items():
        print(f"  {secs:6.2f}  {label}{'' if secs < 1.0 else '  SLOW'}")
    if args.json:
        args.json.write_text(json.dumps({"floor": floor, "queries": results, "pages": pages,
                                         "load": [load_before[0], load_after[0]]}, indent=1))
    print(f"\n{slow} of {len(results)} queries over the {args.goal_ms:.0f} ms p95 goal; "
          f"{slow_pages} of {len(pages)} page renders over 1 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
