"""How similar two maps are, and how complex one map is (numpy only, no torch).

Used by the model-parameter randomisation test (MPRT) to compare the map of the trained
model with the map of a randomised one.

- :func:`spearman_rows`: Spearman rank correlation (Spearman 1904) between paired rows:
  Pearson correlation of the ranks, ties given their average rank (the definition of
  ``scipy.stats.spearmanr``). Undefined (NaN) when either row is constant.
- :func:`ssim`: mean structural similarity (Wang, Bovik, Sheikh, Simoncelli 2004, "Image
  quality assessment: from error visibility to structural similarity", IEEE TIP 13):
  per window ``((2 mu_x mu_y + C1)(2 s_xy + C2)) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2
  + C2))`` with an 11x11 Gaussian window (sigma 1.5, normalised to sum 1), ``C1 = (K1
  L)^2``, ``C2 = (K2 L)^2``, ``K1 = 0.01``, ``K2 = 0.03``, data range ``L = 1``; the mean
  over every window that lies wholly inside the image (no padding). Weighted (population)
  moments, as in the paper's Gaussian-window variant.
- :func:`histogram_entropy`: Shannon entropy (natural log) of the histogram of a map's
  values in ``bins`` equal-width bins between its minimum and maximum; 0 for a constant
  map. The complexity measure of efficient MPRT (Hedstroem et al. 2023, "Sanity Checks
  Revisited: An Exploration to Repair the Model Parameter Randomisation Test").
- :func:`relative_rise`: ``(after - before) / before`` (NaN when ``before`` is 0): eMPRT's
  score, the relative rise in complexity from the trained to the fully random model.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage, stats

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
HIST_BINS = 100


def spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho between ``a[i]`` and ``b[i]`` for every row; (N, ...) -> (N,).

    Ties take their average rank; a constant row gives NaN (the correlation is undefined).
    """
    x = np.asarray(a, dtype=np.float64).reshape(len(a), -1)
    y = np.asarray(b, dtype=np.float64).reshape(len(b), -1)
    if x.shape != y.shape:
        raise ValueError(f"paired rows must have one shape, got {x.shape} and {y.shape}")
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    num = np.einsum("ij,ij->i", rx, ry)
    den = np.sqrt(np.einsum("ij,ij->i", rx, rx) * np.einsum("ij,ij->i", ry, ry))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return np.clip(rho, -1.0, 1.0)


@lru_cache(maxsize=8)
def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """The 1-D Gaussian (centred, normalised to sum 1); the 2-D window is its outer product."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    w = np.exp(-(x**2) / (2.0 * sigma**2))
    w /= w.sum()
    w.setflags(write=False)
    return w


def _filter(img: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local mean at every window lying wholly inside: (N, H, W) ->
    (N, H - s + 1, W - s + 1)."""
    s = w.size
    out = ndimage.correlate1d(img, w, axis=1, mode="constant")
    out = ndimage.correlate1d(out, w, axis=2, mode="constant")
    h = s // 2
    return out[:, h:img.shape[1] - (s - 1 - h), h:img.shape[2] - (s - 1 - h)]


def ssim(a: np.ndarray, b: np.ndarray, *, data_range: float = 1.0,
         window: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Mean SSIM of paired images (N, H, W) -> (N,) (Wang et al. 2004; module docstring).

    Images smaller than the window in either direction are refused.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim == 2:
        x, y = x[None], y[None]
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"ssim needs paired (N, H, W) images, got {x.shape} and {y.shape}")
    if min(x.shape[1:]) < window:
        raise ValueError(f"images of {x.shape[1]}x{x.shape[2]} are smaller than the "
                         f"{window}x{window} SSIM window")
    w = gaussian_window(window, sigma)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mx, my = _filter(x, w), _filter(y, w)
    sxx = _filter(x * x, w) - mx * mx
    syy = _filter(y * y, w) - my * my
    sxy = _filter(x * y, w) - mx * my
    num = (2.0 * mx * my + c1) * (2.0 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return (num / den).mean(axis=(1, 2))


def histogram_entropy(maps: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """Entropy (nats) of each map's value histogram; (N, ...) -> (N,). 0 when constant."""
    x = np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)
    out = np.zeros(len(x))
    for i, row in enumerate(x):
        if not np.all(np.isfinite(row)):
            out[i] = np.nan
            continue
        lo, hi = row.min(), row.max()
        if hi <= lo:
            continue
        counts, _ = np.histogram(row, bins=bins, range=(lo, hi))
        p = counts[counts > 0] / row.size
        out[i] = float(-(p * np.log(p)).sum())
    return out


def relative_rise(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``(after - before) / before`` elementwise; NaN where ``before`` is 0."""
    b = np.asarray(before, dtype=np.float64)
    a = np.asarray(after, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b != 0, (a - b) / np.where(b != 0, b, 1.0), np.nan)
