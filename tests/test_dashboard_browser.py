"""Real-browser test of the dashboards: ``streamlit run`` + headless Chromium over CDP.

Starts the app on a free localhost port against the fixture warehouse, drives Chromium
through the DevTools protocol (websocket-client), and for every page waits (polling,
bounded) until the app is idle and its charts are drawn, checks that no traceback or
error shows, and saves a full-page screenshot (to a temporary folder, and to
``$SSL_WC_SCREENSHOTS`` when set: the README embeds ``docs/screenshots/``).

Skipped when Chromium is missing, unless ``CI`` is set (then it fails).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_fixture import BuiltWarehouse, FixtureSpec, build_warehouse

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
VIEWPORT = (1440, 1000)
PAGE_TIMEOUT_S = 60.0
START_TIMEOUT_S = 60.0

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(420)]


@dataclass(frozen=True)
class PageCheck:
    """A page to open: URL path, query string, charts expected, text that must show."""

    name: str
    path: str
    query: str
    min_charts: int
    must_show: tuple[str, ...]


def find_chromium() -> str | None:
    for c in CHROMIUM_CANDIDATES:
        found = shutil.which(c) if not c.startswith("/") else (c if Path(c).exists() else None)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bytes:
    """Poll ``url`` until it answers 200 (fails early if ``proc`` exits)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return bytes(r.read())
        except OSError as exc:
            last = exc
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s ({last})")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a process group we started, then kill it if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class CDP:
    """A minimal Chrome DevTools Protocol client over one page's websocket."""

    def __init__(self, ws_url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        msg_id = self.next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        res = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"JS failed: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()


#: Page state, polled until the app is idle: running indicator, stale elements, charts.
STATE_JS = """
(() => {
  const q = (s) => document.querySelectorAll(s).length;
  const main = document.querySelector('[data-testid="stMain"]')
            || document.querySelector('section.main') || document.body
            || document.documentElement;
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const app = document.querySelector('[data-testid="stApp"]');
  return {
    script: app ? app.getAttribute('data-test-script-state') : null,
    connection: app ? app.getAttribute('data-test-connection-state') : null,
    app: q('[data-testid="stApp"]') + q('[data-testid="stAppViewContainer"]'),
    running: q('[data-testid="stStatusWidgetRunningIcon"]')
           + q('[data-testid="stStatusWidgetRunningManIcon"]'),
    skeleton: q('[data-testid="stSkeleton"]') + q('[data-testid="stAppSkeleton"]'),
    stale: q('[data-stale="true"]'),
    plots: plots.length,
    drawn: plots.filter(p => p.querySelector('.main-svg')).length,
    exceptions: q('[data-testid="stException"]'),
    blocks: q('[data-testid="stVerticalBlock"]'),
    text: main ? main.innerText : '',
    sidebar: (document.querySelector('[data-testid="stSidebar"]') || {}).innerText || '',
    height: Math.max(main ? main.scrollHeight : 0,
                     document.body ? document.body.scrollHeight : 0),
  };
})()
"""


def wait_idle(cdp: CDP, min_charts: int, timeout: float) -> dict[str, Any]:
    """Poll until the page has rendered, is not running and shows its charts (stable)."""
    deadline = time.monotonic() + timeout
    stable = 0
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            state = cdp.evaluate(STATE_JS) or {}
        except RuntimeError:  # the document is being replaced (navigation)
            state = {}
        ready = (state.get("script") == "notRunning" and state.get("blocks", 0) > 0
                 and state.get("running", 1) == 0 and state.get("skeleton", 1) == 0
                 and state.get("stale", 1) == 0 and state.get("drawn", 0) >= min_charts)
        stable = stable + 1 if ready else 0
        if stable >= 3 or state.get("exceptions"):
            return state
        time.sleep(0.4)
    raise TimeoutError(f"page not ready within {timeout:.0f} s: "
                       f"{ {k: v for k, v in state.items() if k != 'text'} }")


def screenshot(cdp: CDP, path: Path, height: int) -> None:
    """A full-page PNG: the viewport is stretched to the content height first."""
    h = int(min(max(height + 40, VIEWPORT[1]), 6000))
    cdp.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=h,
             deviceScaleFactor=1, mobile=False)
    time.sleep(0.8)  # let the charts re-layout at the new size
    data = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
    path.write_bytes(base64.b64decode(data["data"]))
    cdp.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1],
             deviceScaleFactor=1, mobile=False)


#: Centres of the box-label markers (the last scatter trace of the first chart).
BOX_POINTS_JS = """
(() => {
  const plot = document.querySelectorAll('.js-plotly-plot')[0];
  const traces = plot.querySelectorAll('.scatterlayer .trace');
  const last = traces[traces.length - 1];
  return [...last.querySelectorAll('.point')].map(e => {
    const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; });
})()
"""


def click(cdp: CDP, x: float, y: float) -> None:
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        cdp.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)


ERROR_RE = re.compile(r"Traceback|\bError\b|went wrong|could not be drawn")


@pytest.fixture(scope="module")
def browser_warehouse(tmp_path_factory: pytest.TempPathFactory) -> BuiltWarehouse:
    return build_warehouse(tmp_path_factory.mktemp("browser_wh"), FixtureSpec(seed=3))


@pytest.fixture(scope="module")
def app_url(browser_warehouse: BuiltWarehouse, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "SSL_WC_WAREHOUSE": str(browser_warehouse.root),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(REPO / "dashboards" / "app.py"),
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.headless", "true", "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false", "--global.developmentMode", "false",
             "--client.toolbarMode", "minimal"],
            cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", START_TIMEOUT_S, proc)
        yield f"http://127.0.0.1:{port}"
    except Exception:
        print(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def cdp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CDP]:
    exe = find_chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (required when CI is set)")
        pytest.skip("chromium is not installed")
    port = free_port()
    profile = tmp_path_factory.mktemp("chromium_profile")
    proc = subprocess.Popen(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
         f"--user-data-dir={profile}", f"--remote-debugging-port={port}",
         "--remote-debugging-address=127.0.0.1",
         f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    client: CDP | None = None
    try:
        wait_http(f"http://127.0.0.1:{port}/json/version", 30, proc)
        targets = json.loads(wait_http(f"http://127.0.0.1:{port}/json/list", 10, proc))
        page = next(t for t in targets if t.get("type") == "page")
        client = CDP(page["webSocketDebuggerUrl"])
        client.call("Page.enable")
        client.call("Runtime.enable")
        client.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0],
                    height=VIEWPORT[1], deviceScaleFactor=1, mobile=False)
        yield client
    finally:
        if client is not None:
            client.close()
        stop(proc)


def page_checks(wh: BuiltWarehouse) -> list[PageCheck]:
    """Pages in visiting order; the first is a deep link, right after the server started."""
    image = next(i for i in wh.image_ids if i in wh.files)
    return [
        PageCheck("image", "image", f"image={image}&layer=2&box=-1", 2,
                  ("Metrics", image, "IoU@90")),
        PageCheck("gallery", "", "", 0, ("Gallery", "annotated images", "Open")),
        PageCheck("compare", "compare", f"image={image}&models=dinov2@frozen,clip@frozen", 3,
                  ("Difference map", "red")),
        PageCheck("compare_variant", "compare", f"image={image}&mode=variant&model=clip", 3,
                  ("gained by fine-tuning",)),
        PageCheck("embeddings", "embeddings", "model=dinov2&kind=pooled", 2,
                  ("Nearest neighbours", "Do the models agree on neighbours?",
                   "No images selected")),
        PageCheck("leaderboard", "leaderboard", "metric=iou&pct=90", 4,
                  ("Layer progression", "By style", "By feature type", "higher is better")),
        PageCheck("heads", "heads", "model=dinov2", 3, ("best head", "Heads x feature types")),
        PageCheck("runs", "runs", "", 1, ("Per-item ingest errors", "committed", "failed")),
        PageCheck("sql", "sql", "", 0, ("Views and tables", "relations", "rows")),
    ]


def test_pages_render_in_a_real_browser(app_url: str, cdp: CDP,
                                        browser_warehouse: BuiltWarehouse,
                                        tmp_path: Path) -> None:
    out_dirs = [tmp_path]
    extra = os.environ.get("SSL_WC_SCREENSHOTS")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        out_dirs.append(Path(extra))
    problems: list[str] = []
    for check in page_checks(browser_warehouse):
        url = f"{app_url}/{check.path}" + (f"?{check.query}" if check.query else "")
        cdp.call("Page.navigate", url=url)
        time.sleep(0.3)
        state = wait_idle(cdp, check.min_charts, PAGE_TIMEOUT_S)
        text = str(state.get("text", ""))
        if state.get("exceptions"):
            problems.append(f"{check.name}: a Streamlit exception box is shown")
        bad = ERROR_RE.search(text)
        if bad:
            start = max(0, bad.start() - 80)
            problems.append(f"{check.name}: error text on the page: {text[start:bad.end() + 80]!r}")
        for needle in check.must_show:
            if needle not in text:
                problems.append(f"{check.name}: {needle!r} not on the page")
        if "Explore" not in str(state.get("sidebar", "")):  # the app's menu, not a bare page
            problems.append(f"{check.name}: the app's navigation menu is missing")
        if state.get("drawn", 0) < check.min_charts:
            problems.append(f"{check.name}: {state.get('drawn')} charts < {check.min_charts}")
        for d in out_dirs:
            screenshot(cdp, d / f"{check.name}.png", int(state.get("height", VIEWPORT[1])))
        assert (tmp_path / f"{check.name}.png").stat().st_size > 10_000
        if check.name == "image":
            problems += click_a_box(cdp)
    assert not problems, "\n".join(problems)


def click_a_box(cdp: CDP) -> list[str]:
    """Clicking box #1's label on the picture switches the metrics (and the URL) to it."""
    points = cdp.evaluate(BOX_POINTS_JS) or []
    if len(points) < 2:
        return [f"image: expected box label markers, found {len(points)}"]
    click(cdp, *points[1])
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    while time.monotonic() < deadline:
        state = wait_idle(cdp, 2, PAGE_TIMEOUT_S)
        if "Metrics · box #1" in str(state.get("text", "")):
            search = str(cdp.evaluate("location.search"))
            return [] if "box=1" in search else [f"image: box=1 not in the URL {search}"]
        time.sleep(0.3)
    return ["image: clicking box #1 did not switch the metrics to it"]


#: The drag layer of the first chart (where a lasso is drawn), in page coordinates.
DRAG_AREA_JS = """
(() => {
  const plot = document.querySelectorAll('.js-plotly-plot')[0];
  const r = plot.querySelector('.nsewdrag').getBoundingClientRect();
  return [r.x, r.y, r.width, r.height];
})()
"""


def lasso(cdp: CDP, x: float, y: float, w: float, h: float, inset: float = 6.0) -> None:
    """Draw a lasso along the inside of a rectangle with the left button held."""
    corners = [(x + inset, y + inset), (x + w - inset, y + inset),
               (x + w - inset, y + h - inset), (x + inset, y + h - inset), (x + inset, y + inset)]
    cdp.call("Input.dispatchMouseEvent", type="mouseMoved", x=corners[0][0], y=corners[0][1])
    cdp.call("Input.dispatchMouseEvent", type="mousePressed", x=corners[0][0], y=corners[0][1],
             button="left", buttons=1, clickCount=1)
    for (x0, y0), (x1, y1) in itertools.pairwise(corners):
        for t in (0.25, 0.5, 0.75, 1.0):
            cdp.call("Input.dispatchMouseEvent", type="mouseMoved", x=x0 + t * (x1 - x0),
                     y=y0 + t * (y1 - y0), button="left", buttons=1)
            time.sleep(0.02)
    cdp.call("Input.dispatchMouseEvent", type="mouseReleased", x=corners[-1][0],
             y=corners[-1][1], button="left", buttons=0, clickCount=1)


def test_lasso_on_the_embedding_map_filters_the_gallery(app_url: str, cdp: CDP,
                                                        browser_warehouse: BuiltWarehouse
                                                        ) -> None:
    cdp.call("Page.navigate", url=f"{app_url}/embeddings?model=dinov2&kind=pooled")
    time.sleep(0.3)
    wait_idle(cdp, 2, PAGE_TIMEOUT_S)
    lasso(cdp, *cdp.evaluate(DRAG_AREA_JS))
    n_mapped = len([i for i in browser_warehouse.image_ids if i in browser_warehouse.files])
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    text = ""
    while time.monotonic() < deadline:
        state = wait_idle(cdp, 2, PAGE_TIMEOUT_S)
        text = str(state.get("text", ""))
        if "images selected" in text:
            break
        time.sleep(0.3)
    assert f"{n_mapped} images selected" in text, text[:600]
    search = str(cdp.evaluate("location.search"))
    assert "ids=" in search, search
    assert "Show them in the Gallery" in text
    ids = cdp.evaluate("new URLSearchParams(location.search).get('ids')")
    assert len(str(ids).split(",")) == n_mapped
    # the Gallery, opened on the selection the map wrote to the URL
    cdp.call("Page.navigate", url=f"{app_url}/gallery?ids={ids}")
    time.sleep(0.3)
    state = wait_idle(cdp, 0, PAGE_TIMEOUT_S)
    text = str(state.get("text", ""))
    assert f"Showing the {n_mapped} images selected on the Embeddings map" in text, text[:600]
    assert f"{n_mapped} of {len(browser_warehouse.image_ids)} annotated images" in text
