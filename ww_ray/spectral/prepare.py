"""From layer weights to the list of rows to compute: conversion, data checks and size filters.

Rows that cannot or should not be computed are decided here, before any eigenvalue, and carry
``status`` ``skipped`` (outside the preset's size range, empty) or ``failed`` (NaN/Inf weights, an
all-zero matrix, a tensor the conversion rejects) with a clear ``error``; their matrices are dropped.

    >>> import numpy as np
    >>> from ww_ray.weights import LayerWeight
    >>> from ww_ray.spectral.presets import resolve_options
    >>> bad = LayerWeight("fc", 0, "linear", np.full((80, 60), np.nan))
    >>> row = prepare_inputs([bad], resolve_options("paper"))[0]
    >>> row.status, row.error
    ('failed', 'weights contain NaN or Inf')
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ww_ray.spectral.lowrank import is_low_rank, lowrank_inputs
from ww_ray.spectral.matrices import SpectralInput, layer_inputs
from ww_ray.spectral.presets import AnalysisOptions
from ww_ray.weights import DELTA_VS_BASE, EMBEDDING, LayerWeight


def _eval_count_for_filter(item: SpectralInput) -> int:
    """The size WeightWatcher filters on: M, or M·rf for pooled conv ESDs."""
    return item.M * item.rf if item.conv_method == "pooled" else item.M


def _size_problem(item: SpectralInput, options: AnalysisOptions) -> str | None:
    count = _eval_count_for_filter(item)
    what = "M*rf" if item.conv_method == "pooled" else "M"
    if options.min_evals and count < options.min_evals:
        return f"{what}={count} < min_evals={options.min_evals} (preset {options.preset})"
    if options.max_evals and count > options.max_evals:
        return f"{what}={count} > max_evals={options.max_evals} (preset {options.preset})"
    if options.max_n and item.N > options.max_n:
        return f"N={item.N} > max_n={options.max_n} (preset {options.preset})"
    return None


ALL_ZERO = "all-zero matrix: its ESD is empty"
#: The ``error`` of a skipped ``delta_vs_base`` row: the layer did not change (ΔW = 0).
UNCHANGED_FROM_BASE = "ΔW = 0: the layer is unchanged from the base"


def _data_problem(matrices: np.ndarray) -> str | None:
    if not np.all(np.isfinite(matrices)):
        return "weights contain NaN or Inf"
    if not np.any(matrices):
        return ALL_ZERO
    return None


def _decided(item: SpectralInput, status: str, error: str) -> SpectralInput:
    item.status, item.error, item.matrices, item.eval_multiplicity = status, error, None, None
    return item


def _unconvertible(weight: LayerWeight, status: str, error: str) -> SpectralInput:
    shape = weight.shape
    return SpectralInput(layer_index=weight.index, layer_name=weight.name, layer_type=weight.kind,
                         N=max(shape, default=0), M=min(shape, default=0), rf=1, matrices=None,
                         status=status, error=error, role=weight.role, base_model=weight.base_model)


def prepare_inputs(weights: Iterable[LayerWeight], options: AnalysisOptions) -> list[SpectralInput]:
    """All rows for ``weights`` under ``options``, in layer order; never raises for bad tensors."""
    prepared: list[SpectralInput] = []
    for weight in weights:
        if weight.kind == EMBEDDING and options.skip_embeddings:
            prepared.append(_unconvertible(weight, "skipped", "embedding layer (skip_embeddings=True)"))
            continue
        if any(s == 0 for s in weight.shape):
            prepared.append(_unconvertible(weight, "skipped", f"empty weight tensor, shape {weight.shape}"))
            continue
        try:
            items = lowrank_inputs(weight, options) if is_low_rank(weight) else layer_inputs(weight, options)
        except (ValueError, TypeError, RuntimeError) as exc:
            prepared.append(_unconvertible(weight, "failed", f"cannot turn weight into matrices: {exc}"))
            continue
        for item in items:
            item.role, item.base_model = weight.role, weight.base_model
            size_problem = _size_problem(item, options)
            data_problem = None if size_problem else _data_problem(item.matrices)
            if size_problem:
                _decided(item, "skipped", size_problem)
            elif data_problem == ALL_ZERO and weight.role == DELTA_VS_BASE:
                _decided(item, "skipped", UNCHANGED_FROM_BASE)
            elif data_problem:
                _decided(item, "failed", data_problem)
            prepared.append(item)
    return prepared
