"""Known answers for the MPRT similarity measures: Spearman, SSIM, histogram entropy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ssl_wc.faithfulness.similarity import (
    SSIM_K1,
    SSIM_K2,
    gaussian_window,
    histogram_entropy,
    relative_rise,
    spearman_rows,
    ssim,
)


def test_spearman_of_a_map_with_itself_is_one():
    rng = np.random.default_rng(0)
    a = rng.random((5, 7, 9))
    assert np.allclose(spearman_rows(a, a), 1.0)


def test_spearman_reversal_monotone_transform_and_ties():
    rng = np.random.default_rng(1)
    a = rng.random((3, 20))
    assert np.allclose(spearman_rows(a, -a), -1.0)
    assert np.allclose(spearman_rows(a, np.exp(5 * a)), 1.0)  # invariant to monotone maps
    tied = np.round(a * 4) / 4  # many ties: average ranks, as scipy
    expect = [stats.spearmanr(tied[i], a[i]).statistic for i in range(3)]
    assert np.allclose(spearman_rows(tied, a), expect)


def test_spearman_known_value_and_constant_row():
    # ranks 1..5 vs 2,1,4,3,5: d = (1,1,1,1,0), rho = 1 - 6*4/(5*24) = 0.8
    assert spearman_rows(np.array([[1, 2, 3, 4, 5.0]]), np.array([[2, 1, 4, 3, 5.0]]))[0] \
        == pytest.approx(0.8)
    assert np.isnan(spearman_rows(np.ones((1, 6)), np.arange(6.0)[None]))[0]


def test_ssim_of_an_image_with_itself_is_one():
    rng = np.random.default_rng(2)
    a = rng.random((3, 32, 40))
    assert np.allclose(ssim(a, a), 1.0)


def test_ssim_of_two_constant_images_has_the_closed_form():
    # no variance: SSIM = (2ab + C1) / (a^2 + b^2 + C1) for every window
    a, b = 0.3, 0.7
    c1 = (SSIM_K1 * 1.0) ** 2
    expect = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim(np.full((1, 20, 24), a), np.full((1, 20, 24), b))[0]
    assert got == pytest.approx(expect, rel=1e-12)


def _ssim_by_windows(x: np.ndarray, y: np.ndarray) -> float:
    """SSIM computed window by window, straight from the formula (reference)."""
    w1 = gaussian_window()
    w = np.outer(w1, w1)
    s = w.shape[0]
    c1, c2 = (SSIM_K1 * 1.0) ** 2, (SSIM_K2 * 1.0) ** 2
    vals = []
    for i in range(x.shape[0] - s + 1):
        for j in range(x.shape[1] - s + 1):
            px, py = x[i:i + s, j:j + s], y[i:i + s, j:j + s]
            mx, my = (w * px).sum(), (w * py).sum()
            vx = (w * (px - mx) ** 2).sum()
            vy = (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            vals.append(((2 * mx * my + c1) * (2 * cxy + c2))
                        / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_the_window_by_window_formula_on_a_non_square_image():
    rng = np.random.default_rng(3)
    x = rng.random((17, 23))
    y = np.clip(x + 0.2 * rng.standard_normal(x.shape), 0, 1)
    assert ssim(x[None], y[None])[0] == pytest.approx(_ssim_by_windows(x, y), abs=1e-12)
    # symmetric, below 1 for different images, and a transposed pair is the same value
    assert ssim(y[None], x[None])[0] == pytest.approx(ssim(x[None], y[None])[0], abs=1e-12)
    assert ssim(x[None], y[None])[0] < 0.99
    assert ssim(x.T[None], y.T[None])[0] == pytest.approx(ssim(x[None], y[None])[0], abs=1e-12)


def test_ssim_refuses_images_smaller_than_the_window():
    with pytest.raises(ValueError, match="smaller than"):
        ssim(np.zeros((1, 8, 30)), np.zeros((1, 8, 30)))


def test_histogram_entropy_known_values():
    # two equally filled bins: ln 2; constant: 0; uniform over 100 bins: ln 100
    assert histogram_entropy(np.array([[0.0, 0.0, 1.0, 1.0]]))[0] == pytest.approx(np.log(2))
    assert histogram_entropy(np.full((1, 9), 3.0))[0] == 0.0
    spread = np.linspace(0, 1, 1000, endpoint=False)[None]
    assert histogram_entropy(spread)[0] == pytest.approx(np.log(100))
    assert np.isnan(histogram_entropy(np.array([[0.0, np.nan]]))[0])


def test_relative_rise():
    assert relative_rise(np.array([2.0, 0.0]), np.array([3.0, 1.0]))[0] == pytest.approx(0.5)
    assert np.isnan(relative_rise(np.array([0.0]), np.array([1.0]))[0])
