"""Linear probe: held-out accuracy of a logistic regression on frozen features.

Stratified k-fold cross-validation; the StandardScaler is part of the sklearn
Pipeline, so it is fitted on each training fold only (fitting it on all data first
leaks the held-out fold's statistics). Every reported number comes from out-of-fold
predictions; training accuracy is never reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler


@dataclass(frozen=True)
class ProbeResult:
    """Out-of-fold metrics of a linear probe.

    ``confusion[i, j]`` counts samples of class ``labels[i]`` predicted as ``labels[j]``;
    ``per_class_accuracy`` is each class's recall (diagonal / row sum).
    """

    accuracy: float
    macro_f1: float
    per_class_accuracy: dict[Any, float]
    confusion: np.ndarray
    labels: list[Any]
    fold_accuracy: list[float]
    n_splits: int
    seed: int
    predictions: np.ndarray = field(repr=False)


def _py(value: Any) -> Any:
    """A numpy scalar as the matching Python value (plain objects pass through)."""
    return value.item() if isinstance(value, np.generic) else value


def make_probe(c: float = 1.0, max_iter: int = 2000, seed: int = 0) -> Pipeline:
    """StandardScaler -> LogisticRegression, as one estimator (refitted per fold)."""
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("logreg", LogisticRegression(C=c, max_iter=max_iter, random_state=seed)),
        ]
    )


def linear_probe(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    n_splits: int = 5,
    seed: int = 0,
    c: float = 1.0,
    max_iter: int = 2000,
) -> ProbeResult:
    """Stratified ``n_splits``-fold linear probe; returns held-out metrics only."""
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"features must be (n, d) matching labels; got {x.shape}, {y.shape}")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < 2:
        raise ValueError("a probe needs at least two classes")
    if counts.min() < n_splits:
        raise ValueError(
            f"class {classes[counts.argmin()]!r} has {counts.min()} samples, fewer than "
            f"n_splits={n_splits}: lower n_splits or drop the class"
        )
    folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    predictions = np.empty(y.shape, dtype=y.dtype)
    fold_acc = []
    for train, test in folds.split(x, y):
        model = make_probe(c=c, max_iter=max_iter, seed=seed)
        model.fit(x[train], y[train])
        predictions[test] = model.predict(x[test])
        fold_acc.append(float(accuracy_score(y[test], predictions[test])))
    conf = confusion_matrix(y, predictions, labels=classes)
    recall = conf.diagonal() / conf.sum(axis=1)
    return ProbeResult(
        accuracy=float(accuracy_score(y, predictions)),
        macro_f1=float(f1_score(y, predictions, labels=classes, average="macro")),
        per_class_accuracy={_py(cls): float(r) for cls, r in zip(classes, recall, strict=True)},
        confusion=conf,
        labels=[_py(cls) for cls in classes],
        fold_accuracy=fold_acc,
        n_splits=n_splits,
        seed=seed,
        predictions=predictions,
    )
