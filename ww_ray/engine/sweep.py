"""Run a sweep: plan (resume), start or join Ray, run the scheduler, write the manifest last.

Two entry points:

* ``run_config(config)`` — what ``ww-ray sweep CONFIG.yaml`` and ``jobs/sweep.py`` call: enumerate
  the config's zoos (a zoo that cannot be listed is reported, the others still run), resolve the
  preset and options, then ``run_sweep``.
* ``run_sweep(specs, options, out, ray_cfg)`` — the engine on an explicit list of ``ModelSpec``; a
  rescan (models re-listed nightly, only new revisions analysed) reuses it as it is.

Example::

    from ww_ray.config import load_config
    from ww_ray.engine import run_config
    result = run_config(load_config("configs/local-example.yaml"))
    print(result.summary_table())
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import time
from dataclasses import replace
from typing import Any

from ww_ray.config import RayConfig, SweepConfig
from ww_ray.engine.cluster import ray_session
from ww_ray.engine.manifest import build_manifest
from ww_ray.engine.plan import model_key, plan_models, shard_count
from ww_ray.engine.progress import Progress, Stages
from ww_ray.engine.results import SweepResult
from ww_ray.engine.scheduler import deferred_interrupt
from ww_ray.spectral.metrics import ANALYZER_VERSION
from ww_ray.spectral.presets import AnalysisOptions
from ww_ray.store import done_keys, new_run_id, resolve_root, write_manifest
from ww_ray.store.paths import check_run_id
from ww_ray.zoos.spec import ModelSpec

log = logging.getLogger(__name__)

#: How long the run waits for its workers to start before scheduling models anyway.
STARTUP_TIMEOUT_S = 120.0


def loads_at_once(workers: int) -> int:
    """Models loading at the same time: one per two spectral workers (at least one)."""
    return max(1, (workers + 1) // 2)


def run_sweep(specs: list[ModelSpec], options: AnalysisOptions, out: str, ray_cfg: RayConfig | None = None, *,
              resume: bool = True, run_id: str | None = None, address: str | None = None,
              config: Any = None, progress: bool = True, restart_grace_s: float = 120.0,
              zoo_errors: list[dict[str, Any]] | None = None) -> SweepResult:
    """Analyse ``specs`` on Ray into the dataset at ``out``; every model taken ends with one ``models`` row.

    Args:
        specs: models to analyse (from ``ww_ray.zoos.registry.enumerate_specs`` or a rescan).
        options: analysis options (``ww_ray.spectral.presets.resolve_options``).
        out: dataset root, a local folder or a pyarrow URI.
        ray_cfg: cluster knobs (workers, resources, models in flight, timeout, retries).
        resume: skip models the dataset already holds as ``ok``/``skipped`` for this analyzer version and preset.
        run_id: the run's id (default: a fresh time-ordered id).
        address: Ray address to join (overrides ``ray_cfg.address``); None starts a local Ray.
        config: the resolved config recorded (and hashed) in the manifest.
        progress: show a progress bar on stderr.
        restart_grace_s: how long a failed worker may take to come back before it is retired.
        zoo_errors: zoos that could not be listed (recorded in the manifest and the summary).

    Ctrl-C stops the run between commits: committed models stay, the others are listed as
    ``unfinished`` in the manifest (status ``interrupted``) and are picked up by the next run.
    """
    ray_cfg = ray_cfg or RayConfig()
    root = resolve_root(out)
    run_id = check_run_id(run_id) if run_id is not None else new_run_id()  # refused before any work starts
    started_at = _dt.datetime.now(_dt.timezone.utc)
    started = time.monotonic()
    done = done_keys(root, ANALYZER_VERSION, preset=options.label) if resume else set()
    plan = plan_models(list(specs), done)
    facts: dict[str, Any] = {"status": "completed", "results": [], "unfinished": [], "error": None,
                             "pool": None, "cluster": None, "seconds_startup": 0.0}
    crash: Exception | None = None
    if plan.todo:
        try:
            _run(plan.todo, options, root, run_id, ray_cfg, address, progress, restart_grace_s, facts)
        except KeyboardInterrupt:
            facts["status"] = "interrupted"
        except Exception as exc:  # cannot start Ray, or a bug: recorded in the manifest, then raised
            facts["status"], facts["error"], crash = "crashed", f"{type(exc).__name__}: {exc}", exc
        if facts["status"] != "completed":
            finished = {r.key for r in facts["results"]}
            facts["unfinished"] = [model_key(spec) for spec in plan.todo if model_key(spec) not in finished]
    result = SweepResult(
        run_id=run_id, root=str(root), status=facts["status"], planned=len(plan.todo),
        already_done=len(plan.already_done), results=list(facts["results"]), unfinished=list(facts["unfinished"]),
        seconds=time.monotonic() - started, seconds_startup=facts["seconds_startup"], pool=facts["pool"],
        cluster=facts["cluster"], zoo_errors=list(zoo_errors or []), error=facts["error"],
    )
    manifest = build_manifest(
        run_id=run_id, status=result.status, started_at=started_at, seconds=result.seconds, root=str(root),
        config=config, options=options,
        counts={"planned": result.planned, "already_done": result.already_done, **result.counts,
                "unfinished": len(result.unfinished), "duplicates_dropped": len(plan.duplicates),
                "matrices": sum(r.matrices for r in result.results)},
        results=list(result.results), unfinished=list(result.unfinished), cluster=result.cluster, pool=result.pool,
        zoo_errors=list(result.zoo_errors), seconds_startup=result.seconds_startup, error=result.error,
    )
    manifest_path = None
    try:
        with deferred_interrupt():
            manifest_path = write_manifest(root, run_id, manifest)
    except KeyboardInterrupt:  # Ctrl-C while the manifest was written: it is written, the run is over anyway
        log.warning("interrupted while writing the run manifest; it was written in full")
    result = replace(result, manifest_path=manifest_path)
    if plan.todo and crash is None:
        _compact(root)
    if crash is not None:
        raise crash
    return result


def _compact(root) -> None:
    """Compact the root's small files (reads stay fast run after run); a failure only costs speed."""
    from ww_ray.store import compact
    try:
        # retain_s=0: the replaced files go at once, so even a plain ``read_parquet('layers/**')`` glob
        # (not the supported read path) shows no duplicates once the sweep has returned.
        report = compact(root, retain_s=0)
        log.info("compacted %d file(s) into %d", report.files_in, report.files_out)
    except Exception as exc:  # the run's rows are committed already; the next compaction retries
        log.warning("could not compact %s: %s", root, exc)


def _run(todo: list[ModelSpec], options: AnalysisOptions, root, run_id: str, ray_cfg: RayConfig,
         address: str | None, progress: bool, restart_grace_s: float, facts: dict[str, Any],
         startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Start or join Ray, run the scheduler; fills ``facts`` (also when interrupted)."""
    from ww_ray.engine.cluster import cluster_resources, plan_pool
    from ww_ray.engine.pool import WorkerPool
    from ww_ray.engine.scheduler import Scheduler

    started = time.monotonic()
    stages = Stages(enabled=progress)
    target = address or ray_cfg.address or os.environ.get("RAY_ADDRESS")
    stages.say(f"joining Ray at {target}…" if target else "starting local Ray…")
    with ray_session(address or ray_cfg.address, ray_cfg.runtime_env, workers=ray_cfg.workers,
                     loads=ray_cfg.max_models_in_flight) as how:
        resources = cluster_resources()
        stages.done(f"Ray ready ({resources['total'].get('CPU', 0):g} CPUs"
                    + (f", {resources['total']['GPU']:g} GPUs" if resources["total"].get("GPU") else "")
                    + f", {how})")
        useful = sum(shard_count(spec, 1 << 20) for spec in todo)
        pool_spec = plan_pool(ray_cfg, options, resources, max_useful=useful)
        facts["pool"] = pool_spec.as_dict()
        facts["cluster"] = {"how": how, **resources}
        pool = WorkerPool(pool_spec, options, restart_grace_s=restart_grace_s)
        max_loads = loads_at_once(pool_spec.workers)
        bar: Progress | None = None
        scheduler: Scheduler | None = None
        try:
            # Only as many load workers as may load at once are warmed: more would only compete for
            # the CPUs while they import torch (further ones start when a load needs them).
            loaders = min(max_loads, len(todo))
            stages.say(f"starting {pool_spec.workers} spectral worker(s) on {pool_spec.device} and "
                       f"{loaders} load worker(s)…")
            pool.start()
            if not pool.warm_up(loaders=loaders, timeout_s=startup_timeout_s):
                log.warning("workers still starting after %g s; going on (their models wait for them)",
                            startup_timeout_s)
            stages.done("workers ready")
            facts["seconds_startup"] = time.monotonic() - started
            bar = Progress(len(todo), enabled=progress)
            scheduler = Scheduler(todo, options, root, run_id, pool, max_in_flight=ray_cfg.max_models_in_flight,
                                  max_loads=max_loads, max_retries=ray_cfg.max_retries,
                                  model_timeout_s=ray_cfg.model_timeout_s, node_memory=pool_spec.node_memory,
                                  on_model=bar.model_done, on_matrices=bar.matrices)
            scheduler.run()
        except KeyboardInterrupt:
            if scheduler is not None:
                scheduler.abort()
            raise
        finally:
            facts["results"] = list(scheduler.results) if scheduler is not None else []
            if bar is not None:
                bar.close()
            pool.shutdown()


def enumerate_zoos(config: SweepConfig) -> tuple[list[ModelSpec], list[dict[str, Any]]]:
    """The config's models zoo by zoo; a zoo that cannot be listed is reported instead of stopping the run."""
    from ww_ray.zoos.registry import enumerate_specs

    specs: list[ModelSpec] = []
    errors: list[dict[str, Any]] = []
    for index, zoo in enumerate(config.zoos):
        try:
            specs.extend(enumerate_specs([zoo]))
        except Exception as exc:
            log.error("zoos[%d] (%s) could not be listed: %s", index, zoo.kind, exc)
            errors.append({"zoo": index, "kind": zoo.kind, "name": zoo.name,
                           "error": f"{type(exc).__name__}: {exc}"})
    return specs, errors


def run_config(config: SweepConfig, *, out: str | None = None, address: str | None = None, resume: bool = True,
               progress: bool = True, ray_overrides: dict[str, Any] | None = None,
               run_id: str | None = None) -> SweepResult:
    """Run the sweep a config describes (``out``/``address``/``ray_overrides`` replace the config's)."""
    options = config.analysis
    ray_cfg = replace(config.ray, **(ray_overrides or {}))
    if out is not None:
        config = replace(config, out=out)
    config = replace(config, ray=ray_cfg)
    specs, zoo_errors = enumerate_zoos(config)
    return run_sweep(specs, options, config.out, ray_cfg, resume=resume, address=address, config=config,
                     progress=progress, zoo_errors=zoo_errors, run_id=run_id)


__all__ = ["SweepResult", "enumerate_zoos", "model_key", "run_config", "run_sweep"]
