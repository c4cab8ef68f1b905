"""Shared plumbing for ingest jobs: the last committed run of a kind, job results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ssl_wc.lake.catalog import LakeState, read_manifests
from ssl_wc.lake.runs import Run
from ssl_wc.options import Refused
from ssl_wc.paths import WarehousePaths


@dataclass
class JobResult:
    """What a job did: its run, status and counts (printed by the CLI and ``ssl-wc run``)."""

    job: str
    status: str  # committed | partial | skipped | failed
    run_id: str | None = None
    new: int = 0
    skipped: int = 0
    failed: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0
    #: per-item problems recorded in ``ingest_errors`` (the CLI shows the first few)
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.job}: {self.status} (new {self.new}, skipped {self.skipped}, "
                f"failed {self.failed}) {self.message}").rstrip()


#: tables whose change makes comparisons stale (metric_long reads all of them)
METRIC_TABLES = ("metrics_map", "metrics_iou", "faithfulness_curves", "mprt_similarity")


def last_manifest(wh: WarehousePaths, kind: str, *, state: LakeState | None = None,
                  **match: Any) -> dict[str, Any] | None:
    """Newest committed manifest of ``kind`` whose summary holds ``match`` (from
    ``state`` when the caller has already read the manifests)."""
    for m in reversed((state or read_manifests(wh)).manifests):
        if m.get("kind") != kind:
            continue
        summ = m.get("summary", {})
        if all(summ.get(k) == v for k, v in match.items()):
            return m
    return None


def live_fingerprint(state: LakeState, tables: tuple[str, ...]) -> str:
    """Hash of which run covers each live unit of ``tables``: changes exactly when a
    commit adds or supersedes their rows (jobs that derive from them compare it)."""
    import hashlib

    live = sorted(f"{t}|{u}|{r}" for (t, u), r in state.live.items() if t in tables)
    return hashlib.sha256("\n".join(live).encode()).hexdigest()[:16]


def unchanged_input(wh: WarehousePaths, kind: str, tables: tuple[str, ...], *, force: bool,
                    what: str, **settings: Any) -> tuple[str, JobResult | None]:
    """For a job derived from ``tables``: the input fingerprint to commit (as ``input``)
    and, unless ``force``, the skip result when the newest committed ``kind`` run saw the
    same input and the same ``settings`` (summary values)."""
    state = read_manifests(wh)
    fp = live_fingerprint(state, tables)
    prev = None if force else last_manifest(wh, kind, state=state)
    if prev is not None:
        summ = prev.get("summary", {})
        if summ.get("input") == fp and all(summ.get(k) == v for k, v in settings.items()):
            return fp, JobResult(kind, "skipped", prev["run_id"],
                                 message=f"{what} unchanged since run {prev['run_id']}")
    return fp, None



def refuse_emptying(wh: WarehousePaths, table: str, unit: str, n_new: int, *, force: bool,
                    why: str, state: LakeState | None = None, run: Run | None = None) -> None:
    """Refuse (:class:`Refused`) a run that would replace the rows of ``table`` that unit
    ``unit`` holds now with none, unless ``force``: a file that went bad must not wipe
    good data. ``why`` says what produced no rows; an open ``run`` ends as skipped with
    the reason (nothing committed)."""
    if n_new or force:
        return
    state = state or read_manifests(wh)
    rid = state.live.get((table, unit))
    if rid is None:
        return
    manifest = next((m for m in state.manifests if m["run_id"] == rid), {})
    held = int(manifest.get("row_counts", {}).get(table, 0))
    if held:
        msg = (f"refused: {why}, so this run would replace the {held} rows of {table} "
               f"committed by run {rid} with none; nothing was written (pass --force to "
               "do it anyway)")
        if run is not None:
            run.skip(msg)
        raise Refused(msg)


def nan_to_null(a: np.ndarray) -> pa.Array:
    """float64 Arrow array with NaN stored as NULL (metric columns: NULL, never NaN)."""
    a = np.asarray(a, dtype=np.float64)
    return pa.array(a, mask=np.isnan(a))
