"""Per-matrix metrics: eigenvalues (batched by shape) → power-law fit, norms, RMT diagnostics → rows.

``compute_rows`` is what a worker runs on a shard of ``SpectralInput``s. The eigenvalues of all its
rows come from one solve plan (``ww_ray.spectral.solve``: large CPU matrices one by one on one thread
pool, small ones and GPU ones stacked by shape). Each row's metrics follow DESIGN.md §2; a row never
raises: a failure becomes ``status="failed"`` with the error.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import replace
from typing import Any

import numpy as np
from scipy.special import logsumexp

from ww_ray.spectral.esd import gram_eigenvalues, resolve_device
from ww_ray.spectral.matrices import SpectralInput
from ww_ray.spectral.powerlaw_fit import PowerLawFit, fit_power_law
from ww_ray.spectral.presets import AnalysisOptions
from ww_ray.spectral.rmt import esd_distance, fit_marchenko_pastur, shuffle_entries
from ww_ray.spectral.solve import solve_eigenvalues

ANALYZER_VERSION = "ww_ray-spectral-1"

UNDER_TRAINED_ALPHA = 6.0
OVER_TRAINED_ALPHA = 2.0

METRIC_DEFAULTS: dict[str, Any] = {
    "lambda_max": math.nan, "log_spectral_norm": math.nan, "norm": math.nan, "log_norm": math.nan,
    "alpha": math.nan, "alpha_weighted": math.nan, "log_alpha_norm": math.nan, "stable_rank": math.nan,
    "entropy": math.nan, "matrix_rank": None, "xmin": math.nan, "xmax": math.nan, "D": math.nan,
    "sigma": math.nan, "num_pl_spikes": None, "mp_softrank": math.nan, "sigma_mp": math.nan,
    "lambda_plus": math.nan, "num_spikes": None, "rand_distance": math.nan, "num_traps": None,
    "warning": None,
}


def matrix_rank(evals: np.ndarray, N: int) -> int:
    """Numerical rank from eigenvalues, NumPy's rule on singular values: σ > σmax·N·eps."""
    singular = np.sqrt(evals)
    return int(np.count_nonzero(singular > singular.max() * N * np.finfo(np.float64).eps))


def matrix_entropy(evals: np.ndarray, rank: int) -> float:
    """Normalised matrix entropy −Σ p ln p / ln(rank), p = λ/Σλ (0 for rank ≤ 1)."""
    if rank <= 1:
        return 0.0
    p = evals[evals > 0] / evals.sum()
    return float(-(p * np.log(p)).sum() / math.log(rank))


def esd_metrics(evals: np.ndarray, N: int, M: int, options: AnalysisOptions) -> dict[str, Any]:
    """All DESIGN.md §2 metrics of one ESD (eigenvalues already scaled); raises ValueError if unusable."""
    total = float(evals.sum())
    if not total > 0.0:
        raise ValueError("all eigenvalues are zero")
    lambda_max = float(evals.max())
    rank = matrix_rank(evals, N)
    fit = fit_tail(evals, options)
    row = dict(METRIC_DEFAULTS)
    row.update(
        lambda_max=lambda_max, log_spectral_norm=math.log10(lambda_max), norm=total,
        log_norm=math.log10(total), stable_rank=total / lambda_max, matrix_rank=rank,
        entropy=matrix_entropy(evals, rank),
    )
    if fit.ok:
        positive = evals[evals > 0]
        row.update(
            alpha=fit.alpha, xmin=fit.xmin, xmax=fit.xmax, D=fit.D, sigma=fit.sigma,
            num_pl_spikes=int(np.sum(evals >= fit.xmin)),
            alpha_weighted=fit.alpha * math.log10(lambda_max),
            # log10 Σ λ^α in log space: λ^α overflows float64 for large λ and α.
            log_alpha_norm=float(logsumexp(fit.alpha * np.log(positive)) / math.log(10)),
            warning=("under-trained" if fit.alpha > UNDER_TRAINED_ALPHA
                     else "over-trained" if fit.alpha < OVER_TRAINED_ALPHA else ""),
        )
    else:
        row.update(warning="failed", fit_error=fit.error)
    if options.mp_fit:
        mp = fit_marchenko_pastur(evals, N, M)
        row.update(sigma_mp=mp.sigma_mp, lambda_plus=mp.lambda_plus, mp_softrank=mp.mp_softrank,
                   num_spikes=mp.num_spikes)
    return row


def fit_tail(evals: np.ndarray, options: AnalysisOptions) -> PowerLawFit:
    """The power-law fit of an ESD's tail with the options' fit settings (the one place options become fit arguments)."""
    return fit_power_law(
        evals, threshold=options.evals_threshold,
        small_n_cutoff=options.small_n_cutoff if options.small_n_fit else None,
        min_tail=options.small_n_min_tail, fit=options.fit, xmax=options.xmax,
    )


def pooled_evals(item: SpectralInput, per_matrix: np.ndarray) -> np.ndarray:
    """One ESD from the eigenvalues of each of an input's matrices: repeated by multiplicity, sorted, scaled."""
    per_matrix = np.asarray(per_matrix)
    if item.eval_multiplicity is not None:
        per_matrix = np.repeat(per_matrix, item.eval_multiplicity, axis=0)
    return np.sort(per_matrix.ravel()) * item.eval_scale


def usable_cpus() -> int:
    """CPUs this process may use (cgroup/affinity aware where the platform says so); the one CPU count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def cpu_threads() -> int:
    """Cores this process may use for concurrent eigen-solves (OMP_NUM_THREADS wins when set, as Ray sets it)."""
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return usable_cpus()


def _base_row(item: SpectralInput, options: AnalysisOptions, device: str) -> dict[str, Any]:
    return {
        "layer_index": item.layer_index, "layer_name": item.layer_name, "layer_type": item.layer_type,
        "slice_id": item.slice_id, "conv_method": item.conv_method, "N": item.N, "M": item.M,
        "Q": item.N / item.M if item.M else math.nan, "rf": item.rf, "num_evals": item.num_evals,
        **METRIC_DEFAULTS, "weight_role": item.role, "base_model": item.base_model,
        "status": item.status, "error": item.error, "preset": options.label,
        "analyzer_version": ANALYZER_VERSION, "device": device, "seconds": 0.0,
    }


def _randomized_control(item: SpectralInput, evals: np.ndarray, options: AnalysisOptions, device: str) -> dict:
    seed = (options.seed, item.layer_index, item.slice_id or 0)
    shuffled = shuffle_entries(item.matrices, seed)
    rand_evals = pooled_evals(item, gram_eigenvalues(shuffled, device=device, gram_dtype=options.gram_dtype))
    traps = fit_marchenko_pastur(rand_evals, item.N, item.M).num_spikes
    return {"rand_distance": esd_distance(evals, rand_evals), "num_traps": traps}


def compute_rows(inputs: list[SpectralInput], options: AnalysisOptions, device: str = "auto",
                 threads: int | None = None) -> list[dict[str, Any]]:
    """Rows (dicts with the LAYERS_SCHEMA shape, metric and status fields) for ``inputs``, in order.

    ``threads``: CPU cores for concurrent eigen-solves (default ``cpu_threads()``); a Ray worker
    passes the CPUs it was granted.
    """
    used_device = resolve_device(device if device != "auto" else options.device)
    rows = [_base_row(item, options, used_device) for item in inputs]
    positions = [p for p, item in enumerate(inputs) if item.status == "ok"]
    items = [inputs[p] for p in positions]
    started = time.perf_counter()
    per_item = solve_eigenvalues(items, used_device, threads or cpu_threads(), options.gram_dtype)
    total_cost = sum(it.cost for it in items) or 1.0
    eig_seconds = time.perf_counter() - started
    for p, item, evals_per_matrix in zip(positions, items, per_item):
        if isinstance(evals_per_matrix, Exception):  # a LAPACK/CUDA failure fails these rows, not the shard
            rows[p].update(status="failed", error=f"eigenvalue computation failed: {evals_per_matrix}")
            continue
        started = time.perf_counter()
        try:
            evals = pooled_evals(item, evals_per_matrix)
            # A low-rank matrix (rank set) has no random bulk: no Marchenko–Pastur fit, no randomized
            # control (its shuffled entries would need the full N×M matrix).
            metrics = esd_metrics(evals, item.N, item.M, options if item.rank is None else replace(options, mp_fit=False))
            fit_error = metrics.pop("fit_error", None)
            rows[p].update(metrics)
            if fit_error:  # norms are still valid: the row stays ok, warning says "failed"
                rows[p]["error"] = f"power-law fit failed: {fit_error}"
            if options.randomize and item.rank is None:
                rows[p].update(_randomized_control(item, evals, options, used_device))
        except Exception as exc:
            rows[p].update(status="failed", error=f"{type(exc).__name__}: {exc}")
        rows[p]["seconds"] = eig_seconds * item.cost / total_cost + time.perf_counter() - started
    return rows
