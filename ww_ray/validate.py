"""Generic validators of config and command-line values: lists, counts, sizes, durations, paths.

Also the one reader of a YAML config file (``read_yaml_file``) that sweep and rescan configs share.

Each takes the value and ``where`` (the key it came from, ``zoos[1].limit``) and raises
``ConfigError`` naming it. A leaf module: it knows nothing of zoos, sweeps or Ray.

>>> parse_size("2 GiB"), parse_duration("30m"), str_list("a*", "include")
(2147483648, 1800.0, ('a*',))
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from ww_ray.errors import ConfigError

_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_DURATION_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def check_keys(keys: Iterable[Any], allowed: Iterable[str], where: str) -> None:
    """Refuse keys outside ``allowed``, suggesting the close match of each (``knd`` → did you mean ``kind``?).

    >>> check_keys(["knd"], ["kind", "name"], "zoos[0]")
    Traceback (most recent call last):
    ...
    ww_ray.errors.ConfigError: zoos[0]: unknown key 'knd' (did you mean 'kind'?); allowed: ['kind', 'name']
    """
    allowed = sorted(allowed)
    unknown = [k for k in keys if k not in allowed]
    if not unknown:
        return
    described = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        described.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    noun = "key" if len(unknown) == 1 else "keys"
    raise ConfigError(f"{where}: unknown {noun} {', '.join(described)}; allowed: {allowed}")


def resolve_path(value: Any, base: Path, where: str, must_exist: bool) -> str:
    """``value`` resolved against ``base`` (``~`` expanded); ``must_exist`` refuses a missing path."""
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ConfigError(f"{where} must be a path, got {value!r}")
    try:
        resolved = (base / Path(str(value)).expanduser()).resolve()
    except (RuntimeError, OSError) as exc:  # a symlink loop (RuntimeError before Python 3.13, OSError after)
        raise ConfigError(f"{where}: {value} cannot be resolved: {exc}") from exc
    if must_exist and not resolved.exists():
        raise ConfigError(f"{where}: {resolved} does not exist")
    return str(resolved)


def str_list(value: Any, where: str) -> tuple[str, ...]:
    """A config value that is one string or a list of non-empty strings, as a tuple."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def positive_int(value: Any, where: str) -> int | None:
    """A config value that is None or a positive integer (``ConfigError`` otherwise)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} must be a positive integer, got {value!r}")
    return value


def parse_size(value: Any, where: str = "max_size") -> int | None:
    """Bytes from an integer or a string such as ``500MB`` / ``2 GiB`` (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", value)
        unit = match.group(2).lower() if match else ""
        if not match or unit not in _SIZE_UNITS:
            raise ConfigError(f"{where} must be a size such as 500MB or 2GiB, got {value!r}")
        return int(float(match.group(1)) * _SIZE_UNITS[unit])
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{where} must be a positive number of bytes or a size such as '500MB', got {value!r}")
    return value


def parse_duration(value: Any, where: str = "duration") -> float | None:
    """Seconds from a number or a string such as ``90s``, ``30m``, ``4h``, ``7d``, ``1w`` (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*", value.lower())
        if not match or match.group(2) not in {**_DURATION_UNITS, "": 1}:
            raise ConfigError(f"{where} must be a duration such as 90s, 30m, 4h or 7d, got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS.get(match.group(2), 1)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ConfigError(f"{where} must be a duration such as 90s, 30m, 4h or 7d, got {value!r}")
    if seconds <= 0:
        raise ConfigError(f"{where} must be positive, got {value!r}")
    return seconds


def read_yaml_file(path: Path) -> Any:
    """The parsed YAML document of a config file; ``ConfigError`` if it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
