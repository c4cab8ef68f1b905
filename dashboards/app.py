"""ssl-wc dashboards: ``streamlit run dashboards/app.py``.

The entry point only declares the pages (add one by appending to :data:`PAGES`) and
draws the sidebar's warehouse line; each page lives in ``dashboards/pages/``. The
warehouse comes from ``$SSL_WC_WAREHOUSE`` (default ``./warehouse``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts only dashboards/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboards import data, ui  # noqa: E402


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


def main() -> None:
    st.set_page_config(page_title="ssl-wc", page_icon=":material/church:", layout="wide")
    current = st.navigation(navigation(PAGES))
    sidebar_status()
    with ui.inside_app():
        current.run()


if __name__ == "__main__":
    main()
