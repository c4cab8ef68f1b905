"""score_maps (batched) equals the per-map reference implementation."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssl_wc.metrics.kernels import MetricProtocol, score_map_targets, score_maps
from ssl_wc.metrics.reference import reference_score_maps

ATOL = 1e-6


def assert_same(batch: tuple[dict, dict], ref: tuple[dict, dict]) -> None:
    for got, want in zip(batch, ref, strict=True):
        assert set(got) == set(want)
        for col in got:
            a, b = got[col], want[col]
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=col)
            np.testing.assert_allclose(a, b, atol=ATOL, rtol=0, equal_nan=True, err_msg=col)


def random_boxes(rng: np.random.Generator, k: int) -> np.ndarray:
    lt = rng.uniform(-0.2, 1.0, size=(k, 2))
    wh = rng.uniform(0.0, 0.6, size=(k, 2)) ** 2
    return np.column_stack([lt, wh])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    grid=st.sampled_from([(14, 14), (16, 16), (7, 9), (50, 60)]),  # (50, 60) also shrinks
    size=st.sampled_from([(224, 224), (48, 40)]),
    kind=st.sampled_from(["smooth", "ties", "spiky", "signed"]),
)
def test_batched_equals_reference(seed: int, grid: tuple[int, int], size, kind: str) -> None:
    rng = np.random.default_rng(seed)
    n = 6
    maps = rng.random((n, *grid))
    if kind == "ties":
        maps = np.round(maps * 3)  # many exact ties, also across the edge strips
    elif kind == "spiky":
        maps = np.exp(rng.normal(size=(n, *grid)) * 4)
    elif kind == "signed":
        maps = rng.normal(size=(n, *grid)) * 100 + 1e4
    targets = [random_boxes(rng, int(k)) for k in rng.integers(0, 5, size=n)]
    protocol = MetricProtocol(eval_size=size, pointing_tolerances_px=(0, 3, 15))
    batch = score_maps(maps, targets, protocol, chunk_size=4)
    assert_same(batch, reference_score_maps(maps, targets, protocol))


def test_shared_targets_chunks_and_threads_do_not_change_results() -> None:
    rng = np.random.default_rng(7)
    maps = rng.random((30, 16, 16)).astype(np.float32)
    boxes = [random_boxes(rng, 3), random_boxes(rng, 1), np.zeros((0, 4))]
    targets = [boxes[i % 3] for i in range(30)]
    base = score_maps(maps, targets)
    other = score_maps(maps, targets, chunk_size=3, workers=2)
    for got, want in zip(other, base, strict=True):
        for col in got:
            np.testing.assert_array_equal(got[col], want[col], err_msg=col)
    ref = reference_score_maps(maps[:6], targets[:6])
    head = tuple({k: v[:6] for k, v in part.items()} for part in base)
    assert_same(head, ref)


def test_maps_at_eval_size_equal_reference() -> None:
    rng = np.random.default_rng(8)
    maps = rng.random((3, 40, 30))
    maps[1] = np.round(maps[1] * 2)
    targets = [random_boxes(rng, 2) for _ in range(3)]
    protocol = MetricProtocol(eval_size=(40, 30))
    assert_same(score_maps(maps, targets, protocol), reference_score_maps(maps, targets, protocol))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    grid=st.sampled_from([(14, 14), (16, 16), (5, 8)]),
    kind=st.sampled_from(["smooth", "ties", "spiky"]),
)
def test_each_map_against_its_image_targets_equals_reference(seed: int, grid, kind: str) -> None:
    """The job's layout: every map against its image's union and each box alone."""
    rng = np.random.default_rng(seed)
    maps = rng.random((5, *grid))
    if kind == "ties":
        maps = np.round(maps * 2)
    elif kind == "spiky":
        maps = np.exp(rng.normal(size=(5, *grid)) * 4)
    images = []
    for _ in range(2):
        union = random_boxes(rng, int(rng.integers(1, 4)))
        images.append([union] + [union[b : b + 1] for b in range(len(union))])
    lists = [images[i % 2] for i in range(5)]
    protocol = MetricProtocol(eval_size=(64, 48))
    got = score_map_targets(maps, lists, protocol, chunk_size=2)
    rep = [i for i in range(5) for _ in lists[i]]
    flat = [t for tl in lists for t in tl]
    assert_same(got, reference_score_maps(maps[rep], flat, protocol))
