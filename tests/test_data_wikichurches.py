"""Parsing and validation of building_parts.json, style_names.txt and churches.json."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ssl_wc.data.errors import InputError, InputErrors
from ssl_wc.data.imagefiles import IMAGE_FILES_SCHEMA
from ssl_wc.data.wikichurches import (
    BOXES_SCHEMA,
    CHURCHES_SCHEMA,
    FEATURE_ANCESTORS_SCHEMA,
    FEATURE_TYPES_SCHEMA,
    IMAGE_STYLES_SCHEMA,
    IMAGES_SCHEMA,
    KNOWN_STYLE_NAMES,
    STYLES_SCHEMA,
    ancestor_closure,
    default_styles,
    parse_building_parts,
    parse_building_parts_bytes,
    parse_churches,
    parse_churches_bytes,
    parse_churches_full,
    parse_image_id,
    parse_style_names,
    styles_table,
)

# --------------------------------------------------------------------------- fixture

META = [
    {"name": "Arcade", "parents": []},  # 0
    {"name": "Blind", "parents": []},  # 1
    {"name": "Blind Arcade", "parents": [0, 1]},  # 2: two parents
    {"name": "Lombard Band", "parents": [2]},  # 3: grandchild of Arcade and of Blind
    {"name": "Portal", "parents": []},  # 4
    {"name": "Tympanum", "parents": []},  # 5
    {"name": "Window", "parents": []},  # 6
]


def _box(left: float, top: float, width: float, height: float, label: int) -> dict[str, Any]:
    return {"left": left, "top": top, "width": width, "height": height, "label": label}


DOC: dict[str, Any] = {"meta": META, "annotations": {
    "Q1_wd0.jpg": {"styles": ["Q46261"], "bbox_groups": [
        {"group_label": 3, "elements": [_box(0.1, 0.1, 0.2, 0.1, 3)]},
        {"group_label": 4, "elements": [_box(0.4, 0.5, 0.2, 0.1, 5),
                                        _box(0.35, 0.45, 0.3, 0.5, 4)]}]},
    # left -0.02 and bottom 0.5 + 0.55 = 1.05: clamped
    "Q2_wd0.jpg": {"styles": ["Q176483", "Q236122"], "bbox_groups": [
        {"group_label": 6, "elements": [_box(-0.02, 0.5, 0.3, 0.55, 6)]}]},
    "Q3_wd1.png": {"styles": ["Q840829"], "bbox_groups": [
        {"group_label": 6, "elements": [_box(0.5, 0.2, 0.1, 0.2, 6)]},
        {"group_label": 2, "elements": [_box(0.0, 0.0, 1.0, 0.1, 2)]}]},
}}
Q1 = '$.annotations["Q1_wd0.jpg"]'
Q1_BOX0 = Q1 + ".bbox_groups[0].elements[0]"


def _doc() -> dict[str, Any]:
    return copy.deepcopy(DOC)


def _write(tmp_path: Path, text: str | bytes, name: str = "building_parts.json") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def _errors(call: Callable[[], object]) -> list[InputError]:
    with pytest.raises(InputErrors) as info:
        call()
    return list(info.value.errors)


# --------------------------------------------------------------------------- valid input


def test_small_document_known_answers(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps(DOC))
    p = parse_building_parts(path)
    assert (p.n_images, p.n_boxes, p.n_clamped) == (3, 6, 1)
    assert p.source == str(path) and len(p.source_sha256) == 64
    assert p.errors == () and p.warnings == ()
    assert p.images.column("image_id").to_pylist() == ["Q1_wd0.jpg", "Q2_wd0.jpg", "Q3_wd1.png"]
    assert p.images.column("church_qid").to_pylist() == ["Q1", "Q2", "Q3"]
    assert p.images.column("primary_style").to_pylist() == ["Q46261", "Q176483", "Q840829"]
    assert p.images.column("n_boxes").to_pylist() == [3, 1, 2]
    assert p.images.column("n_groups").to_pylist() == [2, 1, 2]
    assert p.images.column("n_styles").to_pylist() == [1, 2, 1]
    assert p.image_styles.to_pylist()[1:3] == [
        {"image_id": "Q2_wd0.jpg", "style_id": "Q176483", "style_rank": 0},
        {"image_id": "Q2_wd0.jpg", "style_id": "Q236122", "style_rank": 1}]
    q1 = [r for r in p.boxes.to_pylist() if r["image_id"] == "Q1_wd0.jpg"]
    assert [r["box_index"] for r in q1] == [0, 1, 2]
    assert [r["group_index"] for r in q1] == [0, 1, 1]
    assert [(r["group_label"], r["label"]) for r in q1] == [(3, 3), (4, 5), (4, 4)]
    assert set(p.tables()) == {"feature_types", "feature_ancestors", "images", "boxes",
                               "image_styles"}


def test_schemas() -> None:
    p = parse_building_parts_bytes(json.dumps(DOC))
    assert p.feature_types.schema == FEATURE_TYPES_SCHEMA
    assert p.feature_ancestors.schema == FEATURE_ANCESTORS_SCHEMA
    assert p.images.schema == IMAGES_SCHEMA
    assert p.boxes.schema == BOXES_SCHEMA
    assert p.image_styles.schema == IMAGE_STYLES_SCHEMA
    assert p.boxes.schema.field("was_clamped").type == pa.bool_()
    assert p.images.schema.field("styles").type == pa.list_(pa.string())


def test_schemas_match_the_lake_tables() -> None:
    lake = pytest.importorskip("ssl_wc.lake.schemas")
    ours = {"ann_feature_types": FEATURE_TYPES_SCHEMA,
            "ann_feature_ancestors": FEATURE_ANCESTORS_SCHEMA, "ann_images": IMAGES_SCHEMA,
            "ann_boxes": BOXES_SCHEMA, "ann_image_styles": IMAGE_STYLES_SCHEMA,
            "ann_styles": STYLES_SCHEMA, "ann_churches": CHURCHES_SCHEMA}
    for name, schema in ours.items():
        fields = [(f.name, f.type) for f in lake.TABLES[name].fields]
        assert fields == [(f.name, f.type) for f in schema], name
    # image_files: the scan's columns, then image_root added by the ingest step
    lake_files = [(f.name, f.type) for f in lake.TABLES["image_files"].fields]
    assert lake_files == [(f.name, f.type) for f in IMAGE_FILES_SCHEMA] + [
        ("image_root", pa.string())]


def test_clamping_is_counted_and_exact() -> None:
    p = parse_building_parts_bytes(json.dumps(DOC))
    rows = {(r["image_id"], r["box_index"]): r for r in p.boxes.to_pylist()}
    r = rows[("Q2_wd0.jpg", 0)]
    assert r["was_clamped"] and (r["left"], r["height"]) == (-0.02, 0.55)
    assert r["left_c"] == 0.0 and r["width_c"] == pytest.approx(0.28)
    assert r["top_c"] == 0.5 and r["height_c"] == pytest.approx(0.5)
    assert r["area_c"] == pytest.approx(0.28 * 0.5)
    full_width = rows[("Q3_wd1.png", 1)]  # touches 0 and 1 exactly: not clamped
    assert not full_width["was_clamped"] and full_width["width_c"] == 1.0
    assert sum(not r["was_clamped"] for r in rows.values()) == 5


def test_ancestor_closure_on_multi_parent_dag() -> None:
    p = parse_building_parts_bytes(json.dumps(DOC))
    rows = {(r["label"], r["ancestor"]): r["depth"] for r in p.feature_ancestors.to_pylist()}
    assert rows[(3, 3)] == 0 and rows[(3, 2)] == 1
    assert rows[(3, 0)] == 2 and rows[(3, 1)] == 2  # both parents of Blind Arcade
    assert rows[(2, 0)] == 1 and rows[(2, 1)] == 1
    assert {a for (label, a) in rows if label == 6} == {6}
    assert len(rows) == 7 + 2 + 3  # self rows + Blind Arcade's two + Lombard Band's three
    assert p.feature_types.to_pylist()[2] == {"label": 2, "name": "Blind Arcade",
                                              "parents": [0, 1]}


def test_ancestor_depth_is_the_shortest_path() -> None:
    # 3 -> 2 -> 0 and 3 -> 0 directly: depth 1
    rows = ancestor_closure([(), (0,), (0,), (2, 0)])
    assert (3, 0, 1) in rows and (3, 2, 1) in rows and (3, 3, 0) in rows
    assert len([r for r in rows if r[0] == 3]) == 3


def test_warnings_for_unexpected_keys_and_mislabelled_group() -> None:
    d = _doc()
    d["annotations"]["Q1_wd0.jpg"]["bbox_groups"][0]["elements"][0]["score"] = 1
    d["annotations"]["Q1_wd0.jpg"]["bbox_groups"][0]["group_label"] = 6
    p = parse_building_parts_bytes(json.dumps(d), "bp.json")
    assert p.n_images == 3
    locs = {w.location for w in p.warnings}
    assert Q1_BOX0 + ".score" in locs and Q1 + ".bbox_groups[0].group_label" in locs


def test_parse_image_id() -> None:
    assert parse_image_id("Q2034923_wd0.jpg") == ("Q2034923", 0)
    assert parse_image_id("Q5_wd12.JPEG") == ("Q5", 12)
    assert parse_image_id("church.jpg") is None


# --------------------------------------------------------------------------- bad input


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        node = d
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    return mutate


def _delete(path: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        node = d
        for k in path[:-1]:
            node = node[k]
        del node[path[-1]]
    return mutate


def _rename_image(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def mutate(d: dict[str, Any]) -> None:
        d["annotations"] = {new if k == old else k: v for k, v in d["annotations"].items()}
    return mutate


B0 = ("annotations", "Q1_wd0.jpg", "bbox_groups", 0, "elements", 0)
G0 = ("annotations", "Q1_wd0.jpg", "bbox_groups", 0)

BAD_DOCS: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("missing key", _delete((*B0, "width")), Q1_BOX0 + ".width", "missing key 'width'"),
    ("string label", _set((*B0, "label"), "3"), Q1_BOX0 + ".label", "expected an integer"),
    ("bool label", _set((*B0, "label"), True), Q1_BOX0 + ".label", "got a boolean"),
    ("float label", _set((*B0, "label"), 3.0), Q1_BOX0 + ".label", "expected an integer"),
    ("string coordinate", _set((*B0, "top"), "0.1"), Q1_BOX0 + ".top", "expected a number"),
    ("null coordinate", _set((*B0, "top"), None), Q1_BOX0 + ".top", "got null"),
    ("label above meta", _set((*B0, "label"), 7), Q1_BOX0 + ".label", "outside [0, 6]"),
    ("negative label", _set((*B0, "label"), -1), Q1_BOX0 + ".label", "outside [0, 6]"),
    ("group_label outside meta", _set((*G0, "group_label"), 40), Q1 + ".bbox_groups[0]"
     ".group_label", "outside [0, 6]"),
    ("absurd left", _set((*B0, "left"), 2.0), Q1_BOX0 + ".left", "outside [-0.5, 1.5]"),
    ("absurd top", _set((*B0, "top"), -0.7), Q1_BOX0 + ".top", "outside [-0.5, 1.5]"),
    ("absurd right edge", _set((*B0, "width"), 1.6), Q1_BOX0 + ".width", "right edge"),
    ("zero width", _set((*B0, "width"), 0), Q1_BOX0 + ".width", "must be > 0"),
    ("negative height", _set((*B0, "height"), -0.1), Q1_BOX0 + ".height", "must be > 0"),
    ("box outside image", _set((*B0, "left"), 1.1), Q1_BOX0, "outside the image"),
    ("huge number", _set((*B0, "left"), 1e308 * 10), Q1_BOX0 + ".left", "not a finite"),
    ("huge integer", _set((*B0, "left"), 10**400), Q1_BOX0 + ".left", "not a finite"),
    ("empty styles", _set(("annotations", "Q1_wd0.jpg", "styles"), []), Q1 + ".styles",
     "non-empty list"),
    ("style not a Q-id", _set(("annotations", "Q1_wd0.jpg", "styles"), ["Gothic"]),
     Q1 + ".styles[0]", "not a Wikidata id"),
    ("styles a string", _set(("annotations", "Q1_wd0.jpg", "styles"), "Q46261"),
     Q1 + ".styles", "expected a list"),
    ("style twice", _set(("annotations", "Q1_wd0.jpg", "styles"), ["Q46261", "Q46261"]),
     Q1 + ".styles[1]", "listed twice"),
    ("no groups", _set(("annotations", "Q1_wd0.jpg", "bbox_groups"), []),
     Q1 + ".bbox_groups", "non-empty list"),
    ("no elements", _set((*G0, "elements"), []), Q1 + ".bbox_groups[0].elements",
     "non-empty list"),
    ("element not an object", _set((*G0, "elements"), [[0.1, 0.1, 0.2, 0.2, 3]]), Q1_BOX0,
     "expected an object"),
    ("image not an object", _set(("annotations", "Q1_wd0.jpg"), None), Q1,
     "expected an object"),
    ("bad image key", _rename_image("Q1_wd0.jpg", "church one.jpg"),
     '$.annotations["church one.jpg"]', "Q<digits>_wd<digits>.<ext>"),
    ("image key without extension", _rename_image("Q1_wd0.jpg", "Q1_wd0"),
     '$.annotations["Q1_wd0"]', "must look like"),
    ("parent outside meta", _set(("meta", 2, "parents", 0), 7), "$.meta[2].parents[0]",
     "outside [0, 6]"),
    ("parents not a list", _set(("meta", 2, "parents"), 0), "$.meta[2].parents",
     "expected a list"),
    ("parent cycle", _set(("meta", 0, "parents"), [3]), "$.meta[0].parents",
     "parent cycle: 0 'Arcade' -> 3 'Lombard Band' -> 2 'Blind Arcade' -> 0 'Arcade'"),
    ("self parent", _set(("meta", 6, "parents"), [6]), "$.meta[6].parents",
     "parent cycle: 6 'Window' -> 6 'Window'"),
    ("duplicate feature name", _set(("meta", 1, "name"), "Arcade"), "$.meta[1].name",
     "repeats label 0"),
    ("meta missing", _delete(("meta",)), "$.meta", "missing key 'meta'"),
    ("meta empty", _set(("meta",), []), "$.meta", "non-empty list"),
    ("annotations a list", _set(("annotations",), []), "$.annotations", "expected an object"),
    ("annotations empty", _set(("annotations",), {}), "$.annotations", "no annotated images"),
]


@pytest.mark.parametrize(("case", "mutate", "location", "reason"), BAD_DOCS,
                         ids=[c[0] for c in BAD_DOCS])
def test_bad_document_names_file_and_path(tmp_path: Path, case: str,
                                          mutate: Callable[[dict[str, Any]], None],
                                          location: str, reason: str) -> None:
    d = _doc()
    mutate(d)
    path = _write(tmp_path, json.dumps(d))
    errors = _errors(lambda: parse_building_parts(path))
    assert any(e.location == location and reason in e.reason for e in errors), \
        [str(e) for e in errors]
    assert all(e.file == str(path) for e in errors)
    assert str(path) in str(errors[0]) and location in "\n".join(map(str, errors))


TEXT_CASES = [
    ("NaN", lambda t: t.replace('"left": 0.1', '"left": NaN', 1), Q1_BOX0 + ".left",
     "NaN is not a finite number"),
    ("Infinity", lambda t: t.replace('"height": 0.1', '"height": Infinity', 1),
     Q1_BOX0 + ".height", "Infinity is not a finite number"),
    ("-Infinity", lambda t: t.replace('"top": 0.1', '"top": -Infinity', 1), Q1_BOX0 + ".top",
     "-Infinity"),
    ("1e999", lambda t: t.replace('"left": 0.1', '"left": 1e999', 1), Q1_BOX0 + ".left",
     "not a finite number"),
    ("duplicate image key", lambda t: t.replace('"Q2_wd0.jpg"', '"Q1_wd0.jpg"', 1), Q1,
     "image key given more than once"),
    ("duplicate element key", lambda t: t.replace('"left": 0.1', '"left": 0.1, "left": 0.2', 1),
     Q1_BOX0 + ".left", "key given more than once"),
    ("duplicate top-level key", lambda t: t.replace('"annotations":', '"meta": [], '
                                                    '"annotations":', 1),
     "$.meta", "key given more than once"),
    ("malformed JSON", lambda t: t.replace('"top": 0.1,', '"top": 0.1', 1), "line 1, column",
     "malformed JSON: Expecting ',' delimiter"),
    ("truncated", lambda t: t[: len(t) // 2], "line 1, column", "malformed JSON"),
    ("not an object", lambda t: "[" + t + "]", "$", "expected an object, got a list"),
    ("empty file", lambda t: "", "line 1, column 1", "malformed JSON"),
]


@pytest.mark.parametrize(("case", "edit", "location", "reason"), TEXT_CASES,
                         ids=[c[0] for c in TEXT_CASES])
def test_bad_text_names_file_and_place(tmp_path: Path, case: str, edit: Callable[[str], str],
                                       location: str, reason: str) -> None:
    path = _write(tmp_path, edit(json.dumps(DOC)))
    strict_errors = _errors(lambda: parse_building_parts(path))
    if location.startswith("$.annotations["):  # image-level: non-strict skips the image
        lenient_errors = list(parse_building_parts(path, strict=False).errors)
    else:  # file-level: refused in both modes
        lenient_errors = _errors(lambda: parse_building_parts(path, strict=False))
    for errors in (strict_errors, lenient_errors):
        assert any(e.location.startswith(location) and reason in e.reason for e in errors), \
            [str(e) for e in errors]
        assert all(e.file == str(path) for e in errors)


def test_invalid_utf8_and_unreadable_file(tmp_path: Path) -> None:
    path = _write(tmp_path, b'{"meta": "\xff\xfe"}')
    (e,) = _errors(lambda: parse_building_parts(path))
    assert e.location == "byte 10" and "UTF-8" in e.reason
    (e,) = _errors(lambda: parse_building_parts(tmp_path / "nope.json"))
    assert e.file.endswith("nope.json") and "cannot read" in e.reason


def test_strict_collects_all_errors() -> None:
    d = _doc()
    _set((*B0, "label"), 99)(d)
    _set(("annotations", "Q3_wd1.png", "styles"), [])(d)
    _set(("annotations", "Q3_wd1.png", "bbox_groups", 1, "elements", 0, "width"), -1)(d)
    errors = _errors(lambda: parse_building_parts_bytes(json.dumps(d), "bp.json"))
    assert len(errors) == 3
    assert {e.image_id for e in errors} == {"Q1_wd0.jpg", "Q3_wd1.png"}
    assert "3 problems found" in str(InputErrors(errors))


def test_non_strict_drops_only_bad_images_whole() -> None:
    d = _doc()
    _set(("annotations", "Q1_wd0.jpg", "bbox_groups", 1, "elements", 1, "left"), "x")(d)
    p = parse_building_parts_bytes(json.dumps(d), "bp.json", strict=False)
    assert p.images.column("image_id").to_pylist() == ["Q2_wd0.jpg", "Q3_wd1.png"]
    assert set(p.boxes.column("image_id").to_pylist()) == {"Q2_wd0.jpg", "Q3_wd1.png"}
    assert set(p.image_styles.column("image_id").to_pylist()) == {"Q2_wd0.jpg", "Q3_wd1.png"}
    assert p.skipped_images == ("Q1_wd0.jpg",)
    assert [e.location for e in p.errors] == [Q1 + ".bbox_groups[1].elements[1].left"]
    assert (p.n_images, p.n_boxes) == (2, 3)


def test_non_strict_drops_every_copy_of_a_duplicate_key() -> None:
    text = json.dumps(_doc()).replace('"Q3_wd1.png"', '"Q2_wd0.jpg"')
    p = parse_building_parts_bytes(text, strict=False)
    assert p.images.column("image_id").to_pylist() == ["Q1_wd0.jpg"]
    assert p.skipped_images == ("Q2_wd0.jpg",)


def test_non_strict_still_refuses_a_bad_ontology() -> None:
    d = _doc()
    _set(("meta", 0, "parents"), [3])(d)
    with pytest.raises(InputErrors):
        parse_building_parts_bytes(json.dumps(d), strict=False)


# --------------------------------------------------------------------------- style names


def test_style_names_split_at_first_space(tmp_path: Path) -> None:
    p = _write(tmp_path, "Q46261 Romanesque architecture\n\nQ176483 Gothic\r\n", "s.txt")
    t = parse_style_names(p)
    assert t.schema == STYLES_SCHEMA
    assert t.to_pylist() == [{"style_id": "Q46261", "name": "Romanesque architecture"},
                             {"style_id": "Q176483", "name": "Gothic"}]
    assert styles_table(p).equals(t)


def test_builtin_style_names() -> None:
    t = styles_table()
    names = dict(zip(t.column("style_id").to_pylist(), t.column("name").to_pylist(),
                     strict=True))
    assert names["Q46261"] == "Romanesque" and names["Q840829"] == "Baroque"
    assert names == KNOWN_STYLE_NAMES and "Q695863" in names
    assert default_styles().equals(t)


@pytest.mark.parametrize(("text", "location", "reason"), [
    ("Q1 A\nGothic\n", "line 2", "not a Wikidata id"),
    ("Q1 A\nQ2\n", "line 2", "no name"),
    ("Q1 A\nQ1 B\n", "line 2", "named twice"),
    ("\n\n", "file", "no style names"),
])
def test_bad_style_names(tmp_path: Path, text: str, location: str, reason: str) -> None:
    p = _write(tmp_path, text, "style_names.txt")
    (e,) = _errors(lambda: parse_style_names(p))
    assert (e.file, e.location) == (str(p), location) and reason in e.reason


# --------------------------------------------------------------------------- churches

CHURCHES = {
    "Q10": {"id": "Q10", "name": "A", "built_year": 1142, "styles": ["Q46261"],
            "country": {"id": "Q183", "name": "Germany"},
            "location": {"lat": 50.93, "lon": 6.95}},
    "Q11": {"id": "Q11", "name": "B", "built_year": [1200, 1150, 1480],
            "styles": ["Q176483", "Q186363"], "country": None, "location": None},
    "Q12": {"name": None, "built_year": None, "styles": ["Q840829"]},
    "Q13": {"styles": [], "extra": {"anything": 1}},
}


def test_churches_known_answers(tmp_path: Path) -> None:
    path = _write(tmp_path, json.dumps(CHURCHES), "churches.json")
    c = parse_churches_full(path)
    assert c.table.schema == CHURCHES_SCHEMA and c.n_churches == 4
    assert c.errors == () and len(c.source_sha256) == 64
    assert parse_churches(path).equals(c.table)
    rows = {r["church_qid"]: r for r in c.table.to_pylist()}
    assert rows["Q10"] == {"church_qid": "Q10", "name": "A", "country_id": "Q183",
                           "country_name": "Germany", "built_year_min": 1142,
                           "built_year_max": 1142, "styles": ["Q46261"], "lat": 50.93,
                           "lon": 6.95}
    assert (rows["Q11"]["built_year_min"], rows["Q11"]["built_year_max"]) == (1150, 1480)
    assert rows["Q11"]["country_id"] is None and rows["Q11"]["lat"] is None
    assert rows["Q12"]["built_year_min"] is None and rows["Q12"]["name"] is None
    assert rows["Q13"]["styles"] == []


@pytest.mark.parametrize(("key", "value", "location", "reason"), [
    ("Q20", {"id": "Q21"}, '$["Q20"].id', "differs from its key"),
    ("Q20", {"built_year": "1142"}, '$["Q20"].built_year', "expected an integer"),
    ("Q20", {"built_year": [1100, True]}, '$["Q20"].built_year[1]', "got a boolean"),
    ("Q20", {"built_year": 99999}, '$["Q20"].built_year', "outside"),
    ("Q20", {"styles": "Q46261"}, '$["Q20"].styles', "expected a list"),
    ("Q20", {"styles": ["Gothic"]}, '$["Q20"].styles[0]', "not a Wikidata id"),
    ("Q20", {"location": {"lat": 95.0, "lon": 1.0}}, '$["Q20"].location.lat', "outside"),
    ("Q20", {"location": {"lat": 5.0}}, '$["Q20"].location.lon', "missing key"),
    ("Q20", {"country": "Germany"}, '$["Q20"].country', "expected an object"),
    ("Q20", {"name": 5}, '$["Q20"].name', "expected a string or null"),
    ("church20", {}, "$.church20", "must be a Wikidata id"),
    ("Q20", [], '$["Q20"]', "expected an object"),
])
def test_bad_churches(tmp_path: Path, key: str, value: Any, location: str,
                      reason: str) -> None:
    path = _write(tmp_path, json.dumps({**CHURCHES, key: value}), "churches.json")
    errors = _errors(lambda: parse_churches(path))
    assert any(e.location == location and reason in e.reason for e in errors), \
        [str(e) for e in errors]
    lenient = parse_churches_full(path, strict=False)
    assert lenient.n_churches == 4 and lenient.errors
    assert parse_churches(path, strict=False).num_rows == 4


def test_churches_nan_and_duplicates() -> None:
    text = json.dumps(CHURCHES).replace("50.93", "NaN").replace('"Q12"', '"Q11"')
    errors = _errors(lambda: parse_churches_bytes(text, "c.json"))
    locs = {e.location for e in errors}
    assert {'$["Q10"].location.lat', '$["Q11"]'} <= locs
    lenient = parse_churches_bytes(text, "c.json", strict=False)
    assert lenient.table.column("church_qid").to_pylist() == ["Q13"]
