"""2-D maps of stored image features (PCA or t-SNE), for the dashboards and the report.

Rows are L2-normalised first, so distances in the map follow the cosine similarity the
neighbour views rank by. PCA (2 components, deterministic SVD) shows the directions of
largest variance; t-SNE (van der Maaten & Hinton 2008; scikit-learn, PCA
initialisation, seed 0, perplexity min(30, (n - 1) / 3)) keeps local neighbourhoods.
Both run on one thread: for a few hundred points OpenMP's threads only contend (t-SNE of
139 points: 0.4 s on one thread, 4-10 s with the default pool on a busy 2-core machine).
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
    # import first: threadpoolctl limits only the thread pools already loaded
    import sklearn.decomposition
    import sklearn.manifold
    from threadpoolctl import threadpool_limits

    del sklearn
    with threadpool_limits(1):
        return _project(unit_rows(features), method, seed)


def _project(x: np.ndarray, method: str, seed: int) -> Projection:
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
