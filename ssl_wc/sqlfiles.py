"""Named queries kept as files in ``sql/queries/`` (used by the CLI and dashboards)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

QUERY_DIR = Path(__file__).resolve().parents[1] / "sql" / "queries"


@cache
def named_query(name: str) -> str:
    """Text of ``sql/queries/<name>.sql``; parameters are ``$name`` placeholders."""
    path = QUERY_DIR / f"{name}.sql"
    if not path.is_file():
        raise KeyError(f"no named query {name!r} in {QUERY_DIR}")
    return path.read_text()
