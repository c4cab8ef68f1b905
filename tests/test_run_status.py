"""Run status from facts: a run whose process is gone is ``interrupted``, never
``running``, in ``ssl-wc runs`` and on the Runs page; a live run shows ``running``."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from ssl_wc.lake.runs import Run
from tests.conftest import ROOT, SSL_WC, cli_env


def _runs_cli(wh) -> dict[str, str]:
    out = subprocess.run([*SSL_WC, "-w", str(wh.root), "runs", "--format", "csv"], cwd=ROOT,
                         env=cli_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    import csv
    import io

    return {r["run_id"]: r["status"] for r in csv.DictReader(io.StringIO(out.stdout))}


def _runs_page(wh, monkeypatch) -> dict[str, str]:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("SSL_WC_WAREHOUSE", str(wh.root))
    at = AppTest.from_file(str(ROOT / "dashboards" / "app.py"), default_timeout=90)
    at.switch_page("pages/runs.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(df.value for df in at.dataframe if "run_id" in df.value.columns)
    return dict(zip(table["run_id"], table["status"], strict=True))


def test_killed_run_shows_interrupted_and_live_run_running(annotated_wh, demo_data,
                                                            monkeypatch):
    proc = subprocess.run([*SSL_WC, "-w", str(annotated_wh.root), "ingest", "images",
                           str(demo_data.images), "--force"], cwd=ROOT,
                          env=cli_env(SSL_WC_KILL_AT="publish"), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    killed = sorted(p.stem for p in Path(annotated_wh.runs).glob("*images*.json"))[-1]
    assert _runs_cli(annotated_wh)[killed] == "interrupted"
    assert _runs_page(annotated_wh, monkeypatch)[killed] == "interrupted"
    # a live run (this process) is running, in both places
    run = Run(annotated_wh, "images", {"live": True}).start()
    try:
        assert _runs_cli(annotated_wh)[run.run_id] == "running"
        assert _runs_page(annotated_wh, monkeypatch)[run.run_id] == "running"
    finally:
        run.skip("test over")
    assert _runs_cli(annotated_wh)[run.run_id] == "skipped"
