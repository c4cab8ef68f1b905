"""Holm, Bonferroni and Benjamini-Hochberg adjusted p-values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ssl_wc.stats.multiple import benjamini_hochberg, bonferroni, holm

P = np.array([0.01, 0.04, 0.03, 0.005])


def test_holm_known_example() -> None:
    # sorted .005 .01 .03 .04 times 4 3 2 1 -> .02 .03 .06 .04 -> running max .02 .03 .06 .06
    np.testing.assert_allclose(holm(P), [0.03, 0.06, 0.06, 0.02])


def test_bh_known_example() -> None:
    # sorted .005 .01 .03 .04 times 4/1 4/2 4/3 4/4 -> .02 .02 .04 .04 (already monotone)
    np.testing.assert_allclose(benjamini_hochberg(P), [0.02, 0.04, 0.04, 0.02])
    # a case where the step-up minimum matters (R: p.adjust(c(.01,.02,.03,.04,.05),"BH"))
    np.testing.assert_allclose(
        benjamini_hochberg(np.array([0.05, 0.01, 0.04, 0.02, 0.03])), [0.05] * 5
    )


def test_bonferroni_clipped() -> None:
    np.testing.assert_allclose(bonferroni(P), [0.04, 0.16, 0.12, 0.02])
    assert bonferroni(np.array([0.3, 0.9])).max() == 1.0


@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_holm_is_monotone_and_bounded(ps: list[float]) -> None:
    p = np.array(ps)
    adj = holm(p)
    order = np.argsort(p, kind="stable")
    assert (np.diff(adj[order]) >= -1e-15).all()
    assert (adj >= p - 1e-15).all() and (adj <= 1).all()
    bh = benjamini_hochberg(p)
    assert (bh <= adj + 1e-12).all()  # BH never more conservative than Holm
    assert (np.diff(bh[order]) >= -1e-15).all()


def test_nan_refuses_to_shrink_the_family() -> None:
    with pytest.raises(ValueError, match="NaN"):
        holm(np.array([0.01, np.nan]))
    with pytest.raises(ValueError):
        bonferroni(np.array([1.5]))
