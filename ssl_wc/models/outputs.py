"""What an extraction returns, as numpy columns ready for Parquet. No torch.

:class:`MapBatch`: one row per (image, method, layer, head) map over one patch grid,
``values`` float32 (n, grid_h * grid_w) row-major (``values[i, y * grid_w + x]``).
:class:`FeatureBatch`: one row per (image, layer, kind) vector; kinds in
:data:`FEATURE_KINDS`: ``cls`` (raw CLS token after a block), ``patch_mean`` (mean patch
token after a block, or a CNN stage's global average), ``pooled`` (the model's own pooled
output) and ``pooled_proj`` (the pooled output through the checkpoint's joint-embedding
projection, CLIP's 512-d image embedding).

Head encoding: ``head >= 0`` is one attention head; negative sentinels mark maps over all
heads: ``-1`` (:data:`HEAD_MEAN`) mean fusion, ``-2`` (:data:`HEAD_MAX`) max, ``-3``
(:data:`HEAD_MIN`) min. Grad-CAM maps (no heads) use ``-1``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

HEAD_MEAN = -1
HEAD_MAX = -2
HEAD_MIN = -3
FUSION_HEAD = {"mean": HEAD_MEAN, "max": HEAD_MAX, "min": HEAD_MIN}
HEAD_FUSION = {v: k for k, v in FUSION_HEAD.items()}
FEATURE_KINDS = ("cls", "patch_mean", "pooled", "pooled_proj")


class MapRecord(NamedTuple):
    """One map (a row of :class:`MapBatch`) with its values as a (gh, gw) array."""

    image: int
    method: str
    layer: int
    head: int
    map: np.ndarray


@dataclass
class MapBatch:
    """Columnar maps: row i is one (image, method, layer, head) map (see module docstring)."""

    image: np.ndarray  # int32 (n,)
    method: np.ndarray  # str (n,)
    layer: np.ndarray  # int16 (n,)
    head: np.ndarray  # int16 (n,)
    grid_h: int
    grid_w: int
    values: np.ndarray  # float32 (n, grid_h * grid_w), row-major (index = y * grid_w + x)

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def maps(self) -> np.ndarray:
        """Values as (n, grid_h, grid_w)."""
        return self.values.reshape(len(self), self.grid_h, self.grid_w)

    def to_columns(self) -> dict[str, np.ndarray]:
        """Plain numpy columns for Parquet (``values`` stays 2-D: a fixed-size list column)."""
        n = len(self)
        return {
            "image": self.image,
            "method": self.method,
            "layer": self.layer,
            "head": self.head,
            "grid_h": np.full(n, self.grid_h, np.int16),
            "grid_w": np.full(n, self.grid_w, np.int16),
            "values": self.values,
        }

    def select(
        self,
        method: str | None = None,
        layer: int | None = None,
        head: int | None = None,
        image: int | None = None,
    ) -> MapBatch:
        """Rows matching every given value."""
        keep = np.ones(len(self), bool)
        for col, val in ((self.method, method), (self.layer, layer), (self.head, head),
                         (self.image, image)):
            if val is not None:
                keep &= col == val
        return MapBatch(self.image[keep], self.method[keep], self.layer[keep], self.head[keep],
                        self.grid_h, self.grid_w, self.values[keep])

    def get(self, method: str, layer: int, head: int = HEAD_MEAN) -> np.ndarray:
        """Maps of every image for one (method, layer, head): (B, grid_h, grid_w)."""
        sel = self.select(method=method, layer=layer, head=head)
        if len(sel) == 0:
            raise KeyError(f"no map for method={method!r} layer={layer} head={head}")
        return sel.maps()

    def records(self) -> Iterator[MapRecord]:
        maps = self.maps()
        for i in range(len(self)):
            yield MapRecord(int(self.image[i]), str(self.method[i]), int(self.layer[i]),
                            int(self.head[i]), maps[i])


@dataclass
class FeatureBatch:
    """Columnar feature vectors: row i is one (image, layer, kind) vector.

    Kinds may differ in size (CLIP: ``pooled`` 768, ``pooled_proj`` 512), so the vectors
    are stored ragged: row i is ``values[offsets[i]:offsets[i + 1]]`` (float32).
    """

    image: np.ndarray  # int32 (n,)
    layer: np.ndarray  # int16 (n,)
    kind: np.ndarray  # str (n,): see FEATURE_KINDS
    values: np.ndarray  # float32, every row's vector one after the other
    offsets: np.ndarray  # int64 (n + 1,)

    @classmethod
    def from_rows(cls, image: np.ndarray, layer: np.ndarray, kind: np.ndarray,
                  rows: list[np.ndarray]) -> FeatureBatch:
        """From one 1-D vector per row."""
        sizes = np.asarray([r.shape[0] for r in rows], np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        flat = (np.concatenate(rows).astype(np.float32, copy=False) if rows
                else np.zeros(0, np.float32))
        return cls(image, layer, kind, np.ascontiguousarray(flat), offsets)

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    @property
    def vectors(self) -> np.ndarray:
        """All rows as (n, D) (only when every row has the same size)."""
        sizes = np.diff(self.offsets)
        if len(set(sizes.tolist())) > 1:
            raise ValueError(f"feature rows differ in size ({sorted(set(sizes.tolist()))}); "
                             "use get(kind, layer) or row(i)")
        d = int(sizes[0]) if len(sizes) else 0
        return self.values.reshape(len(self), d)

    def get(self, kind: str, layer: int) -> np.ndarray:
        """Vectors of every image for one (kind, layer): (B, D)."""
        idx = np.flatnonzero((self.kind == kind) & (self.layer == layer))
        if not len(idx):
            raise KeyError(f"no feature kind={kind!r} layer={layer}")
        return np.stack([self.row(int(i)) for i in idx])

    def to_columns(self) -> dict[str, np.ndarray]:
        return {"image": self.image, "layer": self.layer, "kind": self.kind,
                "values": self.values, "offsets": self.offsets}


@dataclass
class ExtractionResult:
    """What :func:`extract_batch` returns for one batch."""

    maps: MapBatch
    features: FeatureBatch | None
    patch_tokens: dict[int, np.ndarray] = field(default_factory=dict)  # layer -> (B, P, D)
    info: dict[str, Any] = field(default_factory=dict)
    more_maps: list[MapBatch] = field(default_factory=list)  # CNN stages of other grids

    def all_maps(self) -> list[MapBatch]:
        """Every non-empty map batch (one grid each: a CNN's stages differ in grid)."""
        return [m for m in (self.maps, *self.more_maps) if len(m)]
