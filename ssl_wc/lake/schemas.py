"""Arrow schemas of every lake table.

Every fact row carries ``run_id`` (the run that wrote it) and ``unit_key`` (the unit of
incremental work it belongs to, e.g. one image of one model configuration). For each
``(table, unit_key)`` only the latest committed run is visible: a recomputation
(``--force``) supersedes older rows without deleting them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

COMMON = [pa.field("run_id", pa.string(), nullable=False),
          pa.field("unit_key", pa.string(), nullable=False)]


@dataclass(frozen=True)
class TableSpec:
    """A lake table: its columns (after the common ones) and hive partition columns."""

    name: str
    fields: tuple[pa.Field, ...]
    partition_by: tuple[str, ...] = ()
    doc: str = ""

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([*COMMON, *self.fields])

    @property
    def file_schema(self) -> pa.Schema:
        """Columns stored in the Parquet files (partition columns live in the path)."""
        return pa.schema([f for f in self.schema if f.name not in self.partition_by])


def _f(name: str, typ: pa.DataType) -> pa.Field:
    return pa.field(name, typ)


S, I16, I32, I64, F32, F64, B = (pa.string(), pa.int16(), pa.int32(), pa.int64(), pa.float32(),
                                 pa.float64(), pa.bool_())
F16 = pa.float16()

_MAP_KEYS = (_f("variant", S), _f("method", S), _f("layer", I16), _f("head", I16),
             _f("image_id", S))
_SOURCE = (_f("model", S), _f("variant", S), _f("method", S), _f("layer", I16),
           _f("head", I16))
_METRIC_KEYS = (_f("model", S), *_MAP_KEYS, _f("target", S), _f("box_index", I32),
                _f("protocol_hash", S), _f("source_run_id", S))

TABLES: dict[str, TableSpec] = {t.name: t for t in [
    TableSpec("ann_feature_types", (_f("label", I32), _f("name", S), _f("parents", pa.list_(I32)))),
    TableSpec("ann_feature_ancestors", (_f("label", I32), _f("ancestor", I32), _f("depth", I32))),
    TableSpec("ann_images", (_f("image_id", S), _f("church_qid", S), _f("styles", pa.list_(S)),
                             _f("primary_style", S), _f("n_styles", I32), _f("n_boxes", I32),
                             _f("n_groups", I32))),
    TableSpec("ann_boxes", (_f("image_id", S), _f("box_index", I32), _f("group_index", I32),
                            _f("group_label", I32), _f("label", I32), _f("left", F64),
                            _f("top", F64), _f("width", F64), _f("height", F64),
                            _f("left_c", F64), _f("top_c", F64), _f("width_c", F64),
                            _f("height_c", F64), _f("was_clamped", B), _f("area_c", F64))),
    TableSpec("ann_image_styles", (_f("image_id", S), _f("style_id", S), _f("style_rank", I32))),
    TableSpec("ann_styles", (_f("style_id", S), _f("name", S))),
    TableSpec("ann_churches", (_f("church_qid", S), _f("name", S), _f("country_id", S),
                               _f("country_name", S), _f("built_year_min", I32),
                               _f("built_year_max", I32), _f("styles", pa.list_(S)),
                               _f("lat", F64), _f("lon", F64))),
    TableSpec("ann_sources", (_f("file", S), _f("kind", S), _f("sha256", S), _f("n_items", I32),
                              _f("n_clamped", I32), _f("synthetic", B))),
    TableSpec("image_files", (_f("image_id", S), _f("path", S), _f("width", I32),
                              _f("height", I32), _f("sha256", S), _f("bytes", I64),
                              _f("mode", S), _f("image_root", S))),
    TableSpec("map_sources", (_f("model", S), _f("variant", S), _f("config_hash", S),
                              _f("hub_id", S), _f("revision", S), _f("architecture", S),
                              _f("random_weights", B), _f("grid_h", I16), _f("grid_w", I16),
                              _f("num_layers", I16), _f("num_heads", I16),
                              _f("transform_json", S), _f("config_json", S),
                              _f("device", S), _f("dtype", S), _f("default_method", S),
                              _f("methods", pa.list_(S)))),
    TableSpec("attention_maps", (_f("model", S), *_MAP_KEYS, _f("grid_h", I16),
                                 _f("grid_w", I16), _f("config_hash", S),
                                 _f("values", pa.list_(F32))), partition_by=("model",)),
    TableSpec("features", (_f("model", S), _f("variant", S), _f("layer", I16),
                           _f("image_id", S), _f("kind", S), _f("config_hash", S),
                           _f("values", pa.list_(F32))), partition_by=("model",)),
    TableSpec("map_frames", (_f("model", S), _f("variant", S), _f("image_id", S),
                             _f("resize_mode", S), _f("orig_h", I32), _f("orig_w", I32),
                             _f("input_h", I32), _f("input_w", I32), _f("frame_left", F64),
                             _f("frame_top", F64), _f("frame_right", F64),
                             _f("frame_bottom", F64), _f("area_lost", F64)),
              doc="the part of each image a model's maps cover (a crop, or the whole)"),
    TableSpec("patch_tokens", (_f("model", S), _f("variant", S), _f("layer", I16),
                               _f("image_id", S), _f("patch", I32), _f("row", I16),
                               _f("col", I16), _f("grid_h", I16), _f("grid_w", I16),
                               _f("config_hash", S), _f("values", pa.list_(F16))),
              partition_by=("model",), doc="one float16 token per patch (CNN: per cell)"),
    TableSpec("box_similarity", (_f("model", S), _f("variant", S), _f("layer", I16),
                                 _f("image_id", S), _f("box_index", I32), _f("n_in", I32),
                                 _f("n_out", I32), _f("sim_in", F64), _f("sim_out", F64),
                                 _f("config_hash", S)),
              doc="mean cosine similarity to the box token inside vs outside each box"),
    TableSpec("metric_protocols", (_f("protocol_hash", S), _f("protocol_json", S))),
    TableSpec("metric_summaries", (_f("model", S), _f("variant", S), _f("method", S),
                                   _f("layer", I16), _f("head", I16), _f("protocol_hash", S),
                                   _f("metric", S), _f("percentile", I16), _f("n", I32),
                                   _f("mean", F64), _f("sd", F64), _f("ci_low", F64),
                                   _f("ci_high", F64))),
    TableSpec("feature_summaries", (*_SOURCE, _f("feature_label", I32),
                                    _f("feature_name", S), _f("rollup", B),
                                    _f("protocol_hash", S), _f("metric", S),
                                    _f("percentile", I16), _f("n_boxes", I64),
                                    _f("n_images", I64), _f("mean", F64), _f("sd", F64)),
              partition_by=("model",)),
    TableSpec("style_summaries", (*_SOURCE, _f("style_id", S), _f("style_name", S),
                                  _f("style_rule", S), _f("protocol_hash", S), _f("metric", S),
                                  _f("percentile", I16), _f("n_images", I64), _f("mean", F64),
                                  _f("sd", F64)),
              partition_by=("model",)),
    TableSpec("head_rankings", (*_SOURCE, _f("protocol_hash", S), _f("metric", S),
                                _f("percentile", I16), _f("n_images", I64),
                                _f("mean_score", F64), _f("mean_rank", F64), _f("top1", I64),
                                _f("top3", I64)),
              partition_by=("model",)),
    TableSpec("baseline_gaps", (*_SOURCE, _f("baseline", S), _f("protocol_hash", S),
                                _f("metric", S), _f("percentile", I16), _f("n", I64),
                                _f("mean_diff", F64), _f("sd_diff", F64), _f("d_z", F64),
                                _f("t_stat", F64), _f("direction", S)),
              partition_by=("model",)),
    TableSpec("metrics_map", (*_METRIC_KEYS, _f("coverage", F64), _f("pointing_t0", F64),
                              _f("pointing_t15", F64), _f("topk_pointing", F64),
                              _f("relevance_rank_acc", F64), _f("annotation_area", F64),
                              _f("mse", F64), _f("kl", F64), _f("emd", F64),
                              _f("roc_auc", F64), _f("emd_point", F64), _f("gini", F64),
                              _f("entropy", F64)),
              partition_by=("model",)),
    TableSpec("metrics_iou", (*_METRIC_KEYS, _f("percentile", I16), _f("iou", F64),
                              _f("attention_area", F64), _f("random_iou", F64),
                              _f("max_iou", F64), _f("iou_over_max", F64), _f("corloc", F64)),
              partition_by=("model",)),
    TableSpec("model_comparisons", (_f("metric", S), _f("percentile", I16), _f("layer_rule", S),
                                    _f("method_rule", S), _f("model_a", S), _f("variant_a", S),
                                    _f("layer_a", I16), _f("method_a", S), _f("model_b", S),
                                    _f("variant_b", S), _f("layer_b", I16), _f("method_b", S),
                                    _f("n", I32), _f("mean_a", F64), _f("mean_b", F64),
                                    _f("mean_diff", F64), _f("ci_low", F64), _f("ci_high", F64),
                                    _f("d_z", F64), _f("t_stat", F64), _f("p_t", F64),
                                    _f("wilcoxon_stat", F64), _f("p_wilcoxon", F64),
                                    _f("p_holm", F64), _f("p_bonferroni", F64), _f("p_bh", F64),
                                    _f("family", S), _f("family_size", I32))),
    TableSpec("probe_results", (_f("model", S), _f("variant", S), _f("layer", I16),
                                _f("feature_kind", S), _f("label_rule", S), _f("n_images", I32),
                                _f("n_folds", I32), _f("seed", I32), _f("accuracy", F64),
                                _f("accuracy_sd", F64), _f("macro_f1", F64),
                                _f("per_class_json", S), _f("confusion_json", S),
                                _f("classes_json", S))),
    TableSpec("finetune_splits", (_f("split_id", S), _f("image_id", S), _f("style_id", S),
                                  _f("split", S))),
    TableSpec("finetune_epochs", (_f("finetune_id", S), _f("model", S), _f("strategy", S),
                                  _f("epoch", I32), _f("train_loss", F64), _f("val_loss", F64),
                                  _f("train_acc", F64), _f("val_acc", F64), _f("lr_head", F64),
                                  _f("seconds", F64))),
    TableSpec("finetune_models", (_f("finetune_id", S), _f("model", S), _f("strategy", S),
                                  _f("split_id", S), _f("best_epoch", I32),
                                  _f("best_val_acc", F64), _f("checkpoint", S),
                                  _f("config_json", S), _f("n_trainable", I64),
                                  _f("n_params", I64))),
    TableSpec("variant_delta_stats", (_f("model", S), _f("strategy", S), _f("method", S),
                                      _f("layer", I16), _f("protocol_hash", S), _f("metric", S),
                                      _f("percentile", I16), _f("n", I32), _f("mean_delta", F64),
                                      _f("ci_low", F64), _f("ci_high", F64), _f("d_z", F64),
                                      _f("t_stat", F64), _f("p_t", F64), _f("p_wilcoxon", F64),
                                      _f("p_holm", F64), _f("family", S),
                                      _f("family_size", I32))),
    TableSpec("ingest_errors", (_f("step", S), _f("item", S), _f("error", S))),
    # faithfulness (`ssl-wc faithfulness`): same map keys as the metric tables
    TableSpec("faithfulness_protocols", (_f("protocol_hash", S), _f("kind", S),
                                         _f("protocol_json", S))),
    TableSpec("faithfulness_curves", (_f("model", S), *_MAP_KEYS, _f("protocol_hash", S),
                                      _f("source_run_id", S), _f("n_cells", I32),
                                      _f("deletion", pa.list_(F64)),
                                      _f("insertion", pa.list_(F64)),
                                      _f("deletion_auc", F64), _f("insertion_auc", F64),
                                      _f("deletion_prob", pa.list_(F64)),
                                      _f("insertion_prob", pa.list_(F64)),
                                      _f("deletion_auc_prob", F64),
                                      _f("insertion_auc_prob", F64)),
              partition_by=("model",)),
    TableSpec("mprt_similarity", (_f("model", S), *_MAP_KEYS, _f("protocol_hash", S),
                                  _f("source_run_id", S), _f("cascade_step", I16),
                                  _f("randomised_from", I16), _f("depends", B),
                                  _f("unchanged", B), _f("spearman", F64), _f("ssim", F64),
                                  _f("hist_entropy", F64), _f("hist_entropy_trained", F64)),
              partition_by=("model",)),
    TableSpec("mprt_metric_deltas", (_f("model", S), *_MAP_KEYS, _f("protocol_hash", S),
                                     _f("cascade_step", I16), _f("metric", S),
                                     _f("percentile", I16), _f("trained", F64),
                                     _f("randomised", F64)),
              partition_by=("model",)),
]}


def spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown lake table {name!r}; known: {sorted(TABLES)}") from None


DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR", "int16": "SMALLINT", "int32": "INTEGER", "int64": "BIGINT",
    "float": "FLOAT", "double": "DOUBLE", "bool": "BOOLEAN", "halffloat": "FLOAT",
}


def duckdb_type(t: pa.DataType) -> str:
    """DuckDB type name of an arrow type (lists become ``T[]``)."""
    if pa.types.is_list(t):
        return duckdb_type(t.value_type) + "[]"
    return DUCKDB_TYPES[str(t)]
