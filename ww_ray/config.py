"""Sweep configs: load a YAML file into a validated, immutable ``SweepConfig`` (docs/design.md).

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
``ConfigError`` naming where it is (``zoos[1].datasets``) and what was expected; an unknown key
names the close match (``knd`` → ``kind``). Zoo entries are validated by ``zoos/parse.py``; the
analysis options are resolved here, once, into ``SweepConfig.analysis``.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ww_ray.errors import ConfigError
from ww_ray.spectral.presets import PRESETS, AnalysisOptions, resolve_options
from ww_ray.validate import check_keys, positive_int, read_yaml_file
from ww_ray.zoos.config import ZooConfig
from ww_ray.zoos.parse import parse_zoo

TOP_LEVEL_KEYS = ("zoos", "preset", "options", "out", "ray", "name", "description")
# Analysis option names accepted at the top level and under ``options:`` (``preset`` has its own key).
OPTION_KEYS = tuple(f.name for f in fields(AnalysisOptions) if f.name != "preset")


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
    """A whole sweep: zoos to enumerate, analysis options (resolved), output root, cluster knobs."""

    zoos: tuple[ZooConfig, ...]
    analysis: AnalysisOptions = field(default_factory=resolve_options)
    out: str = "ww-results"
    ray: RayConfig = field(default_factory=RayConfig)
    name: str | None = None
    description: str | None = None
    path: str | None = None   # the YAML file it came from

    def with_analysis(self, preset: str | None = None, **overrides: Any) -> "SweepConfig":
        """A copy analysed with ``preset`` (default: the config's), the config's own overrides, then these.

        >>> config = parse_config({"zoos": [{"kind": "pytorchcv"}], "conv_method": "stacked"})
        >>> changed = config.with_analysis("ww", fit="PL")
        >>> changed.analysis.preset, changed.analysis.conv_method
        ('ww', 'stacked')
        """
        base = PRESETS[self.analysis.preset]
        own = {k: v for k, v in asdict(self.analysis).items() if k != "preset" and v != getattr(base, k)}
        try:
            analysis = resolve_options(preset or self.analysis.preset, **{**own, **overrides})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"preset/options: {exc}") from exc
        return replace(self, analysis=analysis)


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a YAML sweep config; relative paths resolve against its folder."""
    path = Path(path)
    data = read_yaml_file(path)
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
    check_keys(data, (*TOP_LEVEL_KEYS, *OPTION_KEYS), "top level")
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
    check_keys(options, OPTION_KEYS, "options")
    options = {**{k: data[k] for k in data if k in OPTION_KEYS}, **dict(options)}
    try:
        analysis = resolve_options(preset, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"preset/options: {exc}") from exc

    out = data.get("out", "ww-results")
    if not isinstance(out, str) or not out.strip():
        raise ConfigError(f"'out' must be a non-empty path or URI, got {out!r}")
    out = out if "://" in out else str((base / Path(out).expanduser()).resolve())

    for key in ("name", "description"):
        if data.get(key) is not None and not isinstance(data.get(key), str):
            raise ConfigError(f"'{key}' must be a string")
    return SweepConfig(zoos=zoos, analysis=analysis, out=out, ray=parse_ray(data.get("ray")),
                       name=data.get("name"), description=data.get("description"))


def parse_ray(value: Any) -> RayConfig:
    """Validate the ``ray:`` mapping."""
    if value is None:
        return RayConfig()
    if not isinstance(value, Mapping):
        raise ConfigError(f"'ray' must be a mapping, got {value!r}")
    check_keys(value, [f.name for f in fields(RayConfig)], "ray")
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

