"""Where a dataset lives: resolve a root (local path or pyarrow URI) to a filesystem once.

A dataset root is either a local folder (``ww-results``, ``/data/ww``, ``file:///data/ww``) or a URI
that ``pyarrow.fs.FileSystem.from_uri`` understands (``s3://bucket/prefix``, ``gs://bucket/prefix``,
``hdfs://...``, ``abfs://...``). :func:`resolve_root` turns it into a :class:`StoreRoot` — the
filesystem plus the base path inside it — which every store function accepts in place of the string,
so a long-running writer resolves (and authenticates) once. ``StoreRoot`` pickles, so it can be
shipped to Ray workers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import pyarrow.fs as pafs

#: The four tables of a dataset root (DESIGN.md §3).
TABLE_NAMES = ("layers", "models", "regressions", "runs")


@dataclass(frozen=True)
class StoreRoot:
    """A resolved dataset root: ``filesystem`` and the base ``path`` inside it (no trailing slash)."""

    filesystem: pafs.FileSystem
    path: str
    uri: str

    @property
    def is_local(self) -> bool:
        return isinstance(self.filesystem, pafs.LocalFileSystem)

    def join(self, *parts: str) -> str:
        """The path (inside ``filesystem``) of ``parts`` under the root, '/'-separated."""
        return "/".join([self.path.rstrip("/"), *[p.strip("/") for p in parts if p]])

    def table_dir(self, name: str) -> str:
        if name not in TABLE_NAMES:
            raise ValueError(f"unknown table {name!r}; the tables are {', '.join(TABLE_NAMES)}")
        return self.join(name)

    def __str__(self) -> str:
        return self.uri


RootLike = Union[str, os.PathLike, StoreRoot]


def resolve_root(root: RootLike) -> StoreRoot:
    """Resolve ``root`` (a local path, a ``file://`` or remote URI, or a ``StoreRoot``) once.

    Local paths are made absolute (so a relative root keeps meaning the same folder if the working
    directory changes later). Nothing is created; writers create folders as needed.
    """
    if isinstance(root, StoreRoot):
        return root
    if isinstance(root, os.PathLike):
        root = os.fspath(root)
    if not isinstance(root, str) or not root.strip():
        raise ValueError(f"a dataset root must be a non-empty path or URI, got {root!r}")
    text = root.strip()
    if "://" not in text:
        path = Path(text).expanduser().absolute().as_posix()
        return StoreRoot(pafs.LocalFileSystem(), path.rstrip("/") or "/", path)
    try:
        filesystem, path = pafs.FileSystem.from_uri(text)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError with terse messages
        raise ValueError(
            f"cannot open dataset root {text!r}: {exc}. Use a local folder or a URI pyarrow supports "
            "(file://, s3://, gs://, hdfs://, abfs://) with credentials in the environment."
        ) from exc
    return StoreRoot(filesystem, path.rstrip("/") or "/", text.rstrip("/"))
