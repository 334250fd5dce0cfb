"""The eigen-solve plan of a batch of rows: which matrices are solved alone or stacked, on what threads.

``solve_eigenvalues`` takes every row of a batch at once (all shape groups together) and cuts its
matrices into ``SolveTask``s:

* on the CPU, a matrix whose smaller side is at least ``STACK_BELOW`` is a task of its own: LAPACK
  gains nothing from a stack, and a float64 copy of a whole stack costs more than it saves;
* smaller CPU matrices (conv slices) and every matrix on a GPU are stacked by shape into batched
  calls of at most ``MAX_BATCH_BYTES`` of work memory: per-call overhead dominates small solves, and
  a GPU is fed whole stacks.

CPU tasks of every shape run on **one** thread pool of ``threads`` workers, longest first, each with
``threads // workers`` BLAS threads (threadpoolctl): the symmetric tridiagonal reduction inside
LAPACK's eigen-solver is memory-bound and scales poorly over BLAS threads, so one single-threaded
solve per core beats one multi-threaded solve at a time. (Pooling per shape group instead left every
group smaller than the pool, e.g. a llama block's lone ``down_proj``, running by itself.) GPU tasks
run one after another in the calling thread: the device is the parallelism.

    >>> import numpy as np
    >>> from ww_ray.spectral.matrices import SpectralInput
    >>> big = SpectralInput(0, "fc", "linear", N=600, M=300, rf=1, matrices=np.ones((1, 600, 300)))
    >>> small = SpectralInput(1, "conv", "conv2d", N=64, M=32, rf=9, matrices=np.ones((9, 64, 32)))
    >>> [(t.shape, t.count) for t in plan_solves([big, small, small], device="cpu")]
    [((600, 300), 1), ((64, 32), 18)]
"""
from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from ww_ray.spectral.esd import gram_eigenvalues
from ww_ray.spectral.matrices import SpectralInput

# Largest stacked call: bytes of its float64 work arrays (the widened input and two m×m arrays per matrix).
MAX_BATCH_BYTES = 1 << 29
# On the CPU, matrices whose smaller side is at least this large are solved one by one.
STACK_BELOW = 256


@dataclass(frozen=True)
class SolveTask:
    """One eigen-solve call: matrices ``start:stop`` of each listed row, all of one ``shape``."""

    shape: tuple[int, int]
    parts: tuple[tuple[int, int, int], ...]  # (row position, start, stop) into that row's matrices
    cost: float

    @property
    def count(self) -> int:
        return sum(stop - start for _, start, stop in self.parts)


def work_bytes(shape: tuple[int, int], complex_input: bool) -> int:
    """Work memory of one matrix in a stacked solve: its double-precision copy plus Gram and workspace."""
    a, b = shape
    m = min(a, b)
    return (16 if complex_input else 8) * (a * b + 2 * m * m)


def _matrix_cost(shape: tuple[int, int], complex_input: bool) -> float:
    a, b = shape
    m = min(a, b)
    return (4.0 if complex_input else 1.0) * (2.0 * a * b * m + 4.0 * m ** 3)


def plan_solves(items: Sequence[SpectralInput], device: str,
                max_batch_bytes: int = MAX_BATCH_BYTES) -> list[SolveTask]:
    """The tasks that solve every matrix of ``items`` (rows with ``matrices``) exactly once."""
    groups: dict[tuple[tuple[int, int], bool], list[int]] = defaultdict(list)
    for position, item in enumerate(items):
        groups[(tuple(item.matrices.shape[1:]), bool(np.iscomplexobj(item.matrices)))].append(position)
    tasks: list[SolveTask] = []
    for (shape, complex_input), positions in groups.items():
        cost = _matrix_cost(shape, complex_input)
        if device == "cpu" and min(shape) >= STACK_BELOW:
            tasks.extend(SolveTask(shape, ((p, b, b + 1),), cost)
                         for p in positions for b in range(items[p].matrices.shape[0]))
            continue
        per_call = max(1, max_batch_bytes // work_bytes(shape, complex_input))
        parts: list[tuple[int, int, int]] = []
        room = per_call
        for p in positions:
            start, size = 0, items[p].matrices.shape[0]
            while start < size:
                take = min(room, size - start)
                parts.append((p, start, start + take))
                start, room = start + take, room - take
                if room == 0:
                    tasks.append(SolveTask(shape, tuple(parts), cost * per_call))
                    parts, room = [], per_call
        if parts:
            tasks.append(SolveTask(shape, tuple(parts), cost * (per_call - room)))
    return tasks


def _solve(task: SolveTask, items: Sequence[SpectralInput], device: str, gram_dtype: str) -> np.ndarray:
    arrays = [items[p].matrices[start:stop] for p, start, stop in task.parts]
    batch = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return gram_eigenvalues(batch, device=device, gram_dtype=gram_dtype)


def solve_eigenvalues(items: Sequence[SpectralInput], device: str, threads: int = 1,
                      gram_dtype: str = "float64") -> list[np.ndarray | Exception]:
    """Per row, the (B, m) ascending eigenvalues of each of its matrices, or the error that stopped them.

    ``device``: ``cpu`` or ``cuda`` (already resolved). ``threads``: CPU cores for concurrent solves.
    A failing task (a LAPACK or CUDA error) fails only the rows it holds matrices of.
    """
    tasks = plan_solves(items, device)
    out: list[np.ndarray | Exception] = [
        np.empty((item.matrices.shape[0], min(item.matrices.shape[1:]))) for item in items]

    def attempt(task: SolveTask) -> np.ndarray | Exception:
        try:
            return _solve(task, items, device, gram_dtype)
        except Exception as exc:  # reported per row by the caller
            return exc

    order = sorted(tasks, key=lambda t: -t.cost)  # longest first: the pool's tail is short
    workers = min(max(1, threads), len(order)) if device == "cpu" else 1
    if workers > 1:
        with threadpool_limits(limits=max(1, threads // workers)), ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(attempt, order))
    else:
        results = [attempt(task) for task in order]
    for task, result in zip(order, results):
        offset = 0
        for p, start, stop in task.parts:
            if isinstance(result, Exception):
                out[p] = result
            elif not isinstance(out[p], Exception):
                out[p][start:stop] = result[offset:offset + stop - start]
            offset += stop - start
    return out
