"""Neighbour views against a direct numpy computation; the 2-D projections."""

from __future__ import annotations

import sys
from itertools import combinations
from math import comb
from pathlib import Path

import numpy as np
import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_fixture import BuiltWarehouse, FixtureSpec, build_warehouse

from ssl_wc.embeddings import project, unit_rows
from ssl_wc.warehouse import open_reader


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> BuiltWarehouse:
    return build_warehouse(tmp_path_factory.mktemp("emb") / "wh", FixtureSpec(
        seed=5, n_images=14, missing_files=2, n_layers=3, history=False))


def _sql(fx: BuiltWarehouse, sql: str) -> pl.DataFrame:
    con = open_reader(fx.root, udfs=False)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def _features(fx: BuiltWarehouse) -> dict[tuple[str, str, int, str], tuple[list[str], np.ndarray]]:
    df = _sql(fx, "SELECT model, variant, layer, kind, image_id, \"values\" FROM features "
                  "ORDER BY ALL")
    out = {}
    for key, g in df.group_by(["model", "variant", "layer", "kind"]):
        g = g.sort("image_id")
        out[(str(key[0]), str(key[1]), int(key[2]), str(key[3]))] = (  # type: ignore[arg-type]
            g["image_id"].to_list(), np.asarray(g["values"].to_list(), dtype=np.float64))
    return out


def numpy_knn(ids: list[str], x: np.ndarray, k: int) -> dict[str, list[str]]:
    """k most similar by cosine, ties to the smaller id (the views' rule)."""
    u = unit_rows(x)
    sim = u @ u.T
    out = {}
    for i, a in enumerate(ids):
        cand = [(-sim[i, j], ids[j]) for j in range(len(ids)) if j != i]
        out[a] = [b for _, b in sorted(cand)[:k]]
    return out


def chance(k: int, n: int) -> float:
    if k >= n:
        return 1.0
    return sum(comb(k, i) * comb(n - k, k - i) / comb(n, k) * (i / (2 * k - i) if i else 0.0)
               for i in range(max(0, 2 * k - n), k + 1))


def test_neighbours_match_numpy(fx: BuiltWarehouse) -> None:
    feats = _features(fx)
    nb = _sql(fx, "SELECT * FROM image_neighbors")
    assert nb.height == sum(len(ids) * (len(ids) - 1) for ids, _ in feats.values())
    for (model, variant, layer, kind), (ids, x) in feats.items():
        u = unit_rows(x)
        sim = u @ u.T
        got = nb.filter((pl.col("model") == model) & (pl.col("variant") == variant)
                        & (pl.col("layer") == layer) & (pl.col("kind") == kind))
        ref = numpy_knn(ids, x, len(ids) - 1)
        for a in ids:
            rows = got.filter(pl.col("image_id") == a).sort("rank")
            assert rows["neighbor_id"].to_list() == ref[a]
            assert rows["rank"].to_list() == list(range(1, len(ids)))
            expect = [sim[ids.index(a), ids.index(b)] for b in ref[a]]
            np.testing.assert_allclose(rows["cosine"].to_numpy(), expect, rtol=0, atol=1e-12)


def test_the_macro_filters_one_source(fx: BuiltWarehouse) -> None:
    key = next(iter(_features(fx)))
    model, variant, layer, kind = key
    one = _sql(fx, f"SELECT * FROM feature_neighbors('{model}', '{variant}', {layer}, "
                   f"'{kind}') ORDER BY image_id, rank")
    full = _sql(fx, f"SELECT * FROM image_neighbors WHERE model = '{model}' AND variant = "
                    f"'{variant}' AND layer = {layer} AND kind = '{kind}' "
                    f"ORDER BY image_id, rank")
    assert one.height > 0 and one.equals(full)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_agreement_matches_numpy(fx: BuiltWarehouse, k: int) -> None:
    feats = _features(fx)
    got = _sql(fx, f"SELECT * FROM knn_agreement({k}, NULL)")
    deepest: dict[tuple[str, str, str], int] = {}
    for model, variant, layer, kind in feats:
        deepest[(model, variant, kind)] = max(layer, deepest.get((model, variant, kind), -9))
    expected = []
    for a, b in combinations(sorted(feats), 2):
        (ma, va, la, ka), (mb, vb, lb, kb) = a, b
        if ka != kb or (ma, va) >= (mb, vb):
            continue
        rules = []
        if la == lb:
            rules.append("same_layer")
        if la == deepest[(ma, va, ka)] and lb == deepest[(mb, vb, kb)]:
            rules.append("last_layer")
        for rule in rules:
            ids_a, xa = feats[a]
            ids_b, xb = feats[b]
            na, nbr = numpy_knn(ids_a, xa, k), numpy_knn(ids_b, xb, k)
            common = sorted(set(ids_a) & set(ids_b))
            jac = [len(set(na[i]) & set(nbr[i])) / len(set(na[i]) | set(nbr[i]))
                   for i in common]
            ch = (chance(min(k, len(ids_a) - 1), len(ids_a) - 1)
                  + chance(min(k, len(ids_b) - 1), len(ids_b) - 1)) / 2
            expected.append({"kind": ka, "layer_rule": rule, "model_a": ma, "variant_a": va,
                             "layer_a": la, "model_b": mb, "variant_b": vb, "layer_b": lb,
                             "n_images": len(common), "mean_jaccard": float(np.mean(jac)),
                             "sd_jaccard": float(np.std(jac, ddof=1)), "chance_jaccard": ch})
    exp = pl.DataFrame(expected).sort(["kind", "layer_rule", "model_a", "variant_a", "layer_a",
                                       "model_b", "variant_b"])
    got = got.sort(["kind", "layer_rule", "model_a", "variant_a", "layer_a", "model_b",
                    "variant_b"])
    assert got.height == exp.height > 0
    assert set(got["k"].to_list()) == {k}
    for col in ("kind", "layer_rule", "model_a", "variant_a", "layer_a", "model_b",
                "variant_b", "layer_b", "n_images"):
        assert got[col].to_list() == exp[col].to_list(), col
    for col in ("mean_jaccard", "sd_jaccard", "chance_jaccard"):
        np.testing.assert_allclose(got[col].to_numpy(), exp[col].to_numpy(), atol=1e-12)
    # variants of one model count as sources of their own (fine-tuned vs frozen)
    assert got.filter(pl.col("model_a") == pl.col("model_b")).height > 0


def test_neighbor_agreement_view_holds_k5_and_k10(fx: BuiltWarehouse) -> None:
    got = _sql(fx, "SELECT DISTINCT k, kind FROM neighbor_agreement ORDER BY ALL")
    assert sorted(set(got["k"].to_list())) == [5, 10]


def test_chance_jaccard_known_answers(fx: BuiltWarehouse) -> None:
    got = _sql(fx, "SELECT chance_jaccard(3, 5) AS a, chance_jaccard(1, 10) AS b, "
                   "chance_jaccard(5, 31) AS c, chance_jaccard(10, 10) AS d, "
                   "chance_jaccard(0, 10) AS e").row(0)
    assert got[0] == pytest.approx(0.46, abs=1e-12)  # overlaps 1, 2, 3: .3/5 + .6/2 + .1
    assert got[1] == pytest.approx(0.1, abs=1e-12)
    assert got[2] == pytest.approx(chance(5, 31), abs=1e-12)
    assert got[3] == 1.0 and got[4] is None


def test_projections() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 4
    x = np.concatenate([c + rng.normal(size=(10, 16)) for c in centres])
    for method in ("pca", "tsne"):
        p = project(x, method)
        assert p.points.shape == (30, 2) and np.isfinite(p.points).all()
        again = project(x, method)
        np.testing.assert_allclose(p.points, again.points)  # deterministic (seed 0)
        # clusters stay apart: every point is nearer its own centre than the others'
        means = np.stack([p.points[i * 10:(i + 1) * 10].mean(axis=0) for i in range(3)])
        d = np.linalg.norm(p.points[:, None, :] - means[None], axis=2)
        assert (d.argmin(axis=1) == np.repeat(np.arange(3), 10)).all()
    assert "variance" in project(x, "pca").x_label
    assert project(x[:2], "pca").points.shape == (2, 2)
    with pytest.raises(ValueError, match="choose from pca, tsne"):
        project(x, "umap")
    z = unit_rows(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(z, [[0.6, 0.8], [0.0, 0.0]])
