"""The style-labelled pool and its split: leakage, labels, stratification, determinism."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from ssl_wc.data.wikichurches import STUDY_STYLES
from ssl_wc.finetune.split import SplitError, build_split
from ssl_wc.lake.schemas import spec as table_spec

ROM, GOT, REN, BAR = STUDY_STYLES


def test_demo_split_never_uses_annotated_images_or_their_churches(demo_data) -> None:
    split = build_split(demo_data.images, demo_data.churches, demo_data.annotated_ids,
                        seed=0, val_fraction=0.2)
    used = {r.image_id for r in split.rows if r.split in ("train", "val")}
    assert used and not used & set(demo_data.annotated_ids)
    annotated_churches = {i.split("_")[0] for i in demo_data.annotated_ids}
    assert not {r.church_qid for r in split.rows if r.split in ("train", "val")} \
        & annotated_churches
    by_id = {r.image_id: r for r in split.rows}
    # the demo's trap: another photo of an annotated church sits in the pool
    trap_pool = demo_data.leak_trap.replace("_wd1", "_wd0")
    assert trap_pool in demo_data.pool_ids
    assert by_id[trap_pool].split == "annotated_church"
    assert by_id[demo_data.leak_trap].split == "annotated"
    assert {by_id[i].split for i in demo_data.annotated_ids if i in by_id} == {"annotated"}
    # every used image is a pool image labelled with a study style
    assert used <= set(demo_data.pool_ids)
    assert {r.style_id for r in split.rows} <= set(STUDY_STYLES)
    counts = split.counts()
    assert sum(counts["val"].values()) == len(split.val) > 0
    assert set(counts["train"]) == set(counts["val"])  # stratified: every class both sides


def test_split_is_deterministic_and_its_id_tracks_the_inputs(demo_data) -> None:
    a = build_split(demo_data.images, demo_data.churches, demo_data.annotated_ids, seed=3)
    b = build_split(demo_data.images, demo_data.churches, demo_data.annotated_ids, seed=3)
    assert a.split_id == b.split_id and a.rows == b.rows
    c = build_split(demo_data.images, demo_data.churches, demo_data.annotated_ids, seed=4)
    d = build_split(demo_data.images, demo_data.churches, demo_data.annotated_ids, seed=3,
                    val_fraction=0.3)
    e = build_split(demo_data.images, demo_data.churches, demo_data.annotated_ids[:-1],
                    seed=3)
    assert len({a.split_id, c.split_id, d.split_id, e.split_id}) == 4
    assert {r.image_id for r in a.val} != {r.image_id for r in c.val}


def test_table_matches_the_lake_schema(demo_data) -> None:
    split = build_split(demo_data.images, demo_data.churches, demo_data.annotated_ids)
    table = split.table()
    assert [f.name for f in table_spec("finetune_splits").fields] == table.column_names
    assert set(table.column("split").to_pylist()) == {"train", "val", "annotated",
                                                      "annotated_church"}
    assert set(table.column("split_id").to_pylist()) == {split.split_id}


def _files(tmp_path: Path, ids: list[str]) -> list[tuple[str, str]]:
    return [(i, str(tmp_path / i)) for i in ids]


def test_label_is_the_first_listed_study_style(tmp_path: Path) -> None:
    churches = {"Q1": [GOT, BAR], "Q2": ["Q186363", GOT], "Q3": [ROM], "Q4": [BAR],
                "Q5": [], "Q6": [ROM]}
    ids = ["Q1_wd0.jpg", "Q2_wd0.jpg", "Q3_wd0.jpg", "Q4_wd0.jpg", "Q5_wd0.jpg",
           "Q6_wd0.jpg", "Q7_wd0.jpg", "notanid.jpg"]
    split = build_split(_files(tmp_path, ids), churches, [], val_fraction=0.5)
    labels = {r.image_id: r.style_id for r in split.rows}
    assert labels == {"Q1_wd0.jpg": GOT, "Q3_wd0.jpg": ROM, "Q4_wd0.jpg": BAR,
                      "Q6_wd0.jpg": ROM}


def test_photos_of_one_church_stay_on_one_side_and_classes_are_stratified(
        tmp_path: Path) -> None:
    churches: dict[str, list[str]] = {}
    ids = []
    for i in range(40):
        style = (ROM, GOT, REN, BAR)[i % 4]
        churches[f"Q{i}"] = [style]
        ids += [f"Q{i}_wd0.jpg", f"Q{i}_wd1.jpg"]
    split = build_split(_files(tmp_path, ids), churches, ["Q0_wd0.jpg"], seed=1,
                        val_fraction=0.25)
    sides: dict[str, set[str]] = defaultdict(set)
    for r in split.rows:
        sides[r.church_qid].add(r.split)
    assert sides.pop("Q0") == {"annotated", "annotated_church"}
    assert all(len(s) == 1 for s in sides.values())
    # per class: val_fraction * usable churches, rounded half up (Romanesque lost Q0)
    assert split.counts()["val"] == {ROM: 2 * 2, GOT: 2 * 3, REN: 2 * 3, BAR: 2 * 3}
    val = split.counts()["val"]
    assert set(val) == set(STUDY_STYLES)


def test_a_pool_without_two_classes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SplitError, match="at least 2"):
        build_split(_files(tmp_path, ["Q1_wd0.jpg", "Q2_wd0.jpg"]),
                    {"Q1": [ROM], "Q2": [ROM]}, [])
    with pytest.raises(SplitError, match="val_fraction"):
        build_split(_files(tmp_path, ["Q1_wd0.jpg"]), {"Q1": [ROM]}, [], val_fraction=1.0)
