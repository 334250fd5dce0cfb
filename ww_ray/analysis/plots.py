"""The report's figures, drawn with matplotlib's object API (Agg canvas; no pyplot state, no display).

Each function takes plain data, writes one PNG and returns its path. The PNG's text chunks carry
the title (``Title``) and the axis labels (``Description``: ``x: ...; y: ...``) so a figure can be
checked without looking at it; nothing here reads a dataset.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_DPI = 110


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.92, bottom=0.12)
    ax = fig.axes[0]
    description = f"x: {ax.get_xlabel()}; y: {ax.get_ylabel()}; xscale: {ax.get_xscale()}; yscale: {ax.get_yscale()}"
    fig.savefig(path, dpi=_DPI, metadata={"Title": ax.get_title(), "Description": description, "Software": "ww_ray"})
    return path


def metric_vs_error(points: pd.DataFrame, fits: pd.DataFrame, metric: str, target: str, title: str,
                    path: str | Path) -> Path:
    """Scatter of ``metric`` vs reported error per series, each with its OLS line and R² (Figs. 1–2).

    ``points``: columns series, x, y. ``fits``: columns series, slope, intercept, r2.
    """
    fig = Figure(figsize=(7.0, 4.8))
    ax = fig.add_subplot()
    colors = _colors(len(fits) or 1)
    for color, fit in zip(colors, fits.itertuples(index=False)):
        group = points[points["series"] == fit.series]
        ax.scatter(group["x"], group["y"], color=color, s=22, label=f"{fit.series} (n={len(group)}, R²={fit.r2:.2f})")
        xs = np.linspace(group["x"].min(), group["x"].max(), 50)
        if np.isfinite(fit.slope):
            ax.plot(xs, fit.intercept + fit.slope * xs, color=color, linewidth=1.2)
    ax.set_xlabel(metric)
    ax.set_ylabel(f"reported {target.replace('_', ' ')} (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if len(fits):
        ax.legend(fontsize=7, loc="best", framealpha=0.8)
    return _save(fig, path)


def correlation_flow(flows: Mapping[str, pd.DataFrame], title: str, path: str | Path, metric: str = "alpha") -> Path:
    """``metric`` vs layer index for several models (Fig. 3): points per matrix, line through layer means.

    ``flows``: model label → frame with columns ``layer_index`` and ``metric``.
    """
    fig = Figure(figsize=(7.0, 4.2))
    ax = fig.add_subplot()
    for color, (label, frame) in zip(_colors(len(flows) or 1), flows.items()):
        ax.scatter(frame["layer_index"], frame[metric], color=color, s=6, alpha=0.35)
        means = frame.groupby("layer_index")[metric].mean()
        ax.plot(means.index, means.values, color=color, linewidth=1.4, label=f"{label} ({len(means)} layers)")
    ax.set_xlabel("layer_index")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if flows:
        ax.legend(fontsize=8)
    return _save(fig, path)


def histograms(values: Mapping[str, Sequence[float]], xlabel: str, title: str, path: str | Path, bins: int = 30) -> Path:
    """Overlaid density histograms of one per-layer metric for several models (Figs. 5, 7)."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    finite = {k: np.asarray(v, dtype=float)[np.isfinite(np.asarray(v, dtype=float))] for k, v in values.items()}
    pooled = np.concatenate([v for v in finite.values() if v.size]) if any(v.size for v in finite.values()) else np.array([0.0, 1.0])
    edges = np.histogram_bin_edges(pooled, bins=bins)
    for color, (label, data) in zip(_colors(len(finite) or 1), finite.items()):
        if data.size:
            ax.hist(data, bins=edges, density=True, alpha=0.45, color=color, label=f"{label} (n={data.size})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.set_title(title)
    if finite:
        ax.legend(fontsize=8)
    return _save(fig, path)


def esd(evals: np.ndarray, alpha: float, xmin: float, lambda_plus: float | None, title: str, path: str | Path) -> Path:
    """The ESD on log-log axes with the fitted power-law tail ρ(λ) ∝ λ^-α (from ``xmin``) and the MP edge λ₊."""
    x = np.sort(np.asarray(evals, dtype=float))
    x = x[x > 0]
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    edges = np.logspace(np.log10(x[0]), np.log10(x[-1]), 60) if x.size > 1 else np.array([x[0] * 0.9, x[0] * 1.1])
    density, edges = np.histogram(x, bins=edges, density=True)
    centers = np.sqrt(edges[:-1] * edges[1:])
    keep = density > 0
    ax.plot(centers[keep], density[keep], marker="o", markersize=3, linewidth=0.8, label=f"ESD ({x.size} eigenvalues)")
    if np.isfinite(alpha) and np.isfinite(xmin) and xmin > 0:
        tail = x[x >= xmin]
        grid = np.logspace(np.log10(xmin), np.log10(x[-1]), 40)
        # power-law density normalised to the tail's share of all eigenvalues
        fitted = (tail.size / x.size) * (alpha - 1.0) / xmin * (grid / xmin) ** (-alpha)
        ax.plot(grid, fitted, color="red", linewidth=1.6, label=f"power law α={alpha:.2f}")
        ax.axvline(xmin, color="red", linestyle=":", linewidth=1.0, label=f"xmin={xmin:.3g}")
    if lambda_plus is not None and np.isfinite(lambda_plus):
        ax.axvline(lambda_plus, color="green", linestyle="--", linewidth=1.2, label=f"MP edge λ₊={lambda_plus:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue λ of WᵀW")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]
