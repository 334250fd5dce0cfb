"""Model summary: the per-model averages of per-matrix metrics (what the regression uses).

Averages are over analysed matrices (``status == "ok"``), leaving out embedding layers (the paper
excludes them: they are not implicitly normalised). Rows analysed against a base (``weight_role``)
are summarised by the model's primary role only (``ww_ray.weights.primary_role``: its own weights,
else the merged adapter, else the adapter's deltas; never the base's rows). ``<metric>_compound`` first averages the rows
of each layer (e.g. the k×k slices of a conv layer), then averages the layers.

    >>> import pandas as pd

from ww_ray.weights import WEIGHT, primary_role
    >>> rows = pd.DataFrame({"layer_index": [0, 0, 1], "layer_type": ["conv2d", "conv2d", "linear"],
    ...                      "status": ["ok"] * 3, "alpha": [2.0, 4.0, 6.0]})
    >>> s = summarize(rows)
    >>> s["alpha"], s["alpha_compound"], s["num_layers"]
    (4.0, 4.5, 2)
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ww_ray.weights import WEIGHT, primary_role

# Metrics averaged per model; each appears as `<name>` and `<name>_compound` in summaries and
# in the `models` table.
SUMMARY_METRICS = [
    "log_norm",
    "log_spectral_norm",
    "alpha",
    "alpha_weighted",
    "log_alpha_norm",
    "stable_rank",
    "entropy",
    "mp_softrank",
    "rand_distance",
    "lambda_max",
]


def summarize(layers: pd.DataFrame) -> dict[str, Any]:
    """Model averages of a per-layer DataFrame as returned by ``ww_ray.analyze``.

    ``<metric>`` is the mean over the analysed matrices; ``<metric>_compound`` the mean of the per-layer
    means, so that a conv layer cut into k×k slices counts once, like a linear layer, instead of k² times
    (the two agree when every layer is one matrix). Embedding layers and rows not ``ok`` are left out.
    """
    if "weight_role" in layers and len(layers):
        roles = layers["weight_role"].where(layers["weight_role"].notna(), WEIGHT)
        layers = layers[roles == primary_role(roles)]
    status = layers["status"] if "status" in layers else pd.Series("ok", index=layers.index)
    analysed = layers[(status == "ok") & (layers.get("layer_type", "") != "embedding")]
    summary: dict[str, Any] = {}
    for metric in SUMMARY_METRICS:
        if metric in analysed and analysed[metric].notna().any():
            values = pd.to_numeric(analysed[metric], errors="coerce")
            summary[metric] = float(values.mean())
            summary[f"{metric}_compound"] = float(values.groupby(analysed["layer_index"]).mean().mean())
        else:
            summary[metric] = math.nan
            summary[f"{metric}_compound"] = math.nan
    summary["num_layers"] = int(analysed["layer_index"].nunique()) if len(analysed) else 0
    failed = layers[status == "failed"]
    summary["num_failed_layers"] = int(failed["layer_index"].nunique()) if "layer_index" in failed else len(failed)
    return summary
