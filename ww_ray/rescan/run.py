"""Run a rescan: list the Hub down to each zoo's watermark, analyse what is new, refresh, report, record.

Steps (the rescan's own run id names its manifest; each engine batch has its own run id and manifest):

1. read the watermarks (``runs/`` manifests of completed rescans) and the dataset's keys and failures;
2. list each zoo newest first down to its watermark (``listing``) and decide each entry
   (``candidates``): skip keys already analysed, filters, size from safetensors headers;
3. commit a ``skipped`` row for each repo left out for its kind (quantized, no weights: ``repo_kind``
   recorded); analyse the candidates oldest first through the sweep engine (``ww_ray.engine.run_sweep``) in
   batches of ``rescan.batch_size``, up to ``rescan.max_models``; no batch starts after
   ``rescan.time_budget``;
4. refit the regressions of the series touched (``refresh``), build the report (``report``);
5. write the rescan manifest last, with the new watermarks (``watermark``).

A rescan killed at any point has written no manifest, so its zoos keep their watermarks; the
models it committed are skipped next time by the resume rule, and the others are listed again.
"""
from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from ww_ray.errors import ZooUnavailableError
from ww_ray.engine import SweepResult, run_sweep
from ww_ray.engine.cluster import ray_session
from ww_ray.engine.manifest import manifest_header, plain
from ww_ray.engine.scheduler import deferred_interrupt
from ww_ray.rescan.candidates import (
    REASONS, Candidate, Rejected, Selection, examine, list_explicit, order_and_cap,
)
from ww_ray.rescan.history import History, Key, read_history
from ww_ray.rescan.listing import Listed, Listing, list_newest
from ww_ray.rescan.refresh import refresh_regressions, touched_series
from ww_ray.rescan.report import format_report, model_entries
from ww_ray.rescan.settings import RescanConfig
from ww_ray.rescan.watermark import (
    RESCAN_KIND, Watermark, iso, next_watermark, previous_watermarks, zoo_fingerprint,
)
from ww_ray.spectral.metrics import ANALYZER_VERSION
from ww_ray.spectral.presets import AnalysisOptions
from ww_ray.engine.outcome import terminal_row
from ww_ray.store import commit_models, done_keys, new_run_id, read_manifests, read_table, resolve_root, write_manifest
from ww_ray.store.root import StoreRoot
from ww_ray.zoos.hub import HubZoo, hub_offline

log = logging.getLogger(__name__)
_MAX_REJECTED_IN_REPORT = 500


@dataclass
class ZooScan:
    """One zoo's part of a rescan."""

    index: int
    fingerprint: str
    explicit: bool
    previous: Watermark
    listing: Listing = field(default_factory=Listing)
    watermark: Watermark | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"zoo": self.index, "fingerprint": self.fingerprint, "explicit_models": self.explicit,
                "listed": len(self.listing.entries), "deferred": len(self.listing.deferred),
                "truncated": self.listing.truncated, "previous_watermark": iso(self.previous.at),
                "watermark": iso(self.watermark.at if self.watermark else None), "error": self.error}


@dataclass
class RescanResult:
    """What a rescan did; ``report`` is what its manifest holds under that name."""

    run_id: str
    root: str
    status: str                                     # completed | interrupted | dry-run
    zoos: list[ZooScan]
    selection: Selection
    selected: list[Candidate]
    pending: dict[Key, str]
    given_up: list[Key] = field(default_factory=list)
    batches: list[SweepResult] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)
    manifest_path: str | None = None

    @property
    def analysed(self) -> list[Key]:
        """Keys of the models the engine took in this rescan (whatever their status)."""
        return [r.key for batch in self.batches for r in batch.results]

    @property
    def zoo_errors(self) -> list[str]:
        return [f"zoos[{z.index}]: {z.error}" for z in self.zoos if z.error]

    def summary(self, markdown: bool = False) -> str:
        return format_report(self.report, markdown=markdown)


def run_rescan(config: RescanConfig, *, client: Any | None = None, root: StoreRoot | str | None = None,
               progress: bool = True, dry_run: bool = False, clock: Callable[[], float] = time.monotonic,
               now: _dt.datetime | None = None) -> RescanResult:
    """Rescan the Hub for the zoos of ``config`` and analyse what is new (see the module docstring).

    Args:
        config: the rescan config (``load_rescan_config``; ``with_overrides`` for --out/--address).
        client: an ``HfApi``-compatible client (default: ``ww_ray.zoos.hub.make_client()``).
        root: the dataset root, already resolved or not (default: the config's ``out``).
        progress: the engine's progress bar.
        dry_run: list and select only: nothing is analysed or written.
        clock: monotonic seconds, for the time budget.
        now: the current time, for ``rescan.min_age`` (default: the wall clock).
    """
    if hub_offline():
        raise ZooUnavailableError("HF_HUB_OFFLINE is set, but a rescan lists the Hugging Face Hub and needs the "
                                  "network; unset it for the driver (workers may keep reading a local cache)")
    settings = config.settings
    options = config.sweep.analysis
    store = resolve_root(root if root is not None else config.sweep.out)
    run_id = new_run_id()
    started, started_at = clock(), _dt.datetime.now(_dt.timezone.utc)
    now = now or started_at
    watermarks = previous_watermarks(read_manifests(store))
    history = read_history(store, ANALYZER_VERSION, options.label)

    scans, selection = _scan_zoos(config, client, watermarks, history, options.label, now)
    selected, waiting = order_and_cap(selection.candidates, settings.max_models)
    pending: dict[Key, str] = {c.key: "over the per-night cap (rescan.max_models)" for c in waiting}
    result = RescanResult(run_id=run_id, root=str(store), status="dry-run" if dry_run else "completed",
                          zoos=scans, selection=selection, selected=selected, pending=pending)
    if dry_run:
        for scan in scans:
            scan.watermark = scan.previous
        result.report = build_report(result, store, [], pd.DataFrame(), {})
        return result

    deadline = started + settings.time_budget_s if settings.time_budget_s else None
    _record_kinds(selection, store, run_id, options)
    _analyse(config, options, store, result, deadline, clock, progress)
    _settle(result, store, options.label, history.failures, settings.max_failures)
    models = read_table(store, "models")
    regressions = _refresh(result, store, models, settings.min_models)
    run_ids = [b.run_id for b in result.batches]
    result.report = build_report(result, store, run_ids, models, regressions)
    manifest = _manifest(config, options, result, started_at, str(store), run_ids)
    with deferred_interrupt():
        result.manifest_path = write_manifest(store, run_id, manifest)
    return result


def _scan_zoos(config: RescanConfig, client: Any | None, watermarks: dict[str, Watermark], history: History,
               preset: str, now: _dt.datetime) -> tuple[list[ZooScan], Selection]:
    """List every zoo down to its watermark and decide each entry; a zoo that fails keeps its watermark."""
    settings = config.settings
    selection, scans = Selection(), []
    for index, (zoo_config, filters) in enumerate(zip(config.zoos, config.filters)):
        zoo = HubZoo(zoo_config, client=client)
        fingerprint = zoo_fingerprint(zoo_config, filters, preset, ANALYZER_VERSION)
        scan = ZooScan(index, fingerprint, bool(zoo_config.options.get("models")),
                       watermarks.get(fingerprint, Watermark()))
        scans.append(scan)
        mark = len(selection.candidates), len(selection.rejected)
        try:
            if scan.explicit:
                entries, problems = list_explicit(zoo)
                scan.listing = Listing(entries=entries)
                selection.rejected += [Rejected(index, p.repo_id, p.sha, p.reason, p.detail) for p in problems]
            else:
                scan.listing = list_newest(
                    zoo.client, zoo_config, filters, stop_before=scan.previous.at or settings.since,
                    max_listed=settings.max_listed, now=now, min_age_s=settings.min_age_s,
                    seen_at_stop=scan.previous.boundary)
            for entry in scan.listing.entries:
                examine(index, zoo, filters, entry, history, settings.max_failures, selection)
        except Exception as exc:  # the Hub unreachable, a broken client: this zoo keeps its watermark
            scan.error = f"{type(exc).__name__}: {exc}"
            log.error("zoos[%d] could not be rescanned: %s", index, scan.error)
            del selection.candidates[mark[0]:], selection.rejected[mark[1]:]
        if scan.listing.truncated:
            log.warning("zoos[%d]: the listing reached rescan.max_listed (%d) before the watermark; raise it or "
                        "narrow the filters", index, settings.max_listed)
    return scans, selection


def _record_kinds(selection: Selection, store: StoreRoot, run_id: str, options: AnalysisOptions) -> int:
    """Commit one ``skipped`` models row (with its ``repo_kind`` and reason) per repo left out for its kind."""
    rows = [terminal_row(r.spec, "skipped", r.detail, run_id, options) for r in selection.rejected if r.spec is not None]
    return commit_models(store, rows) if rows else 0


def _manifest(config: RescanConfig, options: AnalysisOptions, result: RescanResult, started_at: _dt.datetime,
              root: str, run_ids: list[str]) -> dict[str, Any]:
    """The rescan manifest: what ran, with what, each zoo's watermark, and the report."""
    return {
        **manifest_header(kind=RESCAN_KIND, status=result.status, started_at=started_at, root=root,
                          config=config.sweep, options=options),
        "rescan": plain(asdict(config.settings)),
        "watermarks": {s.fingerprint: {**(s.watermark or s.previous).as_dict(), "previous": iso(s.previous.at),
                                       "zoo": s.index, "truncated": s.listing.truncated, "error": s.error}
                       for s in result.zoos if not s.explicit},
        "batches": run_ids, "counts": result.report["counts"], "report": result.report,
    }


def _analyse(config: RescanConfig, options: AnalysisOptions, store: StoreRoot, result: RescanResult,
             deadline: float | None, clock: Callable[[], float], progress: bool) -> None:
    """Run the selected candidates through the engine, batch by batch, within the time budget."""
    selected, size = result.selected, config.settings.batch_size
    if not selected:
        return
    ray_cfg = config.sweep.ray
    try:
        with ray_session(ray_cfg.address, ray_cfg.runtime_env):
            for start in range(0, len(selected), size):
                if deadline is not None and clock() >= deadline:
                    for candidate in selected[start:]:
                        result.pending[candidate.key] = "out of time (rescan.time_budget)"
                    break
                batch = selected[start:start + size]
                sweep = run_sweep([c.spec for c in batch], options, store, ray_cfg, resume=True,
                                  run_id=f"{result.run_id}-b{start // size:03d}", config=config.sweep,
                                  progress=progress)
                result.batches.append(sweep)
                if sweep.interrupted:
                    result.status = "interrupted"
                    break
    except KeyboardInterrupt:
        result.status = "interrupted"
    if result.status == "interrupted":
        finished = {r.key for batch in result.batches for r in batch.results}
        for candidate in selected:
            if candidate.key not in finished:
                result.pending.setdefault(candidate.key, "interrupted")


def _settle(result: RescanResult, store: StoreRoot, preset: str, failures_before: dict[Key, int],
            max_failures: int) -> None:
    """Decide what is still pending, and each zoo's new watermark."""
    outcome = {r.key: r for batch in result.batches for r in batch.results}
    done_now = done_keys(store, ANALYZER_VERSION, preset=preset)
    for candidate in result.selected:
        key = candidate.key
        if key in done_now or key in result.pending:
            continue
        ended = outcome.get(key)
        if ended is None:
            result.pending[key] = "not analysed"
            continue
        failures = failures_before.get(key, 0) + 1
        if failures < max_failures:
            result.pending[key] = f"failed ({failures} of rescan.max_failures = {max_failures}); retried next time"
        else:
            result.given_up.append(key)
    by_key = {c.key: c for c in result.selection.candidates}
    for scan in result.zoos:
        if scan.explicit or scan.error or result.status != "completed":
            scan.watermark = scan.previous
            continue
        held: list[Listed] = [by_key[k].listed for k in result.pending if by_key[k].zoo == scan.index]
        scan.watermark = next_watermark(scan.previous, scan.listing, held)


def _refresh(result: RescanResult, store: StoreRoot, models: pd.DataFrame, min_models: int) -> dict[str, Any]:
    ok = {r.key for batch in result.batches for r in batch.results if r.status == "ok"}
    series = touched_series((c.spec.dataset, c.spec.architecture) for c in result.selected if c.key in ok)
    info: dict[str, Any] = {"series": sorted([list(s) for s in series]), "rows": 0, "note": None}
    if not series:
        info["note"] = "no analysed model has both a dataset and an architecture" if ok else None
        return info
    try:
        fits = refresh_regressions(store, series, result.run_id, min_models=min_models, models=models)
    except (ValueError, KeyError) as exc:
        info["note"] = f"regressions not refreshed: {exc}"
        return info
    info["rows"] = len(fits)
    if fits.empty:
        info["note"] = f"no touched series has {min_models} ok models with an error figure"
    return info


def build_report(result: RescanResult, store: StoreRoot, run_ids: list[str], models: pd.DataFrame,
                 regressions: dict[str, Any]) -> dict[str, Any]:
    """The report dict kept in the manifest (see ``ww_ray.rescan.report``)."""
    selection = result.selection
    entries = model_entries(store, result.selected, run_ids, models) if run_ids else []
    statuses = [e["status"] for e in entries]
    by_key = {c.key: c for c in selection.candidates}
    counts = {
        "listed": sum(len(z.listing.entries) for z in result.zoos),
        "deferred_min_age": sum(len(z.listing.deferred) for z in result.zoos),
        **{reason.replace(" ", "_"): selection.count(reason) for reason in REASONS},
        "candidates": len(selection.candidates),
        "analysed": len(entries), "new_models": sum(e["new_model"] for e in entries),
        "new_revisions": sum(not e["new_model"] for e in entries),
        "ok": statuses.count("ok"), "failed": statuses.count("failed"), "skipped": statuses.count("skipped"),
        "pending": len(result.pending), "given_up_now": len(result.given_up),
    }
    return {
        "run_id": result.run_id, "status": result.status, "zoos": [z.as_dict() for z in result.zoos],
        "counts": counts, "models": entries,
        "pending": [{"source": k[0], "model_id": k[1], "revision": k[2], "why": why,
                     "last_modified": iso(by_key[k].listed.last_modified) if k in by_key else None}
                    for k, why in result.pending.items()],
        "given_up": [{"source": k[0], "model_id": k[1], "revision": k[2]} for k in result.given_up],
        "rejected": [{"zoo": r.zoo, "model_id": r.repo_id, "revision": r.sha, "reason": r.reason, "detail": r.detail}
                     for r in selection.rejected if r.reason != "already analysed"][:_MAX_REJECTED_IN_REPORT],
        "regressions": regressions,
    }
