"""Alignment metrics between attention maps and expert boxes (no torch here).

Entry points: :func:`score_maps` (batched, exact), :class:`MetricProtocol`,
:func:`metric_catalogue` / :func:`catalogue_rows`, baselines in ``baselines``,
the per-map reference in ``reference`` and DuckDB UDFs in ``udf``.
"""

from ssl_wc.metrics.catalogue import MetricInfo, catalogue_rows, metric_catalogue
from ssl_wc.metrics.kernels import FAMILIES, PER_PERCENTILE_COLUMNS, score_maps
from ssl_wc.metrics.protocol import PERCENTILES, MetricProtocol, topk_count

__all__ = [
    "FAMILIES",
    "PERCENTILES",
    "PER_PERCENTILE_COLUMNS",
    "MetricInfo",
    "MetricProtocol",
    "catalogue_rows",
    "metric_catalogue",
    "score_maps",
    "topk_count",
]
