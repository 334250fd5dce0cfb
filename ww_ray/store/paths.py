"""File and partition naming inside a dataset root, and atomic (temp + rename) writes.

Layout (DESIGN.md §3)::

    <root>/layers/source=<zoo>/dataset=<dataset>/<run_id>-<uuid>.parquet
    <root>/models/source=<zoo>/dataset=<dataset>/<run_id>-<uuid>.parquet
    <root>/regressions/<run_id>-<uuid>.parquet
    <root>/runs/<run_id>.json

Every file is first written under a hidden temporary name in its final folder
(``.<name>.tmp``: readers' globs ``*.parquet`` / ``*.json`` never match it, and pyarrow datasets skip
names starting with ``.``) and then renamed to its final name, so a reader sees either the whole
file or nothing. Final names carry a fresh uuid, so nothing is ever overwritten in place.
Partition values are percent-encoded (Hive/URI style) so any zoo or dataset name is a safe path
segment; pyarrow and DuckDB decode them back, and the files carry the exact values as columns too.
"""
from __future__ import annotations

import contextlib
import os
import re
import uuid
from typing import Callable
from urllib.parse import quote

import pyarrow.fs as pafs

from ww_ray.errors import ConfigError
from ww_ray.store.root import StoreRoot

#: What Hive (and pyarrow, DuckDB) read back as NULL.
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
_RUN_ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
#: Test hook (issue 12 item 8): ``WW_RAY_TEST_KILL_BEFORE_RENAME=N`` makes this process die
#: (``os._exit(137)``, like a SIGKILL) after writing the temp file of its N-th atomic write and
#: before renaming it — deterministic, so a test can show a kill there loses nothing committed.
KILL_BEFORE_RENAME_ENV = "WW_RAY_TEST_KILL_BEFORE_RENAME"
_atomic_writes = 0


def partition_value(value: object) -> str:
    """A path-safe Hive partition value: percent-encoding of everything but ``[A-Za-z0-9._-]``."""
    if value is None or (isinstance(value, float) and value != value) or str(value) == "":
        return NULL_PARTITION
    text = str(value)
    encoded = quote(text, safe="")
    # '.' and '..' alone, or a leading '.'/'_', would be a special or hidden path segment.
    if encoded in (".", "..") or encoded[0] in "._":
        encoded = "%{:02X}".format(ord(encoded[0])) + encoded[1:]
    return encoded


def check_run_id(run_id: str) -> str:
    """Validate a run id (it becomes part of file names); ``ConfigError`` when it could escape the root."""
    if not isinstance(run_id, str) or not _RUN_ID_OK.match(run_id):
        raise ConfigError(
            f"run_id must be 1-200 characters from [A-Za-z0-9._-] not starting with '.', '_' or '-'; "
            f"got {run_id!r}"
        )
    return run_id


def data_file_path(root: StoreRoot, table: str, run_id: str, source: object = None,
                   dataset: object = None, partitioned: bool = True) -> str:
    """A fresh, never-used file path for one Parquet file of ``table`` written by ``run_id``."""
    name = f"{check_run_id(run_id)}-{uuid.uuid4().hex}.parquet"
    if not partitioned:
        return root.join(table, name)
    return root.join(table, f"source={partition_value(source)}", f"dataset={partition_value(dataset)}", name)


def temp_path_for(final_path: str) -> str:
    """The hidden temporary name a file is written under before being renamed to ``final_path``."""
    folder, _, name = final_path.rpartition("/")
    return f"{folder}/.{name}.{uuid.uuid4().hex[:8]}.tmp"


def atomic_write(filesystem: pafs.FileSystem, final_path: str, write: Callable[[object], None],
                 overwrite: bool = False) -> None:
    """Write ``final_path`` atomically: ``write(stream)`` into a temp file, then rename it.

    Raises ``FileExistsError`` if ``final_path`` exists and ``overwrite`` is false. If anything fails
    before the rename, the temp file is removed (best effort) and the final name never appears.
    """
    if not overwrite and filesystem.get_file_info(final_path).type != pafs.FileType.NotFound:
        raise FileExistsError(f"refusing to overwrite existing dataset file {final_path}")
    folder = final_path.rpartition("/")[0]
    filesystem.create_dir(folder, recursive=True)
    tmp = temp_path_for(final_path)
    try:
        with filesystem.open_output_stream(tmp) as stream:
            write(stream)
        _maybe_kill_before_rename()
        filesystem.move(tmp, final_path)
    except BaseException:
        # Best-effort clean-up of the hidden temp file; the original error is what the caller sees.
        with contextlib.suppress(Exception):
            if filesystem.get_file_info(tmp).type != pafs.FileType.NotFound:
                filesystem.delete_file(tmp)
        raise


def _maybe_kill_before_rename() -> None:
    global _atomic_writes
    target = os.environ.get(KILL_BEFORE_RENAME_ENV)
    if not target:
        return
    _atomic_writes += 1
    if _atomic_writes == int(target):
        os._exit(137)
