"""The code path before issue 18, from git history, for side-by-side benchmarks.

``previous_tree()`` extracts the whole project at :data:`PREVIOUS` (``git archive``)
into ``bench_out/previous-<rev>/``, so a subprocess can run the old jobs with
``PYTHONPATH`` pointing there. ``previous_metrics()`` imports the old
``ssl_wc.metrics`` package under another name (``prev_metrics``) into this process,
beside the current one: the same maps can then be scored by both in one run.
"""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PREVIOUS = "723075c"
"""The last commit before issue 18 (metric kernels, metrics job, summaries, readers)."""


def _extract(rev: str, paths: list[str], dest: Path) -> None:
    blob = subprocess.run(["git", "-C", str(REPO), "archive", rev, *paths],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")


def previous_tree(rev: str = PREVIOUS) -> Path:
    """The project as of ``rev``, extracted once under bench_out/."""
    dest = REPO / "bench_out" / f"previous-{rev}"
    if not (dest / "pyproject.toml").exists():
        dest.mkdir(parents=True, exist_ok=True)
        _extract(rev, ["."], dest)
    return dest


def previous_metrics(rev: str = PREVIOUS) -> ModuleType:
    """The old ``ssl_wc.metrics.kernels`` module, imported as ``prev_metrics.kernels``."""
    root = REPO / "bench_out" / f"previous-{rev}-pkg"
    pkg = root / "prev_metrics"
    if not (pkg / "kernels.py").exists():
        tmp = root / "src"
        _extract(rev, ["ssl_wc/metrics"], tmp)
        pkg.mkdir(parents=True, exist_ok=True)
        for src in (tmp / "ssl_wc" / "metrics").glob("*.py"):
            text = re.sub(r"\bssl_wc\.metrics\b", "prev_metrics", src.read_text())
            (pkg / src.name).write_text(text)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module("prev_metrics.kernels")
