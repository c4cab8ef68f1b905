"""Fault-injection hooks for the test suite: inert unless their variables are set.

Named points mark the phases of the commit protocol (``start``, ``write``, ``publish``,
``manifest``, ``record``, ``catalog``, ``swap``) and a Ray worker's batch (``batch``). A
variable names a point, optionally with the occurrence in this process (``publish:2`` is
the second time ``publish`` is reached):

* ``SSL_WC_FAULT_SLEEP=<seconds>[@point]`` pauses at every point, or at that point only
  (widens the windows for kills);
* ``SSL_WC_FAIL_AT=<point>`` raises ``OSError`` there, like a full disk;
* ``SSL_WC_KILL_AT=<point>`` sends this process ``SIGKILL`` there (``kill -9``).
"""

from __future__ import annotations

import os
import signal
import time

POINTS = ("start", "write", "publish", "manifest", "record", "catalog", "swap", "batch")
VARIABLES = ("SSL_WC_FAULT_SLEEP", "SSL_WC_FAIL_AT", "SSL_WC_KILL_AT")

_HITS: dict[str, int] = {}


def _wanted(var: str, name: str, n: int) -> bool:
    want = os.environ.get(var)
    return bool(want) and want in (name, f"{name}:{n}")


def fault_point(name: str) -> None:
    """Sleep, fail or die here when the test suite asks for it."""
    delay, _, where = os.environ.get("SSL_WC_FAULT_SLEEP", "").partition("@")
    if delay and where in ("", name):
        time.sleep(float(delay))
    n = _HITS[name] = _HITS.get(name, 0) + 1
    if _wanted("SSL_WC_KILL_AT", name, n):
        os.kill(os.getpid(), signal.SIGKILL)
    if _wanted("SSL_WC_FAIL_AT", name, n):
        raise OSError(28, f"No space left on device (injected at {name})")


def fault_env() -> dict[str, str]:
    """The fault variables set in this process, for processes it starts elsewhere (Ray
    workers get them through their runtime environment)."""
    return {v: os.environ[v] for v in VARIABLES if os.environ.get(v)}
