"""The report opens in headless Chromium offline: no network request, no console error,
every embedded figure decoded. Reuses the dashboards' real-browser harness."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_dashboard_browser import CDP, cdp  # noqa: F401  (the module-scoped fixture)

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(600)]

IMAGES_JS = """
(() => {
  const imgs = [...document.images];
  return {n: imgs.length, ok: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
          figures: document.querySelectorAll('figure').length,
          tables: document.querySelectorAll('table').length,
          title: document.title, text: document.body.innerText.slice(0, 4000)};
})()
"""


def open_offline(client: CDP, url: str, settle_s: float = 2.0) -> list[dict[str, Any]]:
    """Navigate with the network emulated offline; every CDP event until the page settles."""
    for domain in ("Network.enable", "Log.enable", "Runtime.enable", "Page.enable"):
        client.call(domain)
    client.call("Network.emulateNetworkConditions", offline=True, latency=0,
             downloadThroughput=-1, uploadThroughput=-1)
    client.next_id += 1
    client.ws.send(json.dumps({"id": client.next_id, "method": "Page.navigate",
                            "params": {"url": url}}))
    events: list[dict[str, Any]] = []
    loaded_at = None
    deadline = time.monotonic() + 60
    client.ws.settimeout(0.5)
    try:
        while time.monotonic() < deadline:
            try:
                msg = json.loads(client.ws.recv())
            except Exception:  # websocket timeout: nothing new
                msg = None
            if msg is not None and "method" in msg:
                events.append(msg)
                if msg["method"] == "Page.loadEventFired":
                    loaded_at = time.monotonic()
            if loaded_at is not None and time.monotonic() - loaded_at > settle_s:
                break
    finally:
        client.ws.settimeout(30)
    assert loaded_at is not None, "the page never finished loading"
    return events


def test_report_opens_offline_without_errors(scored_report, cdp: CDP) -> None:  # noqa: F811
    url = scored_report.html.as_uri()
    events = open_offline(cdp, url)
    requests = [e["params"]["request"]["url"] for e in events
                if e["method"] == "Network.requestWillBeSent"]
    external = [u for u in requests if not u.startswith(("file://", "data:"))]
    assert not external, external
    errors = [e for e in events if
              (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
              or e["method"] == "Runtime.exceptionThrown"
              or e["method"] == "Network.loadingFailed"]
    assert not errors, errors
    state = cdp.evaluate(IMAGES_JS)
    assert state["n"] >= 12 and state["ok"] == state["n"], state
    assert state["figures"] >= 12 and state["tables"] >= 6
    assert "Not real results" in state["text"] and "Leaderboard" in state["text"]
    shot = cdp.call("Page.captureScreenshot", format="png")
    assert len(shot["data"]) > 10_000
    nb = open_offline(cdp, (scored_report.out / "notebook.html").as_uri(), settle_s=1.0)
    assert not [e for e in nb if e["method"] in ("Runtime.exceptionThrown",
                                                 "Network.loadingFailed")]
