"""Known answers for patch removal: cell geometry, ROAD imputation against an exact sparse
solve, blur and constant fills."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from ssl_wc.faithfulness.removal import (
    NEIGHBOUR_KERNEL,
    blur,
    cell_index,
    removal_masks,
    remove,
    road_impute,
)


def exact_road(x: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """ROAD's linear system for one channel, assembled pixel by pixel and solved exactly."""
    H, W = x.shape
    idx = -np.ones((H, W), dtype=int)
    pts = np.argwhere(unknown)
    idx[unknown] = np.arange(len(pts))
    rows, cols, vals = [], [], []
    b = np.zeros(len(pts))
    for i, (y, xx) in enumerate(pts):
        diag = 0.0
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                w = NEIGHBOUR_KERNEL[dy + 1][dx + 1]
                yy, xq = y + dy, xx + dx
                if w == 0 or not (0 <= yy < H and 0 <= xq < W):
                    continue
                diag += w
                if unknown[yy, xq]:
                    rows.append(i)
                    cols.append(idx[yy, xq])
                    vals.append(-w)
                else:
                    b[i] += w * x[yy, xq]
        rows.append(i)
        cols.append(i)
        vals.append(diag)
    a = sp.csc_matrix((vals, (rows, cols)), shape=(len(pts), len(pts)))
    out = x.copy()
    out[unknown] = spla.spsolve(a, b)
    return out


def test_cell_index_rows_are_y_on_a_non_square_grid():
    idx = cell_index((3, 5), (6, 20))  # cells of 2 rows x 4 columns
    assert idx.shape == (6, 20)
    assert idx[0, 0] == 0 and idx[0, 4] == 1 and idx[2, 0] == 5
    assert idx[5, 19] == 14
    # a planted cell (row 1, column 3) covers input rows 2..3 and columns 12..15
    rows, cols = np.nonzero(idx == 1 * 5 + 3)
    assert sorted(set(rows)) == [2, 3] and sorted(set(cols)) == [12, 13, 14, 15]
    mask = removal_masks(torch.tensor([[c == 8 for c in range(15)]]), torch.from_numpy(idx))
    assert mask.shape == (1, 6, 20) and int(mask.sum()) == 8
    assert bool(mask[0, 2:4, 12:16].all())


def test_cell_index_uneven_split():
    idx = cell_index((3, 3), (7, 8))  # rows floor(i*7/3): 0,0,0,1,1,2,2
    assert idx[:, 0].tolist() == [0, 0, 0, 3, 3, 6, 6]
    with pytest.raises(ValueError, match="does not fit"):
        cell_index((9, 3), (7, 8))


@pytest.fixture()
def textured() -> tuple[torch.Tensor, torch.Tensor]:
    from scipy import ndimage

    rng = np.random.default_rng(0)
    img = ndimage.gaussian_filter(rng.random((2, 3, 40, 56)), (0, 0, 1.5, 1.5)) * 4 - 2
    idx = cell_index((5, 7), (40, 56))
    removed = np.zeros((2, 35), dtype=bool)
    removed[0, rng.permutation(35)[:14]] = True
    removed[1, rng.permutation(35)[:30]] = True
    mask = removal_masks(torch.from_numpy(removed), torch.from_numpy(idx))
    return torch.from_numpy(img).float(), mask


def test_road_matches_the_exact_sparse_solution(textured):
    x, mask = textured
    out, stats = road_impute(x, mask, tol=1e-6, max_iter=500)
    assert stats.unsolved == 0
    for b in range(2):
        for c in range(3):
            ref = exact_road(x[b, c].double().numpy(), mask[b].numpy())
            assert np.abs(out[b, c].numpy() - ref).max() < 2e-4
    # known pixels are untouched, bit for bit
    keep = ~mask.unsqueeze(1).expand_as(x)
    assert torch.equal(out[keep], x[keep])


def test_road_default_tolerance_error_is_far_below_the_noise(textured):
    x, mask = textured
    out, stats = road_impute(x, mask)  # default tol 1e-4
    ref = np.stack([[exact_road(x[b, c].double().numpy(), mask[b].numpy()) for c in range(3)]
                    for b in range(2)])
    err = np.abs(out.numpy() - ref)[mask.unsqueeze(1).expand_as(x).numpy()]
    assert stats.max_rel_residual <= 1e-4
    assert np.sqrt((err**2).mean()) < 0.01 * np.ptp(x.numpy())


def test_road_reproduces_a_plane_inside_interior_holes():
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(48.0), indexing="ij")
    plane = (0.3 * xx - 0.7 * yy + 2.0)[None, None].repeat(1, 3, 1, 1)
    idx = torch.from_numpy(cell_index((4, 6), (32, 48)))
    removed = torch.zeros(1, 24, dtype=torch.bool)
    removed[0, [7, 8, 9, 14, 15]] = True  # interior cells (x/y order matters: 4 rows, 6 cols)
    out, _ = road_impute(plane, removal_masks(removed, idx), tol=1e-7, max_iter=500)
    assert torch.allclose(out, plane, atol=1e-3)


def test_road_commutes_with_per_channel_affine_maps(textured):
    x, mask = textured
    a = torch.tensor([2.0, -0.5, 1.5]).view(1, 3, 1, 1)
    b = torch.tensor([0.1, 3.0, -1.0]).view(1, 3, 1, 1)
    out1, _ = road_impute(a * x + b, mask, tol=1e-7, max_iter=500)
    out2, _ = road_impute(x, mask, tol=1e-7, max_iter=500)
    assert torch.allclose(out1, a * out2 + b, atol=2e-3)


def test_everything_removed_gives_the_mean_colour_plus_noise():
    x = torch.randn(1, 3, 16, 16)
    mask = torch.ones(1, 16, 16, dtype=torch.bool)
    out, _ = remove(x, mask, "road")
    assert torch.equal(out, torch.zeros_like(x))
    noise = torch.full_like(x, 0.05)
    out, _ = remove(x, mask, "road", noise=noise)
    assert torch.allclose(out, noise)


def test_blur_and_constant_fills(textured):
    x, mask = textured
    out, _ = remove(x, mask, "constant")
    m = mask.unsqueeze(1).expand_as(x)
    assert torch.equal(out[m], torch.zeros(int(m.sum()))) and torch.equal(out[~m], x[~m])
    out, _ = remove(x, mask, "blur", blur_sigma=2.0)
    assert torch.allclose(out[m], blur(x, 2.0)[m]) and torch.equal(out[~m], x[~m])
    # a blurred constant stays constant (normalised kernel, reflected borders)
    const = torch.full((1, 1, 9, 13), 0.25)
    assert torch.allclose(blur(const, 3.0), const)
    with pytest.raises(ValueError, match="unknown imputation"):
        remove(x, mask, "inpaint")
