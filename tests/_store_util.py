"""A local filesystem whose renames and deletes can be made to fail: crashes of a writer, simulated."""
from __future__ import annotations

from typing import Callable

import pyarrow.fs as pafs

from ww_ray.store import StoreRoot


# A local filesystem whose rename (or delete) can be made to fail, to simulate crashes.
class HookedLocalHandler(pafs.FileSystemHandler):
    """Delegates to ``LocalFileSystem``; ``on_move(src, dest)`` runs before each rename, and
    ``delete_enabled=False`` turns deletes into no-ops (a killed process cleans nothing up)."""

    def __init__(self, on_move: Callable[[str, str], None] | None = None, delete_enabled: bool = True) -> None:
        self.local = pafs.LocalFileSystem()
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
    handler = HookedLocalHandler(**kwargs)
    return StoreRoot(pafs.PyFileSystem(handler), str(path), str(path)), handler
