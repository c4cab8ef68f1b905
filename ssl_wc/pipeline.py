"""``ssl-wc run``: the whole pipeline in order, under one lock, from a TOML config.

Steps: annotations, images, attention, metrics, faithfulness, stats. Each step is incremental (it
skips what is already committed). A failing step or item is recorded and the run ends
as partial; ``strict`` makes the first failure fatal. One pipeline per warehouse at a
time: the lock is an ``flock`` that the OS drops when its holder dies.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssl_wc.lake.locks import FileLock
from ssl_wc.paths import WarehousePaths

STEPS = ("annotations", "images", "attention", "metrics", "faithfulness", "stats")


class ConfigError(ValueError):
    """A pipeline config that does not validate (names the file and the key)."""


# section -> key -> (accepted python types, default). Validation is strict: an unknown key
# or a wrong type is refused, never ignored or coerced.
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], Any]]] = {
    "pipeline": {"steps": ((list,), list(STEPS)), "strict": ((bool,), False)},
    "annotations": {"path": ((str,), None), "style_names": ((str,), None),
                    "churches": ((str,), None), "strict": ((bool,), True)},
    "images": {"folder": ((str,), None), "strict": ((bool,), False)},
    "attention": {"models": ((list,), ["dinov2", "dinov3", "mae", "clip", "siglip2", "siglip",
                                       "siglip2_naflex", "resnet50"]),
                  "patch_tokens": ((list, str), "last"),
                  "methods": ((list,), ["cls", "rollout", "mean", "map"]),
                  "layers": ((list, str), "all"), "heads": ((list, str), "all"),
                  "batch_size": ((int,), 8), "device": ((str,), "auto"),
                  "model_config": ((str,), None), "variant": ((str,), "frozen"),
                  "features": ((bool,), True), "shard": ((str,), None),
                  "engine": ((str,), "local"), "address": ((str,), None),
                  "workers": ((int,), 1), "gpus_per_worker": ((float, int), None)},
    "metrics": {"enabled": ((bool,), True), "baselines": ((bool,), True)},
    "faithfulness": {"enabled": ((bool,), True), "checks": ((list,), ["deletion", "mprt"]),
                     "models": ((list, str), "all"), "methods": ((list, str), "all"),
                     "layers": ((list, str), "all"), "steps": ((int,), 16),
                     "imputation": ((str,), "road"), "controls": ((bool,), True),
                     "batch_size": ((int,), 32), "device": ((str,), "auto")},
    "stats": {"enabled": ((bool,), True), "probe": ((bool,), True)},
}
LIST_ITEM_TYPES = {("pipeline", "steps"): str, ("attention", "models"): str,
                   ("attention", "methods"): str, ("attention", "layers"): int,
                   ("attention", "heads"): int, ("attention", "patch_tokens"): int,
                   ("faithfulness", "checks"): str,
                   ("faithfulness", "models"): str, ("faithfulness", "methods"): str,
                   ("faithfulness", "layers"): int}
#: keys that take the string "all" or an array
ALL_OR_LIST = {("attention", "layers"), ("attention", "heads"), ("faithfulness", "models"),
               ("faithfulness", "methods"), ("faithfulness", "layers")}


@dataclass
class PipelineConfig:
    """Validated settings; ``sections[section][key]`` with defaults filled in."""

    sections: dict[str, dict[str, Any]]
    source: str = "<defaults>"

    def get(self, section: str, key: str) -> Any:
        return self.sections[section][key]


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join({list: "array", str: "string", bool: "boolean", int: "integer",
                             float: "number"}[t]
                       for t in types)


def validate(raw: dict[str, Any], source: str = "<config>") -> PipelineConfig:
    """Check every key and type against :data:`SCHEMA`; fill defaults."""
    out: dict[str, dict[str, Any]] = {s: {k: d for k, (_, d) in keys.items()}
                                      for s, keys in SCHEMA.items()}
    for section, body in raw.items():
        if section not in SCHEMA:
            raise ConfigError(f"{source}: unknown section [{section}]; known: "
                              f"{', '.join(SCHEMA)}")
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{section}] must be a table")
        for key, value in body.items():
            if key not in SCHEMA[section]:
                raise ConfigError(f"{source}: unknown key {section}.{key}; known: "
                                  f"{', '.join(SCHEMA[section])}")
            types, _ = SCHEMA[section][key]
            # bool is an int in Python: refuse true/false where an integer is expected
            ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
            if not ok:
                raise ConfigError(f"{source}: {section}.{key} must be {_type_name(types)}, "
                                  f"got {type(value).__name__} {value!r}")
            item_t = LIST_ITEM_TYPES.get((section, key))
            if isinstance(value, list) and item_t is not None:
                for i, v in enumerate(value):
                    if not isinstance(v, item_t) or isinstance(v, bool):
                        raise ConfigError(f"{source}: {section}.{key}[{i}] must be "
                                          f"{_type_name((item_t,))}, got {v!r}")
            if isinstance(value, str) and (section, key) in ALL_OR_LIST and value != "all":
                raise ConfigError(f"{source}: {section}.{key} must be \"all\" or an array of "
                                  f"integers, got {value!r}")
            if isinstance(value, str) and key == "patch_tokens" and \
                    value not in ("last", "all", "none"):
                raise ConfigError(f"{source}: {section}.{key} must be \"last\", \"all\", "
                                  f"\"none\" or an array of integers, got {value!r}")
            out[section][key] = value
    bad = [s for s in out["pipeline"]["steps"] if s not in STEPS]
    if bad:
        raise ConfigError(f"{source}: pipeline.steps has unknown step(s) {bad}; known: {STEPS}")
    _check_faithfulness(out["faithfulness"], source)
    return PipelineConfig(out, source)


def _check_faithfulness(sec: dict[str, Any], source: str) -> None:
    """Values the faithfulness job would refuse, refused here with the key's name."""
    from ssl_wc.faithfulness.protocol import CHECKS, IMPUTATIONS

    bad = [c for c in sec["checks"] if c not in CHECKS]
    if bad or not sec["checks"]:
        raise ConfigError(f"{source}: faithfulness.checks has unknown check(s) "
                          f"{bad or sec['checks']}; valid: {', '.join(CHECKS)}")
    if sec["imputation"] not in IMPUTATIONS:
        raise ConfigError(f"{source}: faithfulness.imputation must be one of "
                          f"{', '.join(IMPUTATIONS)}, got {sec['imputation']!r}")
    for key, low in (("steps", 2), ("batch_size", 1)):
        if sec[key] < low:
            raise ConfigError(f"{source}: faithfulness.{key} must be >= {low}, got {sec[key]}")


def load_config(path: Path | None) -> PipelineConfig:
    if path is None:
        return validate({})
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    cfg = validate(raw, str(path))
    base = Path(path).resolve().parent
    for section, key in [("annotations", "path"), ("annotations", "style_names"),
                         ("annotations", "churches"), ("images", "folder"),
                         ("attention", "model_config")]:
        v = cfg.sections[section][key]
        if v is not None and not Path(v).is_absolute():
            cfg.sections[section][key] = str(base / v)
    return cfg


@dataclass
class StepOutcome:
    step: str
    status: str  # committed | partial | skipped | failed | not run
    seconds: float = 0.0
    detail: str = ""
    new: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class PipelineResult:
    steps: list[StepOutcome] = field(default_factory=list)
    strict: bool = False

    @property
    def status(self) -> str:
        """success | partial | failed (in strict mode any failure fails the pipeline)."""
        states = {s.status for s in self.steps}
        if self.strict and states & {"failed", "partial"}:
            return "failed"
        if "failed" in states:
            ok = states & {"committed", "partial", "skipped"}
            return "partial" if ok else "failed"
        return "partial" if "partial" in states else "success"


def plan(cfg: PipelineConfig) -> list[tuple[str, str]]:
    """(step, what it would do) without touching anything."""
    out = []
    for step in cfg.get("pipeline", "steps"):
        s = cfg.sections[step]
        if step == "annotations":
            what = f"parse {s['path']}" if s["path"] else "skip (no annotations.path)"
        elif step == "images":
            what = f"scan {s['folder']}" if s["folder"] else "skip (no images.folder)"
        elif step == "attention":
            what = (f"models {','.join(s['models'])}; methods {','.join(s['methods'])}; "
                    f"layers {s['layers']}; heads {s['heads']}; device {s['device']}; "
                    f"batch {s['batch_size']}; engine {s['engine']}"
                    + (f" x{s['workers']}" if s["engine"] == "ray" else ""))
        elif step == "metrics":
            what = ("score every committed map not yet scored" + (" + baselines"
                    if s["baselines"] else "")) if s["enabled"] else "disabled"
        elif step == "faithfulness":
            models = s["models"] if isinstance(s["models"], str) else ",".join(s["models"])
            what = (f"{','.join(s['checks'])} for every committed map not yet checked "
                    f"(models {models}; {s['steps']} steps, {s['imputation']} removal)"
                    if s["enabled"] else "disabled")
        else:
            what = "model comparisons" + (" + linear probe" if s["probe"] else "") \
                if s["enabled"] else "disabled"
        out.append((step, what))
    return out


def _step_fn(step: str, cfg: PipelineConfig, wh: WarehousePaths,
             strict: bool) -> Callable[[], Any] | None:
    s = cfg.sections[step]
    if step == "annotations":
        if not s["path"]:
            return None
        from ingest.annotations import ingest_annotations

        return lambda: ingest_annotations(
            wh, Path(s["path"]), Path(s["style_names"]) if s["style_names"] else None,
            Path(s["churches"]) if s["churches"] else None, strict=s["strict"])
    if step == "images":
        if not s["folder"]:
            return None
        from ingest.images import ingest_images

        return lambda: ingest_images(wh, Path(s["folder"]), strict=s["strict"] or strict)
    if step == "attention":
        from ingest.attention import ingest_attention

        job = attention_job(cfg, strict)
        return lambda: ingest_attention(wh, job)
    if step == "metrics":
        if not s["enabled"]:
            return None
        from ingest.metrics import materialise_metrics

        return lambda: materialise_metrics(wh, baselines=s["baselines"], strict=strict)
    if step == "faithfulness":
        if not s["enabled"]:
            return None
        from ingest.faithfulness import FaithfulnessJob, run_faithfulness
        from ssl_wc.faithfulness.protocol import DeletionProtocol

        def every(v: Any) -> Any:
            return None if v == "all" else v

        fjob = FaithfulnessJob(models=every(s["models"]), methods=every(s["methods"]),
                               layers=every(s["layers"]), checks=s["checks"],
                               deletion=DeletionProtocol(steps=s["steps"],
                                                         imputation=s["imputation"]),
                               controls=s["controls"], batch_size=s["batch_size"],
                               device=s["device"], strict=strict, progress=False)
        return lambda: run_faithfulness(wh, fjob)
    if step == "stats":
        if not s["enabled"]:
            return None
        from ingest.stats import materialise_stats

        return lambda: materialise_stats(wh, probe=s["probe"])
    raise ValueError(step)


def attention_job(cfg: PipelineConfig, strict: bool = False) -> Any:
    """The ``[attention]`` section as an :class:`ingest.attention.AttentionJob`."""
    from ingest.attention import AttentionJob

    s = cfg.sections["attention"]
    return AttentionJob(models=s["models"], methods=s["methods"],
                        layers=None if s["layers"] == "all" else s["layers"],
                        heads=None if s["heads"] == "all" else s["heads"],
                        batch_size=s["batch_size"], device=s["device"],
                        variant=s["variant"], features=s["features"],
                        model_config=Path(s["model_config"]) if s["model_config"] else None,
                        shard=s["shard"], strict=strict, patch_tokens=s["patch_tokens"],
                        engine=s["engine"], address=s["address"], workers=s["workers"],
                        gpus_per_worker=None if s["gpus_per_worker"] is None
                        else float(s["gpus_per_worker"]))


#: (section, key, what it names) of the paths a config may give
_PATHS = (("annotations", "path", "file"), ("annotations", "style_names", "file"),
          ("annotations", "churches", "file"), ("images", "folder", "folder"),
          ("attention", "model_config", "file"))


def check_config(wh: WarehousePaths, cfg: PipelineConfig, *, models: bool = True) -> None:
    """What a run can check before it starts, as :class:`ConfigError` naming the key:
    every path of a step that runs exists, and the attention options hold (with
    ``models``, against each model's layers and heads; the model keys are resolved)."""
    from ingest.attention import check_job, check_options
    from ssl_wc.models.spec import SpecError
    from ssl_wc.options import BadOption

    steps = cfg.get("pipeline", "steps")
    for section, key, kind in _PATHS:
        value = cfg.sections[section][key]
        if section not in steps or value is None:
            continue
        ok = Path(value).is_file() if kind == "file" else Path(value).is_dir()
        if not ok:
            raise ConfigError(f"{cfg.source}: {section}.{key}: {value}: no such {kind}")
    if "attention" not in steps:
        return
    job = attention_job(cfg)
    try:
        check_job(wh, job) if models else check_options(job)
    except BadOption as exc:
        raise ConfigError(exc.line(f"{cfg.source}: attention.{exc.option}")) from None
    except SpecError as exc:
        raise ConfigError(f"{cfg.source}: attention.model_config: {exc}") from None


def run_pipeline(wh: WarehousePaths, cfg: PipelineConfig, *, strict: bool = False,
                 echo: Callable[[str], None] = print) -> PipelineResult:
    """Run the steps in order under the warehouse's pipeline lock."""
    strict = strict or cfg.get("pipeline", "strict")
    result = PipelineResult(strict=strict)
    with FileLock(wh.ensure().locks / "pipeline.lock", blocking=False, label="ssl-wc run"):
        for step in cfg.get("pipeline", "steps"):
            t0 = time.monotonic()
            fn = _step_fn(step, cfg, wh, strict)
            if fn is None:
                result.steps.append(StepOutcome(step, "skipped", 0.0, "not configured"))
                continue
            echo(f"[{step}] ...")
            try:
                res = fn()
            except Exception as exc:
                out = StepOutcome(step, "failed", time.monotonic() - t0,
                                  f"{type(exc).__name__}: {exc}")
                result.steps.append(out)
                echo(f"[{step}] failed: {out.detail}")
                if strict:
                    break
                continue
            results = res if isinstance(res, list) else [res]
            status = _merge_status([r.status for r in results])
            out = StepOutcome(step, status, time.monotonic() - t0,
                              "; ".join(r.message for r in results if r.message),
                              new=sum(r.new for r in results),
                              skipped=sum(r.skipped for r in results),
                              failed=sum(r.failed for r in results))
            result.steps.append(out)
            echo(f"[{step}] {status} in {out.seconds:.1f}s {out.detail}".rstrip())
            if strict and status in ("partial", "failed"):
                break
    return result


def _merge_status(states: list[str]) -> str:
    if not states:
        return "skipped"
    if "failed" in states:
        return "partial" if set(states) - {"failed"} else "failed"
    if "partial" in states:
        return "partial"
    return "committed" if "committed" in states else "skipped"
