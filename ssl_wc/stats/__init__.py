"""Statistics for paired model comparisons, intervals, corrections and linear probes."""

from ssl_wc.stats.bootstrap import (
    BootstrapCI,
    bootstrap_ci,
    bootstrap_mean_ci_groups,
    paired_bootstrap_ci,
)
from ssl_wc.stats.multiple import benjamini_hochberg, bonferroni, holm
from ssl_wc.stats.paired import (
    PairedResult,
    TTestResult,
    WilcoxonResult,
    cohens_dz,
    paired_compare,
    paired_ttest,
    wilcoxon_signed_rank,
)
from ssl_wc.stats.probe import ProbeResult, linear_probe, make_probe

__all__ = [
    "BootstrapCI",
    "PairedResult",
    "ProbeResult",
    "TTestResult",
    "WilcoxonResult",
    "benjamini_hochberg",
    "bonferroni",
    "bootstrap_ci",
    "bootstrap_mean_ci_groups",
    "cohens_dz",
    "holm",
    "linear_probe",
    "make_probe",
    "paired_bootstrap_ci",
    "paired_compare",
    "paired_ttest",
    "wilcoxon_signed_rank",
]
