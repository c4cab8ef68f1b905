"""The Ray Data engine of the model jobs (``--engine ray``): batches of items computed on a
fixed-size actor pool, each computed batch streamed back to the driver exactly once.

The job stays in charge of everything else: the dataset holds one row per batch the job
planned (so both engines feed the model identical batches); ``map_batches`` hands each
row to an actor of a :class:`ray.data.ActorPoolStrategy` pool, which builds the job's
batch function once (``factory(*args)``: the model is loaded once per actor) and returns
its result keyed by the batch number. Workers never write to the lake: the driver gets
each result through ``on_batch`` and writes it through its own
:class:`~ssl_wc.lake.runs.Run`, which alone commits. Batches that never arrive (Ray gave
up on them) are returned to the job, which records their items as failed. Design note:
docs/ray.md.

Ray is an optional extra (``pip install -e '.[ray]'``): it is imported here, lazily, and
nothing imports this module unless ``--engine ray`` is asked for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ssl_wc.lake.faults import fault_env, fault_point
from ssl_wc.options import BadOption

ADDRESSES = "auto, local, HOST:PORT, ray://HOST:PORT"


@dataclasses.dataclass(frozen=True)
class RayPlan:
    """Where the actors run: how many, CPUs and GPUs each (fixed once per command)."""

    workers: int
    cpus: float
    gpus: float
    address: str | None


@dataclasses.dataclass
class Outcome:
    """What came back: batches delivered, duplicates dropped, and why Ray stopped early."""

    delivered: set[int]
    missing: list[int]
    duplicates: int
    error: BaseException | None


def _ray() -> Any:
    import ray

    return ray


@contextlib.contextmanager
def ray_session(address: str | None, workers: int,
                gpus_per_worker: float | None) -> Iterator[RayPlan]:
    """Connect to Ray and check that the cluster can host ``workers`` actors; yield their
    resources. ``address`` None: ``$RAY_ADDRESS`` when set (``ray job submit``), else a
    new local instance (never someone else's running one: that takes ``auto``). A Ray
    instance started here is shut down on exit; a connection made earlier is kept."""
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        target = address or os.environ.get("RAY_ADDRESS") or "local"
        try:
            ray.init(address=target, include_dashboard=False, logging_level="WARNING")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BadOption("address", address or "(local)",
                            f"cannot connect to Ray: {str(exc).strip().splitlines()[0]}",
                            ADDRESSES) from None
    try:
        yield plan_resources(ray.nodes(), workers, gpus_per_worker, address)
    finally:
        if started:
            ray.shutdown()


def plan_resources(nodes: list[dict[str, Any]], workers: int, gpus_per_worker: float | None,
                   address: str | None = None) -> RayPlan:
    """GPUs per actor (default: 1 where the cluster has GPUs, else 0) and CPUs per actor
    (GPU actors: 1; CPU actors: the most that still fits ``workers`` actors on the live
    nodes, so one actor on one machine uses all its cores, as the local engine does).
    Raises :class:`BadOption` when the cluster cannot host the actors (Ray would wait)."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    gpu_nodes = [float(r.get("GPU", 0.0)) for r in alive]
    cpu_nodes = [float(r.get("CPU", 0.0)) for r in alive]
    gpus = gpus_per_worker
    if gpus is None:
        gpus = 1.0 if sum(gpu_nodes) > 0 else 0.0
    if gpus > 0:
        fits = sum(int(g // gpus) for g in gpu_nodes)
        if fits < workers:
            raise BadOption("gpus_per_worker", gpus,
                            f"{workers} worker(s) need {workers * gpus:g} GPUs; the Ray "
                            f"cluster has {sum(gpu_nodes):g} ({fits} worker(s) fit)",
                            "0 (CPU workers), a smaller share, or fewer --workers")
        return RayPlan(workers, 1.0, float(gpus), address)
    cpus = max((c for c in range(1, int(max(cpu_nodes, default=0)) + 1)
                if sum(int(n // c) for n in cpu_nodes) >= workers), default=0)
    if cpus == 0:
        total = int(sum(cpu_nodes))
        raise BadOption("workers", workers, f"the Ray cluster has {total} CPUs: at most "
                        f"{total} CPU worker(s) fit", f"1..{max(1, total)}")
    return RayPlan(workers, float(cpus), 0.0, address)


class PoolWorker:
    """A Ray Data actor: ``factory(*args)`` once (it loads the model), then each row's
    batch through it. Rows: ``batch`` (number), ``items`` (the pickled batch); results:
    ``batch`` and ``payload`` (the pickled ``(result, meta)``, meta naming this worker and
    the seconds the batch took)."""

    def __init__(self, factory: Callable[..., Callable[[Any], Any]], args: tuple[Any, ...]
                 ) -> None:
        self.fn = factory(*args)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys, payloads = [], []
        for k, items in zip(rows["batch"], rows["items"], strict=True):
            fault_point("batch")
            t0 = time.monotonic()
            out = self.fn(pickle.loads(items))
            meta = {"worker": self.worker, "seconds": time.monotonic() - t0}
            payloads.append(pickle.dumps((out, meta), protocol=5))
            keys.append(int(k))
        return {"batch": np.asarray(keys, np.int64), "payload": np.asarray(payloads, object)}


def run_on_pool(batches: Sequence[Any], factory: Callable[..., Callable[[Any], Any]],
                args: tuple[Any, ...], rp: RayPlan,
                on_batch: Callable[[int, Any, dict[str, Any]], None], *,
                strict: bool = False) -> Outcome:
    """Compute every batch on the pool; call ``on_batch(k, result, meta)`` once per batch
    as it arrives (in no particular order; a duplicate delivery is dropped). When Ray
    stops early (a batch failed for good), the batches not delivered are returned as
    ``missing`` with the error, unless ``strict`` or nothing arrived: then it raises.
    Errors raised by ``on_batch`` always propagate."""
    ray = _ray()
    ctx = ray.data.DataContext.get_current()
    saved = ctx.enable_progress_bars
    ctx.enable_progress_bars = False  # the job's own progress bar counts written items
    log = logging.getLogger("ray.data")
    saved_level = log.level
    log.setLevel(max(saved_level, logging.WARNING))  # no per-dataset INFO lines
    delivered: set[int] = set()
    duplicates = 0
    error: BaseException | None = None
    try:
        rows = [{"batch": k, "items": pickle.dumps(b, protocol=5)}
                for k, b in enumerate(batches)]
        env = fault_env()  # the test suite's fault hooks travel to the workers
        # Ray Data's actor fault tolerance (its defaults): a dead worker is restarted and
        # its batch retried
        ds = ray.data.from_items(rows, override_num_blocks=max(1, len(rows))).map_batches(
            PoolWorker, batch_size=1, batch_format="numpy",
            fn_constructor_args=(factory, args),
            # no idle actors: never more than there are batches
            compute=ray.data.ActorPoolStrategy(size=max(1, min(rp.workers, len(rows)))),
            num_cpus=rp.cpus, num_gpus=rp.gpus if rp.gpus > 0 else None,
            runtime_env={"env_vars": env} if env else None)
        it = iter(ds.iter_rows())
        while True:
            try:
                row = next(it)
            except StopIteration:
                break
            except Exception as exc:
                if strict or not delivered:
                    raise
                error = exc
                break
            k = int(row["batch"])
            if not 0 <= k < len(batches):
                raise RuntimeError(f"Ray returned an unknown batch number {k}")
            if k in delivered:
                duplicates += 1  # a retried batch delivered twice: written once
                continue
            delivered.add(k)
            out, meta = pickle.loads(row["payload"])
            on_batch(k, out, meta)
    finally:
        ctx.enable_progress_bars = saved
        log.setLevel(saved_level)
    missing = [k for k in range(len(batches)) if k not in delivered]
    return Outcome(delivered, missing, duplicates, error)
