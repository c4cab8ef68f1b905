"""Parsers for the WikiChurches annotation files, into typed pyarrow tables.

Public API:

- ``parse_building_parts(path, strict=True) -> ParsedAnnotations`` (and
  ``parse_building_parts_bytes(data, source, strict)``): the expert boxes and the feature
  ontology of ``building_parts.json``. Tables ``feature_types``, ``feature_ancestors``,
  ``images``, ``boxes`` and ``image_styles`` (schemas below).
- ``parse_style_names(path) -> pa.Table``: ``style_id, name`` from ``style_names.txt``;
  ``default_styles()`` the built-in names (``KNOWN_STYLE_NAMES``); ``styles_table(path)``
  either, by whether ``path`` is ``None``.
- ``parse_churches(path, strict=True) -> pa.Table``: the ``churches`` table of
  ``churches.json`` (the style-labelled pool); ``parse_churches_full`` and
  ``parse_churches_bytes`` return ``ParsedChurches`` with the skipped churches' errors.
- ``parse_image_id("Q2034923_wd0.jpg") -> ("Q2034923", 0)``, ``STUDY_STYLES``.

Validation: every problem becomes an ``InputError`` naming the file and a JSON path. In
strict mode (default) all problems are collected and raised together as ``InputErrors``:
the whole file is refused. In non-strict mode an image (or church) with any problem is
dropped whole and its errors are returned in ``errors``; problems that concern the whole
file (malformed JSON, a bad ``meta`` ontology) are raised in both modes. Boxes slightly
outside the image are clamped to ``[0, 1]`` and counted, not refused; coordinates outside
``[-0.5, 1.5]``, a non-positive size or a box wholly outside the image are errors.
Unexpected extra keys are ignored and reported in ``warnings``.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from ssl_wc.data._json import MISSING, Checker, JsonObject, describe, load_json
from ssl_wc.data.errors import InputError, InputErrors, json_path, raise_if_any

#: The four styles of the classification task, in the project's class order.
STUDY_STYLES: dict[str, str] = {
    "Q46261": "Romanesque",
    "Q176483": "Gothic",
    "Q236122": "Renaissance",
    "Q840829": "Baroque",
}

#: Names used when no ``style_names.txt`` is given.
KNOWN_STYLE_NAMES: dict[str, str] = {
    **STUDY_STYLES,
    "Q186363": "Gothic Revival",
    "Q245188": "Modern",
    "Q744373": "Romanesque Revival",
    "Q54111": "Neoclassical",
    "Q695863": "Brick Gothic",
}

#: Coordinates (fractions of the image size) outside this range are refused as absurd.
COORD_RANGE = (-0.5, 1.5)
#: Tolerance below which a coordinate just outside ``[0, 1]`` does not count as clamped.
CLAMP_EPS = 1e-9

IMAGE_ID_RE = re.compile(r"^(Q\d+)_wd(\d+)\.([A-Za-z0-9]+)$")
QID_RE = re.compile(r"^Q\d+$")

_S, _I32, _F64, _B = pa.string(), pa.int32(), pa.float64(), pa.bool_()

FEATURE_TYPES_SCHEMA = pa.schema([("label", _I32), ("name", _S), ("parents", pa.list_(_I32))])
FEATURE_ANCESTORS_SCHEMA = pa.schema([("label", _I32), ("ancestor", _I32), ("depth", _I32)])
IMAGES_SCHEMA = pa.schema([
    ("image_id", _S), ("church_qid", _S), ("styles", pa.list_(_S)), ("primary_style", _S),
    ("n_styles", _I32), ("n_boxes", _I32), ("n_groups", _I32)])
BOXES_SCHEMA = pa.schema([
    ("image_id", _S), ("box_index", _I32), ("group_index", _I32), ("group_label", _I32),
    ("label", _I32), ("left", _F64), ("top", _F64), ("width", _F64), ("height", _F64),
    ("left_c", _F64), ("top_c", _F64), ("width_c", _F64), ("height_c", _F64),
    ("was_clamped", _B), ("area_c", _F64)])
IMAGE_STYLES_SCHEMA = pa.schema([("image_id", _S), ("style_id", _S), ("style_rank", _I32)])
STYLES_SCHEMA = pa.schema([("style_id", _S), ("name", _S)])
CHURCHES_SCHEMA = pa.schema([
    ("church_qid", _S), ("name", _S), ("country_id", _S), ("country_name", _S),
    ("built_year_min", _I32), ("built_year_max", _I32), ("styles", pa.list_(_S)),
    ("lat", _F64), ("lon", _F64)])

Path_ = tuple[str | int, ...]


def parse_image_id(image_id: str) -> tuple[str, int] | None:
    """``"Q2034923_wd0.jpg"`` -> ``("Q2034923", 0)``; ``None`` when the name does not fit."""
    m = IMAGE_ID_RE.match(image_id)
    return (m.group(1), int(m.group(2))) if m else None


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ParsedAnnotations:
    """Tables of one ``building_parts.json``; ``errors`` lists images skipped (non-strict)."""

    source: str
    source_sha256: str
    feature_types: pa.Table
    feature_ancestors: pa.Table
    images: pa.Table
    boxes: pa.Table
    image_styles: pa.Table
    n_images: int
    n_boxes: int
    n_clamped: int
    errors: tuple[InputError, ...] = ()
    warnings: tuple[InputError, ...] = ()

    @property
    def skipped_images(self) -> tuple[str, ...]:
        """Image keys dropped because of errors (non-strict mode), in file order."""
        return tuple(dict.fromkeys(e.image_id for e in self.errors if e.image_id is not None))

    def tables(self) -> dict[str, pa.Table]:
        """The five tables by name (``feature_types``, ..., ``image_styles``)."""
        return {"feature_types": self.feature_types, "feature_ancestors": self.feature_ancestors,
                "images": self.images, "boxes": self.boxes, "image_styles": self.image_styles}


@dataclass(frozen=True)
class ParsedChurches:
    """The ``churches`` table of one ``churches.json``; ``errors`` lists churches skipped."""

    source: str
    source_sha256: str
    table: pa.Table
    n_churches: int
    errors: tuple[InputError, ...] = ()
    warnings: tuple[InputError, ...] = ()


# --------------------------------------------------------------------------- helpers


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise InputErrors([InputError(path, "file", f"cannot read: {e.strerror or e}")]) from None


def _load(data: bytes | str, source: str) -> Any:
    try:
        return load_json(data, source)
    except InputError as e:
        raise InputErrors([e]) from None


def _sha256(data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def _qid_list(ck: Checker, value: Any, path: Path_, *, non_empty: bool) -> list[str] | None:
    """A list of distinct Wikidata ids (``Q`` + digits)."""
    items = ck.list_(value, path, non_empty=non_empty)
    if items is None:
        return None
    n = len(ck.errors)
    seen: set[str] = set()
    for i, item in enumerate(items):
        s = ck.str_(item, (*path, i))
        if s is None:
            continue
        if not QID_RE.match(s):
            ck.error((*path, i), f"{s!r} is not a Wikidata id like 'Q46261'")
        elif s in seen:
            ck.error((*path, i), f"style {s} listed twice")
        seen.add(s)
    return list(items) if len(ck.errors) == n else None


# --------------------------------------------------------------------------- meta


@dataclass(frozen=True)
class _Feature:
    name: str
    parents: tuple[int, ...]


def _parse_meta(ck: Checker, value: Any) -> list[_Feature] | None:
    path: Path_ = ("meta",)
    entries = ck.list_(value, path, non_empty=True)
    if entries is None:
        return None
    n = len(entries)
    n_err = len(ck.errors)
    feats: list[_Feature] = []
    names: dict[str, int] = {}
    for i, entry in enumerate(entries):
        obj = ck.obj(entry, (*path, i), ("name", "parents"), ("name", "parents"))
        if obj is None:
            continue
        name = ck.str_(obj["name"], (*path, i, "name"))
        if name is not None and not name.strip():
            ck.error((*path, i, "name"), "feature name is empty")
        elif name is not None and name in names:
            ck.error((*path, i, "name"), f"feature name {name!r} repeats label {names[name]}")
        elif name is not None:
            names[name] = i
        parents = ck.list_(obj["parents"], (*path, i, "parents"))
        ok_parents: list[int] = []
        for j, p in enumerate(parents or ()):
            label = ck.int_(p, (*path, i, "parents", j), 0, n - 1, "parent label")
            if label is None:
                continue
            if label in ok_parents:
                ck.warn((*path, i, "parents", j), f"parent {label} listed twice")
            else:
                ok_parents.append(label)
        feats.append(_Feature(name or "", tuple(ok_parents)))
    if len(ck.errors) > n_err:
        return None
    for cycle in _parent_cycles(feats):
        shown = " -> ".join(f"{c} {feats[c].name!r}" for c in (*cycle, cycle[0]))
        ck.error((*path, cycle[0], "parents"), f"parent cycle: {shown}")
    return None if len(ck.errors) > n_err else feats


def _parent_cycles(feats: list[_Feature]) -> list[tuple[int, ...]]:
    """Distinct cycles of the parent relation, each rotated to start at its smallest label."""
    white, grey, black = 0, 1, 2
    color = [white] * len(feats)
    found: dict[tuple[int, ...], None] = {}
    for start in range(len(feats)):
        if color[start] != white:
            continue
        stack: list[tuple[int, int]] = [(start, 0)]
        on_path: list[int] = [start]
        color[start] = grey
        while stack:
            node, k = stack[-1]
            parents = feats[node].parents
            if k < len(parents):
                stack[-1] = (node, k + 1)
                nxt = parents[k]
                if color[nxt] == grey:
                    cyc = on_path[on_path.index(nxt):]
                    m = cyc.index(min(cyc))
                    found[tuple(cyc[m:] + cyc[:m])] = None
                elif color[nxt] == white:
                    color[nxt] = grey
                    stack.append((nxt, 0))
                    on_path.append(nxt)
            else:
                color[node] = black
                stack.pop()
                on_path.pop()
    return list(found)


def ancestor_closure(parents: Sequence[Sequence[int]]) -> list[tuple[int, int, int]]:
    """``(label, ancestor, depth)`` rows, self at depth 0; depth is the shortest path."""
    rows: list[tuple[int, int, int]] = []
    for label in range(len(parents)):
        depth = {label: 0}
        queue = deque([label])
        while queue:
            node = queue.popleft()
            for p in parents[node]:
                if p not in depth:
                    depth[p] = depth[node] + 1
                    queue.append(p)
        rows += sorted(((label, a, d) for a, d in depth.items()), key=lambda r: (r[2], r[1]))
    return rows


# --------------------------------------------------------------------------- annotations


@dataclass(frozen=True)
class _Box:
    group_index: int
    group_label: int
    label: int
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class _Image:
    image_id: str
    church_qid: str
    styles: tuple[str, ...]
    boxes: tuple[_Box, ...]
    n_groups: int


def _parse_box(ck: Checker, value: Any, path: Path_, n_labels: int, group_index: int,
               group_label: int) -> _Box | None:
    keys = ("left", "top", "width", "height", "label")
    obj = ck.obj(value, path, keys, keys)
    if obj is None:
        return None
    n_err = len(ck.errors)
    label = ck.int_(obj["label"], (*path, "label"), 0, n_labels - 1, "label")
    left, top, width, height = (ck.number(obj[k], (*path, k)) for k in keys[:4])
    if left is None or top is None or width is None or height is None or label is None:
        return None
    lo, hi = COORD_RANGE
    for start_key, size_key, start, size in (("left", "width", left, width),
                                             ("top", "height", top, height)):
        if size <= 0:
            ck.error((*path, size_key), f"{size_key} must be > 0, got {size:g}")
        elif not lo <= start <= hi:
            ck.error((*path, start_key), f"{start_key} {start:g} is outside [{lo}, {hi}]")
        elif not lo <= start + size <= hi:
            edge = "right" if start_key == "left" else "bottom"
            ck.error((*path, size_key), f"{edge} edge {start_key}+{size_key} = "
                                        f"{start + size:g} is outside [{lo}, {hi}]")
    if len(ck.errors) == n_err:
        c = _clamp(left, top, width, height)
        if c[2] <= 0 or c[3] <= 0:
            ck.error(path, "box lies outside the image")
    if len(ck.errors) > n_err:
        return None
    return _Box(group_index, group_label, label, left, top, width, height)


def _clamp(left: float, top: float, width: float, height: float
           ) -> tuple[float, float, float, float, bool]:
    """Clamp a box to the unit square: ``(left_c, top_c, width_c, height_c, was_clamped)``."""
    edges = (left, top, left + width, top + height)
    l_c, t_c, r_c, b_c = (min(max(v, 0.0), 1.0) for v in edges)
    clamped = any(v < -CLAMP_EPS or v > 1 + CLAMP_EPS for v in edges)
    return l_c, t_c, max(r_c - l_c, 0.0), max(b_c - t_c, 0.0), clamped


def _parse_image(file: str, key: str, value: Any, n_labels: int) -> tuple[_Image | None, Checker]:
    ck = Checker(file, image_id=key)
    path: Path_ = ("annotations", key)
    m = IMAGE_ID_RE.match(key)
    if not m:
        ck.error(path, "image key must look like 'Q<digits>_wd<digits>.<ext>', "
                       f"got {key!r}")
    obj = ck.obj(value, path, ("styles", "bbox_groups"), ("styles", "bbox_groups"))
    if obj is None:
        return None, ck
    styles = _qid_list(ck, obj["styles"], (*path, "styles"), non_empty=True)
    groups = ck.list_(obj["bbox_groups"], (*path, "bbox_groups"), non_empty=True)
    boxes: list[_Box] = []
    for g, group in enumerate(groups or ()):
        gpath: Path_ = (*path, "bbox_groups", g)
        gobj = ck.obj(group, gpath, ("group_label", "elements"), ("group_label", "elements"))
        if gobj is None:
            continue
        glabel = ck.int_(gobj["group_label"], (*gpath, "group_label"), 0, n_labels - 1,
                         "group_label")
        elements = ck.list_(gobj["elements"], (*gpath, "elements"), non_empty=True)
        if glabel is None or elements is None:
            continue
        for e, element in enumerate(elements):
            box = _parse_box(ck, element, (*gpath, "elements", e), n_labels, g, glabel)
            if box is not None:
                boxes.append(box)
        if len(elements) == 1 and boxes and boxes[-1].group_index == g \
                and boxes[-1].label != glabel:
            ck.warn((*gpath, "group_label"),
                    f"one-box group labelled {glabel} holds a box labelled {boxes[-1].label}")
    if ck.errors or m is None or styles is None or groups is None:
        return None, ck
    return _Image(key, m.group(1), tuple(styles), tuple(boxes), len(groups)), ck


def parse_building_parts(path: str | Path, strict: bool = True) -> ParsedAnnotations:
    """Parse ``building_parts.json`` (see the module docstring for strict/non-strict)."""
    return parse_building_parts_bytes(_read(Path(path)), source=str(path), strict=strict)


def parse_building_parts_bytes(data: bytes | str, source: str = "<memory>",
                               strict: bool = True) -> ParsedAnnotations:
    """Parse the text of a ``building_parts.json``; ``source`` names it in errors."""
    doc = _load(data, source)
    top = Checker(source)
    root = top.obj(doc, (), ("meta", "annotations"), ("meta", "annotations"))
    if root is None:
        raise_if_any(top.errors)
        raise AssertionError("unreachable")  # pragma: no cover
    feats = _parse_meta(top, root["meta"])
    ann = root["annotations"]
    if not isinstance(ann, dict):
        top.error(("annotations",), f"expected an object, got {describe(ann)}")
    elif not ann:
        top.error(("annotations",), "no annotated images")
    raise_if_any(top.errors)
    assert feats is not None and isinstance(ann, JsonObject)

    images: list[_Image] = []
    errors: list[InputError] = []
    warnings = list(top.warnings)
    for key in ann.duplicates:
        errors.append(InputError(source, json_path("annotations", key),
                                 "image key given more than once", image_id=key))
    for key, value in ann.items():
        img, ck = _parse_image(source, key, value, len(feats))
        errors += ck.errors
        warnings += ck.warnings
        if img is not None and key not in ann.duplicates:
            images.append(img)
    if strict:
        raise_if_any(errors)
    return _annotation_tables(source, _sha256(data), feats, images, errors, warnings)


def _annotation_tables(source: str, sha: str, feats: list[_Feature], images: list[_Image],
                       errors: list[InputError], warnings: list[InputError]
                       ) -> ParsedAnnotations:
    feature_types = pa.table({
        "label": list(range(len(feats))), "name": [f.name for f in feats],
        "parents": [list(f.parents) for f in feats]}, schema=FEATURE_TYPES_SCHEMA)
    closure = ancestor_closure([f.parents for f in feats])
    feature_ancestors = pa.table({
        "label": [r[0] for r in closure], "ancestor": [r[1] for r in closure],
        "depth": [r[2] for r in closure]}, schema=FEATURE_ANCESTORS_SCHEMA)
    images_t = pa.table({
        "image_id": [i.image_id for i in images], "church_qid": [i.church_qid for i in images],
        "styles": [list(i.styles) for i in images],
        "primary_style": [i.styles[0] for i in images],
        "n_styles": [len(i.styles) for i in images], "n_boxes": [len(i.boxes) for i in images],
        "n_groups": [i.n_groups for i in images]}, schema=IMAGES_SCHEMA)
    image_styles = pa.table({
        "image_id": [i.image_id for i in images for _ in i.styles],
        "style_id": [s for i in images for s in i.styles],
        "style_rank": [r for i in images for r in range(len(i.styles))]},
        schema=IMAGE_STYLES_SCHEMA)
    cols: dict[str, list[Any]] = {name: [] for name in BOXES_SCHEMA.names}
    for img in images:
        for b_index, b in enumerate(img.boxes):
            l_c, t_c, w_c, h_c, clamped = _clamp(b.left, b.top, b.width, b.height)
            row = (img.image_id, b_index, b.group_index, b.group_label, b.label, b.left, b.top,
                   b.width, b.height, l_c, t_c, w_c, h_c, clamped, w_c * h_c)
            for name, v in zip(BOXES_SCHEMA.names, row, strict=True):
                cols[name].append(v)
    boxes = pa.table(cols, schema=BOXES_SCHEMA)
    return ParsedAnnotations(
        source=source, source_sha256=sha, feature_types=feature_types,
        feature_ancestors=feature_ancestors, images=images_t, boxes=boxes,
        image_styles=image_styles, n_images=len(images), n_boxes=boxes.num_rows,
        n_clamped=sum(cols["was_clamped"]), errors=tuple(errors), warnings=tuple(warnings))


# --------------------------------------------------------------------------- style names


def parse_style_names(path: str | Path) -> pa.Table:
    """``style_id, name`` from ``style_names.txt``: one ``Q-ID name`` per line, split at the
    first space; blank lines are skipped. Any bad line refuses the file (``InputErrors``)."""
    raw = _read(Path(path))
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputErrors([InputError(path, f"byte {e.start}", "not valid UTF-8 text")]) \
            from None
    errors: list[InputError] = []
    rows: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        qid, _, name = line.strip().partition(" ")
        name = name.strip()
        if not QID_RE.match(qid):
            errors.append(InputError(path, f"line {n}", f"{qid!r} is not a Wikidata id"))
        elif not name:
            errors.append(InputError(path, f"line {n}", f"no name after {qid}"))
        elif qid in rows:
            errors.append(InputError(path, f"line {n}", f"{qid} named twice"))
        else:
            rows[qid] = name
    if not rows and not errors:
        errors.append(InputError(path, "file", "no style names"))
    raise_if_any(errors)
    return _styles(rows)


def default_styles() -> pa.Table:
    """The built-in style names (``KNOWN_STYLE_NAMES``) as a ``styles`` table."""
    return _styles(KNOWN_STYLE_NAMES)


def styles_table(path: str | Path | None = None) -> pa.Table:
    """Style names from ``path``, or the built-in ``KNOWN_STYLE_NAMES`` when ``None``."""
    return default_styles() if path is None else parse_style_names(path)


def _styles(rows: dict[str, str]) -> pa.Table:
    return pa.table({"style_id": list(rows), "name": list(rows.values())}, schema=STYLES_SCHEMA)


# --------------------------------------------------------------------------- churches

#: Years outside this range are refused as absurd.
YEAR_RANGE = (-3000, 2200)


@dataclass(frozen=True)
class _Church:
    qid: str
    name: str | None
    country_id: str | None
    country_name: str | None
    year_min: int | None
    year_max: int | None
    styles: tuple[str, ...]
    lat: float | None
    lon: float | None


def _parse_church(file: str, key: str, value: Any) -> tuple[_Church | None, Checker]:
    ck = Checker(file, image_id=None)
    path: Path_ = (key,)
    if not QID_RE.match(key):
        ck.error(path, f"church key must be a Wikidata id like 'Q2034923', got {key!r}")
    obj = ck.obj(value, path)
    if obj is None:
        return None, ck
    got = obj.get("id", MISSING)
    if got is not MISSING and got != key:
        ck.error((*path, "id"), f"id {got!r} differs from its key {key!r}")
    name = ck.str_(obj.get("name"), (*path, "name"), nullable=True)
    years: list[int] = []
    built = obj.get("built_year")
    if built is not None:
        many = isinstance(built, list)
        for i, y in enumerate(built if many else [built]):
            ypath = (*path, "built_year", i) if many else (*path, "built_year")
            year = ck.int_(y, ypath, *YEAR_RANGE, "year")
            if year is not None:
                years.append(year)
    styles_v = obj.get("styles")
    styles = [] if styles_v is None else _qid_list(ck, styles_v, (*path, "styles"),
                                                     non_empty=False)
    country_id = country_name = None
    country = obj.get("country")
    if country is not None:
        cobj = ck.obj(country, (*path, "country"))
        if cobj is not None:
            country_id = ck.str_(cobj.get("id"), (*path, "country", "id"), nullable=True)
            if country_id is not None and not QID_RE.match(country_id):
                ck.error((*path, "country", "id"), f"{country_id!r} is not a Wikidata id")
            country_name = ck.str_(cobj.get("name"), (*path, "country", "name"), nullable=True)
    lat = lon = None
    loc = obj.get("location")
    if loc is not None:
        lobj = ck.obj(loc, (*path, "location"), ("lat", "lon"))
        if lobj is not None:
            lat = ck.number(lobj["lat"], (*path, "location", "lat"))
            lon = ck.number(lobj["lon"], (*path, "location", "lon"))
            if lat is not None and not -90 <= lat <= 90:
                ck.error((*path, "location", "lat"), f"latitude {lat:g} is outside [-90, 90]")
            if lon is not None and not -180 <= lon <= 180:
                ck.error((*path, "location", "lon"),
                         f"longitude {lon:g} is outside [-180, 180]")
    if ck.errors or styles is None:
        return None, ck
    return _Church(key, name, country_id, country_name, min(years, default=None),
                   max(years, default=None), tuple(styles), lat, lon), ck


def parse_churches(path: str | Path, strict: bool = True) -> pa.Table:
    """The ``churches`` table of ``churches.json``; see ``parse_churches_full``.

    Non-strict mode drops bad churches silently: use ``parse_churches_full`` for their
    errors.
    """
    return parse_churches_full(path, strict).table


def parse_churches_full(path: str | Path, strict: bool = True) -> ParsedChurches:
    """Parse ``churches.json`` (a dict keyed by church Q-id).

    Optional fields (``name``, ``built_year``, ``styles``, ``country``, ``location``) may be
    absent or null; present ones must have the right type. ``built_year`` may be an int or
    a list of ints and gives ``built_year_min``/``built_year_max``.
    """
    return parse_churches_bytes(_read(Path(path)), source=str(path), strict=strict)


def parse_churches_bytes(data: bytes | str, source: str = "<memory>",
                         strict: bool = True) -> ParsedChurches:
    """Parse the text of a ``churches.json``; ``source`` names it in errors."""
    root = _load(data, source)
    if not isinstance(root, JsonObject):
        raise InputErrors([InputError(source, "$", f"expected an object, got {describe(root)}")])
    errors = [InputError(source, json_path(k), "church key given more than once")
              for k in root.duplicates]
    warnings: list[InputError] = []
    churches: list[_Church] = []
    for key, value in root.items():
        church, ck = _parse_church(source, key, value)
        errors += ck.errors
        warnings += ck.warnings
        if church is not None and key not in root.duplicates:
            churches.append(church)
    if strict:
        raise_if_any(errors)
    table = pa.table({
        "church_qid": [c.qid for c in churches], "name": [c.name for c in churches],
        "country_id": [c.country_id for c in churches],
        "country_name": [c.country_name for c in churches],
        "built_year_min": [c.year_min for c in churches],
        "built_year_max": [c.year_max for c in churches],
        "styles": [list(c.styles) for c in churches], "lat": [c.lat for c in churches],
        "lon": [c.lon for c in churches]}, schema=CHURCHES_SCHEMA)
    return ParsedChurches(source, _sha256(data), table, len(churches), tuple(errors),
                          tuple(warnings))
