"""The two faithfulness protocols: every choice that changes a stored value, hashed.

:class:`DeletionProtocol` fixes the deletion / insertion curves (steps, how patches are
removed, the score), :class:`RandomisationProtocol` the model-parameter randomisation
test (seed, re-initialisation scheme, similarity measures, the survival threshold, and
the metric protocol its plausibility deltas are scored with). Each row a job writes
carries the hash of the protocol it was computed under; changing a parameter of one
check recomputes that check only. No torch here.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from ssl_wc.metrics.protocol import MetricProtocol

Imputation = Literal["road", "blur", "constant"]
IMPUTATIONS: tuple[str, ...] = ("road", "blur", "constant")
CHECKS: tuple[str, ...] = ("deletion", "mprt")

#: Fixed conventions of the deletion / insertion curves (stored, not configurable).
DELETION_CONVENTIONS: dict[str, str] = {
    "cells": "the map's own grid; cell (i, j) covers input rows floor(i*H/gh)..floor((i+1)*H/gh)"
             " and columns floor(j*W/gw)..floor((j+1)*W/gw)",
    "order": "cells by map value, descending; ties broken by the image's random order",
    "random_order": "a permutation of the cells seeded by sha256(image_id, grid, trial)",
    "step_counts": "n_s = round_half_up(s*K/S) for 2s <= S, K - n_(S-s) above (symmetric), "
                   "so LeRF removal at step s equals insertion at step S - s",
    "deletion": "MoRF: the top n_s cells removed",
    "insertion": "the top n_s cells kept, the other K - n_s removed (= LeRF read backwards)",
    "random_insertion": "the random order's deletion curve read backwards (keeping a "
                        "random set of n_s cells)",
    "score": "cos(z(x'), z(x)) of the model's pooled embedding; for a fine-tuned variant "
             "also softmax probability of the class predicted on the unperturbed image",
    "auc": "trapezoid rule over t = s/S in [0, 1]",
    "heads": "the mean-fused map of each layer (head -1)",
    "road": "noisy linear imputation (Rong et al. 2022): each removed pixel the weighted "
            "mean of its 8 neighbours (1/6 direct, 1/12 diagonal, in-image neighbours only), "
            "solved by multigrid-preconditioned conjugate gradients to road_tol, plus "
            "N(0, noise^2) in [0, 1] pixel units (one noise field per image, seeded by "
            "sha256 of its id, so every map of the image sees the same noise); "
            "an image with every cell removed becomes the normalisation mean colour + noise",
    "blur": "removed pixels take a Gaussian-blurred copy of the image (sigma blur_sigma_px "
            "at 224 px, scaled with the input size; reflected borders)",
    "constant": "removed pixels take the normalisation mean colour (0 after normalising)",
}

RANDOMISATION_CONVENTIONS: dict[str, str] = {
    "cascade": "top-down (Adebayo et al. 2018): step k re-initialises the post-block modules "
               "(final norm, pooling head, classifier) and the top k blocks; step L + 1 "
               "also the embeddings, i.e. every parameter; a CNN's blocks are its stages "
               "and its ImageNet classifier (the Grad-CAM target) is a post-block module",
    "reinit": "modules with reset_parameters (Linear, LayerNorm, Conv, BatchNorm with its "
              "running statistics) use it (PyTorch's default initialisation, as Quantus "
              "MPRT); every other parameter is drawn "
              "from N(0, initializer_range^2) (0.02 when the config has none)",
    "seeding": "each parameter's values depend only on (seed, its qualified name), computed "
               "on the CPU in float32, so a block keeps the same random weights at every "
               "later step and on every device",
    "maps": "the mean-fused map of every layer and method, extracted exactly as `ingest "
            "attention` does, for the trained model and after every step",
    "spearman": "rank correlation of the patch-grid values (average ranks for ties)",
    "ssim": "Wang et al. 2004 on the heatmaps (upsampled to eval_size, min-max normalised)",
    "hist_entropy": "entropy of a 100-bin histogram of the patch-grid values (eMPRT)",
    "plausibility_deltas": "every non-informational metric of the metric protocol, union "
                           "target, randomised minus trained",
}


def _hash(d: dict[str, Any]) -> str:
    text = json.dumps(d, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class DeletionProtocol:
    """Deletion / insertion (RISE, Petsiuk et al. 2018) with ROAD removal (Rong et al. 2022).

    - ``steps``: S equal steps over the K cells (t = 0, 1/S, ..., 1).
    - ``imputation``: ``road`` (noisy linear imputation), ``blur`` or ``constant``.
    - ``road_noise``: sd of the noise added to imputed pixels, in [0, 1] pixel units.
    - ``road_tol`` / ``road_max_iter``: conjugate-gradient stopping rule (relative residual).
    - ``blur_sigma_px``: Gaussian sigma at 224 px for ``blur``.
    - ``random_orders``: random-order controls per image (their curves are averaged).
    """

    steps: int = 16
    imputation: Imputation = "road"
    road_noise: float = 0.01
    road_tol: float = 1e-4
    road_max_iter: int = 200
    blur_sigma_px: float = 5.0
    random_orders: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, int) and 2 <= self.steps <= 1024):
            raise ValueError(f"steps must be an integer in 2..1024, got {self.steps!r}")
        if self.imputation not in IMPUTATIONS:
            raise ValueError(f"imputation must be one of {', '.join(IMPUTATIONS)}, got "
                             f"{self.imputation!r}")
        for name in ("road_noise", "road_tol", "blur_sigma_px"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not (isinstance(self.random_orders, int) and self.random_orders >= 1):
            raise ValueError(f"random_orders must be an integer >= 1, got "
                             f"{self.random_orders!r}")
        if not (isinstance(self.road_max_iter, int) and self.road_max_iter >= 1):
            raise ValueError("road_max_iter must be an integer >= 1")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "deletion", **asdict(self), "conventions": dict(DELETION_CONVENTIONS)}

    def hash(self) -> str:
        return _hash(self.as_dict())


@dataclass(frozen=True)
class RandomisationProtocol:
    """Cascading model-parameter randomisation (Adebayo et al. 2018; see the conventions).

    - ``seed``: base seed of the re-initialisation (42, the Quantus default).
    - ``survival_threshold``: a method "survives randomisation" (its maps do not depend
      on the model, like an edge detector) when the mean |Spearman| between its trained
      and fully randomised maps is at least this (default 0.5).
    - ``hist_bins``: bins of the eMPRT histogram entropy.
    - ``metrics``: the metric protocol of the plausibility deltas (and of the SSIM's
      evaluation size).
    """

    seed: int = 42
    survival_threshold: float = 0.5
    hist_bins: int = 100
    metrics: MetricProtocol = field(default_factory=MetricProtocol)

    def __post_init__(self) -> None:
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not (0.0 <= float(self.survival_threshold) <= 1.0):
            raise ValueError("survival_threshold must be in [0, 1]")
        if not (isinstance(self.hist_bins, int) and self.hist_bins >= 2):
            raise ValueError("hist_bins must be an integer >= 2")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "mprt", "seed": self.seed,
                "survival_threshold": float(self.survival_threshold),
                "hist_bins": self.hist_bins, "metric_protocol": self.metrics.as_dict(),
                "metric_protocol_hash": self.metrics.hash(),
                "conventions": dict(RANDOMISATION_CONVENTIONS)}

    def hash(self) -> str:
        return _hash(self.as_dict())
