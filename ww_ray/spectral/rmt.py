"""Random-matrix-theory diagnostics of an ESD: Marchenko–Pastur bulk fit and the randomized control.

MP bulk fit. For an N×M matrix of i.i.d. entries with variance σ²/N, the eigenvalues of WᵀW follow
the Marchenko–Pastur law with Q = N/M, bulk edges λ± = σ²(1 ± 1/√Q)² and mean σ². Like
WeightWatcher we first rescale the ESD to mean 1 (a purely random layer then has σ = 1). Unlike its
kernel-density grid search, σ is found by a deterministic fixed point: σ² = mean of the eigenvalues
inside the current bulk [0, λ₊(σ)], starting from all of them; each step drops the spikes above
the edge, so σ² decreases monotonically and stops when no eigenvalue leaves the bulk. A spike is an
eigenvalue above the 99th percentile of the Tracy–Widom law of the largest eigenvalue
(λ₊ + 2.02 TW scale units, Johnstone 2001), so a purely random matrix has one with probability 1 %.

Randomized control. Shuffling a matrix's entries keeps their distribution and destroys their
correlations; the shuffled ESD is MP-like. ``rand_distance`` is the Jensen–Shannon distance
(base 2, in [0, 1]) between histograms of log10 of the real and shuffled ESDs on common bins;
``num_traps`` counts shuffled eigenvalues above their own MP edge ("correlation traps": a few
huge entries that survive shuffling).

    >>> import numpy as np
    >>> from ww_ray.spectral.esd import eigenvalues
    >>> rng = np.random.default_rng(0)
    >>> fit = fit_marchenko_pastur(eigenvalues(rng.normal(size=(2000, 500))), 2000, 500)
    >>> round(fit.sigma_mp, 2), fit.num_spikes
    (1.0, 0)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import jensenshannon


@dataclass(frozen=True)
class MPFit:
    """Marchenko–Pastur bulk fit. ``lambda_plus`` is in the units of the input eigenvalues."""

    sigma_mp: float
    lambda_plus: float
    mp_softrank: float
    num_spikes: int


# 99th percentile of the Tracy–Widom (β = 1) distribution.
TW1_QUANTILE_99 = 2.02


def tracy_widom_margin(N: int, M: int, sigma2: float) -> float:
    """λmax's 99 % margin above λ₊ for WᵀW/N scaled to mean-σ² eigenvalues (Johnstone 2001 scale)."""
    scale = (1.0 + math.sqrt(M / N)) * N ** -0.5 * (N ** -0.5 + M ** -0.5) ** (1.0 / 3.0)
    return TW1_QUANTILE_99 * sigma2 * scale


def fit_marchenko_pastur(evals: np.ndarray, N: int, M: int, max_iterations: int = 100) -> MPFit:
    """Fit the MP bulk of an ESD from an N×M matrix (or a pool of them); see the module docstring."""
    evals = np.asarray(evals, dtype=np.float64)
    total = float(evals.sum())
    if evals.size == 0 or total <= 0.0 or not np.isfinite(total):
        raise ValueError("MP fit needs a non-empty ESD with a positive, finite sum")
    scale = evals.size / total                      # rescale to mean eigenvalue 1
    x = evals * scale
    edge_factor = (1.0 + 1.0 / math.sqrt(N / M)) ** 2
    sigma2 = 1.0
    for _ in range(max_iterations):
        bulk = x[x <= sigma2 * edge_factor]
        new_sigma2 = float(bulk.mean()) if bulk.size else sigma2
        if new_sigma2 >= sigma2 * (1.0 - 1e-12):
            break
        sigma2 = new_sigma2
    lambda_plus = sigma2 * edge_factor
    threshold = lambda_plus + tracy_widom_margin(N, M, sigma2)
    return MPFit(
        sigma_mp=math.sqrt(sigma2),
        lambda_plus=lambda_plus / scale,
        mp_softrank=lambda_plus / float(x.max()),
        num_spikes=int(np.sum(x > threshold)),
    )


def shuffle_entries(matrices: np.ndarray, seed: tuple[int, ...] | int) -> np.ndarray:
    """A copy of a (B, a, b) batch with each matrix's entries shuffled (seeded, reproducible)."""
    rng = np.random.default_rng(seed)
    flat = matrices.reshape(matrices.shape[0], -1).copy()
    for row in flat:
        rng.shuffle(row)
    return flat.reshape(matrices.shape)


def esd_distance(evals: np.ndarray, other: np.ndarray, bins: int = 100) -> float:
    """Jensen–Shannon distance (base 2) between histograms of log10 of two ESDs on common bins."""
    a = np.log10(evals[evals > 0])
    b = np.log10(other[other > 0])
    if a.size == 0 or b.size == 0:
        return math.nan
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if hi <= lo:
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    p, _ = np.histogram(a, bins=edges)
    q, _ = np.histogram(b, bins=edges)
    return float(jensenshannon(p, q, base=2))
