"""Connecting to Ray and sizing the worker pool from what the cluster offers.

Without an address (and no ``RAY_ADDRESS`` in the environment) a local Ray is started — the
embedded default, ``ray.init(num_cpus=<usable CPUs>, include_dashboard=False)`` — and shut down at
the end. With an address (``auto``, ``ray://head:10001``, or the one ``ray job submit`` sets) the
driver joins that cluster. A Ray session already open in the process (a notebook, a test) is reused
and left open.

Pool sizing: CPU workers reserve ``cpus_per_worker`` CPUs each, cut down to a fraction when more
workers are asked for than the cluster has CPUs (``workers: 4`` on a 2-core machine gives four
workers of 0.5 CPU instead of two that never start and hold their queued shards forever). Load tasks
reserve no CPU (``LOAD_CPUS``): the driver bounds them (one load per two workers at a time, at most
``max_models_in_flight`` models in flight) and Ray places them by their ``memory`` request, so the
worker pool can never starve them — not on a 2-core machine, not after a node is lost. When the cluster has GPUs and the options allow them, each worker takes ``gpus_per_worker``
GPUs (1 when unset) and computes on ``cuda``.

Warm load workers: Ray kills idle worker processes beyond a soft limit (one per CPU, the spectral
workers included), so with every CPU taken by a spectral worker each load task would start a fresh
process and import torch again — seconds per model. The embedded local Ray raises that limit by
the number of models in flight (``local_init_options``); on a cluster you start yourself, do the
same: ``RAY_num_workers_soft_limit=<CPUs + models in flight> ray start ...``.
"""
from __future__ import annotations

import logging
import math
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from ww_ray.config import RayConfig
from ww_ray.errors import ClusterError
from ww_ray.spectral.metrics import usable_cpus
from ww_ray.spectral.presets import AnalysisOptions

log = logging.getLogger(__name__)

#: CPUs a load task reserves: none, so that spectral workers holding every CPU cannot starve it.
LOAD_CPUS = 0.0


def local_init_options(num_cpus: int, workers: int | None = None, loads: int = 4) -> dict[str, Any]:
    """``ray.init`` arguments of the embedded local Ray: its CPUs, no dashboard, warm load workers."""
    processes = max(num_cpus, workers or 0) + max(1, loads) + 1
    return {"num_cpus": num_cpus, "include_dashboard": False,
            "_system_config": {"num_workers_soft_limit": processes}}


@contextmanager
def ray_session(address: str | None = None, runtime_env: dict[str, Any] | None = None, *,
                workers: int | None = None, loads: int = 4) -> Iterator[str]:
    """Open (or reuse) a Ray session for the duration of a sweep; yields how it was obtained.

    ``workers`` and ``loads`` (spectral workers and models in flight) size the local Ray's process pool.
    """
    import ray

    if ray.is_initialized():
        yield "existing"
        return
    target = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    try:
        if target:
            ray.init(address=target, **kwargs)
            how = f"joined {target}"
        else:
            # address="local": always a new local Ray, never a cluster someone else `ray start`-ed here.
            ray.init(address="local", **local_init_options(usable_cpus(), workers, loads), **kwargs)
            how = "local"
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot start or join Ray ({'address ' + target if target else 'local'}): {exc}") from exc
    try:
        yield how
    finally:
        try:
            ray.shutdown()
        except Exception as exc:  # a failed disconnect must not hide the run's own outcome
            log.warning("ray.shutdown() failed: %s", exc)


@dataclass(frozen=True)
class PoolSpec:
    """How many spectral workers, with which resources, computing on which device."""

    workers: int
    num_cpus: float
    num_gpus: float
    threads: int
    device: str
    cluster_cpus: float
    cluster_gpus: float
    node_memory: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cluster_resources() -> dict[str, Any]:
    """Total resources and per-node capacities of the connected cluster."""
    import ray

    total = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {
        "total": {k: v for k, v in total.items() if not k.startswith("node:")},
        "nodes": len(nodes),
        "max_node_memory": max((n.get("Resources", {}).get("memory", 0.0) for n in nodes), default=0.0) or None,
    }


def plan_pool(ray_cfg: RayConfig, options: AnalysisOptions, resources: dict[str, Any], max_useful: int) -> PoolSpec:
    """Size the worker pool for ``resources`` (as from ``cluster_resources``); at most ``max_useful`` workers."""
    total = resources["total"]
    cpus, gpus = float(total.get("CPU", 0.0)), float(total.get("GPU", 0.0))
    if cpus <= 0:
        raise ClusterError("the Ray cluster has no CPUs; add worker nodes (or start Ray with num_cpus > 0)")
    use_gpus = gpus > 0 and options.device != "cpu"
    if use_gpus:
        per_worker_gpus = ray_cfg.gpus_per_worker or 1.0
        if per_worker_gpus > gpus:
            raise ClusterError(f"ray.gpus_per_worker={per_worker_gpus} but the cluster has only {gpus:g} GPUs")
        workers = ray_cfg.workers or max(1, math.floor(gpus / per_worker_gpus + 1e-9))
    else:
        if options.device == "cuda":
            log.warning("device 'cuda' was asked for but the cluster has no GPUs; computing on CPUs")
        per_worker_gpus = 0.0
        workers = ray_cfg.workers or max(1, math.floor(cpus / max(ray_cfg.cpus_per_worker, 1e-3) + 1e-9))
    workers = max(1, min(workers, max_useful))
    num_cpus = round(max(min(ray_cfg.cpus_per_worker, cpus / workers), 0.01), 3)
    return PoolSpec(
        workers=workers,
        num_cpus=num_cpus,
        num_gpus=per_worker_gpus,
        threads=max(1, math.floor(num_cpus + 0.5)),
        device="cuda" if use_gpus else "cpu",
        cluster_cpus=cpus,
        cluster_gpus=gpus,
        node_memory=resources.get("max_node_memory"),
    )
