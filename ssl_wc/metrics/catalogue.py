"""Metric catalogue: name, label, direction, paper and parameters of every column.

Dashboards label axes and sort leaderboards from this table instead of hard-coding
"higher is better" (the Quantus habit). ``catalogue_rows()`` gives it as plain dicts so
it can be written to a warehouse table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from ssl_wc.metrics.protocol import MetricProtocol

Direction = Literal["higher", "lower", "info"]

ZHANG_2016 = (
    "Zhang, Lin, Brandt, Shen, Sclaroff. Top-down Neural Attention by Excitation "
    "Backprop. ECCV 2016 (IJCV 2018)."
)
WANG_2020 = (
    "Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu. Score-CAM: Score-Weighted Visual "
    "Explanations for Convolutional Neural Networks. CVPR Workshops 2020."
)
ARRAS_2022 = (
    "Arras, Osman, Samek. CLEVR-XAI: A benchmark dataset for the ground truth evaluation "
    "of neural network explanations. Information Fusion 81, 2022."
)
DESELAERS_2012 = (
    "Deselaers, Alexe, Ferrari. Weakly supervised localization and learning with generic "
    "knowledge. IJCV 100, 2012 (ECCV 2010)."
)
RUBNER_2000 = (
    "Rubner, Tomasi, Guibas. The Earth Mover's Distance as a Metric for Image Retrieval. "
    "IJCV 40, 2000."
)
KULLBACK_1951 = "Kullback, Leibler. On Information and Sufficiency. Ann. Math. Stat. 22, 1951."
BYLINSKII_2019 = (
    "Bylinskii, Judd, Oliva, Torralba, Durand. What do different evaluation metrics tell "
    "us about saliency models? IEEE TPAMI 41, 2019."
)
HANLEY_1982 = (
    "Hanley, McNeil. The meaning and use of the area under a receiver operating "
    "characteristic (ROC) curve. Radiology 143, 1982."
)
HURLEY_2009 = (
    "Hurley, Rickard. Comparing Measures of Sparsity. IEEE Trans. Information Theory 55, "
    "2009."
)
SHANNON_1948 = (
    "Shannon. A Mathematical Theory of Communication. Bell System Technical Journal 27, "
    "1948."
)
JACCARD_1912 = (
    "Jaccard. The distribution of the flora in the alpine zone. New Phytologist 11, 1912."
)

AMIR_2022 = (
    "Amir, Gandelsman, Bagon, Dekel. Deep ViT Features as Dense Visual Descriptors. "
    "ECCV Workshops 2022."
)
PETSIUK_2018 = (
    "Petsiuk, Das, Saenko. RISE: Randomized Input Sampling for Explanation of Black-box "
    "Models. BMVC 2018."
)
ROAD_2022 = (
    "Rong, Leemann, Borisov, Kasneci, Kasneci. A Consistent and Efficient Evaluation "
    "Strategy for Attribution Methods. ICML 2022."
)
ADEBAYO_2018 = (
    "Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim. Sanity Checks for Saliency Maps. "
    "NeurIPS 2018."
)
WANG_2004 = (
    "Wang, Bovik, Sheikh, Simoncelli. Image Quality Assessment: From Error Visibility to "
    "Structural Similarity. IEEE TIP 13, 2004."
)
HEDSTROEM_2023 = (
    "Hedstroem, Weber, Lapuschkin, Hoehne. Sanity Checks Revisited: An Exploration to "
    "Repair the Model Parameter Randomisation Test. XAI in Action workshop, NeurIPS 2023."
)

_BASE = ("eval_size",)
_DELETION = ("steps", "imputation", "road_noise", "random_orders")
_MPRT = ("seed", "survival_threshold")


@dataclass(frozen=True)
class MetricInfo:
    """One metric column: what it measures and how to read it."""

    name: str
    label: str
    direction: Direction
    reference: str
    parameters: tuple[str, ...]
    threshold_free: bool
    description: str


def metric_catalogue(protocol: MetricProtocol | None = None) -> dict[str, MetricInfo]:
    """Every column of ``score_maps`` (pointing columns follow ``protocol``); the
    faithfulness columns are in :func:`faithfulness_metrics`."""
    protocol = protocol or MetricProtocol()
    items: list[MetricInfo] = [
        MetricInfo(
            "coverage",
            "Coverage (energy pointing game)",
            "higher",
            WANG_2020,
            _BASE,
            True,
            "sum(A*G) / sum(A) with A clamped at 0; 0 when sum(A) < 1e-8.",
        ),
    ]
    for t, col in zip(protocol.pointing_tolerances_px, protocol.pointing_columns(), strict=True):
        items.append(
            MetricInfo(
                col,
                f"Pointing game (t = {int(t)} px)",
                "higher",
                ZHANG_2016,
                (*_BASE, "pointing_tolerances_px"),
                True,
                f"1 if a G pixel lies within Euclidean distance {int(t)} px of the argmax "
                "(first index on ties), else 0; NULL for an empty target.",
            )
        )
    items += [
        MetricInfo(
            "topk_pointing",
            "Top-k pointing",
            "higher",
            ZHANG_2016,
            (*_BASE, "topk_pointing_k"),
            True,
            "Fraction of the k largest pixels (k = topk_pointing_k) that lie in G.",
        ),
        MetricInfo(
            "relevance_rank_acc",
            "Relevance rank accuracy",
            "higher",
            ARRAS_2022,
            _BASE,
            True,
            "With K = |G|: fraction of the K largest pixels that lie in G.",
        ),
        MetricInfo(
            "annotation_area",
            "Annotation area",
            "info",
            JACCARD_1912,
            _BASE,
            True,
            "|G| / n: fraction of the image covered by the target.",
        ),
        MetricInfo(
            "roc_auc",
            "Localisation ROC-AUC",
            "higher",
            HANLEY_1982,
            _BASE,
            True,
            "Threshold-free: P(A_g > A_o) + P(A_g = A_o)/2 for a pixel g of G and a pixel o "
            "outside G (the Mann-Whitney U over |G|(n-|G|)); 0.5 for a constant map, 1 for "
            "a map that ranks G first; NULL when G is empty or the whole image.",
        ),
        MetricInfo(
            "mse",
            "MSE to soft target",
            "lower",
            BYLINSKII_2019,
            _BASE,
            True,
            "mean((A - S)^2), both clipped to [0, 1]; S the max of per-box Gaussians.",
        ),
        MetricInfo(
            "kl",
            "KL(S || A)",
            "lower",
            KULLBACK_1951,
            _BASE,
            True,
            "KL divergence of the soft target from the heatmap; both NaN->0, clamped at 0, "
            "+1e-8 per pixel, normalised to sum 1.",
        ),
        MetricInfo(
            "emd",
            "Earth mover's distance (area-averaged)",
            "lower",
            RUBNER_2000,
            (*_BASE, "emd_grid"),
            True,
            "Exact W1 between heatmap and soft target reduced to emd_grid^2 cells, each the "
            "mean of the pixels it covers; Euclidean cost on cell centres in [0,1]^2. Every "
            "pixel's mass counts, so small boxes are scored faithfully.",
        ),
        MetricInfo(
            "emd_point",
            "Earth mover's distance (point-sampled)",
            "lower",
            RUBNER_2000,
            (*_BASE, "emd_grid"),
            True,
            "As emd, but each cell samples the maps near its centre (bilinear resize to "
            "emd_grid^2, half-pixel, no antialias), as published implementations do: for "
            "comparison with their numbers; mass between the sampled pixels is lost, so "
            "it is unreliable for small boxes.",
        ),
        MetricInfo(
            "gini",
            "Gini index of the map",
            "info",
            HURLEY_2009,
            _BASE,
            True,
            "Sparseness of the heatmap A alone: 1 - 2 sum_k (a_(k)/|A|_1)(n - k + 1/2)/n over "
            "A ascending; 0 for a uniform map, (n-1)/n for a single hot pixel. The same for "
            "every target of a map.",
        ),
        MetricInfo(
            "entropy",
            "Entropy of the map",
            "info",
            SHANNON_1948,
            _BASE,
            True,
            "-sum p log p (nats) of p = A / sum(A): log(n) (10.82 at 224x224) for a uniform "
            "map, 0 for a single hot pixel. The same for every target of a map.",
        ),
        MetricInfo(
            "iou",
            "IoU@p",
            "higher",
            JACCARD_1912,
            (*_BASE, "percentiles"),
            False,
            "Exactly k = max(1, round_half_up(n(100-p)/100)) top pixels (value desc, index "
            "asc) vs G: |A_k AND G| / (|A_k OR G| + 1e-8).",
        ),
        MetricInfo(
            "attention_area",
            "Attention area@p",
            "info",
            JACCARD_1912,
            (*_BASE, "percentiles"),
            False,
            "|A_k| / n = k / n.",
        ),
        MetricInfo(
            "random_iou",
            "Random IoU@p",
            "info",
            JACCARD_1912,
            (*_BASE, "percentiles"),
            False,
            "Expected IoU of a random selection of the same area: a*g / (a + g - a*g).",
        ),
        MetricInfo(
            "max_iou",
            "Max IoU@p",
            "info",
            JACCARD_1912,
            (*_BASE, "percentiles"),
            False,
            "Best IoU reachable with these areas: min(a, g) / max(a, g).",
        ),
        MetricInfo(
            "iou_over_max",
            "IoU / max-IoU@p",
            "higher",
            JACCARD_1912,
            (*_BASE, "percentiles"),
            False,
            "IoU divided by max-IoU: puts small boxes on a fair scale.",
        ),
        MetricInfo(
            "corloc",
            "CorLoc@p",
            "higher",
            DESELAERS_2012,
            (*_BASE, "percentiles"),
            False,
            "1 if IoU@p >= 0.5 (averaged over images gives CorLoc).",
        ),
    ]
    return {m.name: m for m in items}


def feature_metric_catalogue() -> dict[str, MetricInfo]:
    """Metrics of a model's feature space rather than of a map (``box_similarity``,
    ``feature_similarity``; kernel ``ssl_wc.metrics.feature_similarity``)."""
    return {"box_similarity_contrast": MetricInfo(
        "box_similarity_contrast",
        "Box-token similarity contrast",
        "higher",
        AMIR_2022,
        ("token_layer",),
        True,
        "Mean cosine similarity of the patch tokens inside an expert box to the box's mean "
        "token, minus that of the patches outside it: how distinctive the expert's part is "
        "in the model's features.",
    )}


def faithfulness_metrics() -> list[MetricInfo]:
    """Faithfulness and sanity-check columns (``ssl-wc faithfulness``): per map and image,
    threshold-free; their parameters belong to the deletion or randomisation protocol."""
    cos = "cos(z(x'), z(x)) of the pooled embedding"
    return [
        MetricInfo("deletion_auc", "Deletion AUC", "lower", PETSIUK_2018, _DELETION, True,
                   f"Area under {cos} as the map's top cells are removed (MoRF; ROAD noisy "
                   "linear imputation by default), trapezoid rule over t in [0, 1]."),
        MetricInfo("insertion_auc", "Insertion AUC", "higher", PETSIUK_2018, _DELETION, True,
                   f"Area under {cos} as only the map's top cells are kept; equals ROAD's "
                   "LeRF AUC (symmetric step counts)."),
        MetricInfo("road_gap", "ROAD LeRF - MoRF", "higher", ROAD_2022, _DELETION, True,
                   "insertion_auc - deletion_auc: LeRF minus MoRF AUC."),
        MetricInfo("deletion_gain", "Deletion gain over random", "higher", PETSIUK_2018,
                   _DELETION, True, "Random-order deletion AUC of the same image and model "
                   "minus the map's: > 0 when the map finds what the model relies on."),
        MetricInfo("insertion_gain", "Insertion gain over random", "higher", PETSIUK_2018,
                   _DELETION, True, "The map's insertion AUC minus the random order's."),
        MetricInfo("deletion_auc_prob", "Deletion AUC (class probability)", "lower",
                   PETSIUK_2018, _DELETION, True, "Deletion AUC of the fine-tuned head's "
                   "probability of the class predicted on the intact image (variants only)."),
        MetricInfo("insertion_auc_prob", "Insertion AUC (class probability)", "higher",
                   PETSIUK_2018, _DELETION, True, "Insertion AUC of the predicted class's "
                   "probability (fine-tuned variants only)."),
        MetricInfo("mprt_spearman_abs", "MPRT |Spearman| (fully random)", "lower",
                   ADEBAYO_2018, _MPRT, True,
                   "|Spearman rank correlation| between the trained model's map and the map "
                   "of the fully re-initialised model (cascade from the top block down). A "
                   "map whose mean is >= survival_threshold (0.5) survives randomisation: "
                   "it hardly depends on the model and fails the sanity check."),
        MetricInfo("mprt_ssim", "MPRT SSIM (fully random)", "lower", WANG_2004, _MPRT, True,
                   "SSIM (11x11 Gaussian window, sigma 1.5) of the trained and the fully "
                   "random model's heatmaps at the evaluation size."),
        MetricInfo("emprt", "eMPRT entropy rise", "higher", HEDSTROEM_2023, _MPRT, True,
                   "(H_random - H_trained) / H_trained with H the 100-bin histogram entropy "
                   "of the map: a faithful map becomes more complex when the model is "
                   "randomised."),
    ]

def catalogue_rows(protocol: MetricProtocol | None = None) -> list[dict[str, Any]]:
    """The whole catalogue as plain dicts (parameters as lists), one per metric: the
    ``score_maps`` columns, the faithfulness columns, then the feature-space metrics; the
    warehouse's ``metric_catalogue``."""
    rows = []
    for info in [*metric_catalogue(protocol).values(), *faithfulness_metrics(),
                 *feature_metric_catalogue().values()]:
        row = asdict(info)
        row["parameters"] = list(info.parameters)
        rows.append(row)
    return rows
