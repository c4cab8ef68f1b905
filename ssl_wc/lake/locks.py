"""Advisory locks on files (``flock``): the OS releases them when the holder dies.

No stale lock survives ``kill -9``: the lock file may stay, but nobody holds it.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType


class LockHeld(RuntimeError):
    """Another process holds the lock."""

    def __init__(self, path: Path, holder: str) -> None:
        super().__init__(f"another process holds {path.name} ({holder or 'unknown holder'})")
        self.path = path
        self.holder = holder


class FileLock:
    """Exclusive ``flock`` on ``path``; ``blocking=False`` raises :class:`LockHeld` at once."""

    def __init__(self, path: Path, *, blocking: bool = True, timeout: float | None = None,
                 label: str = "") -> None:
        self.path = path
        self.blocking = blocking
        self.timeout = timeout
        self.label = label
        self._fd: int | None = None

    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not self.blocking or (deadline is not None and time.monotonic() > deadline):
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise LockHeld(self.path, holder) from None
                time.sleep(0.02)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid={os.getpid()} {self.label}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""
