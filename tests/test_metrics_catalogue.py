"""The metric catalogue covers every column with a direction and a citation."""

from __future__ import annotations

import numpy as np

from ssl_wc.metrics.catalogue import catalogue_rows, metric_catalogue
from ssl_wc.metrics.kernels import MetricProtocol, score_maps


def test_every_score_maps_column_is_catalogued() -> None:
    protocol = MetricProtocol(pointing_tolerances_px=(0, 15, 30))
    tf, pp = score_maps(
        np.random.default_rng(0).random((1, 14, 14)), [np.array([[0.1, 0.1, 0.5, 0.5]])], protocol
    )
    cat = metric_catalogue(protocol)
    assert set(tf) | set(pp) == set(cat)
    for name in tf:
        assert cat[name].threshold_free
    for name in pp:
        assert not cat[name].threshold_free


def test_rows_are_plain_and_complete() -> None:
    rows = catalogue_rows()
    assert {r["name"] for r in rows} >= {"iou", "coverage", "pointing_t15", "kl", "emd"}
    for r in rows:
        assert r["direction"] in {"higher", "lower", "info"}
        assert r["reference"] and r["label"] and r["description"]
        assert isinstance(r["parameters"], list)
    by = {r["name"]: r for r in rows}
    assert by["kl"]["direction"] == "lower" and by["iou"]["direction"] == "higher"
    assert "Zhang" in by["pointing_t15"]["reference"]
    assert "Score-CAM" in by["coverage"]["reference"]
    assert "CLEVR-XAI" in by["relevance_rank_acc"]["reference"]
    assert "Deselaers" in by["corloc"]["reference"]
    assert "Rubner" in by["emd"]["reference"] and "Rubner" in by["emd_point"]["reference"]
    assert "Hanley" in by["roc_auc"]["reference"] and by["roc_auc"]["direction"] == "higher"
    assert "Hurley" in by["gini"]["reference"] and by["gini"]["direction"] == "info"
    assert "Shannon" in by["entropy"]["reference"] and by["entropy"]["direction"] == "info"
    assert "area" in by["emd"]["label"] and "point" in by["emd_point"]["label"]


def test_feature_space_metric_is_catalogued() -> None:
    from ssl_wc.metrics.catalogue import feature_metric_catalogue

    by = {r["name"]: r for r in catalogue_rows()}
    info = feature_metric_catalogue()["box_similarity_contrast"]
    assert by["box_similarity_contrast"]["direction"] == info.direction == "higher"
    assert "Dense Visual Descriptors" in info.reference
    assert "box_similarity_contrast" not in metric_catalogue()  # not a map metric
