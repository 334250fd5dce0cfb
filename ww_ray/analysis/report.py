"""``ww-ray report``: the paper's figures and tables for a dataset root, as PNGs and one HTML page.

Figures: reported error vs each regressed metric with the fitted line and R² per series
(Figs. 1–2); correlation flow — alpha vs layer index — for chosen models (Fig. 3); histograms of
alpha and of log spectral norm comparing models (Figs. 5, 7); the ESD of one layer on log-log axes
with its power-law fit and MP bulk edge, recomputed from the model's weights (skipped, with a note,
when they cannot be read). Tables: the regression summary (Table 3), per-series fits, and flags
(under-trained layers, scale collapse). ``index.html`` embeds everything with relative links.

Model choice: ``models`` names them; by default each series with layer rows contributes its
shallowest and deepest model (by number of analysed layers).
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ww_ray.analysis import flags, plots
from ww_ray.analysis.layer_esd import layer_spectrum
from ww_ray.errors import SpectrumUnavailable
from ww_ray.analysis.regression import DEFAULT_METRICS, metric_values, error_values, regress, summary_table
from ww_ray.store import read_table
from ww_ray.store.root import RootLike, resolve_root


@dataclass
class Report:
    html_path: Path
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def choose_models(layers: pd.DataFrame, models: Sequence[str] | None = None, max_series: int = 4) -> dict[str, list[str]]:
    """Series label → model ids to compare: the given ``models`` (one group), or per series with
    layer rows its shallowest and deepest model (at most ``max_series`` series, largest first)."""
    ok = layers[layers["status"] == "ok"] if len(layers) else layers
    if models:
        missing = sorted(set(models) - set(ok["model_id"])) if len(ok) else sorted(models)
        if missing:
            raise ValueError(f"no analysed layers for model(s) {missing} in this dataset")
        return {"selected models": list(models)}
    if ok.empty:
        return {}
    depth = ok.groupby(["dataset", "architecture", "model_id"], dropna=False)["layer_index"].nunique().reset_index()
    chosen = {}
    sizes = depth.groupby(["dataset", "architecture"], dropna=False).size().sort_values(ascending=False)
    for (dataset, architecture), _ in sizes.head(max_series).items():
        group = depth[(depth["dataset"].fillna("") == (dataset or "")) & (depth["architecture"].fillna("") == (architecture or ""))]
        group = group.sort_values(["layer_index", "model_id"])
        picks = list(dict.fromkeys([group["model_id"].iloc[0], group["model_id"].iloc[-1]]))
        chosen[f"{dataset}/{architecture}"] = picks
    return chosen


def _series_label(fit) -> str:
    return str(fit.architecture) if isinstance(fit.architecture, str) else f"{fit.dataset} (all architectures)"


def _metric_figures(models: pd.DataFrame, regressions: pd.DataFrame, out: Path) -> list[tuple[str, Path]]:
    figures = []
    ok = models[models["status"] == "ok"]
    for (dataset, metric, target), fits in regressions.groupby(["dataset", "metric", "target"], sort=True, dropna=False):
        points = []
        for fit in fits.itertuples(index=False):
            mask = ok["model_id"].isin(list(fit.model_ids))
            for column in ("source", "dataset", "architecture"):
                value = getattr(fit, column)
                if isinstance(value, str):
                    mask &= ok[column] == value
            subset = ok[mask]
            points.append(pd.DataFrame({"series": _series_label(fit), "x": metric_values(subset, metric).to_numpy(),
                                        "y": error_values(subset, target).to_numpy()}))
        frame = pd.concat(points, ignore_index=True) if points else pd.DataFrame(columns=["series", "x", "y"])
        table = fits.assign(series=[_series_label(f) for f in fits.itertuples(index=False)])[["series", "slope", "intercept", "r2"]]
        title = f"{dataset}: {target} vs {metric}"
        path = plots.metric_vs_error(frame.dropna(), table, metric, target, title,
                                     out / f"metric_vs_error_{_slug(dataset)}_{_slug(metric)}.png")
        figures.append((title, path))
    return figures


def build_report(
    root: RootLike,
    out_dir: str | Path,
    models: Sequence[str] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    esd_model: str | None = None,
    esd_layer: str | None = None,
    esd_slice: int | None = None,
    min_models: int = 4,
) -> Report:
    """Draw every figure and write ``<out_dir>/index.html``; returns the page, images and notes."""
    root = resolve_root(root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_table = read_table(root, "models")
    layer_table = read_table(root, "layers")
    regressions = read_table(root, "regressions")
    notes: list[str] = []
    sections: list[str] = []
    images: list[Path] = []
    if regressions.empty and not model_table.empty:
        regressions = regress(model_table, metrics=[m for m in metrics if _has_metric(model_table, m)], min_models=min_models)
        if len(regressions):
            notes.append("No stored regressions: the fits shown were computed for this report (ww-ray regress stores them).")
    else:
        regressions = regressions[regressions["metric"].isin(list(metrics))]

    # Figures 1-2: metric vs error
    metric_figs = _metric_figures(model_table, regressions, out) if len(regressions) else []
    if not metric_figs:
        notes.append(f"No series with at least {min_models} models and an error figure: no metric-vs-error plots.")
    images += [p for _, p in metric_figs]
    sections.append(_section("Reported error vs metric, per series", metric_figs))
    if len(regressions):
        summary = summary_table(regressions)
        sections.append("<h2>Regression summary (mean and std over series)</h2>" + _table_html(summary.round(4)))
        cols = ["dataset", "architecture", "metric", "target", "n", "slope", "r2", "mse", "rmse", "kendall_tau", "slope_p"]
        sections.append("<h2>Per-series fits</h2>" + _table_html(regressions[cols].round(4)))

    # Figure 3 and 5/7: correlation flow and histograms
    groups = choose_models(layer_table, models)
    flow_figs, hist_figs = [], []
    ok_layers = layer_table[layer_table["status"] == "ok"] if len(layer_table) else layer_table
    for label, ids in groups.items():
        flows = {m: ok_layers[ok_layers["model_id"] == m][["layer_index", "alpha"]].dropna() for m in ids}
        title = f"Correlation flow: alpha vs layer_index ({label})"
        flow_figs.append((title, plots.correlation_flow(flows, title, out / f"correlation_flow_{_slug(label)}.png")))
        for metric, xlabel in (("alpha", "alpha"), ("log_spectral_norm", "log10 spectral norm (log10 λmax)")):
            values = {m: ok_layers.loc[ok_layers["model_id"] == m, metric].to_numpy(dtype=float) for m in ids}
            title = f"Histogram of {metric} ({label})"
            hist_figs.append((title, plots.histograms(values, xlabel, title, out / f"hist_{metric}_{_slug(label)}.png")))
    if not groups:
        notes.append("No layer rows: no correlation-flow, histogram or ESD plots.")
    images += [p for _, p in flow_figs + hist_figs]
    sections.append(_section("Correlation flow", flow_figs))
    sections.append(_section("Histograms of layer metrics", hist_figs))

    # ESD of one layer
    esd_fig = _esd_figure(model_table, ok_layers, groups, esd_model, esd_layer, esd_slice, out, notes)
    if esd_fig:
        images.append(esd_fig[1])
    sections.append(_section("ESD of one layer", [esd_fig] if esd_fig else []))

    # Flags
    under = flags.under_trained_layers(layer_table)
    collapse = flags.scale_collapse(model_table)
    sections.append(f"<h2>Flags</h2><h3>Under-trained layers (alpha &gt; {flags.UNDER_TRAINED_ALPHA:g}): {len(under)}</h3>"
                    + _table_html(under.head(100).round(3))
                    + f"<h3>Scale collapse (mean log10 λmax more than 1 decade below the series median): {len(collapse)}</h3>"
                    + _table_html(collapse.round(3)))
    page = out / "index.html"
    page.write_text(_page(str(root), sections, notes), encoding="utf-8")
    return Report(html_path=page, images=images, notes=notes)


def _has_metric(models: pd.DataFrame, metric: str) -> bool:
    try:
        return bool(metric_values(models, metric).notna().any())
    except KeyError:
        return False


def _esd_figure(models, layers, groups, esd_model, esd_layer, esd_slice, out: Path, notes: list[str]):
    if layers.empty:
        return None
    model_id = esd_model or next((ids[0] for ids in groups.values() if ids), None)
    candidates = layers[layers["model_id"] == model_id]
    if esd_layer is not None:
        candidates = candidates[candidates["layer_name"] == esd_layer]
        if esd_slice is not None:
            candidates = candidates[candidates["slice_id"] == esd_slice]
    if candidates.empty:
        notes.append(f"ESD plot skipped: no analysed layer {esd_layer or ''} of model {model_id}.")
        return None
    row = candidates.sort_values(["num_evals", "layer_index"], ascending=[False, True]).iloc[0]
    model_rows = models[models["model_id"] == model_id]
    uri = model_rows["uri"].iloc[0] if len(model_rows) else None
    slice_id = None if pd.isna(row["slice_id"]) else int(row["slice_id"])
    try:
        spectrum = layer_spectrum(uri if isinstance(uri, str) else None, row["layer_name"], slice_id,
                                  row.get("preset"), row.get("conv_method") if isinstance(row.get("conv_method"), str) else None)
    except SpectrumUnavailable as exc:
        notes.append(f"ESD plot of {model_id} / {row['layer_name']} skipped: {exc}")
        return None
    where = f"{row['layer_name']}" + (f" slice {slice_id}" if slice_id is not None else "")
    title = f"ESD of {model_id} / {where}"
    lambda_plus = spectrum.mp.lambda_plus if spectrum.mp else None
    path = plots.esd(spectrum.evals, spectrum.fit.alpha, spectrum.fit.xmin, lambda_plus, title,
                     out / f"esd_{_slug(model_id)}_{_slug(where)}.png")
    stored = row.get("alpha")
    if stored is not None and np.isfinite(stored) and np.isfinite(spectrum.fit.alpha) and abs(stored - spectrum.fit.alpha) > 1e-6 * max(1.0, abs(stored)):
        notes.append(f"ESD of {model_id} / {where}: recomputed alpha {spectrum.fit.alpha:.4f} differs from the stored {stored:.4f}.")
    return (title, path)


def _section(heading: str, figures: list) -> str:
    body = "".join(
        f'<figure><img src="{html.escape(p.name)}" alt="{html.escape(t)}"><figcaption>{html.escape(t)}</figcaption></figure>'
        for t, p in figures
    )
    return f"<h2>{html.escape(heading)}</h2>" + (body or "<p>(none)</p>")


def _table_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>(none)</p>"
    return frame.to_html(index=False, escape=True, na_rep="", border=0, classes="data")


def _page(root: str, sections: list[str], notes: list[str]) -> str:
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ww_ray report: {html.escape(root)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}} figure{{display:inline-block;margin:.5em}}
img{{max-width:520px}} table.data{{border-collapse:collapse;font-size:12px}} td,th{{padding:2px 6px;border-bottom:1px solid #ddd}}</style>
</head><body><h1>ww_ray report</h1><p>Dataset root: <code>{html.escape(root)}</code></p>
{"<h2>Notes</h2><ul>" + note_html + "</ul>" if notes else ""}
{"".join(sections)}
</body></html>
"""
