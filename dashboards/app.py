"""ssl-wc dashboards: ``streamlit run dashboards/app.py``.

The entry point only runs the app; the pages (:data:`dashboards.navigation.PAGES`),
the menu and the sidebar's warehouse line live in :mod:`dashboards.navigation`, each
page in ``dashboards/pages/``. The warehouse comes from ``$SSL_WC_WAREHOUSE`` (default
``./warehouse``).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts only dashboards/ on the path
    sys.path.insert(0, str(ROOT))

from dashboards.navigation import run_app  # noqa: E402


def main() -> None:
    run_app()


if __name__ == "__main__":
    main()
