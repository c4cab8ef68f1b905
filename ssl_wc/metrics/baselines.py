"""Baseline maps, scored through exactly the same path as models (``score_maps``).

Maps are returned at the requested ``shape`` (H, W); pass the evaluation size (default
224 x 224) to score them: ``score_maps`` treats a grid equal to ``eval_size`` as an
already upsampled map (the half-pixel resize with scale 1 is the identity).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ssl_wc.metrics.heatmap import resize
from ssl_wc.metrics.kernels import score_map_targets, score_maps
from ssl_wc.metrics.protocol import MetricProtocol


def stable_seed(image_id: str, trial: int) -> int:
    """64-bit seed from sha256 of ``"{image_id}:{trial}"`` (never Python's salted hash())."""
    digest = hashlib.sha256(f"{image_id}:{int(trial)}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def random_map(image_id: str, trial: int, shape: tuple[int, int]) -> np.ndarray:
    """Uniform [0, 1) map seeded by (image_id, trial): the same on every run and machine."""
    rng = np.random.default_rng(stable_seed(image_id, trial))
    return rng.random((int(shape[0]), int(shape[1])))


def random_trials(image_id: str, shape: tuple[int, int], n: int = 100) -> np.ndarray:
    """(n, H, W) random maps for trials 0..n-1."""
    return np.stack([random_map(image_id, t, shape) for t in range(n)])


def center_gaussian(shape: tuple[int, int]) -> np.ndarray:
    """Isotropic Gaussian at ((H-1)/2, (W-1)/2), sigma = max(H, W)/4."""
    return _centred_gaussian(shape, max(shape) / 4.0)


def saliency_prior(shape: tuple[int, int]) -> np.ndarray:
    """Centre Gaussian (sigma = max(H, W)/3) times the border ramp
    min(distance to the nearest edge) / ((H-1)/2), clipped to [0, 1]."""
    H, W = int(shape[0]), int(shape[1])
    y = np.arange(H, dtype=np.float64)[:, None]
    x = np.arange(W, dtype=np.float64)[None, :]
    edge = np.minimum(np.minimum(y, H - 1 - y), np.minimum(x, W - 1 - x))
    ramp = np.clip(edge / max((H - 1) / 2.0, 1e-12), 0.0, 1.0)
    return _centred_gaussian(shape, max(shape) / 3.0) * ramp


def _centred_gaussian(shape: tuple[int, int], sigma: float) -> np.ndarray:
    H, W = int(shape[0]), int(shape[1])
    y = np.arange(H, dtype=np.float64)[:, None] - (H - 1) / 2.0
    x = np.arange(W, dtype=np.float64)[None, :] - (W - 1) / 2.0
    return np.exp(-(y**2 + x**2) / (2.0 * sigma**2))


def sobel_edges(gray_image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Sobel edge magnitude of a grayscale image, divided by its max.

    The (h, w) image is resized to ``shape`` by half-pixel bilinear interpolation
    (no antialias), then filtered with the 3x3 Sobel pair using reflect padding in the
    NumPy/PyTorch sense (edge pixel not repeated: ``d c b | a b c d``; scipy's
    ``mode="mirror"``); magnitude sqrt(gx^2 + gy^2). An image without edges gives zeros.
    """
    img = np.asarray(gray_image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"gray_image must be 2-D (h, w), got shape {img.shape}")
    H, W = int(shape[0]), int(shape[1])
    if img.shape != (H, W):
        img = resize(img[None], (H, W))[0]
    gy = ndimage.sobel(img, axis=0, mode="mirror")
    gx = ndimage.sobel(img, axis=1, mode="mirror")
    mag = np.hypot(gx, gy)
    peak = mag.max()
    return mag / peak if peak > 0 else mag


def score_random_baseline(
    image_ids: Sequence[str],
    targets: Sequence[np.ndarray],
    protocol: MetricProtocol | None = None,
    trials: int = 100,
    *,
    chunk_size: int = 8,
    workers: int = 1,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Random baseline per (image, target) row: every metric averaged over ``trials``
    random maps.

    The maps are uniform at the evaluation size, seeded by (image id, trial); the rows
    of one image (its union and each box, say) share the same trial maps, which are
    generated and ranked once and scored against all of that image's targets. The mean
    is taken per metric over the trials (a pointing column becomes a hit rate); NaN
    stays NaN for an empty target. Same layout as ``score_maps``.
    """
    protocol = protocol or MetricProtocol()
    if len(image_ids) != len(targets):
        raise ValueError(f"got {len(image_ids)} image ids but {len(targets)} targets")
    if trials < 1:
        raise ValueError("trials must be >= 1")
    shape = (int(protocol.eval_size[0]), int(protocol.eval_size[1]))
    n_rows = len(image_ids)
    empty_tf, empty_pp = score_maps(np.zeros((0, *shape)), [], protocol)
    tf_sum = {col: np.full(n_rows, np.nan) for col in empty_tf}
    pp_sum = {col: np.full((n_rows, v.shape[1]), np.nan) for col, v in empty_pp.items()}
    rows_of: dict[str, list[int]] = {}
    for i, image_id in enumerate(image_ids):
        rows_of.setdefault(image_id, []).append(i)
    for image_id, rows in rows_of.items():
        maps = random_trials(image_id, shape, trials)
        image_targets = [targets[i] for i in rows]
        tf, pp = score_map_targets(
            maps, [image_targets] * trials, protocol, chunk_size=chunk_size, workers=workers
        )
        t = len(rows)
        for col, vals in tf.items():
            tf_sum[col][rows] = vals.reshape(trials, t).mean(axis=0)
        for col, vals in pp.items():
            pp_sum[col][rows] = vals.reshape(trials, t, -1).mean(axis=0)
    return tf_sum, pp_sum
