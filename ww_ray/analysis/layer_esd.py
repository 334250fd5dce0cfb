"""Recompute one layer's ESD from the model's weights, for the report's ESD plot.

The dataset keeps per-layer numbers, not eigenvalues; to draw an ESD we read the model again from
its ``uri`` (a local checkpoint, a Hugging Face folder, a zoo URI), rebuild the same matrix the
analysis used (same preset, conv method and slice) and recompute its eigenvalues, power-law fit
and Marchenko–Pastur bulk with the spectral core. When the weights cannot be reached,
:class:`SpectrumUnavailable` says why.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ww_ray.errors import SpectrumUnavailable
from ww_ray.spectral.esd import eigenvalues
from ww_ray.spectral.matrices import layer_inputs
from ww_ray.spectral.metrics import fit_tail, pooled_evals
from ww_ray.spectral.powerlaw_fit import PowerLawFit
from ww_ray.spectral.presets import options_from_label
from ww_ray.spectral.rmt import MPFit, fit_marchenko_pastur


@dataclass(frozen=True)
class LayerSpectrum:
    evals: np.ndarray
    N: int
    M: int
    fit: PowerLawFit
    mp: MPFit | None


def layer_spectrum(uri: str | None, layer_name: str, slice_id: int | None = None, preset: str | None = "paper",
                   conv_method: str | None = None) -> LayerSpectrum:
    """Eigenvalues (scaled as in the analysis), power-law fit and MP fit of one analysed matrix."""
    if not uri:
        raise SpectrumUnavailable("the models row has no uri, so its weights cannot be read again")
    from ww_ray.zoos.source import open_source

    options = options_from_label(preset or "paper")
    if conv_method and conv_method != options.conv_method:
        options = replace(options, conv_method=conv_method)
    try:
        _, weights = open_source(uri)
        weight = next((w for w in weights if w.name == layer_name), None)
    except Exception as exc:  # unreachable hub, missing file, refused pickle ...
        raise SpectrumUnavailable(f"cannot read the weights of {uri}: {exc}") from exc
    if weight is None:
        raise SpectrumUnavailable(f"{uri} has no layer named {layer_name!r}")
    wanted = None if slice_id is None or (isinstance(slice_id, float) and np.isnan(slice_id)) else int(slice_id)
    item = next((i for i in layer_inputs(weight, options) if i.slice_id == wanted), None)
    if item is None or item.matrices is None:
        raise SpectrumUnavailable(f"layer {layer_name!r} slice {wanted} gives no matrix under preset {options.preset}")
    evals = pooled_evals(item, np.stack([eigenvalues(matrix) for matrix in item.matrices]))
    fit = fit_tail(evals, options)
    try:
        mp = fit_marchenko_pastur(evals, item.N, item.M)
    except ValueError:
        mp = None
    return LayerSpectrum(evals=evals, N=item.N, M=item.M, fit=fit, mp=mp)
