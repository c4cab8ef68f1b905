"""Property-based fuzzing: random mutations of valid files never crash the parsers with
anything but InputError, and whatever they accept is consistent."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssl_wc.data.demo import generate_demo
from ssl_wc.data.errors import InputError
from ssl_wc.data.wikichurches import (
    ParsedAnnotations,
    parse_building_parts_bytes,
    parse_churches_bytes,
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def valid(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    paths = generate_demo(tmp_path_factory.mktemp("fuzz_demo"), n_annotated=6, n_pool=4)
    bp = json.loads(paths.building_parts.read_text())
    churches = json.loads(paths.churches.read_text())
    return bp, churches


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: Any, data: st.DataObject) -> Any:
    """Apply 1-3 random structural edits (replace, delete, duplicate, rename a key)."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = data.draw(st.sampled_from(paths))
        op = data.draw(st.sampled_from(["replace", "delete", "duplicate", "rename", "number"]))
        if not path:
            if op == "replace":
                doc = data.draw(JSON_VALUES)
            continue
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        if op == "replace":
            parent[key] = data.draw(JSON_VALUES)
        elif op == "number":
            parent[key] = data.draw(st.sampled_from(
                [math.nan, math.inf, -0.6, 1.6, -0.03, 1.04, 0, -1, 10**30, 0.5, 105, 7]))
        elif op == "delete":
            del parent[key]
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "rename" and isinstance(parent, dict):
            parent[data.draw(st.text(max_size=10))] = parent.pop(key)
    return doc


def _check_consistent(p: ParsedAnnotations) -> None:
    n_labels = p.feature_types.num_rows
    boxes = p.boxes.to_pylist()
    images = p.images.to_pylist()
    ids = [r["image_id"] for r in images]
    assert len(set(ids)) == len(ids) == p.n_images
    assert len(boxes) == p.n_boxes == sum(r["n_boxes"] for r in images)
    assert p.n_clamped == sum(b["was_clamped"] for b in boxes)
    for b in boxes:
        assert b["image_id"] in ids
        assert 0 <= b["label"] < n_labels and 0 <= b["group_label"] < n_labels
        assert 0 <= b["left_c"] <= 1 and 0 <= b["top_c"] <= 1
        assert 0 < b["width_c"] <= 1 and 0 < b["height_c"] <= 1
        assert b["left_c"] + b["width_c"] <= 1 + 1e-12
        assert all(math.isfinite(b[k]) for k in ("left", "top", "width", "height"))
    for r in images:
        assert r["primary_style"] == r["styles"][0] and r["n_boxes"] >= 1


@SETTINGS
@given(data=st.data())
def test_mutated_building_parts_only_raise_input_error(
        valid: tuple[dict[str, Any], dict[str, Any]], data: st.DataObject) -> None:
    doc = _mutate(valid[0], data)
    text = json.dumps(doc)
    strict_ok: ParsedAnnotations | None = None
    try:
        strict_ok = parse_building_parts_bytes(text, "bp.json")
    except InputError as e:
        assert str(e).startswith("bp.json")
    try:
        lenient = parse_building_parts_bytes(text, "bp.json", strict=False)
    except InputError:
        assert strict_ok is None
        return
    _check_consistent(lenient)
    assert all(isinstance(e, InputError) and e.image_id is not None for e in lenient.errors)
    if strict_ok is not None:
        _check_consistent(strict_ok)
        assert lenient.errors == () and lenient.images.equals(strict_ok.images)
    original = set(valid[0]["annotations"])
    kept = set(lenient.images.column("image_id").to_pylist())
    assert kept.isdisjoint(lenient.skipped_images)
    assert kept <= original | set(doc.get("annotations", {}) if isinstance(doc, dict) else ())


@SETTINGS
@given(data=st.data())
def test_mangled_text_only_raises_input_error(
        valid: tuple[dict[str, Any], dict[str, Any]], data: st.DataObject) -> None:
    text = json.dumps(valid[0])
    op = data.draw(st.sampled_from(["cut", "insert", "nan", "dup"]))
    pos = data.draw(st.integers(0, len(text)))
    if op == "cut":
        text = text[:pos]
    elif op == "insert":
        text = text[:pos] + data.draw(st.text(max_size=4)) + text[pos:]
    elif op == "nan":
        text = text.replace("0.", data.draw(st.sampled_from(["NaN", "Infinity", "-Infinity",
                                                             "1e999", "-0."])), 1)
    else:
        text = text.replace('"left"', '"left": 0.5, "left"', 1)
    for strict in (True, False):
        try:
            p = parse_building_parts_bytes(text.encode("utf-8", "surrogatepass"), "bp.json",
                                           strict=strict)
        except InputError:
            continue
        _check_consistent(p)


@SETTINGS
@given(data=st.data())
def test_mutated_churches_only_raise_input_error(
        valid: tuple[dict[str, Any], dict[str, Any]], data: st.DataObject) -> None:
    text = json.dumps(_mutate(valid[1], data))
    for strict in (True, False):
        try:
            c = parse_churches_bytes(text, "c.json", strict=strict)
        except InputError:
            continue
        rows = c.table.to_pylist()
        assert len(rows) == c.n_churches
        for r in rows:
            assert r["church_qid"].startswith("Q")
            assert (r["built_year_min"] is None) == (r["built_year_max"] is None)
            assert r["lat"] is None or -90 <= r["lat"] <= 90


def test_demo_document_is_valid(valid: tuple[dict[str, Any], dict[str, Any]],
                                tmp_path: Path) -> None:
    p = parse_building_parts_bytes(json.dumps(valid[0]))
    _check_consistent(p)
    assert p.n_images == 6
