"""The read-only SQL door: ``ssl-wc sql`` and the SQL dashboard page both go through it.

Safe by construction, in layers that each hold on their own:

1. **The statement.** DuckDB's own parser must see exactly one statement whose type is
   SELECT (any query form: SELECT, FROM-first, VALUES, DESCRIBE, SUMMARIZE, SHOW,
   UNPIVOT), or a plain ``EXPLAIN`` of one. ``EXPLAIN ANALYZE`` executes the statement
   it wraps and is refused, as are EXPLAIN options. The parse tree (DuckDB's
   ``json_serialize_sql``, which serialises SELECT statements only) must consist of
   query nodes alone: a data-modifying CTE or subquery (``WITH x AS (DELETE ...
   RETURNING *)``) is refused, and so are table functions that run SQL text or
   checkpoint (``query``, ``checkpoint``).
2. **The connection.** A private in-memory database (its own instance: nothing it sets
   reaches other connections of the process) holding a copy of the catalog (views,
   macros, run history; the file itself is detached again); no temporary directory
   (nothing spills to disk); extension autoloading and installing off; external access
   off with exactly the committed lake files allowed, by name: no directory is
   allowed, so nothing can be created, listed or replaced; then the configuration is
   locked. ``allow_files`` adds the existing files that the query names in string
   literals (globs expanded), for reading; still no directory.
3. **A time limit** (:data:`DEFAULT_TIMEOUT_S`): the query is interrupted past it.
"""

from __future__ import annotations

import glob
import json
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ssl_wc.lake.catalog import set_root
from ssl_wc.paths import WarehousePaths
from ssl_wc.warehouse import ensure_catalog, register_functions

DEFAULT_TIMEOUT_S = 60.0

#: Parse-tree node types of a pure query (anything else modifies data).
QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE",
                         "CTE_NODE"})

#: Functions that run SQL given as text (escaping the check) or write the database.
REFUSED_FUNCTIONS = frozenset({"query", "checkpoint", "force_checkpoint"})

_TOKEN = duckdb.token_type


class QueryRefused(ValueError):
    """A statement that the read-only SQL door does not run (exit code 2)."""


class QueryTimeout(RuntimeError):
    """The query ran past its time limit and was stopped."""


class FileRefused(QueryRefused):
    """The query reads a file outside the lake without ``--allow-files``."""


@dataclass
class QueryResult:
    """What a user query returned: at most ``limit`` rows."""

    frame: pl.DataFrame
    truncated: bool
    seconds: float
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- statement
_PARSER: duckdb.DuckDBPyConnection | None = None
_PARSER_LOCK = threading.Lock()


def _parser() -> duckdb.DuckDBPyConnection:
    """A private in-memory connection used only to parse (never to run user SQL)."""
    global _PARSER
    if _PARSER is None:
        _PARSER = duckdb.connect(":memory:", config={"autoload_known_extensions": False,
                                                     "autoinstall_known_extensions": False})
    return _PARSER


def _tokens(sql: str) -> list[tuple[int, int, Any]]:
    """(start, end, type) of each token that is not a comment."""
    toks = duckdb.tokenize(sql)
    out = []
    for i, (pos, kind) in enumerate(toks):
        end = toks[i + 1][0] if i + 1 < len(toks) else len(sql)
        if kind != _TOKEN.comment:
            out.append((pos, end, kind))
    return out


def _word(sql: str, tok: tuple[int, int, Any]) -> str:
    return sql[tok[0]:tok[1]].strip().lower()


def _walk(obj: Any, found: dict[str, set[str]]) -> None:
    if isinstance(obj, dict):
        kind = obj.get("type")
        if isinstance(kind, str) and kind.endswith("_NODE"):
            found["nodes"].add(kind)
        name = obj.get("function_name")
        if isinstance(name, str):
            found["functions"].add(name.lower())
        for v in obj.values():
            _walk(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, found)


def _check_select(text: str) -> None:
    """Refuse unless ``text`` is one statement whose whole parse tree is a query."""
    with _PARSER_LOCK:
        con = _parser()
        try:
            statements = con.extract_statements(text)
        except duckdb.Error as exc:
            raise QueryRefused(f"could not parse the query: {_first_line(exc)}") from None
        if len(statements) != 1:
            raise QueryRefused(f"one statement at a time, please; this text holds "
                               f"{len(statements)}")
        kind = str(statements[0].type).split(".")[-1]
        if statements[0].type != duckdb.StatementType.SELECT:
            raise QueryRefused(f"only read-only queries (SELECT, or EXPLAIN of a SELECT) are "
                               f"allowed here; refused a {kind} statement")
        rows = con.execute("SELECT json_serialize_sql($1)", [text]).fetchall()
    tree = json.loads(rows[0][0])
    if tree.get("error"):
        raise QueryRefused(f"only read-only queries are allowed here "
                           f"({tree.get('error_message', 'not a SELECT')})")
    found: dict[str, set[str]] = {"nodes": set(), "functions": set()}
    _walk(tree.get("statements", []), found)
    modifying = sorted(found["nodes"] - QUERY_NODES)
    if modifying:
        what = ", ".join(n.removesuffix("_QUERY_NODE").removesuffix("_NODE") for n in modifying)
        raise QueryRefused(f"only read-only queries are allowed here; refused a "
                           f"data-modifying part ({what}) inside the query")
    banned = sorted(found["functions"] & REFUSED_FUNCTIONS)
    if banned:
        raise QueryRefused(f"the function(s) {', '.join(banned)} are not allowed here "
                           f"(they run SQL text or write the database)")


def check_query(sql: str) -> str:
    """The text to execute for ``sql``, or :class:`QueryRefused` saying why not.

    Accepts exactly one SELECT-type statement, or ``EXPLAIN`` followed directly by one
    (the returned text is rebuilt as ``EXPLAIN <select>``).
    """
    if not sql.strip():
        raise QueryRefused("empty query")
    try:
        toks = _tokens(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"could not parse the query: {_first_line(exc)}") from None
    if toks and _word(sql, toks[0]) == "explain":
        if len(toks) < 2:
            raise QueryRefused("EXPLAIN of what? Give a SELECT after it")
        nxt = _word(sql, toks[1])
        if nxt in ("analyze", "analyse"):
            raise QueryRefused("EXPLAIN ANALYZE is not allowed here: it executes the "
                               "statement it wraps; use plain EXPLAIN")
        if nxt.startswith("("):
            raise QueryRefused("EXPLAIN options are not allowed here; use plain EXPLAIN")
        inner = sql[toks[1][0]:]
        _check_select(inner)
        return "EXPLAIN " + inner
    _check_select(sql)
    return sql


def check_statements(con: object, sql: str) -> None:
    """Compatibility wrapper: refuse ``sql`` unless :func:`check_query` accepts it."""
    del con
    check_query(sql)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# --------------------------------------------------------------------------- connection
def _quote(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _lake_files(con: duckdb.DuckDBPyConnection, wh: WarehousePaths) -> list[str]:
    rows = con.sql("SELECT DISTINCT path FROM _manifest_files").fetchall()
    return [(wh.root / r[0]).as_posix() for r in rows]


def named_files(sql: str) -> list[str]:
    """Existing regular files that string literals in ``sql`` name (globs expanded),
    each as written and as an absolute path: what ``allow_files`` lets a query read."""
    out: list[str] = []
    try:
        toks = _tokens(sql)
    except duckdb.Error:
        return out
    for tok in toks:
        if tok[2] != _TOKEN.string_const:
            continue
        raw = sql[tok[0]:tok[1]].strip()
        if len(raw) < 2 or raw[0] != "'" or raw[-1] != "'":
            continue
        literal = raw[1:-1].replace("''", "'")
        if not literal or "\x00" in literal:
            continue
        expanded = os.path.expanduser(literal)
        matches = glob.glob(expanded, recursive=True) if glob.has_magic(expanded) \
            else [expanded]
        files = [m for m in matches if os.path.isfile(m)]
        if files:
            out.append(literal)
            for f in files:
                out += [f, os.path.abspath(f)]
    return sorted(set(out))


def open_sandboxed(warehouse: str | os.PathLike[str] | Path | None = None, *,
                   allow_files: bool = False, sql: str = "",
                   udfs: bool = True) -> duckdb.DuckDBPyConnection:
    """A connection that reads the warehouse and cannot write anywhere (see module
    docstring). ``sql`` is the query that will run (``allow_files`` reads the files it
    names)."""
    wh = WarehousePaths.of(warehouse)
    ensure_catalog(wh)
    con = duckdb.connect(":memory:", config={
        "autoload_known_extensions": False, "autoinstall_known_extensions": False,
        "allow_community_extensions": False, "temp_directory": "",
        "enable_external_file_cache": False})
    try:
        # the catalog is small (views, macros, run history): copied into memory and
        # detached, so that not even its own file stays reachable by path
        con.execute(f"ATTACH {_quote(wh.catalog.as_posix())} AS ssl_wc_file (READ_ONLY)")
        con.execute("COPY FROM DATABASE ssl_wc_file TO memory")
        con.execute("DETACH ssl_wc_file")
        set_root(con, wh.root)
        if udfs:
            register_functions(con)
        allowed = _lake_files(con, wh)
        if allow_files:
            allowed += named_files(sql)
        con.execute(f"SET allowed_paths = [{', '.join(_quote(p) for p in allowed)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


# --------------------------------------------------------------------------- running
def run_readonly(sql: str, warehouse: str | os.PathLike[str] | Path | None = None,
                 params: object = None, *, allow_files: bool = False,
                 limit: int | None = None,
                 timeout_s: float | None = DEFAULT_TIMEOUT_S) -> QueryResult:
    """Check ``sql``, run it on a sandboxed connection within ``timeout_s`` and return
    at most ``limit`` rows (all when None).

    Raises :class:`QueryRefused` (the statement or a file it reads is not allowed),
    :class:`QueryTimeout`, or ``duckdb.Error`` when the query itself fails.
    """
    text = check_query(sql)
    if timeout_s is not None and timeout_s <= 0:
        raise QueryRefused(f"--timeout must be a positive number of seconds, not {timeout_s}")
    con = open_sandboxed(warehouse, allow_files=allow_files, sql=sql)
    timer = threading.Timer(timeout_s, con.interrupt) if timeout_s else None
    t0 = time.monotonic()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if timer is not None:
                timer.start()
            rel = con.sql(text, params=params) if params is not None else con.sql(text)
            if rel is None:
                raise QueryRefused("the query returned no result")
            frame = (rel.limit(limit + 1) if limit is not None else rel).pl()
    except duckdb.InterruptException:
        raise QueryTimeout(f"the query ran past its time limit of {timeout_s:g} s and was "
                           f"stopped (raise it with --timeout)") from None
    except duckdb.PermissionException as exc:
        hint = ("" if allow_files else
                " (only committed lake files can be read here; `ssl-wc sql --allow-files` "
                "also reads files the query names)")
        raise FileRefused(f"refused: {_first_line(exc)}{hint}") from None
    finally:
        if timer is not None:
            timer.cancel()
        con.close()
    truncated = limit is not None and frame.height > limit
    if truncated:
        frame = frame.head(limit)
    return QueryResult(frame, truncated, time.monotonic() - t0,
                       [str(w.message) for w in caught])
