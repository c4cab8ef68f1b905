"""The demo from a fresh start to dashboards answering: every step's duration.

Runs ``ssl-wc demo`` into a new warehouse in a subprocess, as ``make demo`` does after
the install. With ``--fresh`` (the default) the project's bytecode and numba caches are
removed first, so the run pays what a fresh clone pays (compiling the metric kernels).
Then renders the dashboards' first page cold (Streamlit AppTest). Prints the wall and
CPU time of the whole, every committed run's duration as ``ssl-wc runs`` shows it, and
the time between runs (start-up, model building, catalog rebuilds).

    python benchmarks/bench_demo.py [--keep] [--no-fresh] [--taskset 0,1]

On a machine with more cores, ``--taskset 0,1`` pins the demo to two of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def clear_caches() -> int:
    """Remove the project's own __pycache__ folders (bytecode and numba's cache)."""
    n = 0
    for pkg in ("ssl_wc", "ingest", "dashboards"):
        for folder in list((REPO / pkg).rglob("__pycache__")):
            shutil.rmtree(folder, ignore_errors=True)
            n += 1
    return n


def run_demo(root: Path, taskset: str | None) -> tuple[float, float, int]:
    cmd = [sys.executable, "-m", "ssl_wc.cli", "-w", str(root), "demo"]
    if taskset:
        cmd = ["taskset", "-c", taskset, *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSL_WC_")}
    env["PYTHONPATH"] = str(REPO)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        print(out.stdout[-3000:], out.stderr[-3000:])
    return wall, cpu, out.returncode


def first_page(root: Path) -> float:
    """Seconds to render the dashboards' first page from a cold start (AppTest)."""
    os.environ["SSL_WC_WAREHOUSE"] = str(root)
    from streamlit.testing.v1 import AppTest

    t0 = time.perf_counter()
    at = AppTest.from_file(str(REPO / "dashboards" / "app.py"), default_timeout=300)
    at.run()
    problems = [str(e.value) for e in at.exception]
    if problems:
        print("  ! first page:", problems[:2])
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-fresh", action="store_true", help="keep bytecode and numba caches")
    ap.add_argument("--keep", action="store_true", help="keep the demo warehouse")
    ap.add_argument("--taskset", default=None, help="CPU list for taskset (e.g. 0,1)")
    args = ap.parse_args()
    if not args.no_fresh:
        print(f"removed {clear_caches()} __pycache__ folders (a fresh clone's state)")
    root = Path(tempfile.mkdtemp(prefix="ssl-wc-demo-")) / "warehouse"
    load = os.getloadavg()[0]
    wall, cpu, rc = run_demo(root, args.taskset)
    page = first_page(root)
    from ssl_wc.warehouse import read_named

    runs = read_named(root, "dash_runs").sort("started_at")
    print(f"\nssl-wc demo: {wall:.1f} s wall, {cpu:.1f} s CPU (exit {rc}); first dashboard "
          f"page {page:.1f} s; total {wall + page:.1f} s (goal: 120 s on a quiet 2-core "
          f"machine). {os.cpu_count()} CPUs{' pinned to ' + args.taskset if args.taskset else ''}"
          f", load average {load:.1f} before, {os.getloadavg()[0]:.1f} after.")
    print(f"\n{'step (run kind)':34} {'status':10} {'seconds':>8} {'gap before':>10}")
    prev_end: dt.datetime | None = None
    steps = 0.0
    for r in runs.iter_rows(named=True):
        start, end = r["started_at"], r.get("ended_at")
        gap = (start - prev_end).total_seconds() if prev_end and start else 0.0
        secs = float(r["seconds"] or 0.0)
        steps += secs
        print(f"{r['kind']:34} {r['status']:10} {secs:8.1f} {gap:10.1f}")
        prev_end = end or prev_end
    print(f"{'sum of the runs':34} {'':10} {steps:8.1f}   (the rest: start-up, demo data, "
          f"tiny models, catalog rebuilds, the leaderboard print)")
    if not args.keep:
        shutil.rmtree(root.parent, ignore_errors=True)
    else:
        print(f"warehouse kept at {root}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
