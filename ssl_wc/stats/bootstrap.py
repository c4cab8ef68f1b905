"""Percentile bootstrap confidence intervals (Efron & Tibshirani 1993), vectorised.

Resample indices are drawn with ``numpy.random.default_rng(seed)``, so an interval is
identical on every run for the same data and seed. The interval is the
(alpha/2, 1 - alpha/2) quantile pair of the resampled statistic (numpy's default
linear interpolation).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 10_000
SEED = 0

Statistic = Callable[..., np.ndarray]
"""``statistic(samples, axis=-1)`` reducing the last axis (``np.mean``, ``np.median``)."""


@dataclass(frozen=True)
class BootstrapCI:
    """A statistic's value on the data and its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    confidence: float
    n: int
    n_resamples: int
    seed: int


def bootstrap_ci(
    x: np.ndarray,
    statistic: Statistic = np.mean,
    *,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
    max_block: int = 20_000_000,
) -> BootstrapCI:
    """Percentile bootstrap CI of ``statistic`` over a 1-D sample (NaNs dropped).

    Resamples are drawn in blocks of at most ``max_block`` values to bound memory;
    the blocks consume the generator in order, so results do not depend on it.
    For a paired comparison pass the differences a - b.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError("n_resamples must be >= 1")
    data = np.asarray(x, dtype=np.float64).ravel()
    data = data[np.isfinite(data)]
    n = int(data.size)
    if n == 0:
        return BootstrapCI(math.nan, math.nan, math.nan, confidence, 0, n_resamples, seed)
    rng = np.random.default_rng(seed)
    rows_per_block = max(1, max_block // n)
    values = np.empty(n_resamples)
    for start in range(0, n_resamples, rows_per_block):
        stop = min(n_resamples, start + rows_per_block)
        idx = rng.integers(0, n, size=(stop - start, n))
        values[start:stop] = statistic(data[idx], axis=-1)
    alpha = 1.0 - confidence
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return BootstrapCI(
        estimate=float(statistic(data, axis=-1)),
        low=float(low),
        high=float(high),
        confidence=confidence,
        n=n,
        n_resamples=n_resamples,
        seed=seed,
    )


def paired_bootstrap_ci(
    a: np.ndarray,
    b: np.ndarray,
    statistic: Statistic = np.mean,
    *,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> BootstrapCI:
    """Bootstrap CI of ``statistic(a - b)`` over pairs (pairs with a NaN dropped)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    return bootstrap_ci(a - b, statistic, confidence=confidence, n_resamples=n_resamples, seed=seed)


def _resample_counts(rng: np.random.Generator, n: int, rows: int) -> np.ndarray:
    """(rows, n) multiplicities of ``rows`` resamples drawn as in :func:`bootstrap_ci`."""
    idx = rng.integers(0, n, size=(rows, n))
    flat = (np.arange(rows)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def bootstrap_mean_ci_groups(
    groups: list[np.ndarray],
    *,
    resamples: int = N_RESAMPLES,
    seed: int = SEED,
    confidence: float = 0.95,
    max_block: int = 20_000_000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, sd (ddof 1) and percentile bootstrap CI of the mean for many groups at once.

    Each group's resamples are exactly those :func:`bootstrap_ci` draws for a sample of
    its size with the same seed, so a group's interval does not depend on which other
    groups are present. Groups of equal size share the draws and are computed together
    as one matrix product (values @ resample counts / n). NaNs are dropped per group;
    an empty group gives NaN, a single value gives sd NaN and CI [value, value].
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    clean = [np.asarray(g, dtype=np.float64).ravel() for g in groups]
    clean = [g[np.isfinite(g)] for g in clean]
    k = len(clean)
    mean, sd, low, high = (np.full(k, np.nan) for _ in range(4))
    by_size: dict[int, list[int]] = {}
    for i, g in enumerate(clean):
        by_size.setdefault(g.size, []).append(i)
    alpha = 1.0 - confidence
    for n, members in by_size.items():
        if n == 0:
            continue
        vals = np.stack([clean[i] for i in members])  # (G, n)
        mean[members] = vals.mean(axis=1)
        sd[members] = vals.std(axis=1, ddof=1) if n > 1 else np.nan
        rng = np.random.default_rng(seed)
        stats = np.empty((len(members), resamples))
        rows_per_block = max(1, max_block // n)
        for start in range(0, resamples, rows_per_block):
            stop = min(resamples, start + rows_per_block)
            counts = _resample_counts(rng, n, stop - start)
            stats[:, start:stop] = vals @ counts.T / n
        lo, hi = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0], axis=1)
        low[members], high[members] = lo, hi
    return mean, sd, low, high
