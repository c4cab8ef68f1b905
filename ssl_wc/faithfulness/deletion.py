"""Deletion and insertion curves (Petsiuk, Das, Saenko 2018, "RISE") scored without labels.

For one image x, a map A on a grid of K cells and S steps (``DeletionProtocol``):

- order: cells by A descending; ties broken by the image's random order (so a map says
  nothing through its ties: a constant map reproduces the random control exactly);
- step counts ``n_s`` (s = 0..S): ``round_half_up(s K / S)`` for ``2s <= S`` and
  ``K - n_(S-s)`` above, symmetric so that n_s + n_(S-s) = K;
- deletion (MoRF): x with the top ``n_s`` cells removed; insertion: x with only the top
  ``n_s`` cells kept (the other cells removed). Removal is ROAD's noisy linear imputation
  by default (``removal.remove``). Since n_s is symmetric, LeRF removal of ``n_s`` cells is
  insertion at step S - s, so the LeRF AUC equals the insertion AUC, and ROAD's
  "LeRF - MoRF" is ``insertion_auc - deletion_auc``;
- score of an image x': ``cos(z(x'), z(x))`` of the model's pooled embedding z (0 when
  z(x') is the zero vector), and, for
  a classifier, ``softmax(logits(x'))[c]`` with c the class predicted for x;
- AUC: trapezoid rule over t = s / S in [0, 1]. Lower deletion AUC and higher insertion
  AUC mean the map ranks the cells the model relies on first.
- random control: a seeded permutation of the cells (sha256 of image id, grid, trial);
  its deletion curve read backwards keeps a random set of n_s cells, which is a random
  insertion curve, so one set of forwards serves both.

Cost per image: one forward of x, one of the fully removed image, and ``S - 1`` for each
distinct interior deletion or insertion image (identical images are forwarded once):
``2 + (S - 1) * (2 M + R)`` for M maps and R random orders, in batches.

Public: :func:`step_counts`, :func:`rank_cells`, :func:`random_order`, :func:`auc`,
:func:`cell_means`, :class:`Curves`, :class:`ImageRequest`, :class:`CurveScorer`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from ssl_wc.faithfulness.protocol import DeletionProtocol
from ssl_wc.faithfulness.removal import SolveStats, cell_index, removal_masks, remove
from ssl_wc.metrics.protocol import round_half_up

EmbedFn = Callable[[torch.Tensor], torch.Tensor]
GPU_IMPUTE_IMAGES = 256
"""Images imputed together on a GPU (forwards still go in ``batch_size`` batches)."""
ProbFn = Callable[[torch.Tensor], torch.Tensor]


def step_counts(n_cells: int, steps: int) -> np.ndarray:
    """Cells removed (deletion) or kept (insertion) at each step s = 0..S (symmetric)."""
    if n_cells < 1 or steps < 1:
        raise ValueError("need at least one cell and one step")
    out = np.zeros(steps + 1, dtype=np.int64)
    for s in range(steps + 1):
        if 2 * s <= steps:
            out[s] = round_half_up(Fraction(s * n_cells, steps))
    for s in range(steps + 1):
        if 2 * s > steps:
            out[s] = n_cells - out[steps - s]
    return out


def stable_seed(*parts: object) -> int:
    """64-bit seed from sha256 of the parts joined by ':' (never Python's hash())."""
    text = ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def random_order(image_id: str, n_cells: int, trial: int = 0) -> np.ndarray:
    """The image's seeded random permutation of ``n_cells`` cells."""
    rng = np.random.default_rng(stable_seed("order", image_id, n_cells, trial))
    return rng.permutation(n_cells)


def rank_cells(values: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Cell indices, most relevant first: ``values`` descending, ties in ``tiebreak``
    order (a permutation of the cells). A non-finite map orders by ``tiebreak`` alone."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)):
        return np.asarray(tiebreak, dtype=np.int64).copy()
    pos = np.empty(v.size, dtype=np.int64)
    pos[np.asarray(tiebreak)] = np.arange(v.size)
    return np.lexsort((pos, -v))


def auc(curve: np.ndarray) -> float:
    """Trapezoid rule over t = s / S in [0, 1] for a curve of S + 1 points."""
    c = np.asarray(curve, dtype=np.float64)
    s = c.size - 1
    return float((c[:-1] + c[1:]).sum() / (2.0 * s))


def cell_means(values: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mean of an (H, W) map over each cell of ``grid`` (cells as in ``cell_index``)."""
    v = np.asarray(values, dtype=np.float64)
    idx = cell_index(grid, v.shape).ravel()
    k = int(grid[0]) * int(grid[1])
    sums = np.bincount(idx, weights=v.ravel(), minlength=k)
    counts = np.bincount(idx, minlength=k)
    return (sums / counts).reshape(int(grid[0]), int(grid[1]))


@dataclass
class Curves:
    """One map's curves on one image (S + 1 points each) and their AUCs."""

    deletion: np.ndarray
    insertion: np.ndarray
    deletion_prob: np.ndarray | None = None
    insertion_prob: np.ndarray | None = None

    @property
    def deletion_auc(self) -> float:
        return auc(self.deletion)

    @property
    def insertion_auc(self) -> float:
        return auc(self.insertion)

    @property
    def deletion_auc_prob(self) -> float | None:
        return None if self.deletion_prob is None else auc(self.deletion_prob)

    @property
    def insertion_auc_prob(self) -> float | None:
        return None if self.insertion_prob is None else auc(self.insertion_prob)


@dataclass
class ImageRequest:
    """One image to score: its normalised pixels (3, H, W), id, and the cell orders
    (most relevant first) of every map to evaluate, by key."""

    image_id: str
    pixels: torch.Tensor
    orders: Mapping[str, np.ndarray]
    random_orders: Sequence[np.ndarray] = ()


@dataclass
class _Job:
    image: int
    removed: np.ndarray  # (K,) bool


@dataclass
class CurveScorer:
    """Batched deletion / insertion scoring for one model (see the module docstring).

    ``embed`` maps a batch of normalised images (B, 3, H, W) to pooled embeddings (B, D);
    ``prob`` (optional) maps pooled embeddings to class probabilities (B, classes).
    ``noise_sd`` is the ROAD noise per channel in normalised units (sd / std).
    """

    embed: EmbedFn
    protocol: DeletionProtocol
    grid: tuple[int, int]
    input_hw: tuple[int, int]
    noise_sd: Sequence[float]
    batch_size: int = 32
    prob: ProbFn | None = None
    stats: SolveStats = field(default_factory=SolveStats)
    forwards: int = 0

    def __post_init__(self) -> None:
        self.n_cells = int(self.grid[0]) * int(self.grid[1])
        self.counts = step_counts(self.n_cells, self.protocol.steps)
        self._cells: torch.Tensor | None = None

    def _cell_index(self, device: torch.device) -> torch.Tensor:
        if self._cells is None or self._cells.device != device:
            self._cells = torch.from_numpy(cell_index(self.grid, self.input_hw)).to(device)
        return self._cells

    def _noise(self, image_id: str, like: torch.Tensor) -> torch.Tensor:
        """The image's fixed ROAD noise field (C, H, W), scaled per channel."""
        g = torch.Generator().manual_seed(stable_seed("road-noise", image_id) % (2**63))
        z = torch.randn(like.shape, generator=g, dtype=torch.float32)
        sd = torch.tensor(list(self.noise_sd), dtype=torch.float32).view(-1, 1, 1)
        return (z * sd * float(self.protocol.road_noise)).to(like.device, like.dtype)

    def score(self, requests: Sequence[ImageRequest]) -> list[dict[str, Curves]]:
        """Curves of every order of every request; random orders under ``random:<t>``."""
        K = self.n_cells
        jobs: list[_Job] = []
        index: list[dict[bytes, int]] = []
        plans: list[dict[str, tuple[list[int], list[int]]]] = []

        def job(i: int, removed: np.ndarray) -> int:
            key = np.packbits(removed).tobytes()
            at = index[i].get(key)
            if at is None:
                at = index[i][key] = len(jobs)
                jobs.append(_Job(i, removed))
            return at

        for i, req in enumerate(requests):
            index.append({})
            orders = dict(req.orders)
            for t, perm in enumerate(req.random_orders):
                orders[f"random:{t}"] = np.asarray(perm)
            plan: dict[str, tuple[list[int], list[int]]] = {}
            job(i, np.zeros(K, dtype=bool))  # the reference comes first
            for key, order in orders.items():
                order = np.asarray(order, dtype=np.int64)
                if sorted(order.tolist()) != list(range(K)):
                    raise ValueError(f"{req.image_id} {key}: the order is not a permutation "
                                     f"of the {K} cells")
                dele, ins = [], []
                for n in self.counts:
                    removed = np.zeros(K, dtype=bool)
                    removed[order[:n]] = True
                    dele.append(job(i, removed))
                    if not key.startswith("random:"):
                        kept = np.ones(K, dtype=bool)
                        kept[order[:n]] = False
                        ins.append(job(i, kept))
                # a random order's deletion curve read backwards is a random insertion curve
                plan[key] = (dele, ins or dele[::-1])
            plans.append(plan)
        emb, probs = self._run(requests, jobs)
        out: list[dict[str, Curves]] = []
        for i, plan in enumerate(plans):
            ref = index[i][np.packbits(np.zeros(K, dtype=bool)).tobytes()]
            zr = emb[ref]
            cls = int(np.argmax(probs[ref])) if probs is not None else -1
            res: dict[str, Curves] = {}
            for key, (dele, ins) in plan.items():
                res[key] = Curves(
                    _cos(emb[dele], zr), _cos(emb[ins], zr),
                    None if probs is None else probs[dele, cls].astype(np.float64),
                    None if probs is None else probs[ins, cls].astype(np.float64))
            out.append(res)
        return out

    def _run(self, requests: Sequence[ImageRequest],
             jobs: list[_Job]) -> tuple[np.ndarray, np.ndarray | None]:
        """Impute and forward every job in batches; pooled embeddings (and probs)."""
        emb: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        images = torch.stack([r.pixels for r in requests])  # gathered per chunk below
        noise = None
        if self.protocol.imputation == "road" and self.protocol.road_noise > 0:
            noise = torch.stack([self._noise(r.image_id, r.pixels) for r in requests])
        # on a GPU the solver's kernel launches are shared by many images at once
        chunk_n = self.batch_size if images.device.type == "cpu" else max(
            self.batch_size, GPU_IMPUTE_IMAGES)
        for start in range(0, len(jobs), chunk_n):
            chunk = jobs[start:start + chunk_n]
            which = torch.tensor([j.image for j in chunk], device=images.device)
            x = images.index_select(0, which)
            device = x.device
            removed_cells = torch.from_numpy(np.stack([j.removed for j in chunk])).to(device)
            mask = removal_masks(removed_cells, self._cell_index(device))
            nz = None if noise is None else noise.index_select(0, which)
            if bool(mask.any()):
                xp, st = remove(x, mask, self.protocol.imputation, noise=nz,
                                blur_sigma=self._blur_sigma(),
                                tol=self.protocol.road_tol,
                                max_iter=self.protocol.road_max_iter)
                self.stats.iterations = max(self.stats.iterations, st.iterations)
                self.stats.max_rel_residual = max(self.stats.max_rel_residual,
                                                  st.max_rel_residual)
                self.stats.unsolved += st.unsolved
            else:
                xp = x
            for s in range(0, len(chunk), self.batch_size):
                pooled = self.embed(xp[s:s + self.batch_size])
                self.forwards += min(self.batch_size, len(chunk) - s)
                emb.append(pooled.detach().to("cpu", torch.float64).numpy())
                if self.prob is not None:
                    probs.append(self.prob(pooled).detach().to("cpu", torch.float64).numpy())
        e = np.concatenate(emb) if emb else np.zeros((0, 0))
        return e, (np.concatenate(probs) if self.prob is not None and probs else None)

    def _blur_sigma(self) -> float:
        """``blur_sigma_px`` is stated at 224 px; scaled with the input's shorter side."""
        return float(self.protocol.blur_sigma_px) * min(self.input_hw) / 224.0


def _cos(z: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``z`` to ``ref``; a zero embedding scores 0 (no
    similarity left), a zero reference NaN (nothing to compare with)."""
    if not np.linalg.norm(ref) > 0:
        return np.full(len(z), np.nan)
    num = z @ ref
    den = np.linalg.norm(z, axis=1) * np.linalg.norm(ref)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
