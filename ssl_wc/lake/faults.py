"""Fault-injection hooks for the test suite: inert unless their variables are set.

Named points mark the phases of the commit protocol (``start``, ``write``, ``publish``,
``manifest``, ``record``, ``catalog``, ``swap``). A variable names a point, optionally
with the occurrence in this process (``publish:2`` is the second time ``publish`` is
reached):

* ``SSL_WC_FAULT_SLEEP=<seconds>`` pauses at every point (widens the windows for kills);
* ``SSL_WC_FAIL_AT=<point>`` raises ``OSError`` there, like a full disk;
* ``SSL_WC_KILL_AT=<point>`` sends this process ``SIGKILL`` there (``kill -9``).
"""

from __future__ import annotations

import os
import signal
import time

POINTS = ("start", "write", "publish", "manifest", "record", "catalog", "swap")

_HITS: dict[str, int] = {}


def _wanted(var: str, name: str, n: int) -> bool:
    want = os.environ.get(var)
    return bool(want) and want in (name, f"{name}:{n}")


def fault_point(name: str) -> None:
    """Sleep, fail or die here when the test suite asks for it."""
    delay = os.environ.get("SSL_WC_FAULT_SLEEP")
    if delay:
        time.sleep(float(delay))
    n = _HITS[name] = _HITS.get(name, 0) + 1
    if _wanted("SSL_WC_KILL_AT", name, n):
        os.kill(os.getpid(), signal.SIGKILL)
    if _wanted("SSL_WC_FAIL_AT", name, n):
        raise OSError(28, f"No space left on device (injected at {name})")
