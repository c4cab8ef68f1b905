"""Multiple-comparison corrections returning adjusted p-values (clipped at 1).

State the family each correction runs over: every p-value passed in one call is one
family. A NaN p-value raises instead of silently shrinking the family.
"""

from __future__ import annotations

import numpy as np


def _check(p: np.ndarray) -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError(
            "p-values contain NaN: drop or resolve those tests explicitly so the family "
            "size is deliberate"
        )
    if ((arr < 0) | (arr > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    return arr


def bonferroni(p: np.ndarray) -> np.ndarray:
    """Bonferroni: min(1, m * p_i) over a family of m tests."""
    arr = _check(p)
    return np.minimum(arr * arr.size, 1.0)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm (1979) step-down: adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)), monotone."""
    arr = _check(p)
    flat = arr.ravel()
    m = flat.size
    if m == 0:
        return arr.copy()
    order = np.argsort(flat, kind="stable")
    scaled = (m - np.arange(m)) * flat[order]
    adj_sorted = np.minimum(np.maximum.accumulate(scaled), 1.0)
    out = np.empty(m)
    out[order] = adj_sorted
    return out.reshape(arr.shape)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini & Hochberg (1995) FDR: adj_(i) = min_{j >= i} min(1, m p_(j) / j)."""
    arr = _check(p)
    flat = arr.ravel()
    m = flat.size
    if m == 0:
        return arr.copy()
    order = np.argsort(flat, kind="stable")
    scaled = flat[order] * m / np.arange(1, m + 1)
    adj_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m)
    out[order] = adj_sorted
    return out.reshape(arr.shape)
