"""``ww-ray report``: the paper's figures and tables for a dataset root, as PNGs and one HTML page.

Figures: reported error vs each regressed metric with the fitted line and R² per series, each
point named by its model (Figs. 1–2); correlation flow — per-layer alpha against relative depth,
the layer mean with the band of its slices — for the chosen models (Fig. 3); histograms of alpha
and of log spectral norm comparing models (Figs. 5, 7); the ESD of one layer as a log-log
histogram with its power-law fit, xmin and MP bulk edge, recomputed from the model's weights
(skipped, with a note, when they cannot be read). Tables: what went in (runs, and every model with
its status and error), the regression summary (Table 3), per-series fits, and flags (under-trained
layers, scale collapse), and for models analysed against a base (fine-tunes, adapters with their
base) the layers that moved most (``ww_ray.analysis.shifts``: ‖ΔW‖_F/‖W_base‖_F and the metric shifts)
with the layers whose log10 λmax fell more than 0.5 decade below the base's (scale collapse relative
to the base). Figures and flags use each model's primary rows (``shifts.primary_rows``: never the
base's rows analysed beside a fine-tune). ``index.html`` embeds everything with relative links; by default it is
written to ``<root>/report/`` (for a remote root: built locally, then copied there).

Series are keyed by ``(source, dataset, architecture)`` when the models carry a ``source``, else
by ``(dataset, architecture)``: each gets its own colour and label. Model choice: ``models`` names
them; by default each series with layer rows contributes up to ``per_series`` models spread from
its shallowest to its deepest (by number of analysed layers).
"""
from __future__ import annotations

import html
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ww_ray.analysis import flags, plots, shifts
from ww_ray.analysis.layer_esd import layer_spectrum
from ww_ray.errors import SpectrumUnavailable
from ww_ray.analysis.regression import DEFAULT_METRICS, metric_values, error_values, regress, summary_table
from ww_ray.store import read_table
from ww_ray.store.root import RootLike, StoreRoot, resolve_root

#: The ESD plot wants at least this many eigenvalues; a sliced layer's matrices are pooled to get them.
ESD_MIN_EVALS = 200
#: Folder of the report under the dataset root when no output folder is given.
REPORT_DIR = "report"
#: Columns shown as whole numbers (nullable) in the HTML tables.
_INT_COLUMNS = ("slice_id", "layer_index", "N", "M", "n", "num_evals", "num_layers", "num_failed_layers",
                "attempts", "params", "layers_ok", "layers_total")


@dataclass
class Report:
    html_path: Path
    images: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    uploaded_to: str | None = None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def series_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that key a series: (source, dataset, architecture) when ``source`` is there, else (dataset, architecture)."""
    has_source = "source" in frame.columns and frame["source"].notna().any()
    return ["source", "dataset", "architecture"] if has_source else ["dataset", "architecture"]


def series_label(values: dict) -> str:
    """``architecture [source]`` (or ``dataset (all architectures)`` when no architecture), for legends."""
    architecture = values.get("architecture")
    label = str(architecture) if isinstance(architecture, str) else f"{values.get('dataset')} (all architectures)"
    source = values.get("source")
    return f"{label} [{source}]" if isinstance(source, str) else label


def choose_models(layers: pd.DataFrame, models: Sequence[str] | None = None, max_series: int = 4,
                  per_series: int = 6) -> dict[str, list[str]]:
    """Series label → model ids to compare: the given ``models`` (one group), or per series with
    layer rows up to ``per_series`` models evenly spread by depth, always including the shallowest
    and the deepest (at most ``max_series`` series, largest first)."""
    ok = layers[layers["status"] == "ok"] if len(layers) else layers
    if models:
        missing = sorted(set(models) - set(ok["model_id"])) if len(ok) else sorted(models)
        if missing:
            raise ValueError(f"no analysed layers for model(s) {missing} in this dataset")
        return {"selected models": list(models)}
    if ok.empty:
        return {}
    keys = series_columns(ok)
    depth = ok.groupby(keys + ["model_id"], dropna=False)["layer_index"].nunique().reset_index()
    chosen = {}
    sizes = depth.groupby(keys, dropna=False).size().sort_values(ascending=False)
    for key, _ in sizes.head(max_series).items():
        key = key if isinstance(key, tuple) else (key,)
        mask = np.ones(len(depth), dtype=bool)
        for column, value in zip(keys, key):
            mask &= (depth[column].isna() if pd.isna(value) else depth[column] == value).to_numpy()
        group = depth[mask].sort_values(["layer_index", "model_id"])
        positions = np.unique(np.round(np.linspace(0, len(group) - 1, min(per_series, len(group)))).astype(int))
        label_values = dict(zip(keys, key))
        named = [str(label_values[k]) for k in ("dataset", "architecture") if not pd.isna(label_values.get(k))]
        label = "/".join(named) or "no dataset or architecture"
        if "source" in label_values:
            label += f" [{label_values['source']}]"
        chosen[label] = group["model_id"].iloc[positions].tolist()
    return chosen


def relative_depth(model_layers: pd.DataFrame) -> pd.Series:
    """Each row's layer position over the model's layers, 0 (first layer) to 1 (last), counting
    every layer the model's rows list (skipped ones too), so models of different depth line up."""
    order = np.sort(model_layers["layer_index"].dropna().unique())
    if order.size <= 1:
        return pd.Series(0.0, index=model_layers.index)
    rank = pd.Series(np.arange(order.size, dtype=float), index=order)
    return model_layers["layer_index"].map(rank) / (order.size - 1)


def _metric_figures(models: pd.DataFrame, regressions: pd.DataFrame, out: Path) -> list[tuple[str, Path]]:
    figures = []
    ok = models[models["status"] == "ok"]
    for (dataset, metric, target), fits in regressions.groupby(["dataset", "metric", "target"], sort=True, dropna=False):
        points = []
        labels = []
        for fit in fits.itertuples(index=False):
            mask = ok["model_id"].isin(list(fit.model_ids))
            for column in ("source", "dataset", "architecture"):
                value = getattr(fit, column, None)
                if isinstance(value, str) and column in ok.columns:
                    mask &= ok[column] == value
            subset = ok[mask]
            label = series_label(fit._asdict())
            labels.append(label)
            points.append(pd.DataFrame({"series": label, "model": subset["model_id"].to_numpy(),
                                        "x": metric_values(subset, metric).to_numpy(),
                                        "y": error_values(subset, target).to_numpy()}))
        frame = pd.concat(points, ignore_index=True) if points else pd.DataFrame(columns=["series", "model", "x", "y"])
        table = fits.assign(series=labels)[["series", "slope", "intercept", "r2"]]
        title = f"{dataset}: {plots.metric_label(target)} vs {plots.metric_label(metric)}"
        path = plots.metric_vs_error(frame.dropna(subset=["x", "y"]), table, metric, target, title,
                                     out / f"metric_vs_error_{_slug(dataset)}_{_slug(metric)}.png")
        figures.append((title, path))
    return figures


def default_out_dir(root: RootLike) -> str:
    """Where the report goes when no folder is given: ``<root>/report``."""
    root = resolve_root(root)
    return root.join(REPORT_DIR)


def build_report(
    root: RootLike,
    out_dir: str | Path | None = None,
    models: Sequence[str] | None = None,
    metrics: Sequence[str] = DEFAULT_METRICS,
    esd_model: str | None = None,
    esd_layer: str | None = None,
    esd_slice: int | None = None,
    min_models: int = 4,
    esd_min_evals: int = ESD_MIN_EVALS,
) -> Report:
    """Draw every figure and write ``index.html`` into ``out_dir`` (default ``<root>/report``);
    returns the page, images and notes. For a remote root with no ``out_dir`` the report is built in
    a local temporary folder and copied to ``<root>/report`` (``Report.uploaded_to``)."""
    root = resolve_root(root)
    if out_dir is None and not root.is_local:
        with tempfile.TemporaryDirectory(prefix="ww-report-") as tmp:
            report = _build(root, Path(tmp), models, metrics, esd_model, esd_layer, esd_slice, min_models, esd_min_evals)
            target = default_out_dir(root)
            root.filesystem.create_dir(target, recursive=True)
            for path in [report.html_path, *report.images]:
                with root.filesystem.open_output_stream(f"{target}/{path.name}") as stream:
                    stream.write(path.read_bytes())
            report.uploaded_to = f"{root.uri.rstrip('/')}/{REPORT_DIR}"
            return report
    out = Path(out_dir) if out_dir is not None else Path(default_out_dir(root))
    return _build(root, out, models, metrics, esd_model, esd_layer, esd_slice, min_models, esd_min_evals)


def _build(root: StoreRoot, out: Path, models, metrics, esd_model, esd_layer, esd_slice, min_models: int,
           esd_min_evals: int) -> Report:
    out.mkdir(parents=True, exist_ok=True)
    model_table = read_table(root, "models")
    all_layers = read_table(root, "layers")
    layer_table = shifts.primary_rows(all_layers)
    regressions = read_table(root, "regressions")
    runs = read_table(root, "runs")
    notes: list[str] = []
    sections: list[str] = [_inputs_section(runs, model_table, layer_table)]
    images: list[Path] = []
    if regressions.empty and not model_table.empty:
        regressions = regress(model_table, metrics=[m for m in metrics if _has_metric(model_table, m)],
                              min_models=min_models, by=series_columns(model_table))
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
        sections.append("<h2>Regression summary (mean and std over series)</h2>" + _table_html(summary))
        cols = [c for c in ("source", "dataset", "architecture") if c in regressions.columns and regressions[c].notna().any()]
        cols += ["metric", "target", "n", "slope", "r2", "mse", "rmse", "kendall_tau", "slope_p"]
        sections.append("<h2>Per-series fits</h2>" + _table_html(regressions[cols]))

    # Figure 3 and 5/7: correlation flow and histograms
    groups = choose_models(layer_table, models)
    flow_figs, hist_figs = [], []
    ok_layers = layer_table[layer_table["status"] == "ok"] if len(layer_table) else layer_table
    for label, ids in groups.items():
        flows = {}
        for m in ids:
            rows = layer_table[layer_table["model_id"] == m]
            rows = rows.assign(depth=relative_depth(rows))
            flows[m] = rows[rows["status"] == "ok"][["depth", "alpha"]].dropna()
        title = f"Correlation flow: layer α vs relative depth ({label})"
        flow_figs.append((title, plots.correlation_flow(flows, title, out / f"correlation_flow_{_slug(label)}.png")))
        for metric in ("alpha", "log_spectral_norm"):
            values = {m: ok_layers.loc[ok_layers["model_id"] == m, metric].to_numpy(dtype=float) for m in ids}
            title = f"Histogram of {plots.metric_label(metric, per_layer=True)} ({label})"
            hist_figs.append((title, plots.histograms(values, plots.metric_label(metric, per_layer=True), title,
                                                      out / f"hist_{metric}_{_slug(label)}.png")))
    if not groups:
        notes.append("No layer rows: no correlation-flow, histogram or ESD plots.")
    images += [p for _, p in flow_figs + hist_figs]
    sections.append(_section("Correlation flow", flow_figs))
    sections.append(_section("Histograms of layer metrics", hist_figs))

    # ESD of one layer
    # only rows a model's uri alone reproduces (its own weights, an adapter's deltas; not merged rows)
    esd_rows = ok_layers[shifts.reproducible_from_uri(ok_layers)] if len(ok_layers) else ok_layers
    esd_fig = _esd_figure(model_table, esd_rows, groups, esd_model, esd_layer, esd_slice, out, notes, esd_min_evals)
    if esd_fig:
        images.append(esd_fig[1])
    sections.append(_section("ESD of one layer", [esd_fig] if esd_fig else []))

    # Flags
    under = flags.under_trained_layers(layer_table)
    collapse = flags.scale_collapse(model_table)
    sections.append(f"<h2>Flags</h2><h3>Under-trained layers (alpha &gt; {flags.UNDER_TRAINED_ALPHA:g}): {len(under)}</h3>"
                    + _table_html(under.head(100))
                    + f"<h3>Scale collapse (mean log10 λmax more than 1 decade below the series median): {len(collapse)}</h3>"
                    + _table_html(collapse))
    sections.append(_base_section(all_layers))
    page = out / "index.html"
    page.write_text(_page(str(root), sections, notes), encoding="utf-8")
    return Report(html_path=page, images=images, notes=notes)


def _base_section(layers: pd.DataFrame) -> str:
    """Fine-tunes and adapters against their base: the layers that moved most, and scale collapse."""
    moved = shifts.layer_shifts(layers)
    if moved.empty:
        return "<h2>Against the base</h2><p>(no model was analysed against a base)</p>"
    columns = [c for c in ("model_id", "layer_name", "slice_id", "weight_role", "base_model", "relative_change",
                           "d_alpha", "d_log_spectral_norm", "d_log_norm", "alpha_base", "log_spectral_norm_base")
               if c in moved.columns]
    top = moved.groupby("model_id", sort=False).head(20) if "model_id" in moved else moved.head(20)
    collapsed = shifts.base_scale_collapse(layers)
    return ("<h2>Against the base</h2><h3>Layers that moved most (‖ΔW‖_F / ‖W_base‖_F, top 20 per model)</h3>"
            + _table_html(top[columns])
            + f"<h3>Scale collapse relative to the base (log10 λmax more than {shifts.BASE_COLLAPSE_DECADES:g} "
              f"decade below the base's): {len(collapsed)}</h3>" + _table_html(collapsed[columns]))


def _inputs_section(runs: pd.DataFrame, models: pd.DataFrame, layers: pd.DataFrame) -> str:
    """What went in: the runs, every model (ok or not) with its layer counts, and what failed."""
    parts = ["<h2>What went in</h2>"]
    if len(models):
        counts = models["status"].value_counts()
        parts.append("<p>" + html.escape(f"{len(models)} models: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
                     + f"; {len(runs)} runs.</p>")
    if len(runs):
        columns = [c for c in ("run_id", "kind", "status", "started_at", "finished_at", "preset") if c in runs.columns]
        table = runs[columns].copy()
        if "counts" in runs.columns:
            table["counts"] = runs["counts"].map(_counts_text)
        parts.append("<h3>Runs</h3>" + _table_html(table))
    if len(models):
        table = models.copy()
        if len(layers):
            per_model = layers.groupby("model_id")["status"].agg(layers_ok=lambda s: int((s == "ok").sum()),
                                                                layers_total="size")
            table = table.merge(per_model, left_on="model_id", right_index=True, how="left")
        figure = next((c for c in ("top1_error", "top5_error", "reported_value") if c in table.columns), None)
        columns = [c for c in ("model_id", "source", "dataset", "architecture", "status", figure, "num_layers",
                               "layers_ok", "layers_total", "run_id", "error") if c and c in table.columns]
        ordered = table.assign(_failed=table["status"] != "ok").sort_values(["_failed", "model_id"], ascending=[False, True])
        parts.append("<h3>Models (failed and skipped first)</h3>" + _table_html(ordered[columns]))
    failures = [row for run in runs.to_dict("records") for row in _run_failures(run)]
    if failures:
        parts.append("<h3>Failures recorded by the runs</h3>" + _table_html(pd.DataFrame(failures)))
    return "".join(parts)


def _run_failures(run: dict) -> list[dict]:
    """One row per failed model, zoo error or unfinished model a run manifest records."""
    import json

    rows = []
    for field_name in ("failures", "zoo_errors", "unfinished"):
        value = run.get(field_name)
        try:
            items = json.loads(value) if isinstance(value, str) else []
        except ValueError:
            items = [value]
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, dict):
                what = item.get("model_id") or item.get("zoo") or item.get("source") or ""
                detail = item.get("error") or item.get("message") or json.dumps(item, sort_keys=True)
                status = item.get("status") or field_name.replace("_", " ")
            else:
                what, detail, status = " / ".join(map(str, item)) if isinstance(item, list) else str(item), "", field_name
            rows.append({"run_id": run["run_id"], "kind": field_name.replace("_", " "), "model or zoo": what,
                         "status": status, "error": detail})
    return rows


def _counts_text(value: object) -> str:
    import json

    if not isinstance(value, str):
        return ""
    try:
        counts = json.loads(value)
    except ValueError:
        return value
    return ", ".join(f"{k} {v}" for k, v in counts.items()) if isinstance(counts, dict) else value


def _has_metric(models: pd.DataFrame, metric: str) -> bool:
    try:
        return bool(metric_values(models, metric).notna().any())
    except KeyError:
        return False


def choose_esd_layer(layers: pd.DataFrame, model_ids: Sequence[str], min_evals: int = ESD_MIN_EVALS) -> dict | None:
    """The layer whose ESD the report draws: in the first of ``model_ids`` that has one, a single
    matrix with at least ``min_evals`` eigenvalues (the largest), else the layer whose matrices
    pooled give the most eigenvalues (at least ``min_evals`` when any layer reaches it).

    Returns the chosen row (as a dict) with ``pool`` (draw all the layer's matrices together) and
    ``num_evals_total`` (the eigenvalues that will be drawn); None when no model has analysed layers.
    """
    best = None
    for model_id in model_ids:
        rows = layers[(layers["model_id"] == model_id) & (layers["status"] == "ok")]
        if rows.empty:
            continue
        rows = rows.assign(num_evals=pd.to_numeric(rows["num_evals"], errors="coerce").fillna(0))
        single = rows.sort_values(["num_evals", "layer_index"], ascending=[False, True]).iloc[0]
        if single["num_evals"] >= min_evals:
            return {**single.to_dict(), "pool": False, "num_evals_total": int(single["num_evals"])}
        pooled = rows.groupby("layer_name", sort=False).agg(total=("num_evals", "sum"), first=("layer_index", "min"),
                                                            matrices=("num_evals", "size"))
        pooled = pooled.sort_values(["total", "first"], ascending=[False, True])
        name = pooled.index[0]
        row = rows[rows["layer_name"] == name].iloc[0]
        candidate = {**row.to_dict(), "pool": int(pooled["matrices"].iloc[0]) > 1,
                     "num_evals_total": int(pooled["total"].iloc[0])}
        if candidate["num_evals_total"] >= min_evals:
            return candidate
        if best is None or candidate["num_evals_total"] > best["num_evals_total"]:
            best = candidate
    return best


def _esd_figure(models, layers, groups, esd_model, esd_layer, esd_slice, out: Path, notes: list[str],
                min_evals: int):
    if layers.empty:
        return None
    chosen_ids = [m for ids in groups.values() for m in ids]
    if esd_layer is not None:
        model_id = esd_model or next(iter(chosen_ids), None)
        candidates = layers[(layers["model_id"] == model_id) & (layers["layer_name"] == esd_layer)]
        if esd_slice is not None:
            candidates = candidates[candidates["slice_id"] == esd_slice]
        if candidates.empty:
            notes.append(f"ESD plot skipped: no analysed layer {esd_layer} of model {model_id}.")
            return None
        row = {**candidates.iloc[0].to_dict(), "pool": esd_slice is None and len(candidates) > 1}
    else:
        row = choose_esd_layer(layers, [esd_model] if esd_model else chosen_ids, min_evals)
        if row is None:
            notes.append(f"ESD plot skipped: no analysed layer of model {esd_model or chosen_ids}.")
            return None
        if row["num_evals_total"] < min_evals:
            notes.append(f"ESD plot: no layer has {min_evals} eigenvalues; drawn with the most found, {row['num_evals_total']}.")
    model_id = row["model_id"]
    model_rows = models[models["model_id"] == model_id]
    uri = model_rows["uri"].iloc[0] if len(model_rows) else None
    slice_id = None if row["pool"] or pd.isna(row["slice_id"]) else int(row["slice_id"])
    conv_method = row.get("conv_method") if isinstance(row.get("conv_method"), str) else None
    try:
        spectrum = layer_spectrum(uri if isinstance(uri, str) else None, row["layer_name"], slice_id,
                                  row.get("preset"), conv_method, pool_slices=row["pool"])
    except SpectrumUnavailable as exc:
        notes.append(f"ESD plot of {model_id} / {row['layer_name']} skipped: {exc}")
        return None
    if row["pool"]:
        where = f"{row['layer_name']}, its {spectrum.num_matrices} slices pooled"
    else:
        where = f"{row['layer_name']}" + (f" slice {slice_id}" if slice_id is not None else "")
    title = f"ESD of {model_id} / {where} ({spectrum.N}×{spectrum.M} matrices)" if row["pool"] \
        else f"ESD of {model_id} / {where} ({spectrum.N}×{spectrum.M})"
    lambda_plus = spectrum.mp.lambda_plus if spectrum.mp else None
    path = plots.esd(spectrum.evals, spectrum.fit.alpha, spectrum.fit.xmin, lambda_plus, title,
                     out / f"esd_{_slug(model_id)}_{_slug(row['layer_name'])}.png",
                     sigma=spectrum.fit.sigma, n_tail=spectrum.fit.n_tail, threshold=spectrum.threshold)
    stored = row.get("alpha")
    if not row["pool"] and stored is not None and np.isfinite(stored) and np.isfinite(spectrum.fit.alpha) \
            and abs(stored - spectrum.fit.alpha) > 1e-6 * max(1.0, abs(stored)):
        notes.append(f"ESD of {model_id} / {where}: recomputed alpha {spectrum.fit.alpha:.4f} differs from the stored {stored:.4f}.")
    caption = title
    if row["pool"]:
        per_slice = layers[(layers["model_id"] == model_id) & (layers["layer_name"] == row["layer_name"])]["alpha"]
        caption += (f" — each slice alone has {int(row['num_evals'])} eigenvalues, too few for a readable histogram;"
                    f" the pooled fit (α = {spectrum.fit.alpha:.2f}) is not the stored per-slice α "
                    f"({per_slice.min():.2f}–{per_slice.max():.2f}, mean {per_slice.mean():.2f}).")
    return (caption, path)


def _section(heading: str, figures: list) -> str:
    body = "".join(
        f'<figure><a href="{html.escape(p.name)}"><img src="{html.escape(p.name)}" alt="{html.escape(t)}"></a>'
        f'<figcaption>{html.escape(t)}</figcaption></figure>'
        for t, p in figures
    )
    return f"<h2>{html.escape(heading)}</h2>" + (body or "<p>(none)</p>")


def display_frame(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """A table as shown: whole-number columns as integers, floats rounded, missing values (NaN, None) blank."""
    shown = frame.copy()
    for column in shown.columns:
        values = shown[column]
        if column in _INT_COLUMNS and pd.api.types.is_numeric_dtype(values):
            shown[column] = [("" if pd.isna(v) else str(int(round(v)))) for v in values]
        elif pd.api.types.is_float_dtype(values):
            shown[column] = values.map(lambda v: "" if pd.isna(v) else f"{v:.{digits}g}")
        else:
            shown[column] = values.astype(object).where(values.notna(), "").map(str)
    return shown


def _table_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>(none)</p>"
    return display_frame(frame).to_html(index=False, escape=True, border=0, classes="data")


def _page(root: str, sections: list[str], notes: list[str]) -> str:
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ww_ray report: {html.escape(root)}</title>
<style>body{{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}}
figure{{margin:1em 0}} img{{max-width:100%;height:auto;border:1px solid #eee}} figcaption{{font-size:14px;color:#333}}
table.data{{border-collapse:collapse;font-size:13px;margin-bottom:1em}} td,th{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}}</style>
</head><body><h1>ww_ray report</h1><p>Dataset root: <code>{html.escape(root)}</code></p>
{"<h2>Notes</h2><ul>" + note_html + "</ul>" if notes else ""}
{"".join(sections)}
</body></html>
"""
