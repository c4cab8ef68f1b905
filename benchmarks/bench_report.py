"""Time ``ssl-wc report`` on the demo warehouse against its budget (60 s on 2 cores).

1. Uses the ``ssl-wc demo`` warehouse at ``--warehouse`` (builds it first when the folder
   holds none: minutes).
2. Builds the whole report (HTML, PNG + SVG + PDF figures, CSV + LaTeX tables, the
   notebook export) ``--reps`` times into a temporary folder, each in a fresh process
   (imports and first-use costs included, as a user pays them), and prints the wall time
   of each, the per-section times of the last, and the ratio to the 60 s budget.

    python benchmarks/bench_report.py [--warehouse DIR] [--reps 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--warehouse", type=Path, default=REPO / "warehouse")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    wh = args.warehouse.resolve()
    cli = [sys.executable, "-m", "ssl_wc.cli", "-w", str(wh)]
    if not (wh / "ssl_wc.duckdb").exists():
        print(f"building the demo warehouse at {wh} (once)")
        subprocess.run([*cli, "demo"], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    times = []
    manifest = {}
    for rep in range(args.reps):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "report"
            t0 = time.perf_counter()
            subprocess.run([*cli, "report", "--out", str(out)], check=True, cwd=REPO,
                           stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
            manifest = json.loads((out / "manifest.json").read_text())
        print(f"run {rep + 1}: {times[-1]:.1f} s wall ({len(manifest['figures'])} figures x "
              f"{len([f for f in manifest['formats'] if f != 'html'])} formats, "
              f"{len(manifest['tables'])} tables)")
    print("sections of the last run (s): " + ", ".join(
        f"{k} {v:.1f}" for k, v in manifest["timings"].items()))
    best, worst = min(times), max(times)
    print(f"report build on the demo warehouse: {best:.1f}-{worst:.1f} s wall, "
          f"{worst / BUDGET_S:.2f}x the {BUDGET_S:.0f} s budget "
          f"({'within' if worst <= BUDGET_S else 'OVER'} budget)")


if __name__ == "__main__":
    main()
