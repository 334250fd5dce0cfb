"""``SpectralWorker``: the actor that turns a shard of matrices into per-matrix rows.

A shard is either a ``LazyShard`` (tensor names of a safetensors model: the worker reads just those
tensors, one at a time, and computes them in memory-bounded batches through
``ww_ray.api.analyze_weights``) or a list of prepared ``SpectralInput`` streamed by a load task
(``ww_ray.spectral.metrics.compute_rows``). The math lives in ``ww_ray.spectral``. Each actor pins its BLAS/torch thread count to the CPUs it was granted, so several workers
on one machine do not oversubscribe its cores.
"""
from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

from ww_ray.engine.results import ShardResult
from ww_ray.spectral.presets import AnalysisOptions

if TYPE_CHECKING:  # types only: shard_plan imports torch, which a CPU worker with streamed shards never needs
    from ww_ray.engine.shard_plan import LazyShard
    from ww_ray.spectral.matrices import SpectralInput


class SpectralWorker:
    """Computes rows for shards; wrapped with ``ray.remote`` by the pool (see ``engine.pool``)."""

    def __init__(self, threads: int, device: str) -> None:
        self.threads = max(1, int(threads))
        self.device = device
        self._limit_threads()
        from ww_ray.allocator import pin_mmap_threshold
        from ww_ray.spectral import metrics  # noqa: F401  (import once, not on the first shard)

        pin_mmap_threshold()  # freed matrices back to the OS between shards (ww_ray.allocator)

    def _limit_threads(self) -> None:
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(limits=self.threads)
        if self.device != "cpu":  # the CPU path is numpy only: no torch import (seconds) on CPU workers
            import torch

            torch.set_num_threads(self.threads)

    def compute(self, shard: LazyShard | list[SpectralInput], options: AnalysisOptions) -> ShardResult:
        """Rows for the shard (in layer order) and how long they took."""
        started = time.perf_counter()
        if not isinstance(shard, list):  # a LazyShard: unpickling it imported shard_plan already
            from ww_ray.api import analyze_weights
            from ww_ray.engine.shard_plan import read_layer_weights

            weights = read_layer_weights(shard, skip_embeddings=options.skip_embeddings)
            rows = analyze_weights(weights, options, device=self.device, threads=self.threads)
        else:
            from ww_ray.spectral.metrics import compute_rows

            rows = compute_rows(shard, options, device=self.device, threads=self.threads)
        return ShardResult(rows=rows, seconds=time.perf_counter() - started)

    def info(self) -> dict[str, Any]:
        """Where the worker runs and with what (for the run manifest)."""
        return {"node": socket.gethostname(), "threads": self.threads, "device": self.device}
