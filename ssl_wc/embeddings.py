"""2-D maps of stored image features (PCA or t-SNE), for the dashboards and the report.

Rows are L2-normalised first, so distances in the map follow the cosine similarity the
neighbour views rank by. PCA (2 components, deterministic SVD) shows the directions of
largest variance; t-SNE (van der Maaten & Hinton 2008; scikit-learn, PCA
initialisation, seed 0, perplexity min(30, (n - 1) / 3)) keeps local neighbourhoods.
UMAP is not used: umap-learn would add pynndescent and several seconds of numba
compilation per process for maps of a few hundred points that t-SNE handles in a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROJECTIONS = ("pca", "tsne")


@dataclass(frozen=True)
class Projection:
    """Points (n, 2) and axis labels (PCA: explained variance share of each axis)."""

    points: np.ndarray
    x_label: str
    y_label: str


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def project(features: np.ndarray, method: str = "pca", seed: int = 0) -> Projection:
    """2-D coordinates of (n, d) features by ``method`` (``pca`` or ``tsne``)."""
    if method not in PROJECTIONS:
        raise ValueError(f"unknown projection {method!r}; choose from {', '.join(PROJECTIONS)}")
    x = unit_rows(features)
    n = x.shape[0]
    if n == 0:
        return Projection(np.zeros((0, 2)), "", "")
    if n < 3:  # nothing to project: put the points on a line
        return Projection(np.column_stack([np.arange(n, dtype=float), np.zeros(n)]), "", "")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, svd_solver="full", random_state=seed)
        pts = pca.fit_transform(x)
        share = pca.explained_variance_ratio_
        return Projection(pts, f"PC1 ({100 * share[0]:.1f} % of variance)",
                          f"PC2 ({100 * share[1]:.1f} % of variance)")
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=2, perplexity=float(min(30.0, (n - 1) / 3)), init="pca",
                random_state=seed, max_iter=1000)
    return Projection(tsne.fit_transform(x), "t-SNE 1", "t-SNE 2")
