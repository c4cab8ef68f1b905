"""The stats and probe jobs: the run is open while they compute (durations cover the
work, a crash leaves a failed run), their options are checked, and a snapshot table that
holds rows is never replaced by an empty one unless forced."""

from __future__ import annotations

import json
import time

import pytest

import ingest.stats as stats_job
from ingest.common import refuse_emptying
from ssl_wc.options import BadOption, Refused


def _records(wh, kind: str) -> list[dict]:
    found = [json.loads(p.read_text()) for p in wh.runs.glob(f"*-{kind}-*.json")]
    return sorted(found, key=lambda r: r["started_at"])


@pytest.mark.parametrize("kind, run", [
    ("stats", lambda wh: stats_job.materialise_comparisons(wh, force=True, resamples=200)),
    ("probe", lambda wh: stats_job.materialise_probe(wh, force=True))])
def test_duration_covers_the_computation(scored_wh, monkeypatch, kind, run):
    slow = 1.2
    target = "_comparison_rows" if kind == "stats" else "linear_probe"
    if kind == "stats":
        real = stats_job._comparison_rows

        def slow_rows(*a, **kw):
            time.sleep(slow)
            return real(*a, **kw)

        monkeypatch.setattr(stats_job, target, slow_rows)
    else:
        import ssl_wc.stats.probe as probe_mod

        real_probe = probe_mod.linear_probe
        calls: list[int] = []

        def slow_probe(*a, **kw):
            if not calls:
                time.sleep(slow)
            calls.append(1)
            return real_probe(*a, **kw)

        monkeypatch.setattr(probe_mod, "linear_probe", slow_probe)
    res = run(scored_wh)
    assert res.status == "committed"
    record = _records(scored_wh, kind)[-1]
    assert record["status"] == "committed" and record["seconds"] >= slow
    assert res.seconds >= slow


def test_a_crash_while_computing_leaves_a_failed_run(scored_wh, monkeypatch):
    def boom(*a, **kw):
        raise MemoryError("out of memory while pairing")

    monkeypatch.setattr(stats_job, "_comparison_rows", boom)
    before = len(_records(scored_wh, "stats"))
    with pytest.raises(MemoryError):
        stats_job.materialise_comparisons(scored_wh, force=True)
    runs = _records(scored_wh, "stats")
    assert len(runs) == before + 1
    assert runs[-1]["status"] == "failed" and "out of memory" in runs[-1]["error"]


def test_options_are_checked_before_anything_runs(scored_wh):
    before = sorted(scored_wh.runs.glob("*.json"))
    with pytest.raises(BadOption, match="--folds 1: must be at least 2"):
        stats_job.materialise_probe(scored_wh, max_splits=1)
    with pytest.raises(BadOption, match="--resamples 50: must be at least 100"):
        stats_job.materialise_stats(scored_wh, resamples=50)
    assert sorted(scored_wh.runs.glob("*.json")) == before


def test_an_empty_result_never_replaces_rows(scored_wh, monkeypatch):
    """With no paired values the comparisons would be emptied: refused (the run ends as
    skipped with the reason), unless forced."""
    monkeypatch.setattr(stats_job, "_comparison_rows", lambda *a, **kw: [])
    n_before = _count(scored_wh)
    assert n_before > 0
    with pytest.raises(Refused, match=r"refused: no pair of models .* replace the "
                                      rf"{n_before} rows of model_comparisons"):
        stats_job.materialise_comparisons(scored_wh, force=False, resamples=123)
    assert _records(scored_wh, "stats")[-1]["status"] == "skipped"
    assert _count(scored_wh) == n_before
    forced = stats_job.materialise_comparisons(scored_wh, force=True, resamples=123)
    assert forced.status == "committed" and _count(scored_wh) == 0


def test_refuse_emptying_known_answers(scored_wh):
    refuse_emptying(scored_wh, "model_comparisons", "*", 5, force=False, why="x")  # rows
    refuse_emptying(scored_wh, "model_comparisons", "*", 0, force=True, why="x")  # forced
    refuse_emptying(scored_wh, "no_such_table", "*", 0, force=False, why="x")  # never held
    with pytest.raises(Refused, match="refused: x, so this run"):
        refuse_emptying(scored_wh, "model_comparisons", "*", 0, force=False, why="x")


def _count(wh) -> int:
    from tests.conftest import query_catalog

    return query_catalog(wh, "SELECT count(*) FROM model_comparisons")[0][0]
