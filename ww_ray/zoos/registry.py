"""The typed registry of zoo kinds, and the two calls the sweep makes: enumerate and load.

Zoo kinds register with ``@register_zoo`` (like timm's model registry, each entry records the
module that defined it). ``enumerate_specs(config)`` turns a sweep config into the list of
``ModelSpec`` to analyse; ``load_layer_weights(spec)`` rebuilds the spec's zoo from its
``spec.zoo`` config (so it works in a Ray task on another node) and returns its layer weights lazily.
"""
from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from ww_ray.errors import ModelSkipped, ZooError
from ww_ray.weights import LayerWeight
from ww_ray.zoos.config import ZooConfig
from ww_ray.zoos.spec import SKIP_REASON, ModelSpec

if TYPE_CHECKING:
    from ww_ray.zoos.base import Zoo

log = logging.getLogger(__name__)

_BUILTIN_MODULES = ("ww_ray.zoos.local", "ww_ray.zoos.pytorchcv", "ww_ray.zoos.hub", "ww_ray.zoos.url")


@dataclass(frozen=True)
class ZooKind:
    """A registered zoo kind and where it came from."""

    name: str
    factory: type
    options: Mapping[str, str]
    required: tuple[str, ...]
    uri_scheme: str | None
    description: str
    module: str


_ZOO_KINDS: dict[str, ZooKind] = {}


class HasZoos(Protocol):
    """Anything with a ``zoos`` tuple, such as ``ww_ray.config.SweepConfig`` (not imported: it imports us)."""

    zoos: tuple[ZooConfig, ...]


def register_zoo(cls: type) -> type:
    """Class decorator adding a ``Zoo`` subclass to the registry under ``cls.kind``."""
    name = getattr(cls, "kind", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__name__} needs a non-empty class attribute 'kind' to be registered")
    existing = _ZOO_KINDS.get(name)
    if existing is not None and existing.factory is not cls and existing.module != cls.__module__:
        raise ValueError(f"zoo kind {name!r} is already registered by {existing.module}")
    _ZOO_KINDS[name] = ZooKind(
        name=name,
        factory=cls,
        options=dict(getattr(cls, "options", {})),
        required=tuple(getattr(cls, "required", ())),
        uri_scheme=getattr(cls, "uri_scheme", None),
        description=getattr(cls, "description", ""),
        module=cls.__module__,
    )
    return cls


def _ensure_builtins() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(module)


def zoo_kinds() -> dict[str, ZooKind]:
    """All registered zoo kinds by name."""
    _ensure_builtins()
    return dict(_ZOO_KINDS)


def uri_schemes() -> dict[str, ZooKind]:
    """The ``ww_ray.analyze`` URI schemes (``pytorchcv``, ``hf``) of the registered kinds, each with its kind."""
    return {kind.uri_scheme: kind for kind in zoo_kinds().values() if kind.uri_scheme}


def get_zoo_kind(name: str) -> ZooKind:
    kinds = zoo_kinds()
    if name not in kinds:
        raise ZooError(f"unknown zoo kind {name!r}; registered kinds: {sorted(kinds)}")
    return kinds[name]


def make_zoo(config: "ZooConfig") -> "Zoo":
    """An instance of the zoo kind a ``ZooConfig`` names."""
    return get_zoo_kind(config.kind).factory(config)


def enumerate_specs(config: "HasZoos | Iterable[ZooConfig]") -> list[ModelSpec]:
    """The models a sweep config selects, zoo by zoo in config order, duplicates (same key) dropped."""
    zoo_configs = config.zoos if hasattr(config, "zoos") else list(config)
    specs: list[ModelSpec] = []
    seen: set[tuple] = set()
    for zoo_config in zoo_configs:
        for spec in make_zoo(zoo_config).enumerate():
            identity = (spec.source, spec.model_id, spec.revision)
            if identity in seen:
                log.warning("dropping duplicate model %s/%s@%s", *identity)
                continue
            seen.add(identity)
            specs.append(spec)
    return specs


def zoo_of_spec(spec: ModelSpec, **overrides: Any) -> "Zoo":
    """Rebuild the zoo that made a spec from its ``spec.zoo`` config; ``overrides`` set options."""
    config = spec.zoo
    if config is None:
        raise ZooError(
            f"{spec.source}/{spec.model_id} was not made by a registered zoo (zoo_kind={spec.zoo_kind!r}); "
            "pass the model itself to ww_ray.analyze instead"
        )
    if overrides:
        kind = get_zoo_kind(config.kind)
        config = replace(config, options={**config.options,
                                          **{k: v for k, v in overrides.items() if k in kind.options}})
    return make_zoo(config)


def load_layer_weights(spec: ModelSpec, **overrides: Any) -> Iterator[LayerWeight]:
    """Fetch a spec's weights and return its layer weights lazily.

    Raises:
        ModelSkipped: the spec was marked skipped (too large, no weights published ...); ``.reason`` says why.
        ZooUnavailableError: the weights cannot be fetched (no network and no local copy); the message
            says how to point the zoo at local weights.
        CheckpointError: the weights are unreadable or unsafe.
    """
    reason = spec.extra.get(SKIP_REASON)
    if reason:
        raise ModelSkipped(str(reason))
    return zoo_of_spec(spec, **overrides).load(spec)


def describe_layers(spec: ModelSpec, **overrides: Any) -> list[LayerWeight] | None:
    """A spec's layers with shape-only tensors, without fetching its weights; None when its zoo cannot tell."""
    if spec.extra.get(SKIP_REASON):
        return None
    return zoo_of_spec(spec, **overrides).describe_layers(spec)


def spec_from_uri(uri: str, **options: Any) -> ModelSpec:
    """The spec behind ``pytorchcv:NAME`` or ``hf:ORG/NAME[@REVISION]``; ``options`` are zoo options."""
    scheme, _, model_id = uri.partition(":")
    schemes = uri_schemes()
    if scheme not in schemes or not model_id:
        raise ZooError(f"cannot resolve {uri!r}: expected SCHEME:MODEL with SCHEME one of {sorted(schemes)}")
    kind = schemes[scheme]
    unknown = sorted(set(options) - set(kind.options) - {"max_size_bytes"})
    if unknown:
        raise ZooError(f"unknown option(s) {unknown} for {scheme}: URIs; allowed: {sorted(kind.options)}")
    zoo_options = {k: v for k, v in options.items() if k in kind.options}
    config = ZooConfig(kind=kind.name, max_size_bytes=options.get("max_size_bytes"), options=zoo_options)
    return kind.factory(config).spec_for(model_id)


__all__ = [
    "ModelSkipped", "ZooKind", "describe_layers", "enumerate_specs", "get_zoo_kind", "load_layer_weights",
    "make_zoo",
    "register_zoo", "spec_from_uri", "uri_schemes", "zoo_kinds", "zoo_of_spec",
]
