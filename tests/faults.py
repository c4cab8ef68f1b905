"""Fault-injection harness: kill jobs with SIGKILL at random points, read concurrently.

Used by the fault suites of every job. Each suite prints its tallies (kills, reruns,
queries, errors) so a CI log shows the result at a glance.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT, SSL_WC, cli_env

TALLY_FILE = ROOT / ".pytest_cache" / "fault_tallies.txt"

READER = r'''
import json, os, sys, time
import duckdb  # the reader never imports ssl_wc: the plain-DuckDB door
cat, out, checks, deadline = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
stats = {"queries": 0, "errors": [], "partial": []}
stop = out + ".stop"
while time.time() < deadline and not os.path.exists(stop):
    try:
        con = duckdb.connect(cat, read_only=True)
        con.execute("SET VARIABLE ssl_wc_root = " + repr(os.path.dirname(cat)))
    except Exception as exc:  # the catalog may not exist yet at the very start
        if "No such file" not in str(exc) and "does not exist" not in str(exc):
            stats["errors"].append("open: " + str(exc)[:200])
        time.sleep(0.02)
        continue
    try:
        for name, sql, allowed in checks:
            rows = con.sql(sql).fetchall()
            stats["queries"] += 1
            if allowed is not None:
                val = rows[0][0] if rows else None
                if val not in allowed:
                    stats["partial"].append(f"{name}: {val!r} not in {allowed!r}")
    except Exception as exc:
        stats["errors"].append(f"{type(exc).__name__}: {str(exc)[:200]}")
    finally:
        con.close()
    time.sleep(0.01)
json.dump(stats, open(out, "w"))
'''


@dataclass
class Tally:
    name: str
    kills: int = 0
    reruns: int = 0
    queries: int = 0
    errors: list[str] = field(default_factory=list)
    partial: list[str] = field(default_factory=list)
    finished_before_kill: int = 0

    def record(self) -> None:
        """Append this tally to the file the session summary prints (see conftest)."""
        with open(TALLY_FILE, "a") as fh:
            fh.write(self.line() + "\n")

    def line(self) -> str:
        return (f"[fault suite] {self.name}: kills={self.kills} "
                f"(job had finished before {self.finished_before_kill}) reruns={self.reruns} "
                f"reader_queries={self.queries} reader_errors={len(self.errors)} "
                f"partial_results={len(self.partial)}")


class Reader:
    """A separate process querying the catalog with plain duckdb until stopped."""

    def __init__(self, catalog: Path, checks: list[tuple[str, str, list | None]],
                 out: Path, seconds: float = 600) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [sys.executable, "-c", READER, str(catalog), str(out), json.dumps(checks),
             str(time.time() + seconds)], cwd=ROOT, env=cli_env())

    def finish(self, tally: Tally, timeout: float = 60) -> None:
        """Stop the reader and add its counts to ``tally``."""
        Path(str(self.out) + ".stop").touch()
        self.proc.wait(timeout)
        stats = json.loads(self.out.read_text())
        tally.queries += stats["queries"]
        tally.errors += stats["errors"]
        tally.partial += stats["partial"]


def kill_rerun_cycles(name: str, args: list[str], warehouse: Path, *, kills: int,
                      max_delay: float, seed: int, fault_sleep: str = "0.05",
                      between: Callable[[], None] | None = None) -> Tally:
    """Start ``ssl-wc -w WH ARGS``, SIGKILL it after a random delay, repeat ``kills`` times;
    then run it once to completion. ``between`` checks the visible state after each kill."""
    rng = random.Random(seed)
    tally = Tally(name)
    env = cli_env(SSL_WC_FAULT_SLEEP=fault_sleep)
    cmd = [*SSL_WC, "-w", str(warehouse), *args]
    for _ in range(kills):
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        time.sleep(rng.uniform(0.0, max_delay))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            tally.kills += 1
        else:
            tally.finished_before_kill += 1
        proc.wait()
        if between is not None:
            between()
    done = subprocess.run(cmd, cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                          timeout=900)
    tally.reruns += 1
    assert done.returncode in (0, 3), done.stderr[-2000:]
    return tally
