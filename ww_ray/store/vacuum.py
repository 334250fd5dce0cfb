"""Remove what killed writers left behind in a dataset root: stale temp files and orphan layers files.

Writers never leave a half-written file visible (``paths.atomic_write``), and readers never show the
layers of a commit whose ``models`` row is missing (``reader.read_table``). What a crash can leave is
invisible but takes space:

* a hidden temp file (``.<name>.<hex>.tmp``) when the process died between writing and renaming it;
  on object stores (S3, GCS), where the "rename" is a copy, this is the usual leftover of a kill;
* an orphan ``layers`` file when the process died between a model's layers file and its models row
  (the model is redone by the next run, so the orphan's rows are never needed);
* files a compaction replaced (readers no longer read them), once the compaction is older than
  ``older_than_s``, and a compaction's output whose manifest was never written (a killed compaction).

:func:`vacuum` deletes both, but only when they are older than ``older_than_s`` (default one hour),
so a writer still running beside it never loses a file it is about to rename or link. It never
touches a committed file that a reader can see.

Example::

    >>> import tempfile
    >>> from ww_ray.store.vacuum import vacuum
    >>> vacuum(tempfile.mkdtemp(), dry_run=True).removed
    []
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ww_ray.store.compact import COMPACTED_TABLES, retire
from ww_ray.store.reader import MODEL_KEY, open_pyarrow
from ww_ray.store.snapshot import COMPACTED_SUFFIX, snapshot
from ww_ray.store.root import TABLE_NAMES, RootLike, StoreRoot, resolve_root

#: Columns that tie a layers row to its models row (as in ``reader.read_table``).
LINK_COLUMNS = MODEL_KEY + ["run_id", "commit_id"]
DEFAULT_OLDER_THAN_S = 3600.0


@dataclass
class VacuumReport:
    """What :func:`vacuum` found: paths (inside the root's filesystem), removed or, on a dry run, to remove."""

    temp_files: list[str] = field(default_factory=list)
    orphan_layers_files: list[str] = field(default_factory=list)
    compacted_away: list[str] = field(default_factory=list)
    kept_too_young: int = 0
    bytes: int = 0
    dry_run: bool = False

    @property
    def removed(self) -> list[str]:
        return [] if self.dry_run else self.temp_files + self.orphan_layers_files + self.compacted_away


def _age_s(info: pafs.FileInfo, now: float) -> float:
    mtime = info.mtime
    return float("inf") if mtime is None else now - mtime.timestamp()


def _temp_files(root: StoreRoot) -> list[pafs.FileInfo]:
    found = []
    for table in TABLE_NAMES:
        selector = pafs.FileSelector(root.table_dir(table), recursive=True, allow_not_found=True)
        found += [info for info in root.filesystem.get_file_info(selector)
                  if info.type == pafs.FileType.File and info.base_name.startswith(".")
                  and info.base_name.endswith(".tmp")]
    return found


def _committed_links(root: StoreRoot) -> set[tuple]:
    models = open_pyarrow(root, "models").to_table(columns=LINK_COLUMNS).to_pylist()
    return {tuple(row[c] for c in LINK_COLUMNS) for row in models}


def _file_links(root: StoreRoot, path: str) -> set[tuple]:
    # A layers file holds one model commit, so this reads a few columns of one small file.
    with root.filesystem.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        present = [c for c in LINK_COLUMNS if c in parquet.schema_arrow.names]
        rows = parquet.read(columns=present).to_pylist()
    return {tuple(row.get(c) for c in LINK_COLUMNS) for row in rows}


def vacuum(root: RootLike, older_than_s: float = DEFAULT_OLDER_THAN_S, dry_run: bool = False,
           now: float | None = None) -> VacuumReport:
    """Delete stale temp files and orphan layers files older than ``older_than_s`` seconds.

    Args:
        root: the dataset root (local folder or pyarrow URI).
        older_than_s: only files last modified at least this long ago are candidates; keep it well
            above the longest commit of any writer that may run at the same time.
        dry_run: report what would be removed, remove nothing.
        now: the current time as a Unix timestamp (tests).
    """
    if older_than_s < 0:
        raise ValueError(f"older_than_s must be >= 0, got {older_than_s}")
    root = resolve_root(root)
    now = time.time() if now is None else now
    report = VacuumReport(dry_run=dry_run)
    old: list[pafs.FileInfo] = []
    for info in _temp_files(root):
        if _age_s(info, now) >= older_than_s:
            report.temp_files.append(info.path)
            old.append(info)
        else:
            report.kept_too_young += 1
    for table in COMPACTED_TABLES:
        visible, manifests = snapshot(root, table)
        outputs = {p for m in manifests for p in m.outputs} | set(visible)
        selector = pafs.FileSelector(root.table_dir(table), recursive=True, allow_not_found=True)
        for info in root.filesystem.get_file_info(selector):
            if info.base_name.endswith(COMPACTED_SUFFIX) and info.path not in outputs:
                if _age_s(info, now) >= older_than_s:  # output of a compaction killed before its manifest
                    report.compacted_away.append(info.path)
                    old.append(info)
                else:
                    report.kept_too_young += 1
        report.compacted_away += retire(root, table, older_than_s, now, dry_run=dry_run)
    layers_files = snapshot(root, "layers")[0]
    if layers_files:
        committed = _committed_links(root)
        infos = root.filesystem.get_file_info(layers_files)
        for info in infos:
            if _file_links(root, info.path) & committed:
                continue
            if _age_s(info, now) >= older_than_s:
                report.orphan_layers_files.append(info.path)
                old.append(info)
            else:
                report.kept_too_young += 1
    report.bytes = sum(max(0, info.size or 0) for info in old)
    if not dry_run:
        for info in old:
            root.filesystem.delete_file(info.path)
    return report
