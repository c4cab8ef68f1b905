"""The metric protocol: every choice that changes a metric value, stored with each row.

The definitions follow ``/work/shared/brief/metrics.md``.  Fixed conventions that are
not user parameters (tie rule, rounding, upsampling) are still written into
:meth:`MetricProtocol.as_dict` so a stored row says exactly how it was computed.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache
from numbers import Real
from typing import Any

PERCENTILES: tuple[int, ...] = (50, 60, 70, 75, 80, 85, 90, 95)

NORM_EPS = 1e-8
"""Min-max normalisation: (u - min) / (max - min + NORM_EPS)."""
IOU_EPS = 1e-8
"""IoU = |A_k AND G| / (|A_k OR G| + IOU_EPS)."""
KL_EPS = 1e-8
"""Added to every pixel of both maps before they are normalised for KL."""
COVERAGE_MIN_MASS = 1e-8
"""Coverage is 0 when sum(A) is below this."""

#: Conventions that are fixed by this implementation (stored, not configurable).
CONVENTIONS: dict[str, str] = {
    "upsample": "bilinear, half-pixel centres (align_corners=False), edges replicated",
    "normalise": "per-map min-max, eps 1e-8",
    "topk_round": "k = max(1, floor(n*(100-p)/100 + 1/2)) (round half up)",
    "topk_ties": "value descending, then lowest flat (row-major) index first",
    "rank_values": "upsampled values before min-max normalisation (same order, no rounding ties)",
    "argmax_ties": "lowest flat index",
    "pointing_distance": "euclidean, pixel units, hit if distance <= t",
    "box_mask": "rows floor(top*H)..floor(bottom*H), cols floor(left*W)..floor(right*W), "
    "clamped to [0,1], at least one pixel each way",
    "soft_target": "max over boxes of anisotropic Gaussians, sigma = max(size_px/4, 1)",
    "kl": "KL(S||A), NaN->0, clamp>=0, +1e-8 per pixel, normalised to sum 1",
    "emd": "area-averaged cells (each the mean of the pixels it covers), exact W1, "
    "euclidean cost on cell centres in [0,1]^2; a zero-mass map counts as uniform",
    "emd_point": "bilinear half-pixel resize to grid, no antialias, exact W1, euclidean cost "
    "on cell centres in [0,1]^2; a zero-mass map counts as uniform",
    "roc_auc": "ranks of the upsampled values, ties count 1/2 (mid-ranks); NaN when G is "
    "empty or the whole image",
    "gini_entropy": "of the heatmap A at eval_size; entropy in nats; A = 0 counts as uniform",
    "empty_target": "NaN for every target-dependent metric",
}


def round_half_up(x: Fraction) -> int:
    """floor(x + 1/2) on an exact rational (``np.round`` would round half to even)."""
    return int((x + Fraction(1, 2)).__floor__())


@lru_cache(maxsize=1024)
def topk_count(n: int, percentile: float) -> int:
    """Number of pixels kept at percentile p: k = max(1, round_half_up(n*(100-p)/100)).

    Computed with exact rationals, so k never depends on float rounding
    (n = 50176, p = 90 gives 5017.6 -> 5018).
    """
    frac = Fraction(n) * (Fraction(100) - Fraction(percentile)) / 100
    return max(1, min(n, round_half_up(frac)))


def _fmt(x: float) -> str:
    v = float(x)
    return str(int(v)) if v.is_integer() else f"{v:g}".replace(".", "p")


def _is_int(x: Any) -> bool:
    return isinstance(x, int | Real) and not isinstance(x, bool) and float(x).is_integer()


@dataclass(frozen=True)
class MetricProtocol:
    """Parameters of one metric run (see the module docstring and the brief).

    - ``eval_size``: (H, W) of the evaluation grid the heatmaps are upsampled to.
    - ``percentiles``: p values for IoU@p, CorLoc@p and attention area.
    - ``pointing_tolerances_px``: pointing-game tolerances t in pixels at ``eval_size``
      (Euclidean, hit if distance <= t; t = 15 at 224 px is the benchmark protocol).
      Column ``pointing_t{t}``.
    - ``topk_pointing_k``: top-k pointing uses an absolute pixel count k (not a fraction).
    - ``emd_grid``: EMD resizes both maps to ``emd_grid`` x ``emd_grid`` cells.
    """

    eval_size: tuple[int, int] = (224, 224)
    percentiles: tuple[float, ...] = PERCENTILES
    pointing_tolerances_px: tuple[float, ...] = (0, 15)
    topk_pointing_k: int = 10
    emd_grid: int = 8

    def __post_init__(self) -> None:
        h, w = self.eval_size
        if not (_is_int(h) and _is_int(w) and h >= 1 and w >= 1):
            raise ValueError(f"eval_size must be two positive ints, got {self.eval_size!r}")
        if not self.percentiles:
            raise ValueError("percentiles must not be empty")
        for p in self.percentiles:
            if not (isinstance(p, Real) and 0 <= float(p) < 100):
                raise ValueError(f"percentile {p!r} outside [0, 100)")
        for t in self.pointing_tolerances_px:
            if not (isinstance(t, Real) and math.isfinite(float(t)) and float(t) >= 0):
                raise ValueError(f"pointing tolerance {t!r} must be a finite number >= 0")
        if len(set(self.pointing_tolerances_px)) != len(self.pointing_tolerances_px):
            raise ValueError("pointing tolerances must be distinct")
        if not (_is_int(self.topk_pointing_k) and self.topk_pointing_k >= 1):
            raise ValueError(f"topk_pointing_k must be an int >= 1, got {self.topk_pointing_k!r}")
        if not (_is_int(self.emd_grid) and self.emd_grid >= 1):
            raise ValueError(f"emd_grid must be an int >= 1, got {self.emd_grid!r}")

    @property
    def n_pixels(self) -> int:
        return int(self.eval_size[0]) * int(self.eval_size[1])

    def topk_counts(self) -> tuple[int, ...]:
        """k for each percentile at ``eval_size``."""
        return tuple(topk_count(self.n_pixels, p) for p in self.percentiles)

    def pointing_columns(self) -> tuple[str, ...]:
        """``pointing_t{t}`` per tolerance (``pointing_t2p5`` for t = 2.5)."""
        return tuple(f"pointing_t{_fmt(t)}" for t in self.pointing_tolerances_px)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description: parameters plus the fixed conventions."""
        d = asdict(self)
        d["eval_size"] = [int(v) for v in self.eval_size]
        d["percentiles"] = [int(p) if float(p).is_integer() else float(p) for p in self.percentiles]
        d["pointing_tolerances_px"] = [
            int(t) if float(t).is_integer() else float(t) for t in self.pointing_tolerances_px
        ]
        d["topk_pointing_k"] = int(self.topk_pointing_k)
        d["emd_grid"] = int(self.emd_grid)
        d["conventions"] = dict(CONVENTIONS)
        return d

    def hash(self) -> str:
        """Stable 16-hex-digit sha256 prefix of :meth:`as_dict` (sorted-key JSON)."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
