"""The report's figures, drawn with matplotlib's object API (Agg canvas; no pyplot state, no display).

Each function takes plain data, writes one PNG and returns its path. The PNG's text chunks carry
the title (``Title``), the axis labels and scales (``Description``: ``x: ...; y: ...``) and the
legend entries (``Legend``, one per line) so a figure can be checked without looking at it;
nothing here reads a dataset. Axis labels are human names (:func:`metric_label`), never raw
column names.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_DPI = 110
#: Metric columns → axis labels (the paper's names and how each is computed).
METRIC_LABELS: dict[str, str] = {
    "alpha": "power-law exponent α (mean over layers)",
    "alpha_weighted": "weighted alpha α̂ = α·log10 λmax",
    "log_alpha_norm": "log α-norm log10 Σλᵅ",
    "log_norm": "log squared Frobenius norm log10 Σλ",
    "log_spectral_norm": "log spectral norm log10 λmax",
    "ln_mean_lambda_max": "ln ⟨λmax⟩ (paper's ⟨log ‖W‖∞⟩)",
    "lambda_max": "largest eigenvalue λmax",
    "stable_rank": "stable rank Σλ / λmax",
    "entropy": "matrix entropy",
    "mp_softrank": "MP soft rank λ₊ / λmax",
    "rand_distance": "distance to randomized ESD",
    "top1_error": "reported top-1 error (%)",
    "top5_error": "reported top-5 error (%)",
}
#: Per-layer meaning of the same columns (correlation flow, histograms).
LAYER_LABELS: dict[str, str] = {
    "alpha": "power-law exponent α of the layer",
    "log_spectral_norm": "log spectral norm log10 λmax of the layer",
    "alpha_weighted": "weighted alpha α·log10 λmax of the layer",
}


def metric_label(column: str, per_layer: bool = False) -> str:
    """The human name of a metric column for an axis (the column itself when unknown)."""
    if per_layer and column in LAYER_LABELS:
        return LAYER_LABELS[column]
    if column in METRIC_LABELS:
        return METRIC_LABELS[column]
    if column.endswith("_compound"):
        return metric_label(column[: -len("_compound")]) + " (compound: over all matrices)"
    return column.replace("_", " ")


def _wrap(title: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(title, width)) or title


def _save(fig: Figure, ax, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    description = f"x: {ax.get_xlabel()}; y: {ax.get_ylabel()}; xscale: {ax.get_xscale()}; yscale: {ax.get_yscale()}"
    legend = ax.get_legend()
    entries = "\n".join(t.get_text() for t in legend.get_texts()) if legend else ""
    title = ax.get_title().replace("\n", " ")
    # bbox_inches="tight" grows the canvas to whatever the title, labels and outside legend need: nothing clipped
    fig.savefig(path, dpi=_DPI, bbox_inches="tight", pad_inches=0.15,
                metadata={"Title": title, "Description": description, "Legend": entries, "Software": "ww_ray"})
    return path


def _figure(width: float, height: float) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.tick_params(labelsize=10)
    return fig, ax


def metric_vs_error(points: pd.DataFrame, fits: pd.DataFrame, metric: str, target: str, title: str,
                    path: str | Path, max_names: int = 40) -> Path:
    """Scatter of ``metric`` vs reported error per series, each with its OLS line and R² (Figs. 1–2).

    ``points``: columns series, x, y and optionally model (the name written beside each point;
    with more than ``max_names`` points only the ``max_names`` farthest from their series' line
    are named). ``fits``: columns series, slope, intercept, r2.
    """
    fig, ax = _figure(8.0, 5.4)
    colors = _colors(len(fits) or 1)
    named = []
    for color, fit in zip(colors, fits.itertuples(index=False)):
        group = points[points["series"] == fit.series]
        ax.scatter(group["x"], group["y"], color=color, s=30, zorder=3,
                   label=f"{fit.series} (n={len(group)}, R²={fit.r2:.2f})")
        if np.isfinite(fit.slope) and len(group):
            xs = np.linspace(group["x"].min(), group["x"].max(), 50)
            ax.plot(xs, fit.intercept + fit.slope * xs, color=color, linewidth=1.4)
            residual = (group["y"] - (fit.intercept + fit.slope * group["x"])).abs()
        else:
            residual = pd.Series(0.0, index=group.index)
        named.append(group.assign(fit_residual=residual, point_color=[color] * len(group)))
    if "model" in points.columns and named:
        labelled = pd.concat(named)
        if len(labelled) > max_names:
            labelled = labelled.nlargest(max_names, "fit_residual")
        for row in labelled.itertuples(index=False):
            ax.annotate(str(row.model), (row.x, row.y), xytext=(4, 4), textcoords="offset points", fontsize=8,
                        color=row.point_color)
    ax.set_xlabel(metric_label(metric), fontsize=11)
    ax.set_ylabel(metric_label(target), fontsize=11)
    ax.set_title(_wrap(title), fontsize=12)
    ax.margins(x=0.12, y=0.08)
    ax.grid(alpha=0.3)
    if len(fits):
        ax.legend(fontsize=10, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False,
                  ncol=1 if len(fits) <= 4 else 2)
    return _save(fig, ax, path)


def correlation_flow(flows: Mapping[str, pd.DataFrame], title: str, path: str | Path, metric: str = "alpha") -> Path:
    """Per-layer ``metric`` against relative depth for several models (Fig. 3).

    ``flows``: model label → frame with columns ``depth`` (the layer's relative depth in [0, 1])
    and ``metric``, one row per analysed matrix (several per layer when a conv layer is sliced).
    Each model is a line through its layer means with a band over the interquartile range of the
    layer's matrices (its slices).
    """
    fig, ax = _figure(8.0, 4.8)
    any_band = False
    for color, (label, frame) in zip(_colors(len(flows) or 1), flows.items()):
        grouped = frame.groupby("depth")[metric]
        stats = pd.DataFrame({"mean": grouped.mean(), "low": grouped.quantile(0.25), "high": grouped.quantile(0.75),
                              "size": grouped.size()}).sort_index()
        ax.plot(stats.index, stats["mean"], color=color, linewidth=1.6, marker="o", markersize=3.5,
                label=f"{label} ({len(stats)} layers)")
        if (stats["size"] > 1).any():
            any_band = True
            ax.fill_between(stats.index, stats["low"], stats["high"], color=color, alpha=0.15, linewidth=0)
    ax.set_xlabel("relative depth in the network (layer position / number of layers: 0 first, 1 last)",
                  fontsize=11)
    ax.set_ylabel(metric_label(metric, per_layer=True), fontsize=11)
    ax.set_title(_wrap(title), fontsize=12)
    ax.grid(alpha=0.3)
    if any_band:
        ax.text(0.01, 0.98, "line: mean over the layer's matrices (conv slices); band: their interquartile range",
                transform=ax.transAxes, fontsize=8, va="top", color="0.3")
    if flows:
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, ax, path)


def histograms(values: Mapping[str, Sequence[float]], xlabel: str, title: str, path: str | Path, bins: int = 30) -> Path:
    """Overlaid density histograms of one per-layer metric for several models (Figs. 5, 7)."""
    fig, ax = _figure(8.0, 4.6)
    finite = {k: np.asarray(v, dtype=float)[np.isfinite(np.asarray(v, dtype=float))] for k, v in values.items()}
    pooled = np.concatenate([v for v in finite.values() if v.size]) if any(v.size for v in finite.values()) else np.array([0.0, 1.0])
    edges = np.histogram_bin_edges(pooled, bins=bins)
    for color, (label, data) in zip(_colors(len(finite) or 1), finite.items()):
        if data.size:
            ax.hist(data, bins=edges, density=True, alpha=0.4, color=color, label=f"{label} (n={data.size})")
            ax.hist(data, bins=edges, density=True, histtype="step", color=color, linewidth=1.2)
    ax.set_xlabel(xlabel, fontsize=11)
    ax.set_ylabel("density", fontsize=11)
    ax.set_title(_wrap(title), fontsize=12)
    if finite:
        ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, ax, path)


def esd(evals: np.ndarray, alpha: float, xmin: float, lambda_plus: float | None, title: str, path: str | Path,
        sigma: float = float("nan"), n_tail: int | None = None, bins: int = 40, threshold: float = 1e-5) -> Path:
    """Histogram of the ESD on log-log axes with the fitted tail ρ(λ) ∝ λ^-α from ``xmin``, and the MP edge λ₊.

    Log-spaced bins over the eigenvalues above ``threshold`` (those the fit sees; the rest, numerical
    zeros, are counted in the legend), density normalised over them; the fitted power law is scaled
    to the tail's share so it sits on the histogram. The legend says n, α ± σ and the tail size.
    """
    everything = np.sort(np.asarray(evals, dtype=float))
    x = everything[everything > threshold]
    if x.size == 0:
        x = everything[everything > 0][-1:] if (everything > 0).any() else np.array([1.0])
    left_out = everything.size - x.size
    fig, ax = _figure(8.0, 5.0)
    edges = np.logspace(np.log10(x[0]), np.log10(x[-1]), bins + 1) if x.size > 1 else np.array([x[0] * 0.9, x[0] * 1.1])
    ax.hist(x, bins=edges, density=True, color="tab:blue", alpha=0.55, edgecolor="tab:blue", linewidth=0.6,
            label=f"ESD: n = {x.size} eigenvalues" + (f" ({left_out} ≤ {threshold:g} not drawn)" if left_out else ""))
    if np.isfinite(alpha) and np.isfinite(xmin) and xmin > 0:
        tail = x[x >= xmin]
        grid = np.logspace(np.log10(xmin), np.log10(x[-1]), 40)
        fitted = (tail.size / x.size) * (alpha - 1.0) / xmin * (grid / xmin) ** (-alpha)
        spread = f" ± {sigma:.2f}" if np.isfinite(sigma) else ""
        ax.plot(grid, fitted, color="red", linewidth=2.0,
                label=f"power-law fit α = {alpha:.2f}{spread} (tail: {n_tail if n_tail is not None else tail.size} eigenvalues)")
        ax.axvline(xmin, color="red", linestyle=":", linewidth=1.2, label=f"xmin = {xmin:.3g}")
    if lambda_plus is not None and np.isfinite(lambda_plus):
        ax.axvline(lambda_plus, color="green", linestyle="--", linewidth=1.4, label=f"MP bulk edge λ₊ = {lambda_plus:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue λ of WᵀW (log scale)", fontsize=11)
    ax.set_ylabel("density (log scale)", fontsize=11)
    ax.set_title(_wrap(title), fontsize=12)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, ax, path)


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
