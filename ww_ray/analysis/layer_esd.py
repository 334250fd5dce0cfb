"""Recompute one layer's ESD from the model's weights, for the report's ESD plot.

The dataset keeps per-layer numbers, not eigenvalues; to draw an ESD we read the model again from
its ``uri`` (a local checkpoint, a Hugging Face folder, a zoo URI), rebuild the same matrix the
analysis used (same preset, conv method and slice) and recompute its eigenvalues, power-law fit
and Marchenko–Pastur bulk with the spectral core. With ``pool_slices`` the eigenvalues of all
the layer's matrices (the k×k slices of a conv layer, each scaled as analysed) are drawn and fitted
together — the layer's ESD as WeightWatcher 0.7 pools it — so that a sliced layer, whose single
matrices have few eigenvalues, still gives a readable histogram. When the weights cannot be
reached, :class:`SpectrumUnavailable` says why.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ww_ray.errors import SpectrumUnavailable
from ww_ray.spectral.esd import eigenvalues
from ww_ray.spectral.lowrank import is_low_rank, lowrank_inputs
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
    num_matrices: int = 1
    threshold: float = 1e-5  # eigenvalues at or below it are left out of the fit


def layer_spectrum(uri: str | None, layer_name: str, slice_id: int | None = None, preset: str | None = "paper",
                   conv_method: str | None = None, pool_slices: bool = False) -> LayerSpectrum:
    """Eigenvalues (scaled as in the analysis), power-law fit and MP fit of one analysed matrix
    (``slice_id``), or of all the layer's matrices pooled (``pool_slices``)."""
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
    made = lowrank_inputs(weight, options) if is_low_rank(weight) else layer_inputs(weight, options)
    inputs = [i for i in made if i.matrices is not None]
    items = inputs if pool_slices else [i for i in inputs if i.slice_id == wanted]
    if not items:
        which = "any matrix" if pool_slices else f"a matrix for slice {wanted}"
        raise SpectrumUnavailable(f"layer {layer_name!r} gives no {which} under preset {options.preset}")
    evals = np.sort(np.concatenate([
        pooled_evals(item, np.stack([eigenvalues(matrix) for matrix in item.matrices])) for item in items]))
    item = items[0]
    fit = fit_tail(evals, options)
    try:
        mp = fit_marchenko_pastur(evals, item.N, item.M)
    except ValueError:
        mp = None
    return LayerSpectrum(evals=evals, N=item.N, M=item.M, fit=fit, mp=mp, num_matrices=len(items),
                         threshold=options.evals_threshold)

