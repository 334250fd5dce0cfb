"""Sweep configs: load a YAML file into a validated, immutable ``SweepConfig`` (DESIGN.md §4).

Example::

    zoos:
      - kind: local
        path: ../shared/models/akamaster-resnet-cifar10
        metadata: ../shared/models/reported_accuracies.csv
      - kind: pytorchcv
        include: ["resnet*_cifar10"]
        datasets: [cifar10]
        params: {max: 2000000}
      - kind: hub
        models: [openai-community/gpt2]
    preset: paper
    options: {conv_method: stacked}      # analysis option overrides (top-level option keys work too)
    out: ww-results
    ray: {address: null, workers: null, gpus_per_worker: 0, max_models_in_flight: 4, model_timeout_s: 1800}

Relative paths resolve against the config file's folder. Every bad key or value raises
``ConfigError`` naming where it is (``zoos[1].datasets``) and what was expected.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml

# Zoo keys every kind accepts (filters and caps); kind-specific keys come from the zoo registry.
COMMON_ZOO_KEYS = (
    "kind", "name", "include", "exclude", "datasets", "architectures", "params", "limit", "max_size", "metadata",
)
TOP_LEVEL_KEYS = ("zoos", "preset", "options", "out", "ray", "name", "description")
_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class ConfigError(ValueError):
    """A sweep config that cannot be used; the message names the offending key."""


@dataclass(frozen=True)
class ZooConfig:
    """One entry of ``zoos:``: which zoo kind, which of its models, and kind-specific options.

    Attributes:
        kind: registered zoo kind (``local``, ``pytorchcv``, ``hub``).
        name: the ``source`` recorded for its models (default: chosen by the zoo).
        include, exclude: shell-style globs on model ids (include all when empty).
        datasets, architectures: keep models whose dataset / architecture series is listed
            (datasets compared after ``normalize_dataset``; architectures case-insensitively).
        params_min, params_max: keep models whose parameter count is in range (unknown counts kept).
        limit: keep at most this many models (after the other filters).
        max_size_bytes: models whose weights are larger are listed but skipped with a reason.
        metadata: CSV of reported figures (absolute path) that overrides or extends the zoo's own.
        options: kind-specific settings (``path``, ``root``, ``models``, ``author`` ...), validated
            against the zoo kind's declared options; path options are absolute.
    """

    kind: str
    name: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    params_min: int | None = None
    params_max: int | None = None
    limit: int | None = None
    max_size_bytes: int | None = None
    metadata: str | None = None
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain, picklable form (``zoo_config_from_dict`` reverses it without re-resolving paths)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("include", "exclude", "datasets", "architectures"):
            out[name] = list(out[name])
        out["options"] = dict(self.options)
        return out


def zoo_config_from_dict(data: Mapping[str, Any]) -> ZooConfig:
    """Rebuild a ``ZooConfig`` from ``ZooConfig.to_dict()`` output."""
    values = dict(data)
    for name in ("include", "exclude", "datasets", "architectures"):
        values[name] = tuple(values.get(name) or ())
    values["options"] = dict(values.get("options") or {})
    return ZooConfig(**values)


@dataclass(frozen=True)
class RayConfig:
    """Cluster knobs of a sweep.

    Attributes:
        address: Ray address to connect to (None: start or join a local cluster).
        workers: number of spectral workers (None: one per available CPU, or per GPU when GPUs are used).
        cpus_per_worker, gpus_per_worker: resources each spectral worker asks for.
        max_models_in_flight: models loaded and analysed concurrently (bounds memory).
        model_timeout_s: wall-clock limit for one model (None: none); a model past it fails.
        max_retries: retries of a failed model load or worker crash before the model is marked failed.
        runtime_env: Ray runtime_env dict passed to ``ray.init``.
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_models_in_flight: int = 4
    model_timeout_s: float | None = None
    max_retries: int = 2
    runtime_env: dict[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class SweepConfig:
    """A whole sweep: zoos to enumerate, analysis preset and overrides, output root, cluster knobs."""

    zoos: tuple[ZooConfig, ...]
    preset: str = "paper"
    options: dict[str, Any] = field(default_factory=dict, hash=False)
    out: str = "ww-results"
    ray: RayConfig = field(default_factory=RayConfig)
    name: str | None = None
    description: str | None = None
    path: str | None = None   # the YAML file it came from


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a YAML sweep config; relative paths resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    try:
        config = parse_config(data, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return replace(config, path=str(path.resolve()))


def parse_config(data: Any, base_dir: str | Path = ".") -> SweepConfig:
    """Validate a config already parsed from YAML (a mapping) into a ``SweepConfig``."""
    base = Path(base_dir)
    if not isinstance(data, Mapping):
        raise ConfigError(f"a sweep config must be a mapping with a 'zoos' list, got {type(data).__name__}")
    option_names = _analysis_option_names()
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS and k not in option_names]
    if unknown:
        raise ConfigError(
            f"unknown top-level key(s) {unknown}; expected {list(TOP_LEVEL_KEYS)}"
            + (f" or an analysis option ({sorted(option_names)})" if option_names else "")
        )
    zoos_data = data.get("zoos")
    if not isinstance(zoos_data, list) or not zoos_data:
        raise ConfigError("'zoos' must be a non-empty list of zoo entries (each with a 'kind')")
    zoos = tuple(parse_zoo(entry, base, where=f"zoos[{i}]") for i, entry in enumerate(zoos_data))

    preset = data.get("preset", "paper")
    if not isinstance(preset, str):
        raise ConfigError(f"'preset' must be a string such as 'paper' or 'ww', got {preset!r}")
    options = data.get("options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(f"'options' must be a mapping of analysis option overrides, got {options!r}")
    options = {**{k: data[k] for k in data if k in option_names}, **dict(options)}
    _check_analysis_options(preset, options)

    out = data.get("out", "ww-results")
    if not isinstance(out, str) or not out.strip():
        raise ConfigError(f"'out' must be a non-empty path or URI, got {out!r}")
    out = out if "://" in out else str((base / Path(out).expanduser()).resolve())

    for key in ("name", "description"):
        if data.get(key) is not None and not isinstance(data.get(key), str):
            raise ConfigError(f"'{key}' must be a string")
    return SweepConfig(zoos=zoos, preset=preset, options=options, out=out, ray=parse_ray(data.get("ray")),
                       name=data.get("name"), description=data.get("description"))


def _analysis_option_names() -> set[str]:
    try:
        from ww_ray.spectral.presets import AnalysisOptions
    except ImportError:
        return set()
    return {f.name for f in fields(AnalysisOptions)} - {"preset"}


def _check_analysis_options(preset: str, options: dict[str, Any]) -> None:
    try:
        from ww_ray.spectral.presets import resolve_options
    except ImportError:
        return
    try:
        resolve_options(preset, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"preset/options: {exc}") from exc


def parse_zoo(entry: Any, base: Path, where: str = "zoo") -> ZooConfig:
    """Validate one ``zoos:`` entry against the common keys and its kind's declared options."""
    from ww_ray.zoos.registry import get_zoo_kind, zoo_kinds

    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping with a 'kind', got {entry!r}")
    kind_name = entry.get("kind")
    kinds = zoo_kinds()
    if kind_name not in kinds:
        raise ConfigError(f"{where}.kind must be one of {sorted(kinds)}, got {kind_name!r}")
    kind = get_zoo_kind(kind_name)
    allowed = set(COMMON_ZOO_KEYS) | set(kind.options)
    unknown = sorted(k for k in entry if k not in allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} for a {kind_name} zoo; allowed: {sorted(allowed)}")
    missing = [k for k in kind.required if entry.get(k) in (None, "", [])]
    if missing:
        raise ConfigError(f"{where}: a {kind_name} zoo needs {missing}")

    params_min, params_max = _parse_range(entry.get("params"), f"{where}.params")
    metadata = entry.get("metadata")
    options = {key: _convert_option(entry[key], tag, base, f"{where}.{key}")
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
        metadata=None if metadata is None else _path(metadata, base, f"{where}.metadata", must_exist=True),
        options=options,
    )


def _convert_option(value: Any, tag: str, base: Path, where: str) -> Any:
    if tag == "path":
        return _path(value, base, where, must_exist=False)
    if tag == "existing_path":
        return _path(value, base, where, must_exist=True)
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


def _path(value: Any, base: Path, where: str, must_exist: bool) -> str:
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise ConfigError(f"{where} must be a path, got {value!r}")
    resolved = (base / Path(str(value)).expanduser()).resolve()
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


def parse_ray(value: Any) -> RayConfig:
    """Validate the ``ray:`` mapping."""
    if value is None:
        return RayConfig()
    if not isinstance(value, Mapping):
        raise ConfigError(f"'ray' must be a mapping, got {value!r}")
    allowed = [f.name for f in fields(RayConfig)]
    unknown = sorted(k for k in value if k not in allowed)
    if unknown:
        raise ConfigError(f"ray: unknown key(s) {unknown}; allowed: {allowed}")
    address = value.get("address")
    if address is not None and not isinstance(address, str):
        raise ConfigError(f"ray.address must be a string such as 'auto' or 'ray://host:10001', got {address!r}")
    runtime_env = value.get("runtime_env")
    if runtime_env is not None and not isinstance(runtime_env, Mapping):
        raise ConfigError("ray.runtime_env must be a mapping")
    timeout = value.get("model_timeout_s")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigError(f"ray.model_timeout_s must be a positive number of seconds, got {timeout!r}")
    retries = value.get("max_retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"ray.max_retries must be a non-negative integer, got {retries!r}")
    return RayConfig(
        address=address,
        workers=positive_int(value.get("workers"), "ray.workers"),
        cpus_per_worker=_resource(value.get("cpus_per_worker", 1.0), "ray.cpus_per_worker"),
        gpus_per_worker=_resource(value.get("gpus_per_worker", 0.0), "ray.gpus_per_worker"),
        max_models_in_flight=positive_int(value.get("max_models_in_flight", 4), "ray.max_models_in_flight") or 4,
        model_timeout_s=None if timeout is None else float(timeout),
        max_retries=retries,
        runtime_env=dict(runtime_env) if runtime_env is not None else None,
    )


def _resource(value: Any, where: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{where} must be a non-negative number, got {value!r}")
    return float(value)


_DURATION_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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
