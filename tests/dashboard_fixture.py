"""A synthetic warehouse for the dashboard tests and the dashboard query benchmark.

Facts are written the way the real jobs write them, through :class:`ssl_wc.lake.runs.Run`
(one run per job: annotations, images, attention per model, metrics, baselines,
summaries, plus a failed and a partial run for the history), so the catalog views see
exactly what they would see after real ingests. Values are random but shaped like real
results: IoU@90 around 0.05 to 0.13, a per-model peak layer, single heads spread around
the fused mean, small boxes scoring lower than the union of an image's boxes.

``build_warehouse(root, FixtureSpec())`` gives the small test warehouse (a few seconds);
``FixtureSpec.full_scale()`` the benchmark size (139 images, 7 models x 12 layers x
13 head values x 3 methods).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw

from ssl_wc.data.wikichurches import KNOWN_STYLE_NAMES, STUDY_STYLES, ancestor_closure
from ssl_wc.lake.catalog import rebuild_catalog
from ssl_wc.lake.runs import Run
from ssl_wc.paths import WarehousePaths

PERCENTILES = (50, 60, 70, 75, 80, 85, 90, 95)
TF_METRICS = ("coverage", "pointing_t0", "pointing_t15", "topk_pointing",
              "relevance_rank_acc", "mse", "kl", "emd")
PCT_METRICS = ("iou", "iou_over_max", "corloc")
PROTOCOL = {"eval_size": [224, 224], "percentiles": list(PERCENTILES), "pointing_tolerance": 15,
            "norm_eps": 1e-8, "topk_ties": "index order"}
PROTOCOL_HASH = hashlib.sha256(json.dumps(PROTOCOL, sort_keys=True).encode()).hexdigest()[:16]

#: Feature ontology: name -> parent names (labels are the alphabetical order, as in
#: building_parts.json). Several parents make it a DAG.
ONTOLOGY: dict[str, tuple[str, ...]] = {
    "Apse": (), "Arcade": (), "Blind": (), "Blind Arcade": ("Arcade", "Blind"),
    "Buttress": (), "Gable": (), "Lombard Band": ("Blind Arcade",), "Pilaster": (),
    "Pinnacle": (), "Pointed Arch Window": ("Window",), "Portal": (),
    "Round Arch Window": ("Window",), "Tower": (), "Tracery": (),
    "Tracery Rose Window": ("Tracery", "Window"), "Window": (),
}
#: features boxes are drawn from (leaves mostly), with relative frequencies
BOX_FEATURES = {"Round Arch Window": 8, "Pointed Arch Window": 8, "Buttress": 6, "Pinnacle": 5,
                "Tracery": 5, "Lombard Band": 5, "Tracery Rose Window": 4, "Pilaster": 4,
                "Portal": 4, "Gable": 3, "Tower": 3, "Blind Arcade": 2, "Apse": 1}
BASELINES = {  # name: (iou90, coverage, mse, kl, emd)
    "random": (0.035, 0.077, 0.3192, 3.3627, 0.3468),
    "center_gaussian": (0.062, 0.095, 0.1770, 2.6317, 0.2836),
    "saliency_prior": (0.066, 0.098, 0.0957, 2.6111, 0.2654),
    "sobel_edges": (0.051, 0.088, 0.0376, 3.2237, 0.3137),
}
IOU_AT = {50: 0.45, 60: 0.55, 70: 0.68, 75: 0.75, 80: 0.83, 85: 0.92, 90: 1.0, 95: 0.97}


@dataclass(frozen=True)
class ModelSpec:
    """One synthetic backbone: grid, methods, quality (best IoU@90) and peak layer."""

    name: str
    grid: tuple[int, int] = (14, 14)
    methods: tuple[str, ...] = ("cls", "rollout", "mean")
    quality: float = 0.08
    peak: float = 1.0  # peak layer as a fraction of the depth
    variants: tuple[str, ...] = ("frozen",)
    random_weights: bool = False
    hub_id: str = ""


FULL_MODELS = (
    ModelSpec("dinov3", (14, 14), quality=0.133, peak=1.0,
              hub_id="facebook/dinov3-vitb16-pretrain-lvd1689m"),
    ModelSpec("dinov2", (16, 16), quality=0.082, peak=1.0,
              hub_id="facebook/dinov2-with-registers-base"),
    ModelSpec("dino", (14, 14), quality=0.090, peak=0.9, hub_id="facebook/dino-vitb16"),
    ModelSpec("siglip", (14, 14), ("map", "rollout", "mean"), quality=0.074, peak=0.7,
              hub_id="google/siglip-base-patch16-224"),
    ModelSpec("mae", (14, 14), quality=0.070, peak=1.0, hub_id="facebook/vit-mae-base"),
    ModelSpec("clip", (14, 14), quality=0.049, peak=0.0, hub_id="openai/clip-vit-base-patch16"),
    ModelSpec("siglip2", (14, 14), ("map", "rollout", "mean"), quality=0.047, peak=0.35,
              hub_id="google/siglip2-base-patch16-224"),
)

SMALL_MODELS = (
    ModelSpec("dinov2", (16, 16), ("cls", "rollout"), quality=0.082, peak=1.0,
              hub_id="facebook/dinov2-with-registers-base"),
    ModelSpec("clip", (14, 14), ("cls", "rollout"), quality=0.049, peak=0.0,
              variants=("frozen", "finetuned-full"), hub_id="openai/clip-vit-base-patch16"),
    ModelSpec("siglip", (14, 14), ("map", "mean"), quality=0.074, peak=0.7,
              random_weights=True, hub_id="google/siglip-base-patch16-224"),
)


@dataclass(frozen=True)
class FixtureSpec:
    """What to build; the flags leave parts out to test pages on partial data."""

    n_images: int = 12
    models: tuple[ModelSpec, ...] = SMALL_MODELS
    n_layers: int = 3
    n_heads: int = 2
    fused: tuple[int, ...] = (-1,)
    seed: int = 0
    synthetic: bool = True
    image_files: bool = True
    missing_files: int = 1  # annotated images left without a file
    maps: bool = True
    metrics: bool = True
    baselines: tuple[str, ...] = tuple(BASELINES)
    summaries: bool = True
    history: bool = True  # a failed run and a partial run with ingest errors
    image_size: tuple[int, int] = (320, 480)  # (min, max) side of the written JPEGs
    features: bool = True  # pooled (last layer) and CLS (every layer) features
    feature_dim: int = 24
    images_per_write: int = 8
    resamples: int = 2_000  # bootstrap resamples of the per-layer summaries

    @classmethod
    def full_scale(cls, seed: int = 0) -> FixtureSpec:
        return cls(n_images=139, models=FULL_MODELS, n_layers=12, n_heads=12, fused=(-1,),
                   seed=seed, image_size=(480, 800), images_per_write=26)

    def only(self, **flags: Any) -> FixtureSpec:
        return replace(self, **flags)


@dataclass
class BuiltWarehouse:
    """What was written: the folder and the keys tests need."""

    root: Path
    spec: FixtureSpec
    image_ids: list[str]
    boxes: dict[str, np.ndarray]
    box_labels: dict[str, list[int]]
    feature_names: list[str]
    styles: dict[str, list[str]]
    files: dict[str, Path]
    run_ids: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- annotations
def _ontology() -> tuple[list[str], list[tuple[int, ...]]]:
    names = sorted(ONTOLOGY)
    index = {n: i for i, n in enumerate(names)}
    return names, [tuple(index[p] for p in ONTOLOGY[n]) for n in names]


def _make_images(spec: FixtureSpec, rng: np.random.Generator
                 ) -> tuple[list[str], dict[str, np.ndarray], dict[str, list[int]],
                            dict[str, list[str]], dict[str, tuple[int, int]]]:
    names, _ = _ontology()
    feats = list(BOX_FEATURES)
    probs = np.array([BOX_FEATURES[f] for f in feats], dtype=float)
    probs /= probs.sum()
    study = list(STUDY_STYLES)
    ids: list[str] = []
    boxes: dict[str, np.ndarray] = {}
    labels: dict[str, list[int]] = {}
    styles: dict[str, list[str]] = {}
    sizes: dict[str, tuple[int, int]] = {}
    qids = rng.choice(np.arange(100_000, 9_999_999), size=spec.n_images, replace=False)
    lo, hi = spec.image_size
    for i, q in enumerate(sorted(qids)):
        image_id = f"Q{q}_wd{int(rng.integers(0, 3))}.jpg"
        ids.append(image_id)
        n_box = int(np.clip(rng.poisson(3.6) + 1, 1, 10))
        rows = []
        for _ in range(n_box):
            w = float(np.clip(rng.lognormal(math.log(0.10), 0.55), 0.015, 0.6))
            h = float(np.clip(w * rng.lognormal(0.2, 0.4), 0.015, 0.7))
            left = float(rng.uniform(0.05, 0.95 - w))
            top = float(rng.uniform(0.08, 0.95 - h))
            rows.append([left, top, w, h])
        if i % 5 == 2:  # a box slightly outside the image (clamped later)
            rows[0][0] = -0.02
        boxes[image_id] = np.asarray(rows)
        labels[image_id] = [names.index(f) for f in rng.choice(feats, size=n_box, p=probs)]
        first = study[int(rng.choice(4, p=[0.37, 0.35, 0.16, 0.12]))]
        tags = [first]
        if i % 9 == 4:
            tags.append(next(s for s in study if s != first))
        styles[image_id] = tags
        long_side = int(rng.integers(lo, hi + 1))
        ratio = float(rng.uniform(0.68, 0.85))
        sizes[image_id] = ((long_side, int(long_side * ratio)) if i % 3 else
                           (int(long_side * ratio), long_side))
    # jobs process images in file-name order (so Parquet row groups cover id ranges)
    return sorted(ids), boxes, labels, styles, sizes


def _clamp(b: Sequence[float]) -> tuple[float, float, float, float, bool]:
    left, top, w, h = b
    l_c, t_c = min(max(left, 0.0), 1.0), min(max(top, 0.0), 1.0)
    r_c, b_c = min(max(left + w, 0.0), 1.0), min(max(top + h, 0.0), 1.0)
    clamped = (l_c, t_c, r_c, b_c) != (left, top, left + w, top + h)
    return l_c, t_c, r_c - l_c, b_c - t_c, clamped


def _annotation_tables(spec: FixtureSpec, ids: list[str], boxes: dict[str, np.ndarray],
                       labels: dict[str, list[int]], styles: dict[str, list[str]]
                       ) -> dict[str, pa.Table]:
    names, parents = _ontology()
    closure = ancestor_closure(parents)
    box_rows: dict[str, list[Any]] = {k: [] for k in (
        "image_id", "box_index", "group_index", "group_label", "label", "left", "top", "width",
        "height", "left_c", "top_c", "width_c", "height_c", "was_clamped", "area_c")}
    for image_id in ids:
        for j, (b, lab) in enumerate(zip(boxes[image_id], labels[image_id], strict=True)):
            l_c, t_c, w_c, h_c, clamped = _clamp(b)
            for k, v in zip(box_rows, (image_id, j, j, lab, lab, *map(float, b), l_c, t_c, w_c,
                                       h_c, clamped, w_c * h_c), strict=True):
                box_rows[k].append(v)
    return {
        "ann_feature_types": pa.table({"label": list(range(len(names))), "name": names,
                                       "parents": [list(p) for p in parents]}),
        "ann_feature_ancestors": pa.table({"label": [r[0] for r in closure],
                                           "ancestor": [r[1] for r in closure],
                                           "depth": [r[2] for r in closure]}),
        "ann_images": pa.table({
            "image_id": ids, "church_qid": [i.split("_")[0] for i in ids],
            "styles": [styles[i] for i in ids], "primary_style": [styles[i][0] for i in ids],
            "n_styles": [len(styles[i]) for i in ids],
            "n_boxes": [len(boxes[i]) for i in ids], "n_groups": [len(boxes[i]) for i in ids]}),
        "ann_boxes": pa.table(box_rows),
        "ann_image_styles": pa.table({
            "image_id": [i for i in ids for _ in styles[i]],
            "style_id": [s for i in ids for s in styles[i]],
            "style_rank": [r for i in ids for r in range(len(styles[i]))]}),
        "ann_styles": pa.table({"style_id": list(KNOWN_STYLE_NAMES),
                                "name": list(KNOWN_STYLE_NAMES.values())}),
    }


# --------------------------------------------------------------------------- image files
def _draw_facade(path: Path, size: tuple[int, int], boxes: np.ndarray,
                 rng: np.random.Generator) -> None:
    """A plausible church facade: sky, stone front, a tower, windows where the boxes are."""
    w, h = size
    yy = np.linspace(0.0, 1.0, h)[:, None, None]
    sky = (np.array([120, 165, 215]) * (1 - yy) + np.array([205, 222, 240]) * yy)
    img = Image.fromarray(np.broadcast_to(sky, (h, w, 3)).astype(np.uint8))
    d = ImageDraw.Draw(img)
    stone = tuple(int(c) for c in rng.integers(150, 200, size=3))
    d.rectangle([int(0.12 * w), int(0.35 * h), int(0.88 * w), h], fill=stone)
    d.polygon([(int(0.12 * w), int(0.35 * h)), (int(0.5 * w), int(0.12 * h)),
               (int(0.88 * w), int(0.35 * h))], fill=stone)
    d.rectangle([int(0.42 * w), int(0.02 * h), int(0.58 * w), int(0.4 * h)],
                fill=tuple(max(0, c - 25) for c in stone))
    d.rectangle([int(0.44 * w), int(0.7 * h), int(0.56 * w), h], fill=(70, 50, 40))
    for left, top, bw, bh in boxes:
        x0, y0 = int(max(left, 0) * w), int(max(top, 0) * h)
        x1, y1 = int(min(left + bw, 1) * w), int(min(top + bh, 1) * h)
        d.rectangle([x0, y0, x1, y1], fill=(60, 70, 95), outline=(230, 225, 210), width=2)
    noise = rng.normal(0, 6, size=(h, w, 1))
    arr = np.clip(np.asarray(img, dtype=float) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, "JPEG", quality=85)


# --------------------------------------------------------------------------- maps
def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    src = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = src - i0
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), i0] += 1 - frac
    m[np.arange(n_out), i1] += frac
    return m


def _truth(boxes: np.ndarray, gh: int, gw: int) -> np.ndarray:
    """Soft target on the patch grid: a Gaussian per clamped box, combined by max."""
    ys, xs = (np.arange(gh) + 0.5) / gh, (np.arange(gw) + 0.5) / gw
    out = np.zeros((gh, gw))
    for b in boxes:
        l_c, t_c, w_c, h_c, _ = _clamp(b)
        cx, cy = l_c + w_c / 2, t_c + h_c / 2
        sx, sy = max(w_c / 2, 0.6 / gw), max(h_c / 2, 0.6 / gh)
        g = np.exp(-0.5 * (((xs[None, :] - cx) / sx) ** 2 + ((ys[:, None] - cy) / sy) ** 2))
        out = np.maximum(out, g)
    return out


def _layer_curve(layers: np.ndarray, n_layers: int, peak: float) -> np.ndarray:
    pos = layers / max(n_layers - 1, 1)
    return 0.45 + 0.55 * np.exp(-(((pos - peak) / 0.35) ** 2))


def _method_factor(method: str, model: ModelSpec) -> float:
    if method == model.methods[0]:
        return 1.0
    return {"rollout": 0.85, "mean": 0.7}.get(method, 0.8)


def _variant_factor(variant: str) -> float:
    return 1.0 if variant == "frozen" else 1.35


def _heads(spec: FixtureSpec) -> list[int]:
    return list(range(spec.n_heads)) + list(spec.fused)


def _head_factors(rng: np.random.Generator, spec: FixtureSpec) -> np.ndarray:
    """(layers, heads) multiplicative quality of each head; fused heads near 1."""
    single = rng.lognormal(-0.1, 0.5, size=(spec.n_layers, spec.n_heads))
    fused = {-1: 1.0, -2: 0.92, -3: 0.6}
    cols = [np.full((spec.n_layers, 1), fused[h]) for h in spec.fused]
    return np.concatenate([single, *cols], axis=1)


def _maps_for_image(spec: FixtureSpec, model: ModelSpec, variant: str, method: str,
                    boxes: np.ndarray, quality: np.ndarray, rng: np.random.Generator
                    ) -> np.ndarray:
    """(layers, heads, gh*gw) float32 attention maps (each sums to 1)."""
    gh, gw = model.grid
    truth = _truth(boxes, gh, gw)
    n_l, n_h = spec.n_layers, spec.n_heads
    coarse = rng.normal(size=(n_l, n_h, 4, 4))
    up = np.einsum("ij,lhjk,mk->lhim", _bilinear_matrix(4, gh), coarse, _bilinear_matrix(4, gw))
    fine = rng.normal(scale=0.35, size=(n_l, n_h, gh, gw))
    align = np.clip(quality[:, :n_h] * 9.0, 0.05, 0.97)[:, :, None, None]
    logits = 4.0 * (align * truth[None, None] + (1 - align) * 0.45 * (up + fine))
    e = np.exp(logits - logits.max(axis=(2, 3), keepdims=True))
    single = e / e.sum(axis=(2, 3), keepdims=True)
    out = [single]
    for h in spec.fused:
        if h == -1:
            f = single.mean(axis=1, keepdims=True)
        elif h == -2:
            f = single.max(axis=1, keepdims=True)
        else:
            f = single.min(axis=1, keepdims=True)
        out.append(f / f.sum(axis=(2, 3), keepdims=True))
    return np.concatenate(out, axis=1).reshape(n_l, n_h + len(spec.fused), gh * gw).astype(
        np.float32)


def _list_array(values: np.ndarray) -> pa.Array:
    flat = values.reshape(values.shape[0], -1)
    n, k = flat.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(flat.ravel(), pa.float32()))


# --------------------------------------------------------------------------- metrics
def _metric_rows(keys: dict[str, np.ndarray], iou90: np.ndarray, area: np.ndarray,
                 rng: np.random.Generator, extra: dict[str, tuple[float, ...]] | None = None
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """metrics_map and metrics_iou columns for rows with a given IoU@90 and target area."""
    n = iou90.shape[0]
    g = np.clip(area, 1e-4, 0.95)
    cov = np.clip(g * (1 + 5 * iou90) * rng.lognormal(0, 0.2, n), 0, 1)
    p0 = rng.random(n) < np.clip(0.12 + 2.5 * iou90, 0, 0.95)
    p15 = p0 | (rng.random(n) < 0.3)
    mm: dict[str, Any] = dict(keys)
    mm.update(
        coverage=cov, pointing_t0=p0.astype(float), pointing_t15=p15.astype(float),
        topk_pointing=np.clip(cov * 1.2 + rng.normal(0, 0.02, n), 0, 1),
        relevance_rank_acc=np.clip(iou90 * 1.3 + rng.normal(0, 0.02, n), 0, 1),
        annotation_area=area,
        mse=np.clip(0.05 - 0.2 * iou90 + rng.normal(0, 0.006, n), 0.004, 1),
        kl=np.clip(3.2 - 6 * iou90 + rng.normal(0, 0.15, n), 0.5, 8),
        emd=np.clip(0.36 - 0.75 * iou90 + rng.normal(0, 0.02, n), 0.05, 1),
        roc_auc=np.clip(0.55 + 2.0 * iou90 + rng.normal(0, 0.03, n), 0, 1),
        gini=np.clip(0.45 + rng.normal(0, 0.05, n), 0, 1),
        entropy=np.clip(10.4 + rng.normal(0, 0.1, n), 0, math.log(224 * 224)))
    mm["emd_point"] = np.clip(mm["emd"] * rng.lognormal(0.05, 0.1, n), 0, 1)
    if extra is not None:  # baselines: published means for MSE / KL / EMD
        _, cov_b, mse_b, kl_b, emd_b = extra["values"]
        mm.update(coverage=np.clip(g * cov_b / 0.077 * rng.lognormal(0, 0.15, n), 0, 1),
                  mse=np.clip(mse_b * rng.lognormal(0, 0.2, n), 0, 1),
                  kl=kl_b * rng.lognormal(0, 0.05, n), emd=emd_b * rng.lognormal(0, 0.08, n))
    p = len(PERCENTILES)
    pct = np.tile(np.asarray(PERCENTILES, dtype=np.int16), n)
    a = (100 - pct) / 100.0
    g_r = np.repeat(g, p)
    factor = np.asarray([IOU_AT[q] for q in PERCENTILES])
    iou = np.repeat(iou90, p) * np.tile(factor, n) * rng.lognormal(0, 0.08, n * p)
    max_iou = np.minimum(a, g_r) / np.maximum(a, g_r)
    iou = np.clip(np.minimum(iou, 0.98 * max_iou), 0, 1)
    mi: dict[str, Any] = {k: np.repeat(v, p) for k, v in keys.items()}
    mi.update(percentile=pct, iou=iou, attention_area=a,
              random_iou=a * g_r / (a + g_r - a * g_r), max_iou=max_iou,
              iou_over_max=iou / max_iou, corloc=(iou >= 0.5).astype(float))
    return mm, mi


def _targets(image_ids: list[str], boxes: dict[str, np.ndarray]
             ) -> tuple[list[str], list[str], list[int], np.ndarray]:
    """(image_id, target, box_index, area) of each image's union and each box."""
    img, tgt, idx, area = [], [], [], []
    for i in image_ids:
        clamped = [_clamp(b) for b in boxes[i]]
        img.append(i)
        tgt.append("image")
        idx.append(-1)
        area.append(min(0.9, sum(c[2] * c[3] for c in clamped)))
        for j, c in enumerate(clamped):
            img.append(i)
            tgt.append("box")
            idx.append(j)
            area.append(c[2] * c[3])
    return img, tgt, idx, np.asarray(area)


def _to_table(cols: dict[str, Any]) -> pa.Table:
    out = {}
    for k, v in cols.items():
        if isinstance(v, np.ndarray) and v.dtype.kind in "OU":
            out[k] = pa.array(v.astype(object))
        else:
            out[k] = v
    return pa.table(out)


# --------------------------------------------------------------------------- build
def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for s in range(0, len(items), size):
        yield items[s:s + size]


def build_warehouse(root: str | Path, spec: FixtureSpec | None = None) -> BuiltWarehouse:
    """Write a complete synthetic warehouse under ``root`` and build its catalog."""
    spec = spec or FixtureSpec()
    root = Path(root)
    wh = WarehousePaths(root.resolve()).ensure()
    rng = np.random.default_rng(spec.seed)
    ids, boxes, labels, styles, sizes = _make_images(spec, rng)
    names, _ = _ontology()
    built = BuiltWarehouse(wh.root, spec, ids, boxes, labels, names, styles, {})

    with Run(wh, "annotations", {"fixture": True, "seed": spec.seed},
             rebuild_catalog=False) as run:
        for name, table in _annotation_tables(spec, ids, boxes, labels, styles).items():
            run.write(name, table, unit_key="*")
        run.write("ann_sources", pa.table({
            "file": ["building_parts.json"], "kind": ["building_parts"],
            "sha256": [hashlib.sha256(b"fixture").hexdigest()], "n_items": [len(ids)],
            "n_clamped": [sum(1 for i in ids for b in boxes[i] if _clamp(b)[4])],
            "synthetic": [spec.synthetic]}), unit_key="*")
        run.add_units("ann_churches", ["*"])
        run.commit(n_images=len(ids), synthetic=spec.synthetic)
    built.run_ids["annotations"] = run.run_id

    if spec.image_files:
        folder = root / "images"
        folder.mkdir(parents=True, exist_ok=True)
        with_file = ids[: len(ids) - spec.missing_files] if spec.missing_files else ids
        rows: dict[str, list[Any]] = {k: [] for k in (
            "image_id", "path", "width", "height", "sha256", "bytes", "mode", "image_root")}
        for image_id in with_file:
            path = folder / image_id
            _draw_facade(path, sizes[image_id], boxes[image_id], rng)
            built.files[image_id] = path
            data = path.read_bytes()
            for k, v in zip(rows, (image_id, image_id, sizes[image_id][0], sizes[image_id][1],
                                   hashlib.sha256(data).hexdigest(), len(data), "RGB",
                                   folder.resolve().as_posix()), strict=True):
                rows[k].append(v)
        with Run(wh, "images", {"folder": folder.resolve().as_posix()},
                 rebuild_catalog=False) as run:
            run.write("image_files", pa.table(rows), unit_key=folder.resolve().as_posix())
            if spec.history:
                run.log_error("images", "broken_scan.jpg", "cannot decode: truncated JPEG")
            run.commit(folder=folder.resolve().as_posix(), n_files=len(with_file))
        built.run_ids["images"] = run.run_id

    level: dict[tuple[str, str, str], np.ndarray] = {}
    img_quality = {i: float(rng.lognormal(0, 0.35)) for i in ids}
    for model in spec.models:
        for variant in model.variants:
            for method in model.methods:
                head_q = _head_factors(rng, spec)
                layer_q = _layer_curve(np.arange(spec.n_layers), spec.n_layers, model.peak)
                level[(model.name, variant, method)] = (
                    model.quality * _variant_factor(variant) * _method_factor(method, model)
                    * layer_q[:, None] * head_q)

    heads = _heads(spec)
    # maps exist only for images with a file (as after a real `ssl-wc ingest attention`)
    mapped = ids[: len(ids) - spec.missing_files] if spec.image_files else ids
    if spec.maps:
        for model in spec.models:
            _write_maps(wh, spec, model, mapped, boxes, level, heads, rng, built)
        if spec.history:
            run = Run(wh, "attention", {"models": ["mae"], "fixture": True},
                      rebuild_catalog=False).start()
            run.fail(OSError("mae: weights not found in the local cache (HF_HUB_OFFLINE=1)"))

    if spec.metrics and spec.maps:
        _write_metrics(wh, spec, mapped, boxes, level, heads, img_quality, rng, built)
    if spec.metrics and spec.baselines:
        _write_baselines(wh, spec, ids, boxes, img_quality, rng, built)
    if spec.summaries and spec.metrics:
        _write_summaries(wh, spec, built)
    rebuild_catalog(wh)
    return built


def _write_maps(wh: WarehousePaths, spec: FixtureSpec, model: ModelSpec, ids: list[str],
                boxes: dict[str, np.ndarray], level: dict[tuple[str, str, str], np.ndarray],
                heads: list[int], rng: np.random.Generator, built: BuiltWarehouse) -> None:
    gh, gw = model.grid
    config = {"model": model.name, "grid": [gh, gw], "methods": list(model.methods)}
    with Run(wh, "attention", config, rebuild_catalog=False) as run:
        for variant in model.variants:
            chash = hashlib.sha256(f"{model.name}|{variant}".encode()).hexdigest()[:16]
            run.write("map_sources", {
                "model": [model.name], "variant": [variant], "config_hash": [chash],
                "hub_id": [model.hub_id], "revision": ["main"], "architecture": ["vit-base"],
                "random_weights": [model.random_weights], "grid_h": [gh], "grid_w": [gw],
                "num_layers": [spec.n_layers], "num_heads": [spec.n_heads],
                "transform_json": [json.dumps({"resize": [224, 224]})],
                "config_json": [json.dumps(config)], "device": ["cpu"], "dtype": ["float32"],
                "default_method": [model.methods[0]], "methods": [list(model.methods)]},
                unit_key=f"{model.name}|{variant}")
            for chunk in _chunks(ids, spec.images_per_write):
                cols: dict[str, list[Any]] = {k: [] for k in (
                    "model", "variant", "method", "layer", "head", "image_id")}
                values = []
                units: list[str] = []
                for image_id in chunk:
                    for method in model.methods:
                        maps = _maps_for_image(spec, model, variant, method, boxes[image_id],
                                               level[(model.name, variant, method)], rng)
                        n = spec.n_layers * len(heads)
                        values.append(maps.reshape(n, gh * gw))
                        cols["model"] += [model.name] * n
                        cols["variant"] += [variant] * n
                        cols["method"] += [method] * n
                        cols["layer"] += [lay for lay in range(spec.n_layers) for _ in heads]
                        cols["head"] += heads * spec.n_layers
                        cols["image_id"] += [image_id] * n
                        units += [f"{model.name}|{variant}|{method}|{image_id}"] * n
                m = len(units)
                table = pa.table({**cols, "grid_h": [gh] * m, "grid_w": [gw] * m,
                                  "config_hash": [chash] * m,
                                  "values": _list_array(np.concatenate(values))})
                run.write("attention_maps", table, unit_key=units,
                          partition={"model": model.name})
                if spec.features:
                    _write_features(run, spec, model, variant, chunk, built, chash, rng)
        run.commit(model=model.name)
    built.run_ids[f"attention:{model.name}"] = run.run_id


def _write_features(run: Run, spec: FixtureSpec, model: ModelSpec, variant: str,
                    chunk: list[str], built: BuiltWarehouse, chash: str,
                    rng: np.random.Generator) -> None:
    """Features that cluster by first listed style (stronger in deeper layers), as the
    attention job stores them: ``cls`` at every layer, ``pooled`` at the last."""
    d = spec.feature_dim
    seed = int(hashlib.sha256(f"{model.name}|{variant}".encode()).hexdigest()[:8], 16)
    centres = np.random.default_rng(seed).normal(size=(len(STUDY_STYLES) + 1, d))
    study = list(STUDY_STYLES)
    rows: dict[str, list[Any]] = {k: [] for k in ("model", "variant", "layer", "image_id",
                                                  "kind", "config_hash")}
    vecs = []
    for image_id in chunk:
        style = built.styles[image_id][0]
        centre = centres[study.index(style) if style in study else -1]
        for layer in range(spec.n_layers):
            strength = (layer + 1) / spec.n_layers
            kinds = ["cls"] + (["pooled"] if layer == spec.n_layers - 1 else [])
            for kind in kinds:
                vecs.append(strength * centre + rng.normal(scale=0.8, size=d))
                for k, v in zip(rows, (model.name, variant, layer, image_id, kind, chash),
                                strict=True):
                    rows[k].append(v)
    run.write("features", pa.table({**rows, "values": _list_array(np.asarray(vecs))}),
              unit_key=[f"{model.name}|{variant}|features|{i}" for i in rows["image_id"]],
              partition={"model": model.name})


def _write_metrics(wh: WarehousePaths, spec: FixtureSpec, ids: list[str],
                   boxes: dict[str, np.ndarray], level: dict[tuple[str, str, str], np.ndarray],
                   heads: list[int], img_quality: dict[str, float], rng: np.random.Generator,
                   built: BuiltWarehouse) -> None:
    with Run(wh, "metrics", {"protocol": PROTOCOL}, rebuild_catalog=False) as run:
        run.write("metric_protocols", {"protocol_hash": [PROTOCOL_HASH],
                                       "protocol_json": [json.dumps(PROTOCOL)]},
                  unit_key=PROTOCOL_HASH)
        n_l, n_h = spec.n_layers, len(heads)
        for model in spec.models:
            for variant in model.variants:
                for method in model.methods:
                    q = level[(model.name, variant, method)]  # (layers, heads)
                    for chunk in _chunks(ids, spec.images_per_write):
                        img, tgt, idx, area = _targets(chunk, boxes)
                        t = len(img)
                        # rows: target-major, then layer, then head
                        img_r = np.repeat(np.asarray(img, dtype=object), n_l * n_h)
                        base = np.tile(q.ravel(), t)
                        img_f = np.repeat([img_quality[i] for i in img], n_l * n_h)
                        box_f = np.repeat(np.where(np.asarray(tgt) == "box",
                                                   rng.lognormal(-0.45, 0.55, t), 1.0), n_l * n_h)
                        iou90 = np.clip(base * img_f * box_f * rng.lognormal(0, 0.25, base.size),
                                        0, 0.9)
                        n = iou90.size
                        keys = {
                            "model": np.full(n, model.name, dtype=object),
                            "variant": np.full(n, variant, dtype=object),
                            "method": np.full(n, method, dtype=object),
                            "layer": np.tile(np.repeat(np.arange(n_l, dtype=np.int16), n_h), t),
                            "head": np.tile(np.asarray(heads, dtype=np.int16), t * n_l),
                            "image_id": img_r,
                            "target": np.repeat(np.asarray(tgt, dtype=object), n_l * n_h),
                            "box_index": np.repeat(np.asarray(idx, dtype=np.int32), n_l * n_h),
                            "protocol_hash": np.full(n, PROTOCOL_HASH, dtype=object),
                            "source_run_id": np.full(
                                n, built.run_ids.get(f"attention:{model.name}", ""),
                                dtype=object)}
                        mm, mi = _metric_rows(keys, iou90, np.repeat(area, n_l * n_h), rng)
                        unit = np.char.add(f"{model.name}|{variant}|{method}|",
                                           np.char.add(img_r.astype(str), f"|{PROTOCOL_HASH}"))
                        # row groups of 8 images, as the metrics job writes them
                        t_mm, t_mi = _to_table(mm), _to_table(mi)
                        p = len(PERCENTILES)
                        firsts = [0, *np.flatnonzero(img_r[1:] != img_r[:-1]) + 1]
                        cuts = [*firsts[::8], n]
                        for a, b in itertools.pairwise(cuts):
                            run.write("metrics_map", t_mm.slice(a, b - a),
                                      unit_key=list(unit[a:b]), partition={"model": model.name})
                            run.write("metrics_iou", t_mi.slice(a * p, (b - a) * p),
                                      unit_key=list(np.repeat(unit[a:b], p)),
                                      partition={"model": model.name})
        run.commit(n_units=len(ids))
    built.run_ids["metrics"] = run.run_id


def _write_baselines(wh: WarehousePaths, spec: FixtureSpec, ids: list[str],
                     boxes: dict[str, np.ndarray], img_quality: dict[str, float],
                     rng: np.random.Generator, built: BuiltWarehouse) -> None:
    with Run(wh, "baselines", {"baselines": list(spec.baselines)},
             rebuild_catalog=False) as run:
        img, tgt, idx, area = _targets(ids, boxes)
        t = len(img)
        for name in spec.baselines:
            values = BASELINES[name]
            model = f"baseline:{name}"
            box_f = np.where(np.asarray(tgt) == "box", rng.lognormal(-0.3, 0.4, t), 1.0)
            img_f = np.asarray([img_quality[i] for i in img]) ** 0.5
            iou90 = np.clip(values[0] * box_f * img_f * rng.lognormal(0, 0.2, t), 0, 0.9)
            keys = {"model": np.full(t, model, dtype=object),
                    "variant": np.full(t, "frozen", dtype=object),
                    "method": np.full(t, "baseline", dtype=object),
                    "layer": np.zeros(t, dtype=np.int16), "head": np.full(t, -1, dtype=np.int16),
                    "image_id": np.asarray(img, dtype=object),
                    "target": np.asarray(tgt, dtype=object),
                    "box_index": np.asarray(idx, dtype=np.int32),
                    "protocol_hash": np.full(t, PROTOCOL_HASH, dtype=object),
                    "source_run_id": np.full(t, "", dtype=object)}
            mm, mi = _metric_rows(keys, iou90, area, rng, extra={"values": values})
            unit = [f"{model}|frozen|baseline|{i}|{PROTOCOL_HASH}" for i in img]
            run.write("metrics_map", _to_table(mm), unit_key=unit, partition={"model": model})
            run.write("metrics_iou", _to_table(mi),
                      unit_key=[u for u in unit for _ in PERCENTILES], partition={"model": model})
        run.commit()
    built.run_ids["baselines"] = run.run_id


def _write_summaries(wh: WarehousePaths, spec: FixtureSpec, built: BuiltWarehouse) -> None:
    """The summaries, by the metrics job's own summaries step (per-layer bootstrap CIs,
    feature, style, head-ranking and baseline-gap tables) over the committed metrics."""
    from ingest.metrics import materialise_summaries

    rebuild_catalog(wh)
    res = materialise_summaries(wh, resamples=spec.resamples)
    built.run_ids["summaries"] = res.run_id or ""
