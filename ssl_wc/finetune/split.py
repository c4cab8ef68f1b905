"""The style-labelled image pool and its leakage-safe train/validation split (no torch).

Pool rule: every image file in the image folder whose name parses as a WikiChurches id
(``Q<church>_wd<n>.<ext>``) and whose church (``churches.json``) has a FIRST listed style
among the four study styles (Romanesque Q46261, Gothic Q176483, Renaissance Q236122,
Baroque Q840829). Its label is that first listed style (one rule, used everywhere:
churches with several styles count under the first one only).

Leakage rule: the annotated images are the alignment benchmark on which fine-tuned
attention is evaluated, so they never enter training or validation, and neither does any
other photo of an annotated church (the same facade seen from another angle would leak
the benchmark into training; the demo data has such a trap). Those images are recorded
with split ``annotated`` / ``annotated_church`` so the exclusion can be audited.

Split: stratified by label and grouped by church (all photos of a church land on the same
side), seeded: per class, in the fixed class order, the class's churches are sorted and
permuted with ``numpy.random.default_rng(seed)``; the first
``val_fraction * n_churches`` rounded half up (at least one, and at most ``n - 1``, when the
class has two churches or more) go to validation. ``split_id`` is a hash of the seed, the
fraction, the rule and the full labelled image list, so the same inputs give the same id
and any change of inputs gives a new one.

Public: :class:`SplitRow`, :class:`StyleSplit`, :func:`church_styles`,
:func:`build_split`, :data:`SPLIT_VALUES`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ssl_wc.data.imagefiles import list_image_files
from ssl_wc.data.wikichurches import STUDY_STYLES, parse_churches, parse_image_id

LABEL_RULE = "first listed style of the church, 4 study styles"
SPLIT_VALUES = ("train", "val", "annotated", "annotated_church")
"""``train``/``val``: used by fine-tuning; ``annotated``: a benchmark image (never used);
``annotated_church``: another photo of an annotated church (never used)."""


class SplitError(ValueError):
    """The pool cannot give a usable split (with what is missing)."""


@dataclass(frozen=True)
class SplitRow:
    """One labelled image of the pool and where it went."""

    image_id: str
    church_qid: str
    style_id: str
    split: str
    path: str  # absolute path of the file


@dataclass(frozen=True)
class StyleSplit:
    """A train/validation split of the style-labelled pool (see the module docstring)."""

    split_id: str
    seed: int
    val_fraction: float
    classes: tuple[str, ...]
    rows: tuple[SplitRow, ...]
    images_dir: str

    def subset(self, split: str) -> list[SplitRow]:
        return [r for r in self.rows if r.split == split]

    @property
    def train(self) -> list[SplitRow]:
        return self.subset("train")

    @property
    def val(self) -> list[SplitRow]:
        return self.subset("val")

    def label_index(self, style_id: str) -> int:
        return self.classes.index(style_id)

    def counts(self) -> dict[str, dict[str, int]]:
        """split -> style id -> number of images."""
        out: dict[str, dict[str, int]] = {}
        for r in self.rows:
            out.setdefault(r.split, {}).setdefault(r.style_id, 0)
            out[r.split][r.style_id] += 1
        return out

    def table(self) -> pa.Table:
        """Rows of the ``finetune_splits`` lake table."""
        return pa.table({
            "split_id": pa.array([self.split_id] * len(self.rows), pa.string()),
            "image_id": pa.array([r.image_id for r in self.rows], pa.string()),
            "style_id": pa.array([r.style_id for r in self.rows], pa.string()),
            "split": pa.array([r.split for r in self.rows], pa.string())})

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (stored in run summaries and checkpoint manifests)."""
        return {"split_id": self.split_id, "seed": self.seed, "val_fraction": self.val_fraction,
                "classes": list(self.classes), "label_rule": LABEL_RULE,
                "images_dir": self.images_dir, "counts": self.counts(),
                "n_train": len(self.train), "n_val": len(self.val)}


def church_styles(churches: str | Path | Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """church Q-id -> its styles in listed order, from ``churches.json`` or a mapping.

    Churches that fail validation are dropped (non-strict parse): they cannot be labelled.
    """
    if isinstance(churches, Mapping):
        return {str(k): list(v) for k, v in churches.items()}
    table = parse_churches(churches, strict=False)
    qids = table.column("church_qid").to_pylist()
    styles = table.column("styles").to_pylist()
    return {q: list(s or []) for q, s in zip(qids, styles, strict=True)}


def _files(images: str | Path | Iterable[tuple[str, str | Path]]
           ) -> tuple[str, list[tuple[str, str]]]:
    if isinstance(images, str | Path):
        folder = Path(images).expanduser().resolve()
        if not folder.is_dir():
            raise SplitError(f"{folder}: not a folder of images")
        return folder.as_posix(), [(p.name, p.as_posix()) for p in list_image_files(folder)]
    return "", [(str(i), str(p)) for i, p in images]


def build_split(images: str | Path | Iterable[tuple[str, str | Path]],
                churches: str | Path | Mapping[str, Sequence[str]],
                annotated_ids: Iterable[str], *, annotated_churches: Iterable[str] = (),
                seed: int = 0, val_fraction: float = 0.2,
                classes: Sequence[str] = tuple(STUDY_STYLES)) -> StyleSplit:
    """Label the pool, hold out annotated images and their churches, split the rest.

    Args:
        images: the image folder (scanned recursively), or ``(image_id, path)`` pairs.
        churches: ``churches.json`` or a mapping church -> styles (listed order).
        annotated_ids: image ids of the alignment benchmark.
        annotated_churches: their churches when known (e.g. from the annotations); the
            church of each annotated id is also derived from its file name.
        seed, val_fraction: the seeded stratified split (see the module docstring).
        classes: the label set, in label-index order.

    Raises :class:`SplitError` when fewer than two classes have training images.
    """
    if not 0.0 < val_fraction < 1.0:
        raise SplitError(f"val_fraction must be in (0, 1), got {val_fraction}")
    folder, files = _files(images)
    styles = church_styles(churches)
    wanted = tuple(classes)
    held_ids = set(annotated_ids)
    held_churches = set(annotated_churches)
    for image_id in held_ids:
        parsed = parse_image_id(image_id)
        if parsed is not None:
            held_churches.add(parsed[0])
    labelled: list[tuple[str, str, str, str]] = []  # image_id, church, style, path
    seen: set[str] = set()
    for image_id, path in sorted(files):
        parsed = parse_image_id(image_id)
        if parsed is None or image_id in seen:
            continue
        church = parsed[0]
        listed = styles.get(church) or []
        first = listed[0] if listed else None
        if first not in wanted:
            continue
        seen.add(image_id)
        labelled.append((image_id, church, str(first), path))
    by_class: dict[str, set[str]] = defaultdict(set)
    for image_id, church, style, _ in labelled:
        if image_id not in held_ids and church not in held_churches:
            by_class[style].add(church)
    rng = np.random.default_rng(seed)
    val_churches: set[str] = set()
    for style in wanted:
        group = sorted(by_class.get(style, ()))
        n = len(group)
        if n == 0:
            continue
        k = math.floor(val_fraction * n + 0.5)  # rounded half up
        k = min(max(k, 1), n - 1) if n >= 2 else 0
        order = rng.permutation(n)
        val_churches.update(group[i] for i in order[:k])
    rows = []
    for image_id, church, style, path in labelled:
        if image_id in held_ids:
            split = "annotated"
        elif church in held_churches:
            split = "annotated_church"
        else:
            split = "val" if church in val_churches else "train"
        rows.append(SplitRow(image_id, church, style, split, path))
    train_classes = Counter(r.style_id for r in rows if r.split == "train")
    if len(train_classes) < 2:
        raise SplitError(
            f"the style-labelled pool has training images of {len(train_classes)} class(es) "
            f"({dict(train_classes)}): need at least 2 of {list(wanted)}; check the image "
            f"folder ({len(files)} files) and churches.json ({len(styles)} churches)")
    split_id = split_hash(seed, val_fraction, wanted, rows)
    return StyleSplit(split_id, seed, float(val_fraction), wanted, tuple(rows), folder)


def split_hash(seed: int, val_fraction: float, classes: Sequence[str],
               rows: Iterable[SplitRow]) -> str:
    """Stable id of a split: seed, fraction, rule and the labelled image list (16 hex)."""
    payload = {"seed": int(seed), "val_fraction": float(val_fraction),
               "classes": list(classes), "rule": LABEL_RULE,
               "images": sorted([r.image_id, r.church_qid, r.style_id,
                                 r.split in ("annotated", "annotated_church")] for r in rows)}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
