"""Validate one ``zoos:`` entry of a sweep config into a ``ZooConfig``, against its kind's declared options.

The keys every kind accepts are ``COMMON_ZOO_KEYS`` (filters and caps); kind-specific keys and
their types come from the zoo registry (``Zoo.options``). Every bad key or value raises
``ConfigError`` naming where it is (``zoos[1].datasets``).
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ww_ray.errors import ConfigError
from ww_ray.validate import check_keys, parse_size, positive_int, resolve_path, str_list
from ww_ray.zoos.config import ZooConfig
from ww_ray.zoos.registry import get_zoo_kind, zoo_kinds

# Zoo keys every kind accepts (filters and caps); kind-specific keys come from the zoo registry.
COMMON_ZOO_KEYS = (
    "kind", "name", "include", "exclude", "datasets", "architectures", "params", "limit", "max_size", "metadata",
)


def parse_zoo(entry: Any, base: Path, where: str = "zoo") -> ZooConfig:
    """Validate one ``zoos:`` entry against the common keys and its kind's declared options."""
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping with a 'kind', got {entry!r}")
    kind_name = entry.get("kind")
    kinds = zoo_kinds()
    if kind_name is None:  # name a typo such as ``knd:`` before saying the kind is missing
        check_keys(entry, set(COMMON_ZOO_KEYS).union(*(k.options for k in kinds.values())), where)
        raise ConfigError(f"{where} needs a 'kind:', one of {sorted(kinds)}")
    if kind_name not in kinds:
        close = difflib.get_close_matches(str(kind_name), sorted(kinds), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{where}.kind must be one of {sorted(kinds)}, got {kind_name!r}{hint}")
    kind = get_zoo_kind(kind_name)
    check_keys(entry, set(COMMON_ZOO_KEYS) | set(kind.options), f"{where} (a {kind_name} zoo)")
    missing = [k for k in kind.required if entry.get(k) in (None, "", [])]
    if missing:
        raise ConfigError(f"{where}: a {kind_name} zoo needs {missing}")

    params_min, params_max = _parse_range(entry.get("params"), f"{where}.params")
    metadata = entry.get("metadata")
    options = {key: convert_option(entry[key], tag, base, f"{where}.{key}")
               for key, tag in kind.options.items() if key in entry and entry[key] is not None}
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name)):
        raise ConfigError(f"{where}.name must be 1-64 characters of letters, digits, '.', '_' or '-', got {name!r}")
    return ZooConfig(
        kind=kind_name,
        name=name,
        include=str_list(entry.get("include"), f"{where}.include"),
        exclude=str_list(entry.get("exclude"), f"{where}.exclude"),
        datasets=str_list(entry.get("datasets"), f"{where}.datasets"),
        architectures=str_list(entry.get("architectures"), f"{where}.architectures"),
        params_min=params_min,
        params_max=params_max,
        limit=positive_int(entry.get("limit"), f"{where}.limit"),
        max_size_bytes=parse_size(entry.get("max_size"), f"{where}.max_size"),
        metadata=None if metadata is None else resolve_path(metadata, base, f"{where}.metadata", must_exist=True),
        options=options,
    )


def convert_option(value: Any, tag: str, base: Path, where: str) -> Any:
    if tag == "path":
        return resolve_path(value, base, where, must_exist=False)
    if tag == "existing_path":
        return resolve_path(value, base, where, must_exist=True)
    if tag == "model_source":  # "auto", a zoo URI (hf:org/name) or URL (s3://...), else a path like path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a path, a zoo URI or 'auto', got {value!r}")
        if value == "auto" or re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", value):
            return value
        return str(resolve_path(value, base, where, must_exist=True))
    if tag == "str":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
        return value
    if tag == "str_list":
        return list(str_list(value, where))
    if tag == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tag == "int":
        return positive_int(value, where)
    if tag == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigError(f"{where} must be a non-negative number, got {value!r}")
        return float(value)
    raise ConfigError(f"{where}: the zoo kind declares an unknown option type {tag!r}")


def _parse_range(value: Any, where: str) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"min", "max"})
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; use min and/or max")
        low, high = value.get("min"), value.get("max")
    elif isinstance(value, list) and len(value) == 2:
        low, high = value
    else:
        raise ConfigError(f"{where} must be {{min: N, max: N}} or [min, max], got {value!r}")
    low = _count(low, f"{where}.min")
    high = _count(high, f"{where}.max")
    if low is not None and high is not None and low > high:
        raise ConfigError(f"{where}: min {low} is larger than max {high}")
    return low, high


def _count(value: Any, where: str) -> int | None:
    """A parameter count: an integer or a string like ``25M`` / ``1.5B``."""
    if value is None:
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMbB]?)\s*", value)
        if not match:
            raise ConfigError(f"{where} must be a count such as 25000000 or '25M', got {value!r}")
        scale = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9}[match.group(2).lower()]
        return int(float(match.group(1)) * scale)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{where} must be a non-negative count, got {value!r}")
    return int(value)
