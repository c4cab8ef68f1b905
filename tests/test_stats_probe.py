"""Linear probe: the scaler is fitted inside each fold; only held-out numbers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

import ssl_wc.stats.probe as probe


def data(n: int = 120, d: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.array(["gothic", "baroque", "romanesque"]), n // 3)
    x = rng.normal(size=(n, d)) + (y == "gothic")[:, None] * 1.5
    x[:, 0] *= 1000.0  # a badly scaled feature
    return x, y


def test_scaler_fitted_within_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []

    class Recording(StandardScaler):
        def fit(self, X, y=None, sample_weight=None):
            sizes.append(len(X))
            return super().fit(X, y, sample_weight)

    monkeypatch.setattr(probe, "StandardScaler", Recording)
    x, y = data()
    res = probe.linear_probe(x, y, n_splits=5)
    assert sizes == [96] * 5  # 4/5 of 120 each time, never all 120
    assert len(res.fold_accuracy) == 5


def test_matches_a_manual_loop() -> None:
    x, y = data(seed=1)
    res = probe.linear_probe(x, y, n_splits=4, seed=3)
    pred = np.empty_like(y)
    for train, test in StratifiedKFold(4, shuffle=True, random_state=3).split(x, y):
        scaler = StandardScaler().fit(x[train])
        clf = LogisticRegression(C=1.0, max_iter=2000, random_state=3)
        clf.fit(scaler.transform(x[train]), y[train])
        pred[test] = clf.predict(scaler.transform(x[test]))
    np.testing.assert_array_equal(res.predictions, pred)
    assert res.accuracy == pytest.approx((pred == y).mean())
    assert res.labels == ["baroque", "gothic", "romanesque"]
    assert res.confusion.sum() == len(y)
    for i, label in enumerate(res.labels):
        assert res.per_class_accuracy[label] == pytest.approx(
            res.confusion[i, i] / res.confusion[i].sum()
        )


def test_never_reports_training_accuracy() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(60, 200))  # more features than samples: training fits perfectly
    y = np.tile([0, 1], 30)
    res = probe.linear_probe(x, y, n_splits=5)
    assert res.accuracy < 0.8  # held out: near chance, not the training 1.0
    assert 0.0 <= res.macro_f1 <= 1.0


def test_too_few_samples_per_class() -> None:
    with pytest.raises(ValueError, match="n_splits"):
        probe.linear_probe(np.zeros((6, 2)), np.array([0, 0, 0, 0, 1, 1]), n_splits=3)
