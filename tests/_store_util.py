"""Store test helpers: a filesystem whose renames and deletes can be made to fail (crashes of a writer,
simulated), and a real S3-protocol server (moto's server mode on 127.0.0.1) to run the store tests on.

``StoreCase`` is one dataset root under test — a local folder or ``s3://bucket/<prefix>`` on the moto
server — with the few file operations the tests need, the same on both.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from typing import Callable, Iterator

import pyarrow.fs as pafs

from ww_ray.store import StoreRoot, resolve_root

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
          "AWS_EC2_METADATA_DISABLED": "true"}
S3_BUCKET = "ww-test"


# A filesystem whose rename (or delete) can be made to fail, to simulate crashes.
class HookedLocalHandler(pafs.FileSystemHandler):
    """Delegates to ``base`` (default ``LocalFileSystem``); ``on_move(src, dest)`` runs before each
    rename, and ``delete_enabled=False`` turns deletes into no-ops (a killed process cleans nothing up)."""

    def __init__(self, on_move: Callable[[str, str], None] | None = None, delete_enabled: bool = True,
                 base: pafs.FileSystem | None = None) -> None:
        self.local = base or pafs.LocalFileSystem()
        self.on_move = on_move
        self.delete_enabled = delete_enabled
        self.moves: list[str] = []

    def __eq__(self, other: object) -> bool:
        return self is other

    def __ne__(self, other: object) -> bool:
        return self is not other

    def get_type_name(self) -> str:
        return "hooked-local"

    def normalize_path(self, path: str) -> str:
        return self.local.normalize_path(path)

    def equals(self, other: object) -> bool:
        return self is other

    def get_file_info(self, paths):
        return self.local.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.local.get_file_info(selector)

    def create_dir(self, path, recursive):
        self.local.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self.local.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self.local.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise OSError("not supported in tests")

    def delete_file(self, path):
        if self.delete_enabled:
            self.local.delete_file(path)

    def move(self, src, dest):
        if self.on_move is not None:
            self.on_move(src, dest)
        self.local.move(src, dest)
        self.moves.append(dest)

    def copy_file(self, src, dest):
        self.local.copy_file(src, dest)

    def open_input_stream(self, path):
        return self.local.open_input_stream(path)

    def open_input_file(self, path):
        return self.local.open_input_file(path)

    def open_output_stream(self, path, metadata):
        return self.local.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path, metadata):
        return self.local.open_append_stream(path, metadata=metadata)


def hooked_root(path, **kwargs) -> tuple[StoreRoot, HookedLocalHandler]:
    """``path`` (a local folder, a URI or a ``StoreRoot``) behind a ``HookedLocalHandler``."""
    root = resolve_root(path)
    handler = HookedLocalHandler(base=root.filesystem, **kwargs)
    return StoreRoot(pafs.PyFileSystem(handler), root.path, root.uri), handler


@contextlib.contextmanager
def moto_s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (a free port) with one bucket; yields its ``host:port``.

    Dummy credentials go into ``os.environ`` for its lifetime (child processes inherit them)."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in S3_ENV}
    os.environ.update(S3_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"{host}:{port}"
        s3 = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http", region="us-east-1",
                               allow_bucket_creation=True)
        s3.create_dir(S3_BUCKET)
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def s3_uri(endpoint: str, prefix: str | None = None) -> str:
    """A fresh dataset root on the moto server, as a pyarrow URI any ``ww-ray`` command accepts."""
    prefix = prefix or uuid.uuid4().hex[:12]
    return f"s3://{S3_BUCKET}/{prefix}?endpoint_override={endpoint}&scheme=http&region=us-east-1"


@dataclass
class StoreCase:
    """A dataset root under test: ``uri`` is what the store functions get (a folder or an s3:// URI)."""

    kind: str  # local | s3
    uri: str

    @property
    def root(self) -> StoreRoot:
        return resolve_root(self.uri)

    def files(self, under: str = "", suffix: str = "") -> list[str]:
        """Names (relative to the root) of every file under ``under`` whose base name ends with ``suffix``."""
        root = self.root
        base = root.join(under) if under else root.path
        infos = root.filesystem.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return sorted(i.path[len(root.path) + 1:] for i in infos
                      if i.type == pafs.FileType.File and i.base_name.endswith(suffix))

    def temp_files(self) -> list[str]:
        return [f for f in self.files(suffix=".tmp") if f.rpartition("/")[2].startswith(".")]


def child_root(root: str, name: str) -> str:
    """``root``/``name`` for a folder or a URI (query parameters kept at the end)."""
    base, sep, query = str(root).partition("?")
    return f"{base.rstrip('/')}/{name}{sep}{query}"
