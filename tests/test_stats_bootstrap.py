"""Percentile bootstrap: deterministic with a seed, vectorised groups agree."""

from __future__ import annotations

import numpy as np
import pytest

from ssl_wc.stats.bootstrap import bootstrap_ci, bootstrap_mean_ci_groups, paired_bootstrap_ci


def test_deterministic_with_seed_and_sensible() -> None:
    x = np.random.default_rng(0).normal(1.0, 2.0, size=139)
    a = bootstrap_ci(x)
    b = bootstrap_ci(x)
    assert a == b
    assert a.n_resamples == 10_000 and a.seed == 0
    assert a.low < a.estimate < a.high
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert a.high - a.low == pytest.approx(2 * 1.96 * se, rel=0.1)
    assert bootstrap_ci(x, seed=1) != a


def test_blocks_do_not_change_the_result() -> None:
    x = np.random.default_rng(1).random(50)
    assert bootstrap_ci(x, max_block=1000) == bootstrap_ci(x)


def test_median_and_paired() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.random(80), rng.random(80)
    med = bootstrap_ci(a, np.median)
    assert med.estimate == np.median(a)
    pair = paired_bootstrap_ci(a, b)
    assert pair == bootstrap_ci(a - b)


def test_groups_match_single_sample_intervals() -> None:
    rng = np.random.default_rng(3)
    groups = [rng.random(139), rng.random(139), rng.random(7), np.array([np.nan, 2.0])]
    groups.append(np.array([]))
    mean, sd, lo, hi = bootstrap_mean_ci_groups(groups, resamples=2000, seed=5)
    for i in range(3):
        one = bootstrap_ci(groups[i], n_resamples=2000, seed=5)
        assert mean[i] == pytest.approx(one.estimate)
        assert lo[i] == pytest.approx(one.low, abs=1e-12) and hi[i] == pytest.approx(one.high)
        assert sd[i] == pytest.approx(groups[i].std(ddof=1))
    assert mean[3] == 2.0 and lo[3] == hi[3] == 2.0 and np.isnan(sd[3])
    assert np.isnan(mean[4]) and np.isnan(lo[4])
