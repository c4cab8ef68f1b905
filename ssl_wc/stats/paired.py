"""Paired comparisons over the same images: t-test, Wilcoxon signed-rank, Cohen's d_z.

Two-sided p-values are computed from survival functions in log space, so a huge
effect gives a tiny positive p instead of exactly 0: ``log10_p`` carries the exact
magnitude and ``p`` is floored at the smallest normal float64 (2.2e-308) when the true
value is below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

TINY_P = float(np.finfo(np.float64).tiny)
_LN10 = math.log(10.0)


@dataclass(frozen=True)
class TTestResult:
    """Paired t-test on d = a - b: t = mean(d) / (sd(d) / sqrt(n)), df = n - 1."""

    n: int
    mean_diff: float
    t: float
    df: int
    p: float
    log10_p: float


@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank on d = a - b with zero differences dropped (Wilcoxon 1945).

    ``statistic`` = min(W+, W-); ``method`` is "exact" (n <= 50, no ties) or "normal"
    (tie-corrected normal approximation, no continuity correction).
    """

    n: int
    n_zero: int
    statistic: float
    z: float
    p: float
    log10_p: float
    method: str


@dataclass(frozen=True)
class PairedResult:
    """All paired statistics for one comparison (a vs b over the same images)."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    cohens_dz: float
    ttest: TTestResult
    wilcoxon: WilcoxonResult


def _pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.size} vs {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep] - b[keep]


def _from_log_sf(log_sf: float) -> tuple[float, float]:
    """Two-sided (p, log10 p) from the log of a one-sided tail probability."""
    log_p = min(log_sf + math.log(2.0), 0.0)
    return max(math.exp(log_p), TINY_P), log_p / _LN10


def t_log_sf(t: float, df: float) -> float:
    """log P(T > t) for Student's t, accurate far into the tail.

    Uses ``stats.t.logsf`` while the tail is representable; beyond, the identity
    P(T > t) = I_x(df/2, 1/2) / 2 with x = df / (df + t^2) and
    I_x(a, b) = x^a (1 - x)^b / (a B(a, b)) * 2F1(a + b, 1; a + 1; x).
    """
    if math.isnan(t):
        return math.nan
    if t <= 0 or df <= 0:
        return float(stats.t.logsf(t, df))
    direct = float(stats.t.logsf(t, df))
    if direct > -650.0:
        return direct
    return t_log_sf_series(t, df)


def t_log_sf_series(t: float, df: float) -> float:
    """log P(T > t), t > 0, through the incomplete-beta series (see :func:`t_log_sf`)."""
    a, b = df / 2.0, 0.5
    log_x = math.log(df) - 2.0 * math.log(t) - math.log1p(df / (t * t))
    log_1mx = -math.log1p(df / (t * t))
    x = math.exp(log_x)
    log_i = (
        a * log_x
        + b * log_1mx
        - math.log(a)
        - float(special.betaln(a, b))
        + math.log(float(special.hyp2f1(a + b, 1.0, a + 1.0, x)))
    )
    return log_i - math.log(2.0)


def paired_ttest(a: np.ndarray, b: np.ndarray) -> TTestResult:
    """Two-sided paired t-test; pairs with a NaN are dropped (n reports what was used)."""
    d = _pairs(a, b)
    n = int(d.size)
    if n < 2:
        return TTestResult(
            n, float(d.mean()) if n else math.nan, math.nan, n - 1, math.nan, math.nan
        )
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:
        t = math.nan if mean == 0.0 else math.copysign(math.inf, mean)
    else:
        t = mean / (sd / math.sqrt(n))
    if math.isnan(t):
        return TTestResult(n, mean, t, n - 1, math.nan, math.nan)
    if math.isinf(t):
        return TTestResult(n, mean, t, n - 1, TINY_P, -math.inf)
    p, log10_p = _from_log_sf(t_log_sf(abs(t), n - 1))
    return TTestResult(n, mean, t, n - 1, p, log10_p)


def wilcoxon_signed_rank(a: np.ndarray, b: np.ndarray) -> WilcoxonResult:
    """Two-sided Wilcoxon signed-rank test, zero differences dropped ("wilcox" rule)."""
    d = _pairs(a, b)
    n_zero = int((d == 0).sum())
    d = d[d != 0]
    n = int(d.size)
    if n == 0:
        return WilcoxonResult(0, n_zero, math.nan, math.nan, math.nan, math.nan, "none")
    ranks = stats.rankdata(np.abs(d))
    w_plus = float(ranks[d > 0].sum())
    w_minus = float(ranks[d < 0].sum())
    statistic = min(w_plus, w_minus)
    _, tie_counts = np.unique(np.abs(d), return_counts=True)
    has_ties = bool((tie_counts > 1).any())
    mean = n * (n + 1) / 4.0
    var = n * (n + 1) * (2 * n + 1) / 24.0 - float((tie_counts**3 - tie_counts).sum()) / 48.0
    z = (w_plus - mean) / math.sqrt(var) if var > 0 else 0.0
    if n <= 50 and not has_ties:
        res = stats.wilcoxon(d, zero_method="wilcox", method="exact")
        p = max(float(res.pvalue), TINY_P)
        return WilcoxonResult(n, n_zero, statistic, z, p, math.log10(p), "exact")
    p, log10_p = _from_log_sf(float(special.log_ndtr(-abs(z))))
    return WilcoxonResult(n, n_zero, statistic, z, p, log10_p, "normal")


def cohens_dz(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's d_z = mean(d) / sd(d) (ddof = 1) for paired differences d = a - b."""
    d = _pairs(a, b)
    if d.size < 2:
        return math.nan
    sd = float(d.std(ddof=1))
    mean = float(d.mean())
    if sd == 0.0:
        return math.nan if mean == 0.0 else math.copysign(math.inf, mean)
    return mean / sd


def paired_compare(a: np.ndarray, b: np.ndarray) -> PairedResult:
    """t-test, Wilcoxon and d_z for a vs b over the same images (NaN pairs dropped)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    tt = paired_ttest(a, b)
    keep = np.isfinite(a) & np.isfinite(b)
    return PairedResult(
        n=tt.n,
        mean_a=float(a[keep].mean()) if keep.any() else math.nan,
        mean_b=float(b[keep].mean()) if keep.any() else math.nan,
        mean_diff=tt.mean_diff,
        cohens_dz=cohens_dz(a, b),
        ttest=tt,
        wilcoxon=wilcoxon_signed_rank(a, b),
    )
