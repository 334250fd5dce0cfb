"""The local zoo: a folder of checkpoints, with an optional metadata CSV of published figures.

Every ``.safetensors`` / ``.pt`` / ``.pth`` / ``.th`` / ``.bin`` file and every Hugging Face
model folder under ``path`` is one model (sub-folders are searched unless ``recursive: false``).
Weight files in formats ww_ray cannot read (``.h5``, ``.tflite`` ...) are listed as skipped with
the reason, so they show up in the results instead of vanishing. The model id is the path
relative to the folder without the suffix; the revision is the SHA-256 of the weight file(s).
Metadata rows match on the id, the file name or the file stem; a ``source`` column, when
present, must name this folder (or the zoo's ``name``).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from ww_ray.weights import LayerWeight
from ww_ray.zoos.base import SKIP_REASON, Zoo
from ww_ray.zoos.checkpoint import (
    CHECKPOINT_SUFFIXES,
    UNSUPPORTED_SUFFIXES,
    CheckpointError,
    checkpoint_digest,
    checkpoint_files,
    is_hf_folder,
    read_hf_config,
    tensor_shapes,
)
from ww_ray.zoos.errors import ZooError
from ww_ray.zoos.metadata import ModelMetadata
from ww_ray.zoos.names import count_parameters, natural_key
from ww_ray.zoos.registry import register_zoo
from ww_ray.zoos.source import open_path
from ww_ray.zoos.spec import ModelSpec

_MAX_DEPTH = 8


@register_zoo
class LocalZoo(Zoo):
    """Checkpoints in a local folder."""

    kind = "local"
    options = {"path": "existing_path", "allow_pickle": "bool", "recursive": "bool"}
    required = ("path",)
    description = "a folder of .safetensors/.pt/.pth/.th/.bin files and Hugging Face model folders"

    @property
    def folder(self) -> Path:
        return Path(self.config.options["path"]).resolve()

    def default_source(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", self.folder.name) or "local"

    def metadata_sources(self) -> set[str]:
        return {self.source, self.folder.name, self.kind}

    def list_specs(self) -> list[ModelSpec]:
        folder = self.folder
        if not folder.is_dir():
            raise ZooError(f"local zoo path {folder} is not a folder")
        allow_pickle = bool(self.config.options.get("allow_pickle", False))
        specs = []
        for entry in self._candidates(folder):
            specs.append(self._spec_of(entry, allow_pickle))
        return specs

    def _candidates(self, folder: Path) -> list[Path]:
        if is_hf_folder(folder):
            return [folder]
        recursive = bool(self.config.options.get("recursive", True))
        found: list[Path] = []

        def walk(current: Path, depth: int) -> None:
            for entry in sorted(current.iterdir(), key=lambda p: natural_key(p.name)):
                if entry.name.startswith("."):
                    continue
                if entry.is_symlink() and folder not in entry.resolve().parents:
                    continue  # never follow links out of the zoo folder
                if entry.is_dir():
                    if is_hf_folder(entry):
                        found.append(entry)
                    elif recursive and depth < _MAX_DEPTH:
                        walk(entry, depth + 1)
                elif entry.is_file() and entry.suffix.lower() in CHECKPOINT_SUFFIXES + UNSUPPORTED_SUFFIXES:
                    found.append(entry)

        walk(folder, 0)
        return found

    def _model_id(self, entry: Path) -> str:
        if entry == self.folder:
            return entry.name
        relative = entry.relative_to(self.folder).as_posix()
        return relative if entry.is_dir() else relative[: -len(entry.suffix)]

    def _spec_of(self, entry: Path, allow_pickle: bool) -> ModelSpec:
        model_id = self._model_id(entry)
        extra: dict[str, object] = {"relative_path": entry.relative_to(self.folder).as_posix() if entry != self.folder else "."}
        if entry.is_file() and entry.suffix.lower() in UNSUPPORTED_SUFFIXES:
            extra[SKIP_REASON] = (
                f"{entry.suffix} weights are not supported; ww_ray reads .safetensors, .pt/.pth/.th/.bin "
                "state dicts and Hugging Face model folders"
            )
            files = [entry]
        else:
            try:
                files = checkpoint_files(entry, allow_pickle_in_folders=allow_pickle)
            except ValueError as exc:
                extra[SKIP_REASON] = str(exc)
                files = [p for p in entry.iterdir() if p.is_file()] if entry.is_dir() else [entry]
        extra["files"] = [f.relative_to(self.folder).as_posix() if f != self.folder else f.name for f in files]
        architecture, params = self._header_facts(entry, files, extra)
        return ModelSpec(
            source=self.source,
            model_id=model_id,
            revision=checkpoint_digest(files) if files else None,
            architecture=architecture,
            params=params,
            uri=str(entry),
            size_bytes=sum(f.stat().st_size for f in files),
            zoo_kind=self.kind,
            extra=extra,
        )

    @staticmethod
    def _header_facts(entry: Path, files: list[Path], extra: dict) -> tuple[str | None, int | None]:
        """Architecture (config.json ``model_type``) and parameter count (safetensors headers), read cheaply.

        Unreadable files are not judged here: loading them raises the reader's error (a failed row).
        """
        if SKIP_REASON in extra:
            return None, None
        model_type = None
        if entry.is_dir():
            try:
                value = read_hf_config(entry).get("model_type")
            except CheckpointError:
                value = None      # loading reports the broken config.json as a failure
            model_type = value if isinstance(value, str) else None
        params = None
        if files and all(f.suffix == ".safetensors" for f in files):
            try:
                params = count_parameters((name, shape) for name, shape, _ in tensor_shapes(entry))
            except CheckpointError:
                params = None     # a corrupt file fails when it is loaded, with the reader's message
        if model_type:
            extra["model_type"] = model_type
        return model_type, params

    def metadata_for(self, spec: ModelSpec) -> ModelMetadata | None:
        rows = self.metadata_rows()
        relative = str(spec.extra.get("relative_path", spec.model_id))
        for key in (spec.model_id, relative, Path(relative).name, Path(relative).stem):
            if key in rows:
                return rows[key]
        return None

    def load(self, spec: ModelSpec) -> Iterator[LayerWeight]:
        self.check_not_skipped(spec)
        path = self._checked_path(spec)
        allow_pickle = bool(self.config.options.get("allow_pickle", False))
        loaded, layers = open_path(path, allow_pickle=allow_pickle, source=spec.source, model_id=spec.model_id)
        if spec.revision and loaded.revision != spec.revision:
            raise ZooError(
                f"{path} changed since it was listed (sha256 {loaded.revision[:12]}…, listed as {spec.revision[:12]}…); "
                "list the zoo again"
            )
        return layers

    def checkpoint_path(self, spec: ModelSpec) -> Path:
        self.check_not_skipped(spec)
        path = self._checked_path(spec)
        if spec.revision:
            allow_pickle = bool(self.config.options.get("allow_pickle", False))
            digest = checkpoint_digest(checkpoint_files(path, allow_pickle_in_folders=allow_pickle))
            if digest != spec.revision:
                raise ZooError(f"{path} changed since it was listed (sha256 {digest[:12]}…, listed as "
                               f"{spec.revision[:12]}…); list the zoo again")
        return path

    def _checked_path(self, spec: ModelSpec) -> Path:
        relative = str(spec.extra.get("relative_path", ""))
        if not relative or os.path.isabs(relative) or ".." in Path(relative).parts:
            raise ZooError(f"local model {spec.model_id!r} has no usable relative path ({relative!r})")
        path = (self.folder / relative).resolve()
        if path != self.folder and self.folder not in path.parents:
            raise ZooError(f"local model path {relative!r} leaves the zoo folder {self.folder}")
        return path
