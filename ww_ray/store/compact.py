"""Compaction: rewrite a table's many small Parquet files into one sorted file per partition.

Reads stay fast as sweeps and nightly rescans accumulate because every partition of ``layers`` and
``models`` is, after a compaction, one file (sorted by model key, row groups of
``ROW_GROUP_ROWS`` so a filter on ``model_id`` reads a few row groups). Every row is kept — all
runs, every committed row — so ``*_all`` views, latest-row semantics and resume keys are unchanged.

Atomicity (``snapshot.py``): outputs are written first under ``<id>.compacted.parquet`` names that
readers ignore until the manifest ``<table>/_compactions/<id>.json`` (inputs → outputs) is written
atomically; from then on readers read the outputs instead of the inputs. A kill at any point leaves
the root reading exactly as before or exactly as after; a rerun compacts what is left. Replaced
inputs stay on disk ``retain_s`` seconds (so a reader that listed them before the commit can still
read them), then the next compaction or ``store vacuum`` deletes them, and retires manifests whose
files are all gone. Only one compaction may run on a root at a time: local roots take a lock file;
object stores have no lock, so just before its commit a compaction re-reads the manifests and gives
up (deleting its outputs) when one committed meanwhile claims any of its inputs — which leaves a
window of one manifest listing; run ``store compact`` on an object store from one place at a time.

Example::

    >>> import tempfile
    >>> from ww_ray.store.compact import compact
    >>> compact(tempfile.mkdtemp()).files_in
    0
"""
from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ww_ray.store.paths import atomic_write
from ww_ray.store.root import RootLike, StoreRoot, resolve_root
from ww_ray.store.schema import TABLE_SCHEMAS
from ww_ray.store.snapshot import COMPACTED_SUFFIX, MANIFEST_DIR, manifest_names, read_manifest, snapshot

#: Tables that are compacted (``regressions`` is small: one file per regress run).
COMPACTED_TABLES = ("models", "layers")
ROW_GROUP_ROWS = 32_768
DEFAULT_RETAIN_S = 600.0
#: ``maybe_compact`` compacts a table when a partition holds more files than this.
SMALL_FILES_THRESHOLD = 8
_SORT = [("source", "ascending"), ("model_id", "ascending"), ("revision", "ascending"), ("run_id", "ascending")]
_LAYER_SORT = _SORT + [("layer_index", "ascending")]


@dataclass
class CompactionReport:
    """What :func:`compact` did: files replaced and written, rows kept, files deleted after retention."""

    files_in: int = 0
    files_out: int = 0
    rows: int = 0
    deleted: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)


def _partition_of(root: StoreRoot, table: str, path: str) -> str:
    return path[len(root.table_dir(table)) + 1:].rpartition("/")[0]


def _read_files(root: StoreRoot, table: str, files: list[str]) -> pa.Table:
    # Canonical schema imposed, so files of older schema versions read with null for new columns.
    return pads.dataset(files, schema=TABLE_SCHEMAS[table], format="parquet", filesystem=root.filesystem).to_table()


@contextlib.contextmanager
def _local_lock(root: StoreRoot):
    if not root.is_local:
        yield
        return
    os.makedirs(root.path, exist_ok=True)
    lock = os.path.join(root.path, ".compact.lock")
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        if time.time() - os.path.getmtime(lock) < 3600:
            raise RuntimeError(f"another compaction holds {lock} (delete it if no compaction is running)")
        os.unlink(lock)  # stale lock of a killed compaction
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    try:
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(lock)


def _compact_table(root: StoreRoot, table: str, report: CompactionReport, min_files: int) -> None:
    files, known = snapshot(root, table)
    by_partition: dict[str, list[str]] = {}
    for path in files:
        by_partition.setdefault(_partition_of(root, table, path), []).append(path)
    todo = {part: paths for part, paths in by_partition.items() if len(paths) >= min_files}
    if not todo:
        return
    compaction_id = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:12]}"
    base = root.table_dir(table)
    outputs: list[str] = []
    inputs: list[str] = []
    for part, paths in sorted(todo.items()):
        data = _read_files(root, table, paths).sort_by(_LAYER_SORT if table == "layers" else _SORT)
        out = "/".join(p for p in (base, part, f"{compaction_id}{COMPACTED_SUFFIX}") if p)
        atomic_write(root.filesystem, out, lambda stream, data=data: pq.write_table(
            data, stream, compression="zstd", row_group_size=ROW_GROUP_ROWS))
        outputs.append(out)
        inputs += paths
        report.rows += data.num_rows
    body = {
        "compaction_id": compaction_id, "table": table, "created_at": time.time(),
        "inputs": [p[len(base) + 1:] for p in inputs], "outputs": [p[len(base) + 1:] for p in outputs],
    }
    manifest = f"{base}/{MANIFEST_DIR}/{compaction_id}.json"
    if _claimed_meanwhile(root, table, {m.path for m in known}, set(inputs)):
        for out in outputs:  # another compaction (another host: no lock there) replaced some input first
            root.filesystem.delete_file(out)
        raise RuntimeError(f"{table}: another compaction committed while this one ran; nothing changed, run it again")
    # The commit point: from here on readers read the outputs instead of the inputs.
    atomic_write(root.filesystem, manifest, lambda stream: stream.write(json.dumps(body).encode("utf-8")))
    report.files_in += len(inputs)
    report.files_out += len(outputs)
    report.manifests.append(manifest)


def _claimed_meanwhile(root: StoreRoot, table: str, known: set[str], inputs: set[str]) -> bool:
    """True when a manifest committed since our snapshot replaces one of ``inputs`` (a concurrent compaction)."""
    for path in manifest_names(root, table):
        if path not in known and inputs & set(read_manifest(root, table, path).inputs):
            return True
    return False


def _exists(root: StoreRoot, path: str) -> bool:
    from pyarrow.fs import FileType
    return root.filesystem.get_file_info(path).type != FileType.NotFound


def retire(root: StoreRoot, table: str, retain_s: float, now: float, dry_run: bool = False) -> list[str]:
    """Delete inputs replaced more than ``retain_s`` ago, then manifests none of whose files remain."""
    deleted: list[str] = []
    manifests = [read_manifest(root, table, p) for p in manifest_names(root, table)]
    for m in manifests:
        if now - m.created_at < retain_s:
            continue
        for path in m.inputs:
            if _exists(root, path):
                deleted.append(path)
                if not dry_run:
                    root.filesystem.delete_file(path)
    for m in manifests:
        if dry_run or now - m.created_at < retain_s:
            continue
        if not any(_exists(root, p) for p in m.inputs + m.outputs):
            root.filesystem.delete_file(m.path)
            deleted.append(m.path)
    return deleted


def compact(root: RootLike, retain_s: float = DEFAULT_RETAIN_S, min_files: int = 2,
            tables: tuple[str, ...] = COMPACTED_TABLES, now: float | None = None) -> CompactionReport:
    """Compact ``tables`` of ``root``: each partition with ``min_files`` or more visible files becomes one.

    Also deletes inputs of earlier compactions replaced more than ``retain_s`` seconds ago (0: now).
    Readers never see a duplicate or a missing row, whenever this is killed (module docstring).
    """
    if retain_s < 0:
        raise ValueError(f"retain_s must be >= 0, got {retain_s}")
    root = resolve_root(root)
    report = CompactionReport()
    if not _exists(root, root.path):
        return report
    with _local_lock(root):
        for table in tables:
            _compact_table(root, table, report, max(1, min_files))
            report.deleted += retire(root, table, retain_s, time.time() if now is None else now)
    return report


def maybe_compact(root: RootLike, threshold: int = SMALL_FILES_THRESHOLD,
                  retain_s: float = DEFAULT_RETAIN_S) -> CompactionReport | None:
    """Compact when some partition of ``layers`` or ``models`` holds more than ``threshold`` files."""
    root = resolve_root(root)
    for table in COMPACTED_TABLES:
        counts: dict[str, int] = {}
        for path in snapshot(root, table)[0]:
            part = _partition_of(root, table, path)
            counts[part] = counts.get(part, 0) + 1
        if counts and max(counts.values()) > threshold:
            return compact(root, retain_s=retain_s)
    return None
