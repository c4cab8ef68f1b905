"""Crash-safe file writes: temporary name, fsync, rename, fsync of the folder.

A reader sees either the old file or the complete new one, never a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"


def tmp_path_for(final: Path) -> Path:
    """A unique temporary name next to ``final`` (same filesystem, so rename is atomic):
    ``.<name>.<pid>.<8 hex>.tmp``, so that ``gc`` can tell whose it is."""
    return final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")


_OWNER = re.compile(r"\.(\d+)\.[0-9a-f]{8}(?:\.tmp|\.duckdb(?:\.wal)?)$")


def owner_pid(name: str) -> int | None:
    """The pid a temporary file name carries (``tmp_path_for`` and catalog temporaries
    ``catalog.<pid>.<8 hex>.duckdb``), or None."""
    m = _OWNER.search(name)
    return int(m.group(1)) if m else None


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def publish(tmp: Path, final: Path) -> None:
    """fsync ``tmp`` then atomically rename it to ``final`` and fsync the folder."""
    fsync_file(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path; on success publish it as ``final``, on error remove it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(final)
    try:
        yield tmp
        publish(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes_atomic(final: Path, data: bytes) -> None:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(final: Path, obj: Any) -> None:
    write_bytes_atomic(final, json.dumps(obj, indent=1, sort_keys=True, default=str).encode())


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
