"""``SpectralWorker``: the actor that turns a shard of matrices into per-matrix rows.

It only calls ``ww_ray.spectral.metrics.compute_rows`` on the device it was given; the math lives
there. Each actor pins its BLAS/torch thread count to the CPUs it was granted, so several workers
on one machine do not oversubscribe its cores.
"""
from __future__ import annotations

import socket
import time
from typing import Any

from ww_ray.spectral.matrices import SpectralInput
from ww_ray.spectral.presets import AnalysisOptions


class SpectralWorker:
    """Computes rows for shards; wrapped with ``ray.remote`` by the pool (see ``engine.pool``)."""

    def __init__(self, threads: int, device: str) -> None:
        self.threads = max(1, int(threads))
        self.device = device
        self._limit_threads()
        from ww_ray.spectral import metrics  # noqa: F401  (import once, not on the first shard)

    def _limit_threads(self) -> None:
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(limits=self.threads)
        if self.device != "cpu":  # the CPU path is numpy only: no torch import (seconds) on CPU workers
            import torch

            torch.set_num_threads(self.threads)

    def compute(self, inputs: list[SpectralInput], options: AnalysisOptions) -> dict[str, Any]:
        """Rows for ``inputs`` (in order) and how long they took."""
        from ww_ray.spectral.metrics import compute_rows

        started = time.perf_counter()
        rows = compute_rows(inputs, options, device=self.device, threads=self.threads)
        return {"rows": rows, "seconds": time.perf_counter() - started, "node": socket.gethostname()}

    def info(self) -> dict[str, Any]:
        """Where the worker runs and with what (for the run manifest)."""
        return {"node": socket.gethostname(), "threads": self.threads, "device": self.device}
