"""How far a fine-tune (or a merged adapter) moved from its base, layer by layer. Pure computation.

Input: layer rows with a ``weight_role`` (``ww_ray.analyze(model, base_model=BASE)``, an adapter
with its base, or a dataset's ``layers`` table). Per layer (model key, ``layer_name``, ``slice_id``):

* the tuned row: role ``weight`` (a fine-tune) or ``merged`` (W₀ + ΔW of an adapter);
* the ``base`` row, and the delta row (``delta_vs_base`` or ``adapter_delta``).

``layer_shifts`` gives ``d_<metric>`` = tuned − base for ``SHIFT_METRICS`` and ``relative_change``
= ‖ΔW‖_F / ‖W_base‖_F = √(norm_delta / norm_base), largest first: the layers that moved most
(0 for a layer unchanged from its base, whose ``delta_vs_base`` row is skipped: ΔW = 0 has no ESD).

**Scale collapse relative to the base**: a layer whose log10 λmax fell by more than
``BASE_COLLAPSE_DECADES`` = 0.5 against its base (its spectral norm shrank more than √10 ≈ 3.2×).
Fine-tuning normally moves λmax by a few percent (|Δ| of hundredths of a decade); the series rule of
``flags.scale_collapse`` compares *different* models and needs a full decade, but against its own
base half a decade is already far outside what training moves.

    >>> import pandas as pd
    >>> rows = pd.DataFrame({"model_id": ["m"] * 3, "layer_name": ["fc"] * 3, "slice_id": [None] * 3,
    ...     "weight_role": ["weight", "base", "delta_vs_base"], "status": ["ok"] * 3,
    ...     "log_spectral_norm": [0.0, 1.0, -1.0], "norm": [4.0, 4.0, 1.0], "alpha": [3.0, 4.0, 2.0]})
    >>> s = layer_shifts(rows).iloc[0]
    >>> float(s.d_log_spectral_norm), float(s.relative_change)
    (-1.0, 0.5)
    >>> list(base_scale_collapse(rows).layer_name)
    ['fc']
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ww_ray.spectral.prepare import UNCHANGED_FROM_BASE
from ww_ray.weights import ADAPTER_DELTA, BASE, DELTA_VS_BASE, MERGED, WEIGHT, primary_role

SHIFT_METRICS = ("alpha", "log_spectral_norm", "log_norm", "alpha_weighted", "stable_rank", "entropy")
BASE_COLLAPSE_DECADES = 0.5
_MODEL_KEYS = ("source", "model_id", "revision")


def _roles(layers: pd.DataFrame) -> pd.Series:
    if "weight_role" not in layers:
        return pd.Series(WEIGHT, index=layers.index)
    return layers["weight_role"].where(layers["weight_role"].notna(), WEIGHT)


def primary_rows(layers: pd.DataFrame) -> pd.DataFrame:
    """Each model's rows of its primary role only (``ww_ray.weights.primary_role``): what stands for the model."""
    if layers.empty or "weight_role" not in layers:
        return layers
    roles = _roles(layers)
    keys = [k for k in _MODEL_KEYS if k in layers.columns]
    if not keys:
        return layers[roles == primary_role(roles)]
    keep = pd.Series(False, index=layers.index)
    for _, index in layers.groupby(keys, dropna=False).groups.items():
        model_roles = roles.loc[index]
        keep.loc[index] = model_roles == primary_role(model_roles)
    return layers[keep]


def reproducible_from_uri(layers: pd.DataFrame) -> pd.Series:
    """Rows that re-reading the model's ``uri`` alone gives again (``weight`` and ``adapter_delta``)."""
    return _roles(layers).isin([WEIGHT, ADAPTER_DELTA])


def layer_shifts(layers: pd.DataFrame, metrics: tuple[str, ...] = SHIFT_METRICS) -> pd.DataFrame:
    """Per paired layer: tuned and base values, ``d_<metric>`` and ``relative_change``, most moved first."""
    keys = [k for k in _MODEL_KEYS if k in layers.columns] + ["layer_name", "slice_id"]
    metrics = tuple(m for m in metrics if m in layers.columns)
    columns = keys + ["weight_role", "base_model", "relative_change"] + [f"d_{m}" for m in metrics] \
        + [f"{m}_base" for m in metrics]
    if layers.empty or "weight_role" not in layers:
        return pd.DataFrame(columns=columns)
    roles = _roles(layers)
    ok = layers[layers["status"] == "ok"] if "status" in layers else layers
    ok_roles = roles.loc[ok.index]
    base = ok[ok_roles == BASE]
    if base.empty:
        return pd.DataFrame(columns=columns)
    values = list(dict.fromkeys([*metrics, "norm"]))
    tuned = ok[ok_roles.isin([WEIGHT, MERGED])][keys + ["weight_role"] + (["base_model"] if "base_model" in ok else [])
                                               + values]
    delta = ok[ok_roles.isin([DELTA_VS_BASE, ADAPTER_DELTA])][keys + ["norm"]]
    if "error" in layers:   # a layer unchanged from its base: a skipped delta row, ‖ΔW‖ = 0
        same = layers[(roles == DELTA_VS_BASE) & (layers["error"] == UNCHANGED_FROM_BASE)][keys].assign(norm=0.0)
        delta = pd.concat([delta, same], ignore_index=True) if len(same) else delta
    delta = delta.rename(columns={"norm": "norm_delta"})
    paired = tuned.merge(base[keys + values], on=keys, suffixes=("", "_base"))
    paired = paired.merge(delta, on=keys, how="left")
    if "base_model" not in paired:
        paired["base_model"] = None
    for m in metrics:
        paired[f"d_{m}"] = pd.to_numeric(paired[m], errors="coerce") - pd.to_numeric(paired[f"{m}_base"], errors="coerce")
    ratio = pd.to_numeric(paired["norm_delta"], errors="coerce") / pd.to_numeric(paired["norm_base"], errors="coerce")
    paired["relative_change"] = np.sqrt(ratio)
    ordered = paired.sort_values("relative_change", ascending=False, na_position="last", kind="stable")
    return ordered[columns].reset_index(drop=True)


def base_scale_collapse(layers: pd.DataFrame, decades: float = BASE_COLLAPSE_DECADES) -> pd.DataFrame:
    """Paired layers whose log10 λmax fell more than ``decades`` below their base's, largest drop first."""
    shifts = layer_shifts(layers)
    if shifts.empty or "d_log_spectral_norm" not in shifts:
        return shifts
    fell = shifts[pd.to_numeric(shifts["d_log_spectral_norm"], errors="coerce") < -decades]
    return fell.sort_values("d_log_spectral_norm", kind="stable").reset_index(drop=True)
