"""Readers of a dataset root: tables as pandas, latest-row semantics, manifests, resume keys.

What a reader sees (DESIGN.md §3):

* ``models``: with ``latest=True``, one row per key ``(source, model_id, revision)`` — the one with
  the greatest ``finished_at`` (ties: greatest ``run_id``; run ids sort by start time).
* ``layers``: only rows whose ``(source, model_id, revision, run_id, commit_id)`` has a ``models``
  row — a crash between a model's layers file and its models row leaves an orphan nobody sees. With
  ``latest=True``, only the layers of each key's latest models row.
* ``regressions``: with ``latest=True``, the latest row per ``(source, dataset, architecture, metric,
  target)``.
* ``runs``: one row per manifest, nested values as JSON text.

Temporary files (hidden ``.*.tmp`` names) are never read, nor files a compaction replaced or
compaction outputs not yet committed (``snapshot.py``). Files of older schema versions read with
the current schema; columns they lack are null.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from ww_ray.keys import MODEL_KEY_COLUMNS
from ww_ray.store.root import TABLE_NAMES, RootLike, StoreRoot, resolve_root
from ww_ray.store.schema import TABLE_SCHEMAS
from ww_ray.store.snapshot import visible_files

MODEL_KEY = list(MODEL_KEY_COLUMNS)
REGRESSION_KEY = ["source", "dataset", "architecture", "metric", "target"]
#: Statuses that end a model's work for good (resume skips them); ``failed`` is retried.
DONE_STATUSES = ("ok", "skipped")
_PARTITIONING = pads.partitioning(pa.schema([("source", pa.string()), ("dataset", pa.string())]), flavor="hive")


def list_files(root: StoreRoot, table: str, suffix: str) -> list[str]:
    """Committed files of ``table`` (hidden and ``_``-prefixed names, i.e. temp files, left out)."""
    selector = pafs.FileSelector(root.table_dir(table), recursive=True, allow_not_found=True)
    infos = root.filesystem.get_file_info(selector)
    return sorted(
        info.path for info in infos
        if info.type == pafs.FileType.File and info.base_name.endswith(suffix) and info.base_name[0] not in "._"
    )


def open_pyarrow(root: RootLike, table: str) -> pads.Dataset:
    """``table`` (layers | models | regressions) as a ``pyarrow.dataset.Dataset`` of every committed row.

    The canonical schema is imposed; ``source``/``dataset`` filters prune Hive partitions. No latest
    or orphan filtering is applied here (use :func:`read_table` or :func:`ww_ray.store.open_dataset`).
    """
    root = resolve_root(root)
    if table == "runs":
        raise ValueError("runs are JSON manifests, not Parquet: use read_manifests(root) or read_table(root, 'runs')")
    schema = TABLE_SCHEMAS.get(table)
    if schema is None:
        raise ValueError(f"unknown table {table!r}; the tables are {', '.join(TABLE_NAMES)}")
    files = visible_files(root, table)  # committed files, minus what compactions replaced
    partitioning = None if table == "regressions" else _PARTITIONING
    return pads.dataset(files, schema=schema, format="parquet", filesystem=root.filesystem,
                        partitioning=partitioning, partition_base_dir=root.table_dir(table))


def read_manifests(root: RootLike) -> list[dict[str, Any]]:
    """Every run manifest (``runs/*.json``), oldest run id first."""
    root = resolve_root(root)
    manifests = []
    for path in list_files(root, "runs", ".json"):
        with root.filesystem.open_input_stream(path) as stream:
            raw = stream.read()
        try:
            manifest = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"run manifest {path} is not valid JSON: {exc}") from exc
        if not isinstance(manifest, dict):
            raise ValueError(f"run manifest {path} is not a JSON object")
        manifest.setdefault("run_id", path.rpartition("/")[2][: -len(".json")])
        manifests.append(manifest)
    return sorted(manifests, key=lambda m: str(m["run_id"]))


def runs_frame(manifests: list[dict[str, Any]]) -> pd.DataFrame:
    """Manifests as a table: one row per run, nested values (dicts, lists) as JSON text."""
    rows = [
        {k: (json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v) for k, v in m.items()}
        for m in manifests
    ]
    frame = pd.DataFrame(rows)
    if "run_id" not in frame.columns:
        frame["run_id"] = pd.Series(dtype="str")
    return frame[["run_id"] + [c for c in frame.columns if c != "run_id"]]


def _read_all(root: StoreRoot, table: str) -> pd.DataFrame:
    return open_pyarrow(root, table).to_table().to_pandas()


def latest_models(models: pd.DataFrame) -> pd.DataFrame:
    """The latest row per model key of a raw ``models`` frame."""
    ordered = models.sort_values(["finished_at", "run_id"], na_position="first", kind="stable")
    return ordered.drop_duplicates(MODEL_KEY, keep="last").reset_index(drop=True)


def read_table(root: RootLike, name: str, latest: bool = True) -> pd.DataFrame:
    """One table of the dataset root as a DataFrame (see the module docstring for what is shown)."""
    root = resolve_root(root)
    if name == "runs":
        return runs_frame(read_manifests(root))
    if name == "models":
        models = _read_all(root, "models")
        return latest_models(models) if latest else models
    if name == "layers":
        # models first: a models row is written after its layers, so every row it links to is in
        # the layers files listed after it (a commit between the two reads adds only unlinked layers)
        models = _read_all(root, "models")
        layers = _read_all(root, "layers")
        if latest:
            models = latest_models(models)
        # commit_id ties layers to their model row (null == null for files written before it existed)
        link = MODEL_KEY + ["run_id", "commit_id"]
        committed = models[link].drop_duplicates()
        return layers.merge(committed, on=link, how="inner")
    if name == "regressions":
        regressions = _read_all(root, "regressions")
        if not latest:
            return regressions
        ordered = regressions.sort_values(["created_at", "run_id"], na_position="first", kind="stable")
        return ordered.drop_duplicates(REGRESSION_KEY, keep="last").reset_index(drop=True)
    raise ValueError(f"unknown table {name!r}; the tables are {', '.join(TABLE_NAMES)}")


def done_keys(root: RootLike, analyzer_version: str, preset: str | None = None) -> set[tuple[str, str, str]]:
    """Model keys ``(source, model_id, revision)`` a run with ``analyzer_version`` may skip (resume).

    A key is done when its latest ``models`` row for that analyzer version (and ``preset``, when
    given) has status ``ok`` or ``skipped``. ``failed`` is not done: failures are retried next run.
    """
    root = resolve_root(root)
    columns = MODEL_KEY + ["run_id", "finished_at", "status", "analyzer_version", "preset"]
    models = open_pyarrow(root, "models").to_table(columns=columns).to_pandas()
    models = models[models["analyzer_version"] == analyzer_version]
    if preset is not None:
        models = models[models["preset"] == preset]
    latest = latest_models(models)
    done = latest[latest["status"].isin(DONE_STATUSES)]
    return {(str(s), str(m), str(r)) for s, m, r in done[MODEL_KEY].itertuples(index=False)}
