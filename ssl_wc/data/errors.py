"""Errors for bad input files, each naming the file, the place in it and the reason.

``InputError`` is one problem: ``str()`` gives one line ``"<file>: <location>: <reason>"``
where ``location`` is a JSON path such as
``$.annotations["Q1_wd0.jpg"].bbox_groups[2].elements[0].left``, a ``line N`` of a text
file, or an image file name.

``InputErrors`` gathers several problems (a whole file refused in strict mode). It is an
``InputError`` itself, so ``except InputError`` catches both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from os import PathLike

_PLAIN_KEY = re.compile(r"[a-z_][a-z0-9_]*")

#: How many problems ``str(InputErrors)`` lists before summarising the rest.
MAX_LISTED = 20


class InputError(Exception):
    """One problem in an input file: ``file``, ``location`` inside it, ``reason``."""

    def __init__(self, file: str | PathLike[str], location: str, reason: str,
                 *, image_id: str | None = None) -> None:
        self.file = str(file)
        self.location = location
        self.reason = reason
        #: The annotated or scanned image the problem belongs to, if any.
        self.image_id = image_id
        super().__init__(self.file, location, reason)

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.reason}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.file!r}, {self.location!r}, {self.reason!r})"


class InputErrors(InputError):
    """Several problems found together; ``errors`` lists them in the order found."""

    def __init__(self, errors: Iterable[InputError], note: str = "input refused") -> None:
        self.errors: tuple[InputError, ...] = tuple(errors)
        #: Shown after the count on the first line (e.g. "input refused", "images skipped").
        self.note = note
        if not self.errors:
            raise ValueError("InputErrors needs at least one error")
        files = sorted({e.file for e in self.errors})
        file = files[0] if len(files) == 1 else ", ".join(files)
        n = len(self.errors)
        super().__init__(file, self.errors[0].location if n == 1 else "$",
                         f"{n} problem{'s' if n != 1 else ''} found")

    def __str__(self) -> str:
        lines = [f"{self.file}: {self.reason}{', ' + self.note if self.note else ''}:"]
        lines += [f"  - {e.location}: {e.reason}" if e.file == self.file else f"  - {e}"
                  for e in self.errors[:MAX_LISTED]]
        if len(self.errors) > MAX_LISTED:
            lines.append(f"  ... and {len(self.errors) - MAX_LISTED} more")
        return "\n".join(lines)

    def __iter__(self) -> Iterator[InputError]:
        return iter(self.errors)

    def __len__(self) -> int:
        return len(self.errors)


def json_path(*parts: str | int) -> str:
    """A JSON path from keys and indices: ``json_path("annotations", "a.jpg", "styles", 0)``.

    Lower-case identifiers (the format's own keys) become ``.key``; other keys (data
    such as image names or Q-ids) ``["key"]``; integers ``[i]``.
    """
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _PLAIN_KEY.fullmatch(p):
            out += f".{p}"
        else:
            out += f"[{json.dumps(p, ensure_ascii=False)}]"
    return out


def raise_if_any(errors: Sequence[InputError]) -> None:
    """Raise ``InputErrors`` listing ``errors`` when there is at least one."""
    if errors:
        raise InputErrors(errors)
