"""The ``Zoo`` base class: what every zoo kind implements, and the filters all kinds share.

A zoo kind lists its candidate ``ModelSpec`` objects (``list_specs``) and loads one spec's layer
weights lazily (``load``). The base class applies the config's filters (name globs, datasets,
architectures, parameter range, limit), merges a user metadata CSV, marks models above the size
cap as skipped, and sets each spec's ``zoo`` to the config needed to load it again in a Ray task.
"""
from __future__ import annotations

import fnmatch
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from ww_ray.weights import LayerWeight
from ww_ray.errors import ModelSkipped, UnsafeIdError, ZooError
from ww_ray.zoos.config import ZooConfig
from ww_ray.zoos.metadata import ModelMetadata, read_metadata, spec_updates
from ww_ray.zoos.spec import SKIP_REASON, ModelSpec, normalize_dataset


class Zoo(ABC):
    """A source of models. Subclasses set the class attributes and implement two methods.

    Class attributes:
        kind: registry name used in configs (``kind: local``).
        options: kind-specific config keys → type tag (``path``, ``existing_path``, ``str``,
            ``str_list``, ``bool``, ``int``, ``number``).
        required: option keys that must be present.
        uri_scheme: prefix of ``ww_ray.analyze`` URIs served by this kind (``pytorchcv``), or None.
        description: one line for ``ww-ray zoo kinds`` and error messages.
    """

    kind: ClassVar[str]
    options: ClassVar[Mapping[str, str]] = {}
    required: ClassVar[tuple[str, ...]] = ()
    uri_scheme: ClassVar[str | None] = None
    description: ClassVar[str] = ""

    def __init__(self, config: ZooConfig) -> None:
        self.config = config

    @property
    def source(self) -> str:
        """The ``source`` key of this zoo's models."""
        return self.config.name or self.default_source()

    def default_source(self) -> str:
        return self.kind

    @abstractmethod
    def list_specs(self) -> list[ModelSpec]:
        """Every candidate model, before the shared filters (server-side filters may apply)."""

    @abstractmethod
    def load(self, spec: ModelSpec) -> Iterator[LayerWeight]:
        """Fetch the weights of one spec and return its layer weights lazily.

        Raise ``ZooUnavailableError`` when the weights cannot be fetched, ``ModelSkipped`` for
        deliberate skips, ``CheckpointError`` for unreadable or unsafe files.
        """

    def checkpoint_path(self, spec: ModelSpec) -> "Path | str | None":
        """The checkpoint behind a spec — a local file or Hugging Face folder, fetched when needed, or a URL
        its workers read by byte ranges (``s3://``, ``hf://``) — checked like ``load`` checks it; None for
        zoos that build modules. The engine plans lazy shards from it.
        """
        return None

    def describe_layers(self, spec: ModelSpec) -> list[LayerWeight] | None:
        """The spec's layers with shape-only (``meta``) tensors, read without fetching the weights.

        None when this zoo cannot tell without the weights (then ``load`` is the way).
        """
        return None

    def spec_for(self, model_id: str) -> ModelSpec:
        """The spec of one model by id (used for URIs such as ``pytorchcv:resnet20_cifar10``)."""
        for spec in self.list_specs():
            if spec.model_id == model_id:
                return self.finish(spec)
        raise ZooError(f"the {self.kind} zoo has no model {model_id!r}")

    # ---- shared behaviour ------------------------------------------------------------------

    def enumerate(self) -> list[ModelSpec]:
        """The config's selection: metadata merged, filters applied, size cap marked, in zoo order."""
        specs = [self.finish(spec) for spec in self.list_specs()]
        selected = [spec for spec in specs if self.accepts(spec)]
        if self.config.limit is not None:
            selected = selected[: self.config.limit]
        return selected

    def finish(self, spec: ModelSpec) -> ModelSpec:
        """Merge metadata, mark the size cap, and stamp the zoo config onto one spec."""
        spec = self.apply_metadata(spec)
        extra = dict(spec.extra)
        cap = self.config.max_size_bytes
        size = spec.size_bytes if spec.size_bytes is not None else extra.get("estimated_size_bytes")
        if cap is not None and size is not None and size > cap and SKIP_REASON not in extra:
            how = "" if spec.size_bytes is not None else " (estimated from the parameter count)"
            extra[SKIP_REASON] = (
                f"weights are {_human(size)}{how}, above this zoo's max_size of {_human(cap)}; "
                "raise max_size in the config to analyse it"
            )
        return replace(spec, zoo=self.config, extra=extra)

    def accepts(self, spec: ModelSpec) -> bool:
        """True when the spec passes the include/exclude globs, dataset, architecture and params filters."""
        cfg = self.config
        model_id = spec.model_id.lower()
        if cfg.include and not any(fnmatch.fnmatchcase(model_id, g.lower()) for g in cfg.include):
            return False
        if any(fnmatch.fnmatchcase(model_id, g.lower()) for g in cfg.exclude):
            return False
        if cfg.datasets and normalize_dataset(spec.dataset) not in {normalize_dataset(d) for d in cfg.datasets}:
            return False
        if cfg.architectures:
            arch = (spec.architecture or "").lower()
            if not any(fnmatch.fnmatchcase(arch, a.lower()) for a in cfg.architectures):
                return False
        if cfg.params_min is not None or cfg.params_max is not None:
            if spec.params is None:
                return False
            if cfg.params_min is not None and spec.params < cfg.params_min:
                return False
            if cfg.params_max is not None and spec.params > cfg.params_max:
                return False
        return True

    def metadata_rows(self) -> dict[str, ModelMetadata]:
        """The user metadata CSV's rows for this zoo, keyed by model id (cached)."""
        cached = getattr(self, "_metadata_cache", None)
        if cached is not None:
            return cached
        rows: dict[str, ModelMetadata] = {}
        if self.config.metadata:
            for row in read_metadata(self.config.metadata):
                if row.source is not None and row.source not in self.metadata_sources():
                    continue
                rows.setdefault(row.model_id, row)
        self._metadata_cache = rows
        return rows

    def metadata_sources(self) -> set[str]:
        """Values of a metadata CSV's ``source`` column that refer to this zoo."""
        return {self.source, self.kind}

    def metadata_for(self, spec: ModelSpec) -> ModelMetadata | None:
        """The metadata row of a spec (matched on its model id; subclasses add aliases)."""
        return self.metadata_rows().get(spec.model_id)

    def apply_metadata(self, spec: ModelSpec) -> ModelSpec:
        meta = self.metadata_for(spec)
        if meta is None:
            return spec
        spec = replace(spec, **spec_updates(meta))
        if meta.note:
            spec = replace(spec, extra={**spec.extra, "note": meta.note})
        return spec.with_figures(meta.figures) if meta.figures else spec

    def check_not_skipped(self, spec: ModelSpec) -> None:
        reason = spec.extra.get(SKIP_REASON)
        if reason:
            raise ModelSkipped(str(reason))


_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


def check_safe_id(model_id: str, *, allow_slash: bool = False, what: str = "model id") -> str:
    """Refuse ids that could escape a cache or output folder: ``..``, absolute paths, odd characters."""
    if not isinstance(model_id, str) or not model_id or len(model_id) > 200:
        raise UnsafeIdError(f"invalid {what} {model_id!r}: expected 1-200 characters")
    parts = model_id.split("/") if allow_slash else [model_id]
    if allow_slash and len(parts) > 2:
        raise UnsafeIdError(f"invalid {what} {model_id!r}: at most one '/' (owner/name)")
    for part in parts:
        if part in ("", ".", "..") or ".." in part or not _SAFE_ID.fullmatch(part):
            raise UnsafeIdError(
                f"invalid {what} {model_id!r}: only letters, digits, '.', '_', '+', '-'"
                + (" and one '/'" if allow_slash else "")
                + " are allowed, no '..' and no absolute paths"
            )
    return model_id


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} B"
