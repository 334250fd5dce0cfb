"""Listing the Hub newest first, down to a watermark, through an ``HfApi``-compatible client.

One ``list_models`` call per (author, pipeline tag) pair of a zoo's filters, each sorted by last
commit (``sort="last_modified"``, newest first) and read lazily page by page; the calls are merged
into one newest-first stream and reading stops at the watermark (entries strictly older than it),
after ``max_listed`` entries, or at the end of the listings. Nothing is downloaded here: an entry
carries the repo id, the commit sha, the last-commit time and the download count the listing gives.
"""
from __future__ import annotations

import datetime as _dt
import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ww_ray.zoos.config import ZooConfig
from ww_ray.rescan.settings import HubFilters

#: ModelInfo fields a rescan needs from a listing (``expand`` keeps the responses small).
LIST_EXPAND = ["sha", "lastModified", "downloads", "pipeline_tag", "library_name", "safetensors", "config"]


@dataclass(frozen=True)
class Listed:
    """One listing entry: a repo at a commit, with what the listing says about it."""

    repo_id: str
    sha: str | None
    last_modified: _dt.datetime | None
    downloads: int | None
    info: Any = field(default=None, compare=False, repr=False)


@dataclass
class Listing:
    """What one zoo's listing returned.

    Attributes:
        entries: listed repos, newest first, each repo once, none older than ``stop_before``.
        deferred: entries younger than ``min_age`` (seen, not examined: they come back next time).
        truncated: reading stopped at ``max_listed`` before the watermark or the end of the listings.
    """

    entries: list[Listed] = field(default_factory=list)
    deferred: list[Listed] = field(default_factory=list)
    truncated: bool = False

    @property
    def newest(self) -> _dt.datetime | None:
        stamps = [e.last_modified for e in self.entries if e.last_modified is not None]
        return max(stamps) if stamps else None


def as_utc(value: Any) -> _dt.datetime | None:
    """A ModelInfo timestamp (datetime or ISO string) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value.astimezone(_dt.timezone.utc)


def listed_from_info(info: Any) -> Listed:
    """A ``Listed`` from an ``huggingface_hub.hf_api.ModelInfo`` (or anything with its attributes)."""
    downloads = getattr(info, "downloads", None)
    return Listed(repo_id=str(info.id), sha=getattr(info, "sha", None),
                  last_modified=as_utc(getattr(info, "last_modified", None)),
                  downloads=int(downloads) if downloads is not None else None, info=info)


def _queries(zoo: ZooConfig, filters: HubFilters) -> list[dict[str, Any]]:
    options = zoo.options
    authors: Iterable[str | None] = filters.authors or [None]
    tags: Iterable[str | None] = filters.pipeline_tags or [None]
    return [{"author": author, "filter": options.get("library"), "pipeline_tag": tag,
             "search": options.get("search"), "sort": "last_modified", "expand": list(LIST_EXPAND)}
            for author, tag in itertools.product(authors, tags)]


def _stream(client: Any, query: dict[str, Any], stop_before: _dt.datetime | None,
            seen: frozenset[tuple[str, str]]) -> Iterator[tuple[float, int, Listed]]:
    """One listing as (sort key, tiebreak, entry), newest first, ending at the first entry below the watermark."""
    last_key = float("-inf")
    for position, info in enumerate(client.list_models(**query)):
        entry = listed_from_info(info)
        stamp = entry.last_modified
        if stamp is not None and stop_before is not None:
            if stamp < stop_before:
                return
            if stamp == stop_before and (entry.repo_id, entry.sha or "") in seen:
                continue
        # keys must not decrease within a stream for the merge; an entry without a time keeps its place
        key = -stamp.timestamp() if stamp is not None else last_key
        last_key = max(last_key, key)
        yield last_key, position, entry


def list_newest(client: Any, zoo: ZooConfig, filters: HubFilters, *, stop_before: _dt.datetime | None,
                max_listed: int, now: _dt.datetime, min_age_s: float = 0.0,
                seen_at_stop: frozenset[tuple[str, str]] = frozenset()) -> Listing:
    """List a zoo's matching Hub models newest first down to ``stop_before`` (exclusive).

    Entries exactly at ``stop_before`` whose (repo id, sha) is in ``seen_at_stop`` are passed over
    (examined by an earlier rescan). Entries whose last commit is younger than ``min_age_s`` are set
    aside in ``deferred``. Raises whatever the client raises (the caller reports the zoo as unreachable).
    """
    streams = [_stream(client, query, stop_before, seen_at_stop) for query in _queries(zoo, filters)]
    merged = heapq.merge(*streams, key=lambda item: (item[0], item[1]))
    settle = now - _dt.timedelta(seconds=min_age_s) if min_age_s else None
    listing = Listing()
    seen: set[str] = set()
    count = 0
    for _, _, entry in merged:
        if count >= max_listed:
            listing.truncated = True
            break
        count += 1
        if entry.repo_id in seen:
            continue
        seen.add(entry.repo_id)
        if settle is not None and entry.last_modified is not None and entry.last_modified > settle:
            listing.deferred.append(entry)
        else:
            listing.entries.append(entry)
    return listing
