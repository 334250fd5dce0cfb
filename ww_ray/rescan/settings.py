"""Rescan configs: a sweep config with ``kind: hub`` zoos, Hub listing filters and a ``rescan:`` section.

Example (``configs/nightly-rescan.yaml``)::

    zoos:
      - kind: hub
        authors: [google-bert, FacebookAI]       # one listing per author (``author:`` works too)
        library: transformers
        pipeline_tags: [fill-mask, text-classification]
        min_downloads: 1000                      # Hub's 30-day download count
        max_size: 140GB                          # optional cap (none by default), judged from the headers
    preset: paper
    out: s3://bucket/ww
    rescan:
      max_models: 50                             # models analysed per night
      time_budget: 4h                            # no new batch starts after this
      min_age: 7d                                # look at a revision once it is a week old
      since: 2025-01-01                          # where the very first rescan starts

The rescan-only zoo keys (``authors``, ``pipeline_tags``, ``min_downloads``) and the ``rescan:``
section are taken out here; everything else is validated by ``ww_ray.config.parse_config``, so the
same messages name the same mistakes.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ww_ray.config import SweepConfig, parse_config
from ww_ray.errors import ConfigError
from ww_ray.validate import check_keys, parse_duration, positive_int, read_yaml_file, str_list
from ww_ray.zoos.config import ZooConfig

#: Keys of a hub zoo entry that only a rescan understands.
HUB_LISTING_KEYS = ("authors", "pipeline_tags", "min_downloads")


@dataclass(frozen=True)
class HubFilters:
    """How one hub zoo is listed: one Hub listing per (author, pipeline tag) pair, merged newest first.

    Attributes:
        authors: owners to list (empty: any owner).
        pipeline_tags: pipeline tags to list (empty: any tag).
        min_downloads: models with fewer downloads (the Hub's last-30-days count) are left out.
    """

    authors: tuple[str, ...] = ()
    pipeline_tags: tuple[str, ...] = ()
    min_downloads: int = 0


@dataclass(frozen=True)
class RescanSettings:
    """The ``rescan:`` section.

    Attributes:
        max_models: models analysed per rescan at most (None: no cap); the rest wait for the next one.
        time_budget_s: seconds after which no new batch of models starts (None: no limit).
        batch_size: models per engine batch; the time budget is checked between batches.
        since: lower bound of the first rescan's window (no watermark yet); None lists everything.
        min_age_s: a revision is looked at once its last commit is this old (lets downloads accrue).
        max_listed: listing entries read per zoo at most; a listing cut short keeps the old watermark.
        max_failures: a model key that failed this many times is given up (reported, not retried).
        min_models: models a series needs before its regression is refreshed.
    """

    max_models: int | None = None
    time_budget_s: float | None = None
    batch_size: int = 8
    since: _dt.datetime | None = None
    min_age_s: float = 0.0
    max_listed: int = 10_000
    max_failures: int = 3
    min_models: int = 4


@dataclass(frozen=True)
class RescanConfig:
    """A whole rescan: the sweep config, the listing filters of each zoo (same order), the settings."""

    sweep: SweepConfig
    filters: tuple[HubFilters, ...]
    settings: RescanSettings = field(default_factory=RescanSettings)

    @property
    def zoos(self) -> tuple[ZooConfig, ...]:
        return self.sweep.zoos

    def with_overrides(self, *, out: str | None = None, address: str | None = None,
                       max_models: int | None = None, time_budget_s: float | None = None) -> "RescanConfig":
        """A copy with command-line overrides applied (None leaves a value as it is)."""
        sweep, settings = self.sweep, self.settings
        if out is not None:
            sweep = replace(sweep, out=out)
        if address is not None:
            sweep = replace(sweep, ray=replace(sweep.ray, address=address))
        if max_models is not None:
            settings = replace(settings, max_models=positive_int(max_models, "--max-models"))
        if time_budget_s is not None:
            settings = replace(settings, time_budget_s=parse_duration(time_budget_s, "--time-budget"))
        return replace(self, sweep=sweep, settings=settings)


def load_rescan_config(path: str | Path) -> RescanConfig:
    """Read and validate a rescan config file; relative paths resolve against its folder."""
    path = Path(path)
    data = read_yaml_file(path)
    try:
        config = parse_rescan_config(data, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return replace(config, sweep=replace(config.sweep, path=str(path.resolve())))


def parse_rescan_config(data: Any, base_dir: str | Path = ".") -> RescanConfig:
    """Validate a parsed YAML mapping into a ``RescanConfig``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"a rescan config must be a mapping with 'zoos' and 'rescan', got {type(data).__name__}")
    data = dict(data)
    settings = parse_settings(data.pop("rescan", None))
    zoos = data.get("zoos")
    if not isinstance(zoos, list) or not zoos:
        raise ConfigError("'zoos' must be a non-empty list of `kind: hub` entries")
    stripped, filters = [], []
    for index, entry in enumerate(zoos):
        where = f"zoos[{index}]"
        if not isinstance(entry, Mapping) or entry.get("kind") != "hub":
            raise ConfigError(f"{where}: a rescan lists Hugging Face Hub models, so every zoo must be `kind: hub` "
                              f"(got {entry.get('kind') if isinstance(entry, Mapping) else entry!r}); "
                              "use `ww-ray sweep` for other zoos")
        entry = dict(entry)
        filters.append(_parse_filters(entry, where))
        stripped.append({k: v for k, v in entry.items() if k not in HUB_LISTING_KEYS})
    sweep = parse_config({**data, "zoos": stripped}, base_dir=base_dir)
    return RescanConfig(sweep=sweep, filters=tuple(filters), settings=settings)


def _one_or_many(entry: dict[str, Any], one: str, many: str, where: str) -> list[str]:
    """``author: x`` and/or ``authors: [y, z]`` (the singular key is popped) as one list, singular first."""
    values = list(str_list(entry.get(many), f"{where}.{many}"))
    value = entry.pop(one, None)
    if value is not None:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}.{one} must be a non-empty string, got {value!r}")
        values.insert(0, value)
    return values


def _parse_filters(entry: dict[str, Any], where: str) -> HubFilters:
    authors = _one_or_many(entry, "author", "authors", where)
    tags = _one_or_many(entry, "pipeline_tag", "pipeline_tags", where)
    if entry.get("models") and (authors or tags or entry.get("search") or entry.get("library")):
        raise ConfigError(f"{where}: `models:` names the models to watch; it cannot be combined with listing "
                          "filters (author(s), pipeline_tag(s), library, search)")
    if entry.get("limit") is not None:
        raise ConfigError(f"{where}.limit: a rescan caps the models analysed per night with rescan.max_models "
                          "(and the listing with rescan.max_listed)")
    if entry.get("sort") not in (None, "last_modified"):
        raise ConfigError(f"{where}.sort: a rescan always lists newest first (last_modified), got {entry['sort']!r}")
    entry.pop("sort", None)
    downloads = entry.get("min_downloads", 0)
    if isinstance(downloads, bool) or not isinstance(downloads, int) or downloads < 0:
        raise ConfigError(f"{where}.min_downloads must be a non-negative integer, got {downloads!r}")
    return HubFilters(authors=tuple(dict.fromkeys(authors)), pipeline_tags=tuple(dict.fromkeys(tags)),
                      min_downloads=downloads)


def parse_settings(value: Any) -> RescanSettings:
    """Validate the ``rescan:`` mapping."""
    if value is None:
        return RescanSettings()
    if not isinstance(value, Mapping):
        raise ConfigError(f"'rescan' must be a mapping, got {value!r}")
    allowed = ("max_models", "time_budget", "batch_size", "since", "min_age", "max_listed", "max_failures",
               "min_models")
    check_keys(value, allowed, "rescan")
    defaults = RescanSettings()
    min_models = positive_int(value.get("min_models", defaults.min_models), "rescan.min_models")
    if min_models < 2:
        raise ConfigError("rescan.min_models must be at least 2 (a line needs two points)")
    return RescanSettings(
        max_models=positive_int(value.get("max_models"), "rescan.max_models"),
        time_budget_s=parse_duration(value.get("time_budget"), "rescan.time_budget"),
        batch_size=positive_int(value.get("batch_size", defaults.batch_size), "rescan.batch_size"),
        since=parse_timestamp(value.get("since"), "rescan.since"),
        min_age_s=parse_duration(value.get("min_age"), "rescan.min_age") or 0.0,
        max_listed=positive_int(value.get("max_listed", defaults.max_listed), "rescan.max_listed"),
        max_failures=positive_int(value.get("max_failures", defaults.max_failures), "rescan.max_failures"),
        min_models=min_models,
    )


def parse_timestamp(value: Any, where: str = "timestamp") -> _dt.datetime | None:
    """A timezone-aware UTC datetime from an ISO date/time (YAML may already have parsed it)."""
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        stamp = value
    elif isinstance(value, _dt.date):
        stamp = _dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            stamp = _dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"{where} must be an ISO date or time such as 2025-01-01, got {value!r}") from exc
    else:
        raise ConfigError(f"{where} must be an ISO date or time such as 2025-01-01, got {value!r}")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=_dt.timezone.utc)
    return stamp.astimezone(_dt.timezone.utc)
