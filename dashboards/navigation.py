"""The app's pages and its frame: the menu, the sidebar's warehouse line, and the marker
that a page runs inside the app.

Imports point one way: ``app.py`` (the entry point) and ``ui`` (the pages' furniture)
import this module; it imports neither of them. Add a page by appending to
:data:`PAGES`; each page lives in ``dashboards/pages/``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import streamlit as st

from dashboards import data


@dataclass(frozen=True)
class PageSpec:
    """One page of the app: its file under ``dashboards/``, title, icon and URL path."""

    path: str
    title: str
    icon: str
    url_path: str
    section: str = "Explore"


#: The app's pages, in menu order. A new page is one more entry here.
PAGES: list[PageSpec] = [
    PageSpec("pages/gallery.py", "Gallery", ":material/photo_library:", "gallery"),
    PageSpec("pages/image.py", "Image", ":material/image_search:", "image"),
    PageSpec("pages/compare.py", "Compare", ":material/compare:", "compare"),
    PageSpec("pages/embeddings.py", "Embeddings", ":material/scatter_plot:", "embeddings"),
    PageSpec("pages/leaderboard.py", "Leaderboard", ":material/leaderboard:", "leaderboard",
             "Results"),
    PageSpec("pages/heads.py", "Heads", ":material/grid_view:", "heads", "Results"),
    PageSpec("pages/finetune.py", "Fine-tuning", ":material/model_training:", "finetune",
             "Results"),
    PageSpec("pages/runs.py", "Runs", ":material/history:", "runs", "Warehouse"),
    PageSpec("pages/sql.py", "SQL", ":material/terminal:", "sql", "Warehouse"),
]


def navigation(pages: list[PageSpec]) -> dict[str, list[st.Page]]:
    """Pages grouped by section for ``st.navigation`` (the first page is the default)."""
    out: dict[str, list[st.Page]] = {}
    for i, p in enumerate(pages):
        out.setdefault(p.section, []).append(
            st.Page(p.path, title=p.title, icon=p.icon, url_path=p.url_path, default=i == 0))
    return out


def sidebar_status() -> None:
    """Which warehouse is shown and whether it exists."""
    root = data.warehouse_root()
    with st.sidebar:
        if data.warehouse_exists(root):
            updated = data.catalog_updated(root)
            st.caption(f"Warehouse `{root}`" + (f" · catalog updated {updated}" if updated
                                                  else ""))
        else:
            st.caption(f"No warehouse at `{root}` ({data.env_warehouse_hint()})")


_FRAME = threading.local()


@contextmanager
def inside_app() -> Iterator[None]:
    """Mark the current script run as going through the app's navigation."""
    _FRAME.depth = getattr(_FRAME, "depth", 0) + 1
    try:
        yield
    finally:
        _FRAME.depth -= 1


def in_app() -> bool:
    """Whether this script run goes through :func:`run_app`."""
    return getattr(_FRAME, "depth", 0) > 0


def run_app() -> None:
    """The whole app: page config, menu, sidebar status, then the chosen page."""
    st.set_page_config(page_title="ssl-wc", page_icon=":material/church:", layout="wide")
    current = st.navigation(navigation(PAGES))
    sidebar_status()
    with inside_app():
        current.run()
