"""Which Parquet files of a table a reader sees: committed files minus what compactions replaced.

A compaction (``compact.py``) writes ``<id>.compacted.parquet`` files, then commits a manifest
``<table>/_compactions/<id>.json`` naming its ``inputs`` and ``outputs`` (paths relative to the
table folder). The manifest is the commit point:

* a ``.compacted.parquet`` file is visible only when a committed manifest lists it as an output
  (a compaction killed before its manifest leaves an invisible output; vacuum removes it);
* a file listed as an input of a committed manifest is never visible again (its rows are in the
  outputs), even while it still exists on disk (inputs are kept ``retain_s`` so in-flight readers
  can finish, then deleted).

:func:`visible_files` reads the manifests, lists the files, and reads the manifests again, retrying
until both reads agree, so a reader racing a compaction sees either all inputs or all outputs —
never both (duplicates) and never neither (missing rows).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow.fs as pafs

from ww_ray.store.root import RootLike, StoreRoot, resolve_root

COMPACTED_SUFFIX = ".compacted.parquet"
MANIFEST_DIR = "_compactions"
_MAX_TRIES = 50


@dataclass(frozen=True)
class CompactionManifest:
    """One committed compaction of one table: ``inputs`` replaced by ``outputs`` (absolute paths)."""

    path: str
    compaction_id: str
    created_at: float
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def _list(root: StoreRoot, folder: str, recursive: bool) -> list[pafs.FileInfo]:
    selector = pafs.FileSelector(folder, recursive=recursive, allow_not_found=True)
    return [info for info in root.filesystem.get_file_info(selector) if info.type == pafs.FileType.File]


def manifest_names(root: StoreRoot, table: str) -> list[str]:
    """Paths of the committed compaction manifests of ``table`` (temp files left out)."""
    folder = root.join(table, MANIFEST_DIR)
    return sorted(i.path for i in _list(root, folder, False) if i.base_name.endswith(".json")
                  and i.base_name[0] not in "._")


def read_manifest(root: StoreRoot, table: str, path: str) -> CompactionManifest:
    with root.filesystem.open_input_stream(path) as stream:
        body = json.loads(stream.read())
    base = root.table_dir(table)
    return CompactionManifest(
        path=path, compaction_id=str(body["compaction_id"]), created_at=float(body["created_at"]),
        inputs=tuple(f"{base}/{p}" for p in body["inputs"]), outputs=tuple(f"{base}/{p}" for p in body["outputs"]))


def _committed_parquet(root: StoreRoot, table: str) -> list[str]:
    return sorted(
        i.path for i in _list(root, root.table_dir(table), True)
        if i.base_name.endswith(".parquet") and i.base_name[0] not in "._" and f"/{MANIFEST_DIR}/" not in i.path
    )


def snapshot(root: RootLike, table: str) -> tuple[list[str], list[CompactionManifest]]:
    """The visible Parquet files of ``table`` and the manifests they were resolved with (consistent)."""
    root = resolve_root(root)
    for _ in range(_MAX_TRIES):
        before = manifest_names(root, table)
        files = _committed_parquet(root, table)
        if manifest_names(root, table) != before:
            continue  # a compaction committed (or retired a manifest) meanwhile: read again
        try:
            manifests = [read_manifest(root, table, p) for p in before]
        except OSError:  # FileNotFoundError locally, OSError from object stores
            continue  # retired between listing and reading
        replaced = {p for m in manifests for p in m.inputs}
        outputs = {p for m in manifests for p in m.outputs}
        visible = [p for p in files if p not in replaced and (not p.endswith(COMPACTED_SUFFIX) or p in outputs)]
        return visible, manifests
    raise RuntimeError(f"{table}: compaction manifests kept changing while reading {root}; try again")


def visible_files(root: RootLike, table: str) -> list[str]:
    """The Parquet files of ``table`` a reader must read — the one supported file list for outside tools."""
    return snapshot(root, table)[0]
