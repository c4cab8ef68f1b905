"""Strict JSON reading and typed value checks shared by the WikiChurches parsers.

``load_json`` keeps what plain ``json.loads`` hides: repeated keys in an object (kept on
``JsonObject.duplicates``) and the non-standard ``NaN``/``Infinity`` literals (parsed to
``NonFinite`` so the checks can name where they occur). ``Checker`` collects problems as
``InputError`` values with a JSON path, never raising on bad values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from ssl_wc.data.errors import InputError, json_path


class JsonObject(dict[str, Any]):
    """A JSON object that remembers keys given more than once (the last value wins)."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        dups: dict[str, None] = {}
        for key, value in pairs:
            if key in self:
                dups[key] = None
            self[key] = value
        self.duplicates: tuple[str, ...] = tuple(dups)


@dataclass(frozen=True)
class NonFinite:
    """A ``NaN``, ``Infinity`` or ``-Infinity`` literal (not valid JSON)."""

    literal: str


class Missing:
    """Marker for an absent key."""


MISSING = Missing()


def load_json(data: bytes | str, source: str) -> Any:
    """Parse ``data``; raise ``InputError`` with line and column when it is not JSON."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InputError(source, f"byte {e.start}", "not valid UTF-8 text") from None
    else:
        text = data
    try:
        return json.loads(text, object_pairs_hook=JsonObject, parse_constant=NonFinite)
    except json.JSONDecodeError as e:
        raise InputError(source, f"line {e.lineno}, column {e.colno}",
                         f"malformed JSON: {e.msg}") from None
    except RecursionError:
        raise InputError(source, "$", "malformed JSON: nested too deeply") from None


def describe(value: Any) -> str:
    """A short type description of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, NonFinite):
        return f"the literal {value.literal}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


@dataclass
class Checker:
    """Collects errors and warnings for one file (or one image of it)."""

    file: str
    image_id: str | None = None
    errors: list[InputError] = field(default_factory=list)
    warnings: list[InputError] = field(default_factory=list)

    def error(self, path: tuple[str | int, ...], reason: str) -> None:
        self.errors.append(InputError(self.file, json_path(*path), reason,
                                      image_id=self.image_id))

    def warn(self, path: tuple[str | int, ...], reason: str) -> None:
        self.warnings.append(InputError(self.file, json_path(*path), reason,
                                        image_id=self.image_id))

    def obj(self, value: Any, path: tuple[str | int, ...], required: tuple[str, ...] = (),
            known: tuple[str, ...] | None = None) -> JsonObject | None:
        """``value`` as an object with ``required`` keys; unknown keys only warn."""
        if not isinstance(value, dict):
            self.error(path, f"expected an object, got {describe(value)}")
            return None
        ok = True
        for key in getattr(value, "duplicates", ()):
            self.error((*path, key), "key given more than once")
            ok = False
        for key in required:
            if key not in value:
                self.error((*path, key), f"missing key {key!r}")
                ok = False
        if known is not None:
            for key in value:
                if key not in known:
                    self.warn((*path, key), f"unexpected key {key!r} ignored")
        return value if ok else None  # type: ignore[return-value]

    def list_(self, value: Any, path: tuple[str | int, ...], *,
              non_empty: bool = False) -> list[Any] | None:
        if not isinstance(value, list):
            self.error(path, f"expected a list, got {describe(value)}")
            return None
        if non_empty and not value:
            self.error(path, "expected a non-empty list")
            return None
        return value

    def int_(self, value: Any, path: tuple[str | int, ...],
             lo: int | None = None, hi: int | None = None, what: str = "") -> int | None:
        """An integer (booleans refused) within ``[lo, hi]`` when given."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f"expected an integer, got {describe(value)}")
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.error(path, f"{what or 'value'} {value} is outside [{lo}, {hi}]")
            return None
        return value

    def number(self, value: Any, path: tuple[str | int, ...]) -> float | None:
        """A finite number (integers accepted, booleans and NaN/Infinity refused)."""
        if isinstance(value, NonFinite):
            self.error(path, f"{value.literal} is not a finite number")
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(path, f"expected a number, got {describe(value)}")
            return None
        try:
            out = float(value)
        except OverflowError:
            out = math.inf
        if not math.isfinite(out):
            shown = repr(value) if len(repr(value)) <= 24 else f"{repr(value)[:20]}..."
            self.error(path, f"{shown} is not a finite number")
            return None
        return out

    def str_(self, value: Any, path: tuple[str | int, ...], *,
             nullable: bool = False) -> str | None:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            self.error(path, f"expected a string{' or null' if nullable else ''}, "
                             f"got {describe(value)}")
            return None
        return value
