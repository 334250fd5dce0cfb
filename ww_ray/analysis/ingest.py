"""Ingest WeightWatcher results (any release) into a dataset root: per-layer rows and one row per model.

``ingest(paths, ...)`` takes, per path:

* a one-row-per-model summary CSV (a model name column, e.g. the ww-trends-2020 ``osmr`` tables):
  one ``models`` row per line, no ``layers`` rows; ``source`` defaults to the CSV's stem;
* a ``get_details()`` CSV of one model (no model column: the file stem is the model id), of the
  0.2.x, 0.4–0.6 or 0.7 layout (:mod:`ww_ray.analysis.ww_layouts`): its matrices become ``layers``
  rows, and its ``get_summary()`` saved beside it (same stem, ``.txt`` = ``str(dict)`` or
  ``.json``; read without running anything, :mod:`ww_ray.analysis.ww_files`) gives the model row's
  averages; metrics the summary lacks are averaged from the ingested rows with the project's own
  :func:`ww_ray.spectral.summary.summarize`, as are all of them when there is no summary;
  ``source`` defaults to the name of the folder holding the file;
* a summary file alone (a model row, no layers), or a folder: every such file under it, recursively.

Every model gets exactly one ``models`` row (one run, one commit per model); the reported figures
are joined from ``reported`` files (:mod:`ww_ray.analysis.reported`), the architecture series from
the model id (``ww_ray.zoos.architectures.architecture_of``). ``analyzer_version`` is recorded on
every row: the one given, or the release family the layout shows (``weightwatcher-0.2.x``); a
given version whose ``log_norm`` convention contradicts the file's layout is refused. Columns with
no ``layers``/``models`` equivalent are listed in the result and the run manifest, never silently
dropped; revision is ``""`` (a metrics file does not say which weight file it measured), so
ingesting the same files again replaces their rows.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

import ww_ray
from ww_ray.analysis import ww_files
from ww_ray.analysis import ww_layouts as layouts
from ww_ray.analysis.reported import dataset_from_name, merge_figures, read_reported
from ww_ray.keys import model_key
from ww_ray.spectral.summary import SUMMARY_METRICS, summarize
from ww_ray.store import ModelCommitter, new_run_id, write_manifest
from ww_ray.store.root import RootLike, resolve_root
from ww_ray.zoos.architectures import architecture_of

_INDEX_COLUMNS = ("unnamed: 0", "index", "")
_AVERAGED = [*SUMMARY_METRICS, *(f"{m}_compound" for m in SUMMARY_METRICS)]


@dataclass
class IngestResult:
    """What an ingest did: where, how many models and layer rows, and everything that did not fit."""

    root: str
    run_id: str
    models: int
    with_error: int
    layers: int = 0
    without_error: list[str] = field(default_factory=list)
    without_architecture: list[str] = field(default_factory=list)
    unmapped_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    analyzer_versions: list[str] = field(default_factory=list)


@dataclass
class _Model:
    source: str
    model_id: str
    files: list[Path]
    layout: str | None
    layers: pd.DataFrame | None = None
    summary: dict[str, Any] = field(default_factory=dict)  # models column -> value, from the tool's summary
    revision: str = ""


def column_map(columns: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Summary key / table column → ``models`` column for the metrics, and the names left out.

    >>> column_map(["modelname", "lognorm", "alpha_compound", "check"])
    ({'lognorm': 'log_norm', 'alpha_compound': 'alpha_compound'}, ['check'])
    """
    mapping, unmapped = {}, []
    for column in columns:
        name = str(column)
        base, compound = (name[: -len("_compound")], True) if name.endswith("_compound") else (name, False)
        target = layouts.SUMMARY_NAMES.get(base)
        if target is not None and target in SUMMARY_METRICS:
            mapping[name] = f"{target}_compound" if compound else target
        elif name.strip().lower() not in ww_files.MODEL_COLUMNS + _INDEX_COLUMNS:
            unmapped.append(name)
    return mapping, unmapped


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _value(value: object) -> object:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _inputs(paths: Sequence[str | Path], notes: list[str]) -> list[Path]:
    """The files to read: each path, or every .csv/.txt/.json under a folder (sorted, recursive)."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            kept = [p for p in found if p.suffix.lower() in (".csv", *ww_files.SUMMARY_SUFFIXES)]
            if len(kept) < len(found):
                notes.append(f"{path}: {len(found) - len(kept)} files that are not .csv/.txt/.json left out")
            if not kept:
                raise ValueError(f"{path}: no .csv, .txt or .json file in this folder")
            files.extend(kept)
        elif path.is_file():
            if path.suffix.lower() not in (".csv", *ww_files.SUMMARY_SUFFIXES):
                raise ValueError(f"{path}: not a WeightWatcher output file (expected .csv, .txt or .json)")
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique


def _summary_meaning(layout: str | None) -> str | None:
    if layout is None:
        return None
    return layouts.FROBENIUS if layout == "0.2" else layouts.FROBENIUS_SQUARED


def _check_version(analyzer_version: str | None, layout: str | None, path: Path) -> str:
    detected = layouts.LAYOUT_VERSIONS.get(layout or "", "external")
    if analyzer_version is None:
        return detected
    given, found = layouts.log_norm_meaning(analyzer_version), _summary_meaning(layout)
    if given is not None and found is not None and given != found:
        raise ValueError(f"{path}: the file has WeightWatcher's {layout} layout (log_norm = {found}) but "
                         f"--analyzer-version {analyzer_version!r} means log_norm = {given}; give the release that wrote it")
    return analyzer_version


def _read(files: list[Path], source: str | None, notes: list[str], unmapped: dict[str, None],
          mappings: dict[str, str]) -> tuple[list[_Model], list[dict]]:
    """Every model the files describe, and a record per input file for the manifest."""
    csv_stems = {p.with_suffix("") for p in files if p.suffix.lower() == ".csv"}
    models: list[_Model] = []
    records: list[dict] = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix in ww_files.SUMMARY_SUFFIXES:
            if path.with_suffix("") in csv_stems:
                continue  # read with its details CSV
            summary = ww_files.read_summary(path)
            mapping, left = column_map(list(summary))
            mappings.update(mapping)
            unmapped.update(dict.fromkeys(left))
            models.append(_Model(source or path.parent.name, path.stem, [path], layouts.detect_layout(list(summary)),
                                 summary={t: summary[k] for k, t in mapping.items()}))
            records.append({"path": str(path), "kind": "summary", "sha256": _sha256(path), "models": 1})
            continue
        frame = pd.read_csv(path)
        if ww_files.is_model_table(frame):
            models.extend(_summary_table(frame, path, source, unmapped, mappings))
            records.append({"path": str(path), "kind": "summary_table", "sha256": _sha256(path), "models": len(frame)})
            continue
        if not ({"layer_id"} <= set(map(str, frame.columns)) or {"N", "M"} <= set(map(str, frame.columns))):
            raise ValueError(f"{path}: neither a per-model summary table (no model name column (one of "
                             f"{', '.join(ww_files.MODEL_COLUMNS)})) nor a get_details() table (no layer_id or N, M columns)")
        details = ww_files.read_details(path)
        notes.extend(details.notes)
        unmapped.update(dict.fromkeys(details.unmapped))
        beside = ww_files.summary_beside(path)
        summary: dict[str, Any] = {}
        files_used = [path]
        if beside is not None:
            raw = ww_files.read_summary(beside)
            mapping, left = column_map(list(raw))
            mappings.update(mapping)
            unmapped.update(dict.fromkeys(left))
            summary = {t: raw[k] for k, t in mapping.items()}
            files_used.append(beside)
            records.append({"path": str(beside), "kind": "summary", "sha256": _sha256(beside), "models": 1})
        models.append(_Model(source or path.parent.name, path.stem, files_used, details.layout,
                             layers=details.rows, summary=summary))
        records.append({"path": str(path), "kind": f"details-{details.layout}", "sha256": _sha256(path),
                        "models": 1, "layer_rows": len(details.rows)})
    return models, records


def _summary_table(frame: pd.DataFrame, path: Path, source: str | None, unmapped: dict[str, None],
                   mappings: dict[str, str]) -> list[_Model]:
    name_column = ww_files.model_column(frame, path)
    names = frame[name_column].astype(str).str.strip()
    duplicates = sorted(set(names[names.duplicated()]))
    if duplicates:
        raise ValueError(f"{path}: duplicate model names {duplicates[:10]}")
    revision_column = next((c for c in frame.columns if str(c).lower() == "revision"), None)
    mapping, left = column_map([c for c in frame.columns if c != revision_column])
    mappings.update(mapping)
    unmapped.update(dict.fromkeys(left))
    layout = layouts.detect_layout(list(frame.columns))
    out = []
    for position, model_id in enumerate(names):
        record = frame.iloc[position]
        revision = _value(record[revision_column]) if revision_column is not None else None
        summary = {t: _value(pd.to_numeric(record[c], errors="coerce")) for c, t in mapping.items()}
        out.append(_Model(source or path.stem, model_id, [path], layout, summary=summary,
                          revision="" if revision is None else str(revision)))
    return out


def _model_row(model: _Model, figures: pd.DataFrame, run_id: str, analyzer_version: str, preset: str,
               now: _dt.datetime) -> tuple[dict[str, Any], dict[str, list[str]]]:
    figure = figures.loc[model.model_id] if model.model_id in figures.index else None
    if isinstance(figure, pd.DataFrame):
        figure = figure.iloc[0]
    get = (lambda column: _value(figure[column])) if figure is not None else (lambda column: None)
    row: dict[str, Any] = {
        "source": model.source, "model_id": model.model_id, "revision": model.revision, "run_id": run_id,
        "dataset": get("dataset") or dataset_from_name(model.model_id), "task": get("task"),
        "params": get("params"), "top1_error": get("top1_error"), "top5_error": get("top5_error"),
        "reported_value": get("reported_value"), "reported_measure": get("reported_measure"),
        "architecture": architecture_of(model.model_id), "preset": preset,
        "analyzer_version": analyzer_version, "finished_at": now, "attempts": 1}
    origin: dict[str, list[str]] = {"summary": [], "rows": []}
    if model.layers is not None and len(model.layers):
        averages = summarize(model.layers)
        row["num_layers"], row["num_failed_layers"] = averages["num_layers"], averages["num_failed_layers"]
        for column in _AVERAGED:
            value = _value(averages.get(column))
            if value is not None and model.summary.get(column) is None:
                row[column] = value
                origin["rows"].append(column)
    for column, value in model.summary.items():
        if _value(value) is not None:
            row[column] = _value(value)
            origin["summary"].append(column)
    if all(row.get(c) is None for c in _AVERAGED):
        row.update(status="failed", error=f"no metric value in {', '.join(p.name for p in model.files)}")
    else:
        row["status"] = "ok"
    return row, origin


def ingest(
    paths: Sequence[str | Path],
    reported: Sequence[str | Path],
    root: RootLike,
    source: str | None = None,
    analyzer_version: str | None = None,
    preset: str = "external",
    run_id: str | None = None,
) -> IngestResult:
    """Ingest WeightWatcher output files (or folders of them) into ``root`` as one run.

    Every file is read and checked before anything is written: a file that is not WeightWatcher
    output, a summary text that is not a dict of literals, two files giving the same model, or an
    ``analyzer_version`` that contradicts a file's layout raise ``ValueError`` and nothing is written.
    """
    started = _dt.datetime.now(_dt.timezone.utc)
    notes: list[str] = []
    unmapped: dict[str, None] = {}
    mappings: dict[str, str] = {}
    files = _inputs(paths, notes)
    models, records = _read(files, source, notes, unmapped, mappings)
    if not models:
        raise ValueError(f"no model found in {', '.join(map(str, paths))}")
    seen: dict[tuple[str, str, str], Path] = {}
    for model in models:
        key = model_key(model.source, model.model_id, model.revision)
        if key in seen:
            raise ValueError(f"model {model.model_id!r} of source {model.source!r} comes from both {seen[key]} and "
                             f"{model.files[0]}; give --source per folder or ingest them separately")
        seen[key] = model.files[0]
    versions = [_check_version(analyzer_version, m.layout, m.files[0]) for m in models]
    frames = []
    for path in reported:
        frame, file_notes = read_reported(path)
        frames.append(frame)
        notes.extend(file_notes)
    figures = merge_figures(frames).set_index("model_id")
    run_id = run_id or new_run_id()
    now = _dt.datetime.now(_dt.timezone.utc)
    without_error, without_arch, origins, layer_count = [], [], {}, 0
    with ModelCommitter(root, max_models=256, max_seconds=3600.0) as committer:
        for model, version in zip(models, versions):
            row, origin = _model_row(model, figures, run_id, version, preset, now)
            layers = model.layers if model.layers is not None else []
            committer.add(layers, row)
            layer_count += len(layers)
            if model.layers is not None:
                origins[f"{model.source}/{model.model_id}"] = origin
            if row["top1_error"] is None and row["top5_error"] is None:
                without_error.append(model.model_id)
            if not row["architecture"]:
                without_arch.append(model.model_id)
    result = IngestResult(root=str(resolve_root(root)), run_id=run_id, models=len(models), layers=layer_count,
                          with_error=len(models) - len(without_error), without_error=without_error,
                          without_architecture=without_arch, unmapped_columns=list(unmapped), notes=notes,
                          analyzer_versions=sorted(set(versions)))
    write_manifest(root, run_id, {
        "kind": "ingest",
        "ww_ray_version": ww_ray.__version__,
        "started_at": started, "finished_at": _dt.datetime.now(_dt.timezone.utc),
        "source": source, "analyzer_versions": result.analyzer_versions, "preset": preset,
        "inputs": records,
        "reported": [{"path": str(p), "sha256": _sha256(Path(p))} for p in reported],
        "column_map": mappings, "details_names": {layout: {t: list(c) for t, c in names.items()}
                                                  for layout, names in layouts.DETAILS_NAMES.items()
                                                  if any(r["kind"] == f"details-{layout}" for r in records)},
        "unmapped_columns": result.unmapped_columns,
        "averages_from": origins,
        "counts": {"models": result.models, "layers": layer_count, "with_error": result.with_error,
                   "without_error": len(without_error), "without_architecture": len(without_arch)},
    })
    return result


def ingest_metrics(
    metrics_csv: str | Path,
    reported: Sequence[str | Path],
    root: RootLike,
    source: str | None = None,
    analyzer_version: str = "external",
    preset: str = "external",
    run_id: str | None = None,
) -> IngestResult:
    """Ingest one one-row-per-model summary CSV (``source`` defaults to its stem); see :func:`ingest`.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a CSV without a model
    column or with duplicate model names.
    """
    path = Path(metrics_csv)
    if not path.is_file():
        raise FileNotFoundError(f"metrics CSV not found: {path}")
    return ingest([path], reported, root, source=source or path.stem, analyzer_version=analyzer_version,
                  preset=preset, run_id=run_id)
