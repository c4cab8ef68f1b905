"""Bad option values and refused runs: the errors that the command line turns into exit
code 2 with one line, and the parsers of option values that raise them.

:class:`BadOption` names the option by its Python name (``batch_size``), the value given
and the valid values. The command line shows it as ``--batch-size -3: must be at least 1``;
``ssl-wc run`` as the key of its config file (``attention.batch_size``). Jobs raise it
before they start a run, so a refused command writes nothing.

:class:`Refused` is a run that would remove data (leave a table empty that holds rows)
or that lacks what it needs; ``--force`` overrides the first kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

#: Labels stored in unit keys and partition folders (variants, model keys).
LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


class BadOption(ValueError):
    """An option value that is refused: which option, what was given, what is valid."""

    def __init__(self, option: str, value: object, problem: str,
                 valid: str | None = None) -> None:
        self.option = option
        self.value = value
        self.problem = problem
        self.valid = valid
        super().__init__(self.line())

    def line(self, name: str | None = None) -> str:
        """One line; ``name`` replaces the option's command-line spelling."""
        shown = name or cli_name(self.option)
        given = "" if self.value is None else f" {_show(self.value)}"
        tail = f"; valid: {self.valid}" if self.valid else ""
        return f"{shown}{given}: {self.problem}{tail}"

    def __str__(self) -> str:
        return self.line()


class Refused(ValueError):
    """A run refused before it wrote anything (one line: why, and what to do)."""


def cli_name(option: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return "--" + option.replace("_", "-")


def _show(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() for c in text) or not text.isprintable():
        return repr(text)
    return text


def listing(values: Iterable[object], limit: int = 12) -> str:
    """``a, b, c`` or ``a, b, ... (40 in all)`` for long lists."""
    vals = [str(v) for v in values]
    if len(vals) <= limit:
        return ", ".join(vals)
    return ", ".join(vals[:limit]) + f", ... ({len(vals)} in all)"


def split_list(option: str, text: str) -> list[str]:
    """Comma-separated items, blanks dropped, duplicates kept once; at least one."""
    items = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not items:
        raise BadOption(option, text, "give at least one value (comma-separated)")
    return items


def choices(option: str, text: str, valid: Sequence[str]) -> list[str]:
    """Comma-separated items, each one of ``valid``."""
    items = split_list(option, text)
    bad = [i for i in items if i not in valid]
    if bad:
        raise BadOption(option, ",".join(bad), "unknown", listing(valid))
    return items


def int_list(option: str, text: str, keywords: Sequence[str] = ("all",)) -> list[int] | str:
    """``all`` (or another keyword) as given, else comma-separated integers."""
    if text.strip() in keywords:
        return text.strip()
    out: list[int] = []
    for item in split_list(option, text):
        try:
            out.append(int(item))
        except ValueError:
            raise BadOption(option, item, "not an integer",
                            " or ".join(keywords) + ", or integers such as 0,5,11") from None
    return out


def in_range(option: str, values: Iterable[int], lo: int, hi: int, what: str) -> None:
    """Every value within ``lo..hi`` (no wrapping of negative or large indices)."""
    bad = [v for v in values if not lo <= v <= hi]
    if bad:
        raise BadOption(option, ",".join(map(str, bad)), f"out of range for {what}",
                        f"{lo}..{hi}")


def at_least(option: str, value: float, lo: float) -> None:
    if not (math.isfinite(value) and value >= lo):
        raise BadOption(option, value, f"must be at least {lo:g}")


def positive(option: str, value: float) -> None:
    """A finite number above zero (learning rates, sizes)."""
    if not (math.isfinite(value) and value > 0):
        raise BadOption(option, value, "must be a finite number above 0")


def open_fraction(option: str, value: float) -> None:
    """A number strictly between 0 and 1."""
    if not (math.isfinite(value) and 0 < value < 1):
        raise BadOption(option, value, "must be strictly between 0 and 1")


def label(option: str, value: str) -> None:
    """A short name used in keys and folder names (letters, digits, ``_ . : -``)."""
    if not LABEL_RE.fullmatch(value):
        raise BadOption(option, value, "not a valid label",
                        "1-64 letters, digits, '_', '.', ':' or '-', starting with a "
                        "letter or digit")


def shard(value: str | None) -> tuple[int, int] | None:
    """``k/N`` with 1 <= k <= N, or None."""
    if value is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not m:
        raise BadOption("shard", value, "must look like k/N", "e.g. 1/4 .. 4/4")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= n:
        raise BadOption("shard", value, "k must be between 1 and N", f"1/{n} .. {n}/{n}"
                        if n >= 1 else "e.g. 1/4 .. 4/4")
    return k, n
