"""Known answers for deletion / insertion curves on a constructed model whose true
relevance is known, and for the curve plumbing (steps, orders, AUC, controls, cost)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ssl_wc.faithfulness.deletion import (
    CurveScorer,
    ImageRequest,
    auc,
    cell_means,
    random_order,
    rank_cells,
    step_counts,
)
from ssl_wc.faithfulness.protocol import DeletionProtocol
from ssl_wc.faithfulness.removal import blur

GRID = (3, 5)  # non-square: 3 rows (y) x 5 columns (x)
CELL = 8
SIZE = (GRID[0] * CELL, GRID[1] * CELL)


class CellModel(nn.Module):
    """z_c = r_c * (mean over cell c of feature(x)): one embedding dimension per cell, so
    the true relevance of cell c to cos(z(x'), z(x)) is |z_c|."""

    def __init__(self, relevance: np.ndarray, texture: bool = False) -> None:
        super().__init__()
        self.r = nn.Parameter(torch.as_tensor(relevance, dtype=torch.float32).ravel(),
                              requires_grad=False)
        self.texture = texture

    def feature(self, x: torch.Tensor) -> torch.Tensor:
        if self.texture:  # high-frequency energy: what ROAD's smooth fill removes
            return (x - blur(x, 2.0)).abs().mean(dim=1, keepdim=True)
        return x.mean(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cells = nn.functional.avg_pool2d(self.feature(x), CELL).flatten(1)
        return cells * self.r


def _image(seed: int = 0, texture: bool = False) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    if texture:
        base = rng.standard_normal((3, *SIZE)) * rng.uniform(0.2, 1.5, (1, 1, 1))
    else:
        base = 1.0 + rng.random((3, *SIZE))
    return torch.from_numpy(base).float()


def _scorer(model: nn.Module, imputation: str = "constant", steps: int = 15,
            prob=None) -> CurveScorer:
    proto = DeletionProtocol(steps=steps, imputation=imputation)
    return CurveScorer(model, proto, GRID, SIZE, [1.0, 1.0, 1.0], batch_size=16, prob=prob)


def test_step_counts_are_symmetric_and_monotone():
    c = step_counts(196, 16)
    assert c[0] == 0 and c[-1] == 196 and len(c) == 17
    assert np.all(np.diff(c) >= 0)
    assert np.all(c + c[::-1] == 196)
    assert step_counts(15, 4).tolist() == [0, 4, 8, 11, 15]  # round half up: 3.75 -> 4, 7.5 -> 8


def test_auc_is_the_trapezoid_rule():
    assert auc(np.array([1.0, 0.0])) == pytest.approx(0.5)
    assert auc(np.array([1.0, 0.5, 0.0])) == pytest.approx(0.5)
    assert auc(np.array([1.0, 1.0, 1.0, 0.0])) == pytest.approx(2.5 / 3)


def test_rank_cells_orders_by_value_and_breaks_ties_by_the_random_order():
    tie = np.array([4, 2, 0, 1, 3])
    order = rank_cells(np.array([0.5, 0.9, 0.5, 0.1, 0.5]), tie)
    assert order.tolist() == [1, 4, 2, 0, 3]  # 0.9 first; the three 0.5s in tie order
    assert rank_cells(np.full(5, 7.0), tie).tolist() == tie.tolist()
    assert rank_cells(np.array([1.0, np.nan, 0, 0, 0]), tie).tolist() == tie.tolist()


def test_random_order_is_stable_and_image_specific():
    a = random_order("Q1_wd0.jpg", 196)
    assert np.array_equal(a, random_order("Q1_wd0.jpg", 196))
    assert not np.array_equal(a, random_order("Q2_wd0.jpg", 196))
    assert not np.array_equal(a, random_order("Q1_wd0.jpg", 196, trial=1))
    assert sorted(a.tolist()) == list(range(196))


def test_cell_means_respect_rows_as_y():
    m = np.zeros(SIZE)
    m[CELL:2 * CELL, 3 * CELL:4 * CELL] = 1.0  # cell (row 1, column 3)
    cm = cell_means(m, GRID)
    assert cm.shape == GRID and cm[1, 3] == 1.0 and cm.sum() == 1.0


def test_true_relevance_gives_the_best_deletion_and_insertion_auc():
    rng = np.random.default_rng(5)
    relevance = rng.gamma(0.7, 1.0, GRID)
    model = CellModel(relevance)
    x = _image()
    with torch.no_grad():
        truth = model(x[None]).abs().numpy().reshape(GRID)  # |z_c|: the true relevance
    k = GRID[0] * GRID[1]
    tie = random_order("img", k)
    perms = [rng.permutation(k) for _ in range(60)]
    orders = {"truth": rank_cells(truth, tie), "reversed": rank_cells(-truth, tie)}
    orders.update({f"p{i}": p for i, p in enumerate(perms)})
    res = _scorer(model).score([ImageRequest("img", x, orders, [tie])])[0]
    dele = {k_: c.deletion_auc for k_, c in res.items()}
    ins = {k_: c.insertion_auc for k_, c in res.items()}
    # removing the largest |z_c| first minimises every point of the curve: the best AUC
    assert dele["truth"] <= min(dele.values()) + 1e-12
    assert ins["truth"] >= max(ins.values()) - 1e-12
    assert dele["truth"] < dele["random:0"] - 0.05 and ins["truth"] > ins["random:0"] + 0.05
    assert dele["reversed"] > dele["random:0"]
    # end points: nothing removed = the image itself; everything removed = z = 0
    c = res["truth"]
    assert c.deletion[0] == pytest.approx(1.0) and c.insertion[-1] == pytest.approx(1.0)
    assert c.deletion[-1] == 0.0 and c.insertion[0] == 0.0  # cos(0, z) := 0


def test_true_relevance_beats_random_under_road_removal():
    rng = np.random.default_rng(7)
    relevance = rng.gamma(0.7, 1.0, GRID)
    model = CellModel(relevance, texture=True)
    x = _image(1, texture=True)
    with torch.no_grad():
        truth = model(x[None]).abs().numpy().reshape(GRID)
    k = GRID[0] * GRID[1]
    tie = random_order("img", k)
    res = _scorer(model, "road").score([ImageRequest(
        "img", x, {"truth": rank_cells(truth, tie), "reversed": rank_cells(-truth, tie)},
        [random_order("img", k, t) for t in range(3)])])[0]
    rnd_del = np.mean([res[f"random:{t}"].deletion_auc for t in range(3)])
    rnd_ins = np.mean([res[f"random:{t}"].insertion_auc for t in range(3)])
    assert res["truth"].deletion_auc < rnd_del < res["reversed"].deletion_auc
    assert res["truth"].insertion_auc > rnd_ins > res["reversed"].insertion_auc


def test_a_constant_map_reproduces_the_random_control():
    model = CellModel(np.random.default_rng(1).random(GRID) + 0.1)
    k = GRID[0] * GRID[1]
    tie = random_order("img", k)
    res = _scorer(model, "road").score([ImageRequest(
        "img", _image(), {"constant": rank_cells(np.zeros(GRID), tie)}, [tie])])[0]
    assert res["constant"].deletion_auc == pytest.approx(res["random:0"].deletion_auc, abs=1e-9)
    # the random insertion curve is the random deletion curve read backwards
    assert np.allclose(res["random:0"].insertion, res["random:0"].deletion[::-1])


def test_identical_images_are_forwarded_once_and_the_cost_is_as_stated():
    model = CellModel(np.ones(GRID))
    k = GRID[0] * GRID[1]
    tie = random_order("img", k)
    a, b = np.random.default_rng(2).permutation(k), np.random.default_rng(3).permutation(k)
    scorer = _scorer(model, steps=5)
    scorer.score([ImageRequest("img", _image(), {"a": a, "b": b, "a_again": a.copy()}, [tie])])
    # 2 shared images (x, all removed) + (S - 1) per distinct deletion or insertion curve:
    # maps a, b (deletion and insertion each) and the random order (deletion only)
    assert scorer.forwards <= 2 + 4 * (2 * 2 + 1)
    assert scorer.forwards >= 2 + 4 * 2  # a's and b's curves differ somewhere


def test_class_probability_curves():
    model = CellModel(np.random.default_rng(4).random(GRID) + 0.5)
    w = torch.randn(GRID[0] * GRID[1], 4, generator=torch.Generator().manual_seed(0))

    def prob(z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(z @ w, dim=-1)

    k = GRID[0] * GRID[1]
    tie = random_order("img", k)
    x = _image()
    res = _scorer(model, prob=prob).score([ImageRequest("img", x, {"m": tie}, [tie])])[0]["m"]
    with torch.no_grad():
        p0 = prob(model(x[None]))[0]
    assert res.deletion_prob is not None and res.insertion_prob is not None
    assert res.deletion_prob[0] == pytest.approx(float(p0.max()))
    assert res.insertion_prob[-1] == pytest.approx(float(p0.max()))
    assert res.deletion_auc_prob == pytest.approx(auc(res.deletion_prob))


def test_an_order_must_be_a_permutation():
    model = CellModel(np.ones(GRID))
    with pytest.raises(ValueError, match="not a permutation"):
        _scorer(model).score([ImageRequest("img", _image(), {"bad": np.zeros(15, int)})])
