"""The synthetic demo dataset: determinism, formats, counts and drawn parts."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ssl_wc.data.demo import DEMO_LABEL, FEATURES, DemoPaths, generate_demo, is_demo_dir
from ssl_wc.data.imagefiles import find_missing_images, scan_images
from ssl_wc.data.wikichurches import (
    STUDY_STYLES,
    ParsedAnnotations,
    parse_building_parts,
    parse_churches,
    parse_image_id,
    styles_table,
)

ROM, GOT, REN, BAR = STUDY_STYLES


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    return generate_demo(tmp_path_factory.mktemp("demo") / "wc")


@pytest.fixture(scope="module")
def parsed(demo: DemoPaths) -> ParsedAnnotations:
    return parse_building_parts(demo.building_parts)


def _church(image_id: str) -> str:
    parsed_id = parse_image_id(image_id)
    assert parsed_id is not None
    return parsed_id[0]


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_bytes(demo: DemoPaths, tmp_path: Path) -> None:
    again = generate_demo(tmp_path / "again")
    assert _digests(again.root) == _digests(demo.root)
    other = generate_demo(tmp_path / "other", seed=1)
    assert _digests(other.root)["building_parts.json"] != _digests(demo.root)[
        "building_parts.json"]


def test_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    generate_demo(tmp_path / "t")
    assert time.perf_counter() - start < 5


def test_files_and_labels(demo: DemoPaths) -> None:
    assert {p.name for p in demo.root.iterdir()} == {
        "README.txt", "building_parts.json", "style_names.txt", "churches.json", "images"}
    assert demo.readme.read_text().startswith(DEMO_LABEL) and is_demo_dir(demo.root)
    one = Image.open(demo.images / demo.annotated_ids[0])
    assert DEMO_LABEL.encode() in one.info["comment"]
    churches = parse_churches(demo.churches)
    assert all(n.startswith("Synthetic church ") for n in churches.column("name").to_pylist())
    assert styles_table(demo.style_names).num_rows == 9


def test_annotation_counts(demo: DemoPaths, parsed: ParsedAnnotations) -> None:
    assert parsed.n_images == len(demo.annotated_ids) == 32
    assert parsed.errors == () and parsed.warnings == ()
    n_boxes = parsed.images.column("n_boxes").to_pylist()
    assert min(n_boxes) >= 1 and max(n_boxes) <= 8 and 3 <= np.mean(n_boxes) <= 6
    assert 0 < parsed.n_clamped <= parsed.n_boxes // 5
    clamped = [b for b in parsed.boxes.to_pylist() if b["was_clamped"]]
    assert all(-0.06 < b["left"] < 0 or b["left"] + b["width"] > 1 or b["top"] < 0
               for b in clamped)
    first = Counter(parsed.images.column("primary_style").to_pylist())
    assert first == {ROM: 12, GOT: 11, REN: 5, BAR: 4}
    assert 1 <= sum(n == 2 for n in parsed.images.column("n_styles").to_pylist()) <= 4


def test_ontology(parsed: ParsedAnnotations) -> None:
    names = parsed.feature_types.column("name").to_pylist()
    assert names == sorted(names) == list(FEATURES) and 25 <= len(names) <= 35
    label = {n: i for i, n in enumerate(names)}
    parents = parsed.feature_types.column("parents").to_pylist()
    assert sorted(parents[label["Blind Arcade"]]) == sorted([label["Arcade"], label["Blind"]])
    anc = {(r["label"], r["ancestor"]): r["depth"]
           for r in parsed.feature_ancestors.to_pylist()}
    assert anc[(label["Lombard Band"], label["Arcade"])] == 2
    window_kinds = {lab for (lab, a) in anc if a == label["Window"]}
    assert {label["Pointed Arch Window"], label["Tracery Rose Window"]} <= window_kinds


def test_composite_portal_groups(parsed: ParsedAnnotations) -> None:
    boxes = parsed.boxes.to_pylist()
    names = parsed.feature_types.column("name").to_pylist()
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for b in boxes:
        groups.setdefault((b["image_id"], b["group_index"]), []).append(b)
    composite = [g for g in groups.values() if len(g) > 1]
    assert composite
    for g in composite:
        assert names[g[0]["group_label"]] == "Portal"
        assert {names[b["label"]] for b in g} <= {"Archivolt", "Tympanum", "Gable"}
    assert all(b["group_label"] == b["label"] for g in groups.values() if len(g) == 1
               for b in g)


def test_images_non_square_and_complete(demo: DemoPaths, parsed: ParsedAnnotations) -> None:
    scan = scan_images(demo.images)
    assert scan.errors == () and scan.n_files == 32 + 160
    assert find_missing_images(parsed.images.column("image_id").to_pylist(), scan) == []
    for r in scan.table.to_pylist():
        assert 160 <= r["width"] <= 320 and r["width"] != r["height"] and r["mode"] == "RGB"
    assert len({(r["width"], r["height"]) for r in scan.table.to_pylist()}) > 20


def test_pool_is_imbalanced_and_disjoint(demo: DemoPaths, parsed: ParsedAnnotations) -> None:
    churches = {r["church_qid"]: r for r in parse_churches(demo.churches).to_pylist()}
    annotated = set(demo.annotated_ids)
    assert len(demo.pool_ids) == 160 and annotated.isdisjoint(demo.pool_ids)
    for image_id in (*demo.annotated_ids, *demo.pool_ids):
        parsed_id = parse_image_id(image_id)
        assert parsed_id is not None and parsed_id[0] in churches
    for img in parsed.images.to_pylist():  # annotated churches carry the image's styles
        assert churches[img["church_qid"]]["styles"] == img["styles"]
    first = Counter(churches[_church(i)]["styles"][0] for i in demo.pool_ids)
    study = sum(first[s] for s in STUDY_STYLES)
    assert 0 < first[REN] / study < 0.1 and first[GOT] > first[BAR] > first[REN]
    assert study < len(demo.pool_ids)  # some pool churches have a non-study first style
    assert any("_wd1" in i for i in demo.pool_ids)
    # leak trap: an annotated image whose church has another photo in the pool
    leak_church = _church(demo.leak_trap)
    assert demo.leak_trap in annotated and f"{leak_church}_wd0.jpg" in demo.pool_ids


def test_parts_are_drawn_where_boxed(demo: DemoPaths, parsed: ParsedAnnotations) -> None:
    """Boxes hold far more edges than the image on average: an edge baseline finds them."""
    ratios = []
    cache: dict[str, np.ndarray] = {}
    for b in parsed.boxes.to_pylist():
        if b["image_id"] not in cache:
            im = np.asarray(Image.open(demo.images / b["image_id"]).convert("L"), dtype=float)
            cache[b["image_id"]] = (np.abs(np.diff(im, axis=0))[:, :-1]
                                    + np.abs(np.diff(im, axis=1))[:-1, :])
        g = cache[b["image_id"]]
        h, w = g.shape
        x0, y0 = int(b["left_c"] * w), int(b["top_c"] * h)
        x1 = max(x0 + 1, int((b["left_c"] + b["width_c"]) * w))
        y1 = max(y0 + 1, int((b["top_c"] + b["height_c"]) * h))
        ratios.append(g[y0:y1, x0:x1].mean() / g.mean())
    assert np.median(ratios) > 1.8 and np.mean(np.array(ratios) > 1) > 0.7


def test_rerun_replaces_and_refuses_foreign_folders(tmp_path: Path) -> None:
    small = generate_demo(tmp_path / "d", n_annotated=4, n_pool=4)
    again = generate_demo(tmp_path / "d", n_annotated=4, n_pool=2)
    assert len(list(again.images.iterdir())) == 6 and small.root == again.root
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(FileExistsError):
        generate_demo(foreign)
    with pytest.raises(ValueError):
        generate_demo(tmp_path / "x", n_annotated=2)
