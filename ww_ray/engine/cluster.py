"""Connecting to Ray and sizing the worker pool from what the cluster offers.

Without an address (and no ``RAY_ADDRESS`` in the environment) a local Ray is started — the
embedded default, ``ray.init(num_cpus=<usable CPUs>, include_dashboard=False,
_node_ip_address="127.0.0.1")`` inside ``loopback_only()``, so that every process it starts listens and
talks on 127.0.0.1 only; Ray's token authentication stays on — and shut down at the end. With an address (``auto``, ``ray://head:10001``, or the one ``ray job submit`` sets) the
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
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from ww_ray.config import RayConfig
from ww_ray.errors import ClusterError
from ww_ray.spectral.metrics import usable_cpus
from ww_ray.spectral.presets import AnalysisOptions

log = logging.getLogger(__name__)

#: The only address the embedded local Ray (and every test cluster) uses.
LOOPBACK = "127.0.0.1"
_CLUSTERS_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

#: CPUs a load task reserves: none, so that spectral workers holding every CPU cannot starve it.
LOAD_CPUS = 0.0


def local_init_options(num_cpus: int, workers: int | None = None, loads: int = 4) -> dict[str, Any]:
    """``ray.init`` arguments of the embedded local Ray: its CPUs, no dashboard, warm load workers, on
    127.0.0.1 (start it inside ``loopback_only()``, which makes Ray keep that address)."""
    processes = max(num_cpus, workers or 0) + max(1, loads) + 1
    return {"num_cpus": num_cpus, "include_dashboard": False, "_node_ip_address": LOOPBACK,
            "_system_config": {"num_workers_soft_limit": processes}}


def is_loopback_address(address: str) -> bool:
    """True for a Ray address on this machine's loopback (``127.0.0.1:6379``, ``ray://localhost:10001``)."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


@contextmanager
def loopback_only() -> Iterator[None]:
    """Within this block, a Ray started or joined here stays on 127.0.0.1.

    Ray 2.60 rewrites a loopback node address to the machine's routable address (``ray.init`` passes
    ``_node_ip_address="127.0.0.1"`` and the bootstrap address through ``resolve_ip_for_localhost``),
    after which the GCS, raylets, workers and agents listen on every interface. It keeps loopback only
    when it believes multi-node clusters are off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read at
    import), as on a laptop. So: set that variable for the processes Ray starts from here (they
    inherit it) and the constant this process already read; both are restored on exit.
    """
    import ray._private.ray_constants as ray_constants

    previous_env = os.environ.get(_CLUSTERS_ENV)
    previous_flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", True)
    os.environ[_CLUSTERS_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = previous_flag
        if previous_env is None:
            os.environ.pop(_CLUSTERS_ENV, None)
        else:
            os.environ[_CLUSTERS_ENV] = previous_env


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
            # A cluster on 127.0.0.1 (the embedded Ray of another process, `ray start --node-ip-address
            # 127.0.0.1`) is only reachable there: keep Ray from swapping in the routable address.
            with loopback_only() if is_loopback_address(target) else nullcontext():
                ray.init(address=target, **kwargs)
            how = f"joined {target}"
        else:
            # address="local": always a new local Ray, never a cluster someone else `ray start`-ed here;
            # on 127.0.0.1 only, so nothing of it is reachable from the network.
            with loopback_only():
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
