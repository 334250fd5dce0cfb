"""Metadata CSVs: published figures, datasets and architecture series for models, keyed by model id.

Columns are matched by name with common aliases, so both a plain
``model_id,architecture,dataset,top1_error,top5_error`` file and the shared
``reported_accuracies.csv`` (``source,model,dataset,architecture_series,top1_error_pct,...``) work.
Any column named after a measure in ``spec.MEASURES`` (``miou``, ``ap``, ``wer`` ..., optionally
with ``_pct``) becomes a reported figure; ``top1_accuracy``/``top5_accuracy`` become errors (100 − acc).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ww_ray.errors import ZooError
from ww_ray.zoos.spec import MEASURES, normalize_dataset

_ID_COLUMNS = ("model_id", "model", "model_name", "name", "file", "repo_id")
_ALIASES = {
    "architecture": ("architecture", "architecture_series", "series", "family"),
    "dataset": ("dataset", "test_dataset"),
    "task": ("task",),
    "params": ("params", "params_if_known", "num_params", "parameters", "net_weights"),
    "source": ("source",),
    "note": ("note", "notes", "remark"),
}
_ACCURACY_COLUMNS = {"top1_accuracy": "top1_error", "top1_acc": "top1_error",
                     "top5_accuracy": "top5_error", "top5_acc": "top5_error"}
_MISSING = ("", "na", "n/a", "nan", "none", "null", "-")


@dataclass(frozen=True)
class ModelMetadata:
    """What a metadata row says about one model (None where the row is blank)."""

    model_id: str
    source: str | None = None
    architecture: str | None = None
    dataset: str | None = None
    task: str | None = None
    params: int | None = None
    figures: dict[str, float] = field(default_factory=dict, hash=False)
    note: str | None = None


def _measure_of(column: str) -> str | None:
    name = column.strip().lower()
    if name in _ACCURACY_COLUMNS:
        return name
    for suffix in ("_pct", "_percent", "_%"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name if name in MEASURES else None


def read_metadata(path: str | Path) -> list[ModelMetadata]:
    """All rows of a metadata CSV; raises ZooError naming the line of a malformed value."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c for c in (reader.fieldnames or [])]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ZooError(f"cannot read metadata CSV {path}: {exc}") from exc
    lower = {c.strip().lower(): c for c in columns if c}
    id_column = next((lower[c] for c in _ID_COLUMNS if c in lower), None)
    if id_column is None:
        raise ZooError(f"metadata CSV {path} needs a model id column (one of {list(_ID_COLUMNS)}); found {columns}")
    picked = {key: next((lower[a] for a in aliases if a in lower), None) for key, aliases in _ALIASES.items()}
    measure_columns = {c: m for c in columns if c and (m := _measure_of(c))}
    out: list[ModelMetadata] = []
    for line, row in enumerate(rows, start=2):
        model_id = cell_text(row.get(id_column))
        if model_id is None:
            continue
        figures: dict[str, float] = {}
        for column, measure in measure_columns.items():
            value = cell_number(row.get(column), path, line, column)
            if value is None:
                continue
            if measure in _ACCURACY_COLUMNS:
                figures.setdefault(_ACCURACY_COLUMNS[measure], 100.0 - value)
            else:
                figures[measure] = value
        params = cell_number(row.get(picked["params"]) if picked["params"] else None, path, line, "params")
        out.append(ModelMetadata(
            model_id=model_id,
            source=cell_text(row.get(picked["source"])) if picked["source"] else None,
            architecture=cell_text(row.get(picked["architecture"])) if picked["architecture"] else None,
            dataset=normalize_dataset(row.get(picked["dataset"])) if picked["dataset"] else None,
            task=cell_text(row.get(picked["task"])) if picked["task"] else None,
            params=None if params is None else int(params),
            figures=figures,
            note=cell_text(row.get(picked["note"])) if picked["note"] else None,
        ))
    return out


def cell_text(value: Any) -> str | None:
    """A CSV cell as text; None for an empty or missing-value cell (``na``, ``n/a``, ``nan``, ``-`` ...)."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text.lower() in _MISSING else text


def cell_number(value: Any, path: Path, line: int, column: str, strict: bool = True) -> float | None:
    """A CSV cell as a finite number (``12.5%``, ``1,234`` accepted); None when empty. Text that is no
    number is a ``ZooError`` naming the file, line and column, or None when not ``strict``."""
    text = cell_text(value)
    if text is None:
        return None
    try:
        number = float(text.rstrip("%").replace(",", ""))
    except ValueError:
        if not strict:
            return None
        raise ZooError(f"{path}, line {line}: column {column!r} holds {text!r}, not a number") from None
    if not math.isfinite(number):
        raise ZooError(f"{path}, line {line}: column {column!r} holds {text!r}, not a finite number")
    return number


def spec_updates(meta: ModelMetadata) -> dict[str, Any]:
    """``ModelSpec`` fields a metadata row sets (only those the row fills in)."""
    updates: dict[str, Any] = {}
    for name in ("architecture", "dataset", "task", "params"):
        value = getattr(meta, name)
        if value is not None:
            updates[name] = value
    return updates
