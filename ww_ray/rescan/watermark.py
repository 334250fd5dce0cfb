"""The watermark of a rescan: how far back the next rescan of a zoo has to list.

A rescan lists newest first and stops at the watermark its zoo got from the last *completed*
rescan, read from the dataset's ``runs/`` manifests (``kind: rescan``). The watermark is a
low-water mark: every listed revision newer than it has been examined and either analysed (its key
is in the dataset), rejected by the filters, or given up after ``max_failures`` failures. So:

* nothing pending: the watermark moves to the newest revision examined;
* something pending (over the per-night cap, out of time, failed but still to be retried): it moves
  no further than the oldest pending revision, which is listed again next time (keys already
  analysed on the way are skipped without a Hub call);
* revisions too young for ``rescan.min_age`` are newer than everything examined, so they always
  stay above the watermark and are examined on a later night;
* a listing cut short by ``max_listed`` before reaching the old watermark keeps the old one, since
  the revisions in between were never seen.

Listings stop at entries strictly older than the watermark; the entries exactly at it that were
already examined are remembered with it (``boundary``), so ties are neither missed nor looked at twice.

A zoo is identified by a fingerprint of its filters, the preset and the analyzer version: change
any of them and that zoo's rescans start over from ``rescan.since`` (keys already analysed are still
skipped). A rescan that is killed writes no manifest, and one that is interrupted writes one with
status ``interrupted``; neither moves a watermark.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ww_ray.zoos.config import ZooConfig
from ww_ray.rescan.listing import Listed, Listing, as_utc
from ww_ray.rescan.settings import HubFilters

RESCAN_KIND = "rescan"
#: Zoo options that do not change which models a zoo selects.
_NEUTRAL_OPTIONS = ("cache_dir",)


def zoo_fingerprint(zoo: ZooConfig, filters: HubFilters, preset: str, analyzer_version: str) -> str:
    """A short stable id of what a zoo selects and how it is analysed."""
    zoo_dict = zoo.to_dict()
    zoo_dict["options"] = {k: v for k, v in sorted(zoo_dict["options"].items()) if k not in _NEUTRAL_OPTIONS}
    body = {"zoo": zoo_dict, "authors": list(filters.authors), "pipeline_tags": list(filters.pipeline_tags),
            "min_downloads": filters.min_downloads, "preset": preset, "analyzer_version": analyzer_version}
    text = json.dumps(body, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Watermark:
    """Where the next listing of a zoo stops: entries older than ``at`` are not read, and entries
    exactly at ``at`` whose (repo id, sha) is in ``boundary`` were already examined."""

    at: _dt.datetime | None = None
    boundary: frozenset[tuple[str, str]] = frozenset()

    def as_dict(self) -> dict[str, Any]:
        return {"watermark": iso(self.at), "boundary": sorted([list(b) for b in self.boundary])}


def previous_watermarks(manifests: Iterable[Mapping[str, Any]]) -> dict[str, Watermark]:
    """Each zoo fingerprint's watermark from the latest completed rescan that recorded it."""
    found: dict[str, Watermark] = {}
    for manifest in sorted(manifests, key=lambda m: str(m.get("run_id"))):
        if manifest.get("kind") != RESCAN_KIND or manifest.get("status") != "completed":
            continue
        for fingerprint, entry in (manifest.get("watermarks") or {}).items():
            if isinstance(entry, Mapping):
                boundary = frozenset((str(r), str(s)) for r, s in entry.get("boundary") or [])
                found[str(fingerprint)] = Watermark(as_utc(entry.get("watermark")), boundary)
    return found


def next_watermark(previous: Watermark, listing: Listing, pending: Iterable[Listed]) -> Watermark:
    """The watermark after a rescan of one zoo (see the module docstring)."""
    pending = list(pending)
    if listing.truncated and previous.at is not None:
        return previous
    if any(p.last_modified is None for p in pending):
        return previous  # a pending revision without a time: only the old watermark is sure to list it again
    at = min(p.last_modified for p in pending) if pending else listing.newest
    if at is None or (previous.at is not None and at < previous.at):
        return previous
    held = {(p.repo_id, p.sha or "") for p in pending}
    boundary = {(e.repo_id, e.sha or "") for e in listing.entries if e.last_modified == at} - held
    if at == previous.at:
        boundary |= previous.boundary - held
    return Watermark(at, frozenset(boundary))


def iso(stamp: _dt.datetime | None) -> str | None:
    return stamp.isoformat() if stamp is not None else None
