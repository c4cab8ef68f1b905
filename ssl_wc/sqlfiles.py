"""Where the project's SQL lives: ``sql/*.sql`` (the catalog's macros and views, applied
in name order) and ``sql/queries/<name>.sql`` (named queries of the CLI, the jobs and the
dashboards).

``sql/`` sits next to the ``ssl_wc`` package both in a checkout and in an installed wheel
(``pyproject.toml`` ships it as a data folder), so one relative lookup serves an editable
install, ``pip install .`` and a wheel alike.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
QUERY_DIR = SQL_DIR / "queries"


@cache
def named_query(name: str) -> str:
    """Text of ``sql/queries/<name>.sql``; parameters are ``$name`` placeholders."""
    path = QUERY_DIR / f"{name}.sql"
    if not path.is_file():
        raise KeyError(f"no named query {name!r} in {QUERY_DIR}")
    return path.read_text()
