"""Map frames: the part of the original image a stored map covers, and boxes carried into it.

A model that sees the whole image (the default geometry) has the frame ``(0, 0, 1, 1)``:
box fractions hold on its map unchanged. A checkpoint whose own processor centre-crops
(ResNet-50: short side 256, crop 224; ``resize_mode="native"`` for ViTs) sees only the
crop, so its map covers the frame ``(left, top, right, bottom)`` (fractions of the
original image) and a box ``(x0, y0, x1, y1)`` lies at
``x' = (x - left) / (right - left)``, ``y' = (y - top) / (bottom - top)`` on it, clipped
to [0, 1]. ``kept`` is the share of the box's area inside the frame: a box with
``kept == 0`` lies wholly outside what the model saw and is dropped from the targets
(an image whose boxes are all cut off has an empty target: NULL metrics, never a hit).

Boxes here are ``(left, top, width, height)`` fractions, as everywhere in the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ssl_wc.metrics.masks import as_boxes

FULL_FRAME: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)


def is_full(frame: Sequence[float] | None) -> bool:
    """True when ``frame`` is the whole image (or unknown, which means the whole image)."""
    return frame is None or tuple(float(v) for v in frame) == FULL_FRAME


def boxes_in_frame(boxes: np.ndarray | Sequence[Sequence[float]],
                   frame: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(left, top, width, height)`` of the original image, clamped to it, as
    fractions of ``frame`` (clipped to it), and the share of each clamped box's area
    that lies inside the frame (1 for the full frame; 0 for a box wholly outside)."""
    b = as_boxes(np.asarray(boxes, dtype=np.float64))
    x0 = np.clip(b[:, 0], 0.0, 1.0)
    y0 = np.clip(b[:, 1], 0.0, 1.0)
    x1 = np.clip(b[:, 0] + b[:, 2], 0.0, 1.0)
    y1 = np.clip(b[:, 1] + b[:, 3], 0.0, 1.0)
    if is_full(frame):
        return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1), np.ones(len(b))
    assert frame is not None
    fl, ft, fr, fb = (float(v) for v in frame)
    if not (0.0 <= fl < fr <= 1.0 and 0.0 <= ft < fb <= 1.0):
        raise ValueError(f"frame {tuple(frame)} is not (left, top, right, bottom) inside [0, 1]")
    fw, fh = fr - fl, fb - ft
    nx0 = np.clip((x0 - fl) / fw, 0.0, 1.0)
    nx1 = np.clip((x1 - fl) / fw, 0.0, 1.0)
    ny0 = np.clip((y0 - ft) / fh, 0.0, 1.0)
    ny1 = np.clip((y1 - ft) / fh, 0.0, 1.0)
    area = (x1 - x0) * (y1 - y0)
    inside = (nx1 - nx0) * fw * (ny1 - ny0) * fh
    with np.errstate(invalid="ignore", divide="ignore"):
        kept = np.where(area > 0, inside / np.where(area > 0, area, 1.0), 0.0)
    return np.stack([nx0, ny0, nx1 - nx0, ny1 - ny0], axis=1), kept


def target_in_frame(boxes: np.ndarray | Sequence[Sequence[float]],
                    frame: Sequence[float] | None) -> np.ndarray:
    """The boxes that a map of ``frame`` can be scored against: carried into the frame,
    those wholly outside it dropped (``kept == 0``). The full frame returns the boxes
    as given (bit for bit)."""
    if is_full(frame):
        return as_boxes(np.asarray(boxes, dtype=np.float64))
    moved, kept = boxes_in_frame(boxes, frame)
    return moved[kept > 0]
