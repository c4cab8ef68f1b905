"""Paired t-test, Wilcoxon signed-rank (zeros dropped) and Cohen's d_z."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from ssl_wc.stats.paired import (
    cohens_dz,
    paired_compare,
    paired_ttest,
    t_log_sf,
    t_log_sf_series,
    wilcoxon_signed_rank,
)


def test_ttest_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=139)
    b = a + rng.normal(0.1, 1.0, size=139)
    ours = paired_ttest(a, b)
    ref = stats.ttest_rel(a, b)
    assert ours.t == pytest.approx(ref.statistic, rel=1e-12)
    assert ours.p == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours.df == 138 and ours.n == 139


def test_huge_effect_never_gives_p_zero() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=200) * 1e-6
    b = a + 1.0 + rng.normal(size=200) * 1e-6  # t around -1e6
    tt = paired_ttest(a, b)
    assert stats.ttest_rel(a, b).pvalue == 0.0  # the naive way underflows
    assert tt.p > 0.0
    assert tt.log10_p < -1000 and math.isfinite(tt.log10_p)
    w = wilcoxon_signed_rank(np.zeros(5000), np.arange(1, 5001, dtype=float))
    assert w.p > 0.0 and w.log10_p < -300 and w.method == "normal"


def test_t_tail_in_log_space_matches_where_representable() -> None:
    for t, df in [(5.0, 10), (40.0, 50), (300.0, 138)]:
        assert t_log_sf(t, df) == pytest.approx(float(stats.t.logsf(t, df)), rel=1e-9)
        assert t_log_sf_series(t, df) == pytest.approx(float(stats.t.logsf(t, df)), rel=1e-9)
    # beyond float range the series keeps going: log sf falls by df*log(10) per decade of t
    deep = t_log_sf(1e12, 50)
    assert deep < -1000 and math.isfinite(deep)
    assert deep - t_log_sf(1e11, 50) == pytest.approx(-50 * math.log(10), rel=1e-6)


def test_wilcoxon_drops_zeros_and_matches_scipy() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=30)
    b = a + rng.normal(0.3, 1.0, size=30)
    b[:4] = a[:4]  # four zero differences
    ours = wilcoxon_signed_rank(a, b)
    ref = stats.wilcoxon(a, b, zero_method="wilcox", method="exact")
    assert ours.n == 26 and ours.n_zero == 4 and ours.method == "exact"
    assert ours.statistic == ref.statistic and ours.p == pytest.approx(ref.pvalue)
    big_a = rng.normal(size=300)
    big_b = np.round(big_a + rng.normal(0.1, 1, size=300), 1)  # ties
    ours = wilcoxon_signed_rank(big_a.round(1), big_b)
    ref = stats.wilcoxon(big_a.round(1), big_b, zero_method="wilcox", method="approx")
    assert ours.method == "normal"
    assert ours.statistic == ref.statistic and ours.p == pytest.approx(ref.pvalue, rel=1e-9)


def test_cohens_dz_and_compare() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    b = np.array([0.0, 0.5, 2.0, 2.0, 1.0])
    d = np.array([1.0, 1.5, 1.0, 2.0])
    assert cohens_dz(a, b) == pytest.approx(d.mean() / d.std(ddof=1))
    res = paired_compare(a, b)
    assert res.n == 4 and res.mean_diff == pytest.approx(1.375)
    assert res.mean_a == pytest.approx(2.5) and res.mean_b == pytest.approx(1.125)
    with pytest.raises(ValueError):
        paired_ttest(np.ones(3), np.ones(4))
    same = paired_ttest(np.ones(5), np.ones(5))
    assert math.isnan(same.p)
