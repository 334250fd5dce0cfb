"""Warning flags read off a dataset: under-trained layers and scale collapse. Pure computation.

* **under-trained layer**: a layer (matrix) whose power-law exponent ``alpha`` exceeds 6 — its ESD
  has hardly any heavy tail, i.e. little correlation was learned (Martin & Mahoney's HT-SR theory;
  WeightWatcher's ``under-trained`` warning).
* **scale collapse**: a model whose layers have anomalously small spectral norms compared with its
  series (the paper's distillation example): its average ``log_spectral_norm`` (mean log10 λmax)
  lies more than ``collapse_decades`` below the median of the other models of the same series —
  ``(source, dataset, architecture)`` when the models carry a source, else ``(dataset,
  architecture)``. Needs at least ``min_series`` models in the series.
"""
from __future__ import annotations

import pandas as pd

from ww_ray.spectral.metrics import UNDER_TRAINED_ALPHA


def under_trained_layers(layers: pd.DataFrame, threshold: float = UNDER_TRAINED_ALPHA) -> pd.DataFrame:
    """Layers with ``alpha > threshold``, worst first."""
    columns = ["model_id", "architecture", "dataset", "layer_index", "layer_name", "slice_id", "N", "M", "alpha"]
    if "source" in layers.columns:
        columns.insert(1, "source")
    if layers.empty:
        return pd.DataFrame(columns=columns)
    ok = layers[(layers["status"] == "ok") & (pd.to_numeric(layers["alpha"], errors="coerce") > threshold)]
    return ok[columns].sort_values(["alpha", "model_id"], ascending=[False, True]).reset_index(drop=True)


def scale_collapse(models: pd.DataFrame, collapse_decades: float = 1.0, min_series: int = 3) -> pd.DataFrame:
    """Models whose mean log10 λmax is more than ``collapse_decades`` below their series' median.

    The median is over the *other* models of the series, so the flagged model cannot hide itself.
    Returns model_id, series, its value, the series median and the gap (in decades), largest first.
    """
    keys = ["source", "dataset", "architecture"] if "source" in models.columns and models["source"].notna().any() \
        else ["dataset", "architecture"]
    columns = ["model_id", *keys, "log_spectral_norm", "series_median", "gap_decades"]
    if models.empty:
        return pd.DataFrame(columns=columns)
    frame = models[(models["status"] == "ok") & models["log_spectral_norm"].notna()]
    flagged = []
    for key, group in frame.groupby(keys):
        if len(group) < min_series:
            continue
        values = group.set_index("model_id")["log_spectral_norm"].astype(float)
        for model_id, value in values.items():
            median = float(values.drop(model_id).median())
            gap = median - float(value)
            if gap > collapse_decades:
                flagged.append({"model_id": model_id, **dict(zip(keys, key)),
                                "log_spectral_norm": float(value), "series_median": median, "gap_decades": gap})
    out = pd.DataFrame(flagged, columns=columns)
    return out.sort_values("gap_decades", ascending=False).reset_index(drop=True)
