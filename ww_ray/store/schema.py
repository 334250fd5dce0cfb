"""The canonical, versioned Arrow schemas of the four dataset tables (DESIGN.md §3).

Every writer casts to these schemas and every reader may rely on them. Bump
``SCHEMA_VERSION`` when a column is added or changes type; readers take the
union of columns across versions (missing columns read as null).
"""
from __future__ import annotations

import pyarrow as pa

from ww_ray.keys import MODEL_KEY_COLUMNS
from ww_ray.spectral.summary import SUMMARY_METRICS

SCHEMA_VERSION = 3  # 2: commit_id on layers and models; 3: repo_kind, base_model, reported_figures on models, weight_role, base_model on layers

KEY_FIELDS = [pa.field(name, pa.string()) for name in MODEL_KEY_COLUMNS]

# One reported figure (ww_ray.zoos.figures.Figure): what it measures, and its value.
FIGURE_TYPE = pa.struct([
    pa.field("dataset", pa.string()), pa.field("metric", pa.string()), pa.field("value", pa.float64()),
    pa.field("higher_is_better", pa.bool_()), pa.field("task", pa.string()), pa.field("split", pa.string()),
    pa.field("origin", pa.string()),
])

# Per-matrix spectral metrics, in the order ww_ray.analyze returns them.
LAYER_METRIC_FIELDS = [
    pa.field("lambda_max", pa.float64()),
    pa.field("log_spectral_norm", pa.float64()),
    pa.field("norm", pa.float64()),
    pa.field("log_norm", pa.float64()),
    pa.field("alpha", pa.float64()),
    pa.field("alpha_weighted", pa.float64()),
    pa.field("log_alpha_norm", pa.float64()),
    pa.field("stable_rank", pa.float64()),
    pa.field("entropy", pa.float64()),
    pa.field("matrix_rank", pa.int64()),
    pa.field("xmin", pa.float64()),
    pa.field("xmax", pa.float64()),
    pa.field("D", pa.float64()),
    pa.field("sigma", pa.float64()),
    pa.field("num_pl_spikes", pa.int64()),
    pa.field("mp_softrank", pa.float64()),
    pa.field("sigma_mp", pa.float64()),
    pa.field("lambda_plus", pa.float64()),
    pa.field("num_spikes", pa.int64()),
    pa.field("rand_distance", pa.float64()),
    pa.field("num_traps", pa.int64()),
    pa.field("warning", pa.string()),
]

# Columns that describe the matrix a row was computed from.
LAYER_SHAPE_FIELDS = [
    pa.field("layer_index", pa.int64()),
    pa.field("layer_name", pa.string()),
    pa.field("layer_type", pa.string()),      # linear | conv2d | conv1d | embedding | hf_conv1d
    pa.field("slice_id", pa.int64()),         # i*k + j for conv 'slices', null otherwise
    pa.field("conv_method", pa.string()),     # slices | stacked | fft | pooled, null for dense
    pa.field("N", pa.int64()),
    pa.field("M", pa.int64()),
    pa.field("Q", pa.float64()),              # N / M
    pa.field("rf", pa.int64()),               # receptive field k*k (1 for dense)
    pa.field("num_evals", pa.int64()),       # eigenvalues in the ESD the fit saw (r for an adapter_delta)
    # weight | base | adapter_delta | delta_vs_base | merged (ww_ray.weights.WEIGHT_ROLES); null = weight
    pa.field("weight_role", pa.string()),
    pa.field("base_model", pa.string()),      # the base a base/delta/merged row refers to; null otherwise
]

ROW_STATUS_FIELDS = [
    pa.field("status", pa.string()),          # ok | failed | skipped
    pa.field("error", pa.string()),
    pa.field("preset", pa.string()),
    pa.field("analyzer_version", pa.string()),
    pa.field("device", pa.string()),
    pa.field("seconds", pa.float64()),
]

LAYERS_SCHEMA = pa.schema(
    KEY_FIELDS
    + [
        pa.field("run_id", pa.string()),
        pa.field("commit_id", pa.string()),  # one per commit_model call: ties a model row to its layer rows
        pa.field("architecture", pa.string()),
        pa.field("dataset", pa.string()),
    ]
    + LAYER_SHAPE_FIELDS
    + LAYER_METRIC_FIELDS
    + ROW_STATUS_FIELDS,
    metadata={b"ww_ray.table": b"layers", b"ww_ray.schema_version": str(SCHEMA_VERSION).encode()},
)

MODELS_SCHEMA = pa.schema(
    KEY_FIELDS
    + [
        pa.field("run_id", pa.string()),
        pa.field("commit_id", pa.string()),
        pa.field("architecture", pa.string()),
        pa.field("dataset", pa.string()),
        pa.field("task", pa.string()),
        pa.field("params", pa.int64()),
        pa.field("top1_error", pa.float64()),     # percent
        pa.field("top5_error", pa.float64()),     # percent
        pa.field("reported_value", pa.float64()),  # the figure the source published, whatever it is
        pa.field("reported_measure", pa.string()),  # what reported_value measures: top1_error, top5_error, miou, ap, wer, ...
        pa.field("uri", pa.string()),
        pa.field("size_bytes", pa.int64()),
        pa.field("repo_kind", pa.string()),       # full | sharded | adapter | gguf | quantized | no_weights
        pa.field("base_model", pa.string()),      # what the model was made from (card base_model, adapter base)
        pa.field("reported_figures", pa.list_(FIGURE_TYPE)),  # model-index / figures-CSV figures
    ]
    + [pa.field(m, pa.float64()) for m in SUMMARY_METRICS]
    + [pa.field(f"{m}_compound", pa.float64()) for m in SUMMARY_METRICS]
    + [
        pa.field("num_layers", pa.int64()),
        pa.field("num_failed_layers", pa.int64()),
        pa.field("status", pa.string()),          # ok | failed | skipped
        pa.field("error", pa.string()),
        pa.field("preset", pa.string()),
        pa.field("analyzer_version", pa.string()),
        pa.field("seconds_load", pa.float64()),
        pa.field("seconds_compute", pa.float64()),
        pa.field("seconds_total", pa.float64()),
        pa.field("attempts", pa.int64()),
        pa.field("finished_at", pa.timestamp("us", tz="UTC")),
    ],
    metadata={b"ww_ray.table": b"models", b"ww_ray.schema_version": str(SCHEMA_VERSION).encode()},
)

REGRESSIONS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("source", pa.string()),
        pa.field("dataset", pa.string()),
        pa.field("architecture", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("target", pa.string()),
        pa.field("n", pa.int64()),
        pa.field("slope", pa.float64()),
        pa.field("intercept", pa.float64()),
        pa.field("r2", pa.float64()),
        pa.field("mse", pa.float64()),
        pa.field("rmse", pa.float64()),
        pa.field("kendall_tau", pa.float64()),
        pa.field("kendall_p", pa.float64()),
        pa.field("slope_p", pa.float64()),
        pa.field("model_ids", pa.list_(pa.string())),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
    ],
    metadata={b"ww_ray.table": b"regressions", b"ww_ray.schema_version": str(SCHEMA_VERSION).encode()},
)

TABLE_SCHEMAS = {"layers": LAYERS_SCHEMA, "models": MODELS_SCHEMA, "regressions": REGRESSIONS_SCHEMA}
