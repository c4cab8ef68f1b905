"""Where a report or an export is written: a fresh folder that appears whole or not at all.

Files are written under a hidden temporary sibling ``.<name>.tmp-<pid>`` and the folder
is renamed into place at the end, so a killed build leaves no half-written output under
the requested name (a leftover temporary folder of a dead process is removed by the next
build). An existing non-empty folder is refused unless ``force`` (then it is replaced
whole, after the new one is complete).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import psutil


class OutputRefused(ValueError):
    """The output folder cannot be used (exists and is not empty, or is a file)."""


def require_known(option: str, given: Sequence[str], known: Sequence[str],
                  error: type[ValueError], what: str = "unknown") -> None:
    """Raise ``error`` naming the values of ``given`` not in ``known``, and the valid ones."""
    bad = [v for v in given if v not in known]
    if bad:
        raise error(f"{option}: {what} {', '.join(bad)}; choose from "
                    f"{', '.join(known) or '(none ingested)'}")


def check_target(out: Path, force: bool, option: str = "--out") -> None:
    """Refuse a target that is a file, or a non-empty folder without ``force``."""
    if out.exists() and not out.is_dir():
        raise OutputRefused(f"{option}: {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputRefused(f"{option}: {out} exists and is not empty; choose another folder "
                            f"or pass --force to replace it")


class StagedFolder:
    """A temporary folder next to ``out``, renamed onto ``out`` by :meth:`commit`."""

    def __init__(self, out: Path, force: bool, option: str = "--out") -> None:
        self.out = out.resolve()
        self.force = force
        check_target(self.out, force, option)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._sweep()
        self.path = self.out.parent / f".{self.out.name}.tmp-{os.getpid()}"
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir()

    def _sweep(self) -> None:
        """Remove temporary folders of earlier builds whose process is gone."""
        for p in self.out.parent.glob(f".{self.out.name}.tmp-*"):
            try:
                pid = int(p.name.rsplit("-", 1)[1])
            except ValueError:
                continue
            if not psutil.pid_exists(pid):
                shutil.rmtree(p, ignore_errors=True)

    def commit(self) -> Path:
        """Put the finished folder in place (replacing ``out`` when forced)."""
        old = None
        if self.out.exists():
            check_target(self.out, self.force)
            old = self.out.parent / f".{self.out.name}.old-{os.getpid()}"
            os.rename(self.out, old)
        os.rename(self.path, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
