"""Writers of a dataset root: one atomic commit per model, regression results, run manifests.

All writes go through :func:`ww_ray.store.paths.atomic_write` (temp name, then rename) into fresh
file names, so concurrent writers never collide, a crash never leaves a half-written file visible,
and nothing is overwritten in place. Rows are cast to the canonical schemas of ``schema.py``.

A model commit writes its ``layers`` file first and its ``models`` row last; readers only show layer
rows whose ``(source, model_id, revision, run_id)`` has a ``models`` row, so a crash between the two
leaves an orphan layers file that nobody sees (and the model is redone on resume).
:class:`ModelCommitter` does the same for a batch of models (what a sweep uses: fewer, larger files
and one Arrow conversion per batch instead of one per model).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import time
import uuid
from pathlib import PurePath
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ww_ray.keys import MODEL_KEY_COLUMNS
from ww_ray.store.convert import Rows, to_table
from ww_ray.store.paths import atomic_write, check_run_id, data_file_path
from ww_ray.store.root import RootLike, resolve_root
from ww_ray.store.schema import LAYERS_SCHEMA, MODELS_SCHEMA, REGRESSIONS_SCHEMA, SCHEMA_VERSION

#: Terminal statuses of a ``models`` row.
MODEL_STATUSES = ("ok", "failed", "skipped")
# Columns of a layer row that default to the model row's value.
_INHERITED = ("source", "model_id", "revision", "run_id", "architecture", "dataset", "preset", "analyzer_version")
_FORCED = ("commit_id",)


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A fresh run id that sorts by start time: ``YYYYmmddTHHMMSS.ffffffZ-<8 hex>``."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now.astimezone(_dt.timezone.utc):%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex[:8]}"


def _write_parquet(root, path: str, table: pa.Table) -> None:
    atomic_write(root.filesystem, path, lambda stream: pq.write_table(table, stream, compression="zstd"))


def _model_row(model_row: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(model_row, Mapping):
        raise TypeError(f"model_row must be a mapping, got {type(model_row).__name__}")
    row = dict(model_row)
    for key in ("source", "model_id"):
        if not isinstance(row.get(key), str) or not row[key]:
            raise ValueError(f"model_row needs a non-empty string {key!r}, got {row.get(key)!r}")
    if row.get("revision") is None:
        row["revision"] = ""  # unknown revision (e.g. an unreachable remote model): an empty string, not null
    check_run_id(row.get("run_id"))
    if row.get("status") not in MODEL_STATUSES:
        raise ValueError(f"model_row status must be one of {MODEL_STATUSES}, got {row.get('status')!r}")
    if row.get("finished_at") is None:
        row["finished_at"] = _dt.datetime.now(_dt.timezone.utc)
    if not row.get("commit_id"):
        row["commit_id"] = uuid.uuid4().hex
    return row


def commit_model(root: RootLike, layer_rows: Rows, model_row: Mapping[str, Any]) -> None:
    """Commit one model's result: its layer rows (may be empty) then its single ``models`` row.

    ``model_row`` must carry ``source``, ``model_id``, ``revision`` (None → ``""``), ``run_id`` and a
    ``status`` in ``ok | failed | skipped``; ``finished_at`` defaults to now. Layer rows inherit the
    key, ``run_id``, ``architecture``, ``dataset``, ``preset`` and ``analyzer_version`` from the model
    row where they lack them; a layer row with a different key is an error. A fresh ``commit_id``
    (unless the model row brings one) ties the layer rows to this model row, so a model committed
    twice in one run still shows one set of layers. Both files go to
    ``<table>/source=<source>/dataset=<dataset>/<run_id>-<uuid>.parquet``. Raises ``ValueError`` for
    rows that do not fit the schema, before anything is written.
    """
    root = resolve_root(root)
    row = _model_row(model_row)
    defaults = {name: row.get(name) for name in _INHERITED}
    if isinstance(layer_rows, pd.DataFrame):
        layer_rows = layer_rows.drop(columns=[c for c in _FORCED if c in layer_rows.columns])
    else:
        layer_rows = [{k: v for k, v in r.items() if k not in _FORCED} for r in layer_rows]
    defaults.update({name: row[name] for name in _FORCED})
    layers = to_table(layer_rows, LAYERS_SCHEMA, "layers", defaults=defaults)
    for key in MODEL_KEY_COLUMNS:
        values = set(layers.column(key).to_pylist())
        if values - {row[key]}:
            raise ValueError(f"layer rows carry {key}={sorted(map(str, values))} but the model row has {row[key]!r}")
    if set(layers.column("run_id").to_pylist()) - {row["run_id"]}:
        raise ValueError("layer rows carry a run_id different from the model row's")
    models = to_table([row], MODELS_SCHEMA, "models")
    if layers.num_rows:
        _write_parquet(root, data_file_path(root, "layers", row["run_id"], row["source"], row.get("dataset")), layers)
    _write_parquet(root, data_file_path(root, "models", row["run_id"], row["source"], row.get("dataset")), models)


def commit_models(root: RootLike, model_rows: Rows) -> int:
    """Commit many ``models`` rows that have no layer rows (ingested metric tables, bulk status rows).

    Each row is validated like ``commit_model``'s model row; rows are written as one atomic file
    per ``(source, dataset)`` partition. Returns the number of rows written.
    """
    root = resolve_root(root)
    records = model_rows.to_dict("records") if isinstance(model_rows, pd.DataFrame) else list(model_rows)
    rows = [_model_row(r) for r in records]
    partitions: dict[tuple[str, object], list[dict]] = {}
    for row in rows:
        dataset = row.get("dataset")
        dataset = None if dataset is None or (isinstance(dataset, float) and math.isnan(dataset)) else dataset
        partitions.setdefault((row["source"], dataset), []).append(row)
    tables = {key: to_table(part, MODELS_SCHEMA, "models") for key, part in partitions.items()}
    for (source, dataset), table in tables.items():
        run_ids = sorted(set(table.column("run_id").to_pylist()))
        _write_parquet(root, data_file_path(root, "models", run_ids[0], source, dataset), table)
    return len(rows)


def write_regressions(root: RootLike, df: Rows, run_id: str) -> str | None:
    """Append regression results (one row per series × metric) as ``regressions/<run_id>-<uuid>.parquet``.

    ``run_id`` fills the column where rows lack it and ``created_at`` defaults to now. Returns the
    path written (inside the root's filesystem), or None when there are no rows.
    """
    root = resolve_root(root)
    check_run_id(run_id)
    now = _dt.datetime.now(_dt.timezone.utc)
    table = to_table(df, REGRESSIONS_SCHEMA, "regressions", defaults={"run_id": run_id, "created_at": now})
    if table.num_rows == 0:
        return None
    path = data_file_path(root, "regressions", run_id, partitioned=False)
    _write_parquet(root, path, table)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    raise TypeError(f"manifest value of type {type(value).__name__} is not JSON serialisable: {value!r}")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_manifest(root: RootLike, run_id: str, manifest: Mapping[str, Any]) -> str:
    """Write ``runs/<run_id>.json`` atomically — the last file of a run. Returns its path.

    ``run_id`` and ``schema_version`` are added when absent. NaN/inf become null (strict JSON).
    A second manifest for the same run id is refused (``FileExistsError``).
    """
    root = resolve_root(root)
    check_run_id(run_id)
    body = dict(manifest)
    if body.setdefault("run_id", run_id) != run_id:
        raise ValueError(f"manifest says run_id={body['run_id']!r} but is written for {run_id!r}")
    body.setdefault("schema_version", SCHEMA_VERSION)
    text = json.dumps(_finite(json.loads(json.dumps(body, default=_json_default))), indent=2, allow_nan=False)
    path = root.join("runs", f"{run_id}.json")
    atomic_write(root.filesystem, path, lambda stream: stream.write(text.encode("utf-8") + b"\n"))
    return path


def _model_key(row: Mapping[str, Any]) -> tuple[str, str, str]:
    return row["source"], row["model_id"], row["revision"]


def _dataset_value(row: Mapping[str, Any]) -> object:
    dataset = row.get("dataset")
    return None if dataset is None or (isinstance(dataset, float) and math.isnan(dataset)) else dataset


def _null(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _layer_records(layer_rows: Rows, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Layer rows with the model row's key, run and commit id filled in; a different key is an error."""
    records = layer_rows.to_dict("records") if isinstance(layer_rows, pd.DataFrame) else list(layer_rows)
    out = []
    for record in records:
        if not isinstance(record, Mapping):
            raise TypeError(f"a layer row is a {type(record).__name__}, expected a mapping")
        filled = {k: v for k, v in record.items() if k not in _FORCED}
        for name in _INHERITED:
            value = filled.get(name)
            if _null(value):
                filled[name] = row.get(name)
            elif name in (*MODEL_KEY_COLUMNS, "run_id") and value != row[name]:
                raise ValueError(f"layer rows carry {name}={value!r} but the model row has {row[name]!r}")
        filled["commit_id"] = row["commit_id"]
        out.append(filled)
    return out


def _failed_row(row: Mapping[str, Any], error: str) -> dict[str, Any]:
    keep = ("source", "model_id", "revision", "run_id", "architecture", "dataset", "preset",
            "analyzer_version", "finished_at", "commit_id", "attempts")
    failed = {k: row[k] for k in keep if k in row}
    failed.update(status="failed", error=f"results could not be written: {error}")
    return failed


#: Models per commit batch (``ModelCommitter``); ``WW_RAY_COMMIT_BATCH=1`` writes one file per model.
DEFAULT_COMMIT_BATCH = 64
COMMIT_BATCH_ENV = "WW_RAY_COMMIT_BATCH"
#: Seconds a finished model may wait in the buffer: what a killed writer loses at most (redone next run).
DEFAULT_COMMIT_SECONDS = 5.0
COMMIT_SECONDS_ENV = "WW_RAY_COMMIT_SECONDS"


class CommitError(RuntimeError):
    """A ``ModelCommitter.flush`` that could not write some partitions: ``written`` and ``unwritten``
    model rows (``unwritten`` ones are not visible; the cause is ``__cause__``)."""

    def __init__(self, message: str, written: list[dict[str, Any]], unwritten: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.written = written
        self.unwritten = unwritten


class ModelCommitter:
    """Buffered model commits: many models' rows per Parquet file, one Arrow conversion per batch.

    ``stage`` (or ``add``) validates a model's rows (cheap checks, nothing converted) and buffers them;
    every ``max_models`` models or ``max_seconds`` seconds (checked by ``add`` and ``due``) the
    buffer is written — per ``(source, dataset)`` partition one ``layers`` file, then one ``models``
    file, each atomic — so a crash loses at most the models not yet written (the next run redoes
    them; a crash between the two files leaves orphan layers nobody sees, as with ``commit_model``).
    A model whose rows cannot be cast to the schema gets a ``failed`` row saying why instead (and
    none of its layers), so every staged model ends with exactly one ``models`` row per flush that
    succeeds. Use as a context manager or call ``flush()`` at the end.

    Example::

        >>> import tempfile
        >>> from ww_ray.store import ModelCommitter, new_run_id, read_table
        >>> root, run = tempfile.mkdtemp(), new_run_id()
        >>> with ModelCommitter(root, max_models=10) as committer:
        ...     committer.add([{"layer_index": 0, "alpha": 3.1}],
        ...                   {"source": "demo", "model_id": "m", "revision": "r", "run_id": run, "status": "ok"})
        []
        >>> len(read_table(root, "layers"))
        1
    """

    def __init__(self, root: RootLike, max_models: int | None = None, max_seconds: float | None = None) -> None:
        if max_models is None:
            max_models = int(os.environ.get(COMMIT_BATCH_ENV) or DEFAULT_COMMIT_BATCH)
        if max_seconds is None:
            max_seconds = float(os.environ.get(COMMIT_SECONDS_ENV) or DEFAULT_COMMIT_SECONDS)
        if max_models < 1 or max_seconds < 0:
            raise ValueError(f"max_models must be >= 1 and max_seconds >= 0, got {max_models}, {max_seconds}")
        self.root = resolve_root(root)
        self.max_models = int(max_models)
        self.max_seconds = float(max_seconds)
        self._buffer: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []
        self._first_at: float | None = None
        self.committed = 0

    def __enter__(self) -> "ModelCommitter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    def __len__(self) -> int:
        return len(self._buffer)

    def stage(self, layer_rows: Rows, model_row: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and buffer one model (layer rows may be empty); writes nothing. Returns the model
        row as it will be written (with its ``commit_id``). ``ValueError``/``TypeError`` for rows that
        can never be written (a missing key, a bad status, layer rows of another model)."""
        row = _model_row(model_row)
        self._buffer.append((_layer_records(layer_rows, row), row))
        if self._first_at is None:
            self._first_at = time.monotonic()
        return row

    def add(self, layer_rows: Rows, model_row: Mapping[str, Any]) -> list[dict[str, Any]]:
        """``stage`` one model, then ``flush`` when due; returns the model rows that flush wrote (or [])."""
        self.stage(layer_rows, model_row)
        return self.flush() if self.due() else []

    def due(self) -> bool:
        """True when the buffer holds ``max_models`` models or its oldest is ``max_seconds`` old."""
        if not self._buffer:
            return False
        return len(self._buffer) >= self.max_models or time.monotonic() - self._first_at >= self.max_seconds

    def flush(self) -> list[dict[str, Any]]:
        """Write every buffered model now; returns the model rows written (a ``failed`` row in place of a
        model whose rows did not fit the schema). When some partition cannot be written, the others
        still are and ``CommitError`` says which rows were and were not written; the unwritten ones
        are dropped from the buffer (as a kill would drop them: the next run redoes those models)."""
        batch, self._buffer, self._first_at = self._buffer, [], None
        partitions: dict[tuple[str, object], list[tuple[list[dict[str, Any]], dict[str, Any]]]] = {}
        for layers, row in batch:
            partitions.setdefault((row["source"], _dataset_value(row)), []).append((layers, row))
        written: list[dict[str, Any]] = []
        unwritten: list[dict[str, Any]] = []
        problem: BaseException | None = None
        for (source, dataset), items in partitions.items():
            layers, models, rows = self._tables(items)
            run_id = rows[0]["run_id"]
            try:
                if layers.num_rows:
                    _write_parquet(self.root, data_file_path(self.root, "layers", run_id, source, dataset), layers)
                _write_parquet(self.root, data_file_path(self.root, "models", run_id, source, dataset), models)
            except Exception as exc:  # this partition is not visible (atomic writes); go on with the others
                problem = problem or exc
                unwritten += rows
                continue
            written += rows
        self.committed += len(written)
        if problem is not None:
            raise CommitError(f"{len(unwritten)} of {len(batch)} model(s) could not be written: "
                              f"{type(problem).__name__}: {problem}", written, unwritten) from problem
        return written

    @staticmethod
    def _tables(items: list[tuple[list[dict[str, Any]], dict[str, Any]]]
                ) -> tuple[pa.Table, pa.Table, list[dict[str, Any]]]:
        rows = [row for _, row in items]
        try:  # the fast path: one conversion for the whole batch
            layers = to_table([r for layer_rows, _ in items for r in layer_rows], LAYERS_SCHEMA, "layers")
            return layers, to_table(rows, MODELS_SCHEMA, "models"), rows
        except (ValueError, TypeError):
            pass
        layer_tables, rows = [], []
        for layer_rows, row in items:  # find the models whose rows do not fit; they become failed rows
            try:
                table = to_table(layer_rows, LAYERS_SCHEMA, "layers")
                to_table([row], MODELS_SCHEMA, "models")
            except (ValueError, TypeError) as exc:
                rows.append(_failed_row(row, str(exc)))  # and none of its layers
                continue
            layer_tables.append(table)
            rows.append(row)
        layers = pa.concat_tables(layer_tables) if layer_tables else LAYERS_SCHEMA.empty_table()
        return layers, to_table(rows, MODELS_SCHEMA, "models"), rows
