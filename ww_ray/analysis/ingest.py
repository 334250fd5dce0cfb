"""Ingest an external per-model metric table (a WeightWatcher summary CSV) into a dataset root.

The result is an ordinary dataset root whose ``models`` table ``ww-ray regress`` reads like one a
sweep wrote: one row per model with its summary metrics mapped to ww_ray names, the reported
figures joined from one or more files (:mod:`ww_ray.analysis.reported`), its architecture series
(``ww_ray.zoos.architectures.architecture_of``) and dataset. There are no ``layers`` rows.

Metric names (``WW_COLUMNS``): WeightWatcher 0.2.x (``lognorm`` → ``log_norm``, ``logspectralnorm``
→ ``log_spectral_norm``, ``alpha_weighted``, ``logpnorm`` → ``log_alpha_norm``, ``alpha``, and
``spectralnorm`` — the model's average spectral norm λmax — → ``lambda_max``) and the names of
WeightWatcher ≥ 0.4 summaries; ``<name>_compound`` columns map to ``<mapped>_compound``. Columns
with no equivalent in the ``models`` schema are listed in the result, not silently dropped.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

import ww_ray
from ww_ray.analysis.reported import dataset_from_name, merge_figures, read_reported
from ww_ray.store import commit_models, new_run_id, write_manifest
from ww_ray.store.root import RootLike, resolve_root
from ww_ray.store.schema import SUMMARY_METRICS
from ww_ray.zoos.architectures import architecture_of

WW_COLUMNS = {
    # WeightWatcher 0.2.x (ww-trends-2020 "osmr" tables)
    "lognorm": "log_norm",
    "logspectralnorm": "log_spectral_norm",
    "spectralnorm": "lambda_max",
    "alpha": "alpha",
    "alpha_weighted": "alpha_weighted",
    "logpnorm": "log_alpha_norm",
    # WeightWatcher >= 0.4 get_summary() / details averages
    "log_norm": "log_norm",
    "log_spectral_norm": "log_spectral_norm",
    "spectral_norm": "lambda_max",
    "log_alpha_norm": "log_alpha_norm",
    "stable_rank": "stable_rank",
    "entropy": "entropy",
    "mp_softrank": "mp_softrank",
}
_MODEL_COLUMNS = ("modelname", "model_id", "model", "model_name", "name")
_INDEX_COLUMNS = ("unnamed: 0", "index", "")


@dataclass
class IngestResult:
    """What an ingest did: where, how many models, and everything that did not fit."""

    root: str
    run_id: str
    models: int
    with_error: int
    without_error: list[str] = field(default_factory=list)
    without_architecture: list[str] = field(default_factory=list)
    unmapped_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def column_map(columns: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """CSV column → models column for the metric columns, and the columns left out."""
    mapping, unmapped = {}, []
    for column in columns:
        name = str(column)
        base, compound = (name[: -len("_compound")], True) if name.endswith("_compound") else (name, False)
        target = WW_COLUMNS.get(base)
        if target is not None and target in SUMMARY_METRICS:
            mapping[name] = f"{target}_compound" if compound else target
        elif name.strip().lower() not in _MODEL_COLUMNS + _INDEX_COLUMNS:
            unmapped.append(name)
    return mapping, unmapped


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model_column(frame: pd.DataFrame, path: Path) -> str:
    lower = {str(c).strip().lower(): c for c in frame.columns}
    for name in _MODEL_COLUMNS:
        if name in lower:
            return lower[name]
    raise ValueError(f"{path}: no model name column (one of {', '.join(_MODEL_COLUMNS)})")


def _value(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def ingest_metrics(
    metrics_csv: str | Path,
    reported: Sequence[str | Path],
    root: RootLike,
    source: str | None = None,
    analyzer_version: str = "external",
    preset: str = "external",
    run_id: str | None = None,
) -> IngestResult:
    """Write ``metrics_csv`` joined to the ``reported`` figure files into ``root`` (one run).

    ``source`` defaults to the CSV's file stem. ``revision`` is the CSV's ``revision`` column when
    it has one, else ``""`` (unknown: a published metric table does not say which weight file it
    measured), so ingesting the same table again replaces its rows. Reported files are read in
    order; for each field the first file that has a value wins. Raises ``ValueError`` for a CSV without a model column or
    with duplicate model names.
    """
    metrics_path = Path(metrics_csv)
    if not metrics_path.is_file():
        raise FileNotFoundError(f"metrics CSV not found: {metrics_path}")
    started = _dt.datetime.now(_dt.timezone.utc)
    table = pd.read_csv(metrics_path)
    name_column = _model_column(table, metrics_path)
    names = table[name_column].astype(str).str.strip()
    duplicates = sorted(set(names[names.duplicated()]))
    if duplicates:
        raise ValueError(f"{metrics_path}: duplicate model names {duplicates[:10]}")
    mapping, unmapped = column_map([c for c in table.columns if str(c).lower() != "revision"])
    revision_column = next((c for c in table.columns if str(c).lower() == "revision"), None)
    notes: list[str] = []
    frames = []
    for path in reported:
        frame, file_notes = read_reported(path)
        frames.append(frame)
        notes.extend(file_notes)
    figures = merge_figures(frames).set_index("model_id")
    run_id = run_id or new_run_id()
    source = source or metrics_path.stem
    now = _dt.datetime.now(_dt.timezone.utc)
    rows, without_error, without_arch = [], [], []
    for position, model_id in enumerate(names):
        record = table.iloc[position]
        figure = figures.loc[model_id] if model_id in figures.index else None
        get = (lambda column: _value(figure[column])) if figure is not None else (lambda column: None)
        revision = _value(record[revision_column]) if revision_column is not None else None
        row = {"source": source, "model_id": model_id, "revision": str(revision) if revision is not None else "", "run_id": run_id,
               "dataset": get("dataset") or dataset_from_name(model_id), "task": get("task"),
               "params": get("params"), "top1_error": get("top1_error"), "top5_error": get("top5_error"),
               "reported_value": get("reported_value"), "reported_measure": get("reported_measure"),
               "architecture": architecture_of(model_id), "preset": preset,
               "analyzer_version": analyzer_version, "finished_at": now, "attempts": 1}
        for column, target in mapping.items():
            row[target] = _value(pd.to_numeric(record[column], errors="coerce"))
        if all(row.get(t) is None for t in mapping.values()):
            row.update(status="failed", error=f"no metric value in {metrics_path.name}")
        else:
            row["status"] = "ok"
        if row["top1_error"] is None and row["top5_error"] is None:
            without_error.append(model_id)
        if not row["architecture"]:
            without_arch.append(model_id)
        rows.append(row)
    commit_models(root, rows)
    result = IngestResult(root=str(resolve_root(root)), run_id=run_id, models=len(rows),
                          with_error=len(rows) - len(without_error), without_error=without_error,
                          without_architecture=without_arch, unmapped_columns=unmapped, notes=notes)
    write_manifest(root, run_id, {
        "kind": "ingest",
        "ww_ray_version": ww_ray.__version__,
        "started_at": started, "finished_at": _dt.datetime.now(_dt.timezone.utc),
        "source": source, "analyzer_version": analyzer_version, "preset": preset,
        "inputs": {"metrics": {"path": str(metrics_path), "sha256": _sha256(metrics_path)},
                   "reported": [{"path": str(p), "sha256": _sha256(Path(p))} for p in reported]},
        "column_map": mapping, "unmapped_columns": unmapped,
        "counts": {"models": result.models, "with_error": result.with_error,
                   "without_error": len(without_error), "without_architecture": len(without_arch)},
    })
    return result
