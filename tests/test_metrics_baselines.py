"""Baselines: stable seeding, exact shapes of the priors, and the random-trial average."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from ssl_wc.metrics import baselines as bl
from ssl_wc.metrics.kernels import MAP_COLUMNS, MetricProtocol, score_maps


def test_random_maps_are_seeded_by_a_stable_hash() -> None:
    digest = hashlib.sha256(b"Q123:7").digest()
    assert bl.stable_seed("Q123", 7) == int.from_bytes(digest[:8], "little")
    a = bl.random_map("Q123", 7, (5, 6))
    np.testing.assert_array_equal(a, bl.random_map("Q123", 7, (5, 6)))
    assert not np.array_equal(a, bl.random_map("Q123", 8, (5, 6)))
    assert not np.array_equal(a, bl.random_map("Q124", 7, (5, 6)))
    trials = bl.random_trials("Q123", (5, 6), n=9)
    assert trials.shape == (9, 5, 6)
    np.testing.assert_array_equal(trials[7], a)


def test_fresh_process_same_random_map_and_no_torch() -> None:
    """Another hash salt gives the same map; metrics and stats never import torch."""
    code = (
        "import sys, numpy as np\n"
        "import ssl_wc.metrics, ssl_wc.stats\n"
        "from ssl_wc.metrics.baselines import random_map\n"
        "from ssl_wc.metrics.kernels import score_maps\n"
        "from ssl_wc.metrics.reference import reference_scores\n"
        "m = random_map('x', 1, (14, 14))\n"
        "score_maps(m[None], [np.array([[0.1, 0.1, 0.5, 0.5]])])\n"
        "reference_scores(m, np.array([[0.1, 0.1, 0.5, 0.5]]))\n"
        "ssl_wc.stats.linear_probe(np.random.rand(20, 3), np.arange(20) % 2, n_splits=2)\n"
        "print(repr(float(m.sum())), 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert float(out[0]) == float(bl.random_map("x", 1, (14, 14)).sum())
    assert out[1] == "False"


def test_center_gaussian() -> None:
    g = bl.center_gaussian((224, 224))
    assert g[111, 111] == g[112, 112] == g.max()  # centre (111.5, 111.5)
    sigma = 224 / 4
    assert g[111, 111 + 56] / g[111, 111] == pytest.approx(
        math.exp(-((111 + 56 - 111.5) ** 2 - 0.5**2) / (2 * sigma**2))
    )
    ns = bl.center_gaussian((40, 100))  # sigma = 25; centre (19.5, 49.5)
    assert ns.shape == (40, 100) and ns[19, 49] == ns.max()


def test_saliency_prior_ramp() -> None:
    s = bl.saliency_prior((224, 224))
    assert (s[0, :] == 0).all() and (s[:, -1] == 0).all()  # zero on every edge
    gauss = bl._centred_gaussian((224, 224), 224 / 3)
    assert s[5, 111] == pytest.approx(gauss[5, 111] * 5 / 111.5)
    assert s[111, 111] == pytest.approx(gauss[111, 111] * 111 / 111.5)


def test_sobel_edges_of_a_step() -> None:
    img = np.zeros((224, 224))
    img[:, 100:] = 1.0  # vertical edge between columns 99 and 100
    e = bl.sobel_edges(img, (224, 224))
    assert e.max() == 1.0
    assert (e[:, 99] == 1.0).all() and (e[:, 100] == 1.0).all()
    assert (e[:, :98] == 0).all() and (e[:, 102:] == 0).all()  # mirror padding: no border edge
    small = bl.sobel_edges(np.random.default_rng(0).random((50, 70)), (224, 224))
    assert small.shape == (224, 224) and small.max() == 1.0
    assert (bl.sobel_edges(np.ones((30, 30)), (224, 224)) == 0).all()


def test_random_baseline_is_the_mean_over_trials() -> None:
    proto = MetricProtocol(eval_size=(32, 24))
    boxes = [np.array([[0.1, 0.2, 0.3, 0.3]]), np.zeros((0, 4))]
    tf, pp = bl.score_random_baseline(["a", "b"], boxes, proto, trials=4)
    maps = bl.random_trials("a", (32, 24), 4)
    one_tf, one_pp = score_maps(maps, [boxes[0]] * 4, proto)
    for col in one_tf:
        assert tf[col][0] == pytest.approx(one_tf[col].mean())
        if col not in MAP_COLUMNS:  # gini and entropy describe the map alone
            assert np.isnan(tf[col][1])  # empty target stays NaN
    np.testing.assert_allclose(pp["iou"][0], one_pp["iou"].mean(axis=0))
    assert 0.0 <= tf["pointing_t0"][0] <= 1.0


def test_random_baseline_rows_of_one_image_share_the_trial_maps() -> None:
    proto = MetricProtocol(eval_size=(32, 24))
    union = np.array([[0.1, 0.2, 0.3, 0.3], [0.6, 0.6, 0.2, 0.2]])
    rows = [union, union[:1], union[1:]]
    tf, pp = bl.score_random_baseline(["a"] * 3, rows, proto, trials=5)
    for j, target in enumerate(rows):
        one_tf, one_pp = bl.score_random_baseline(["a"], [target], proto, trials=5)
        for col in one_tf:
            assert tf[col][j] == pytest.approx(one_tf[col][0], abs=1e-15)
        np.testing.assert_allclose(pp["iou"][j], one_pp["iou"][0], atol=1e-15)


def test_baselines_score_through_the_same_path() -> None:
    box = np.array([[0.4, 0.4, 0.2, 0.2]])
    maps = np.stack([bl.center_gaussian((224, 224)), bl.saliency_prior((224, 224))])
    tf, _ = score_maps(maps, [box, box])
    np.testing.assert_array_equal(tf["pointing_t0"], [1.0, 1.0])  # central box
