"""Old vs new eigen-solve schedule, side by side in one run, on the same matrices and threads.

"old" is the schedule ww_ray had before ``ww_ray/spectral/solve.py`` (copied here verbatim from
``ww_ray/spectral/metrics.py`` at commit 741ffa0): one shape group after another, each group's large
matrices on a thread pool of their own, so a group smaller than the pool (a llama block's lone
``down_proj``) runs alone. "new" is ``solve_eigenvalues``: one plan for the whole batch, one pool
across shape groups, longest task first. Both use numpy/OpenBLAS float64; the eigenvalues must agree
to 1e-9 relative (printed).

Workloads: one TinyLlama-1.1B-shaped block (hidden 2048, intermediate 5632, 4 kv heads of 64:
q, k, v, o, gate, up, down), a ResNet-like batch of small same-shape conv slices, and both together.

    nice -n 10 python benchmarks/solve_plan.py [--repeats 3] [--threads N]
"""
from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from threadpoolctl import threadpool_limits

from ww_ray.spectral.esd import gram_eigenvalues
from ww_ray.spectral.matrices import SpectralInput
from ww_ray.spectral.metrics import cpu_threads
from ww_ray.spectral.solve import solve_eigenvalues

# ---- the old schedule (ww_ray/spectral/metrics.py at 741ffa0) -------------------------------------
_MAX_BATCH_BYTES = 1 << 29
_STACK_BELOW = 256


def _one_by_one(items: list[SpectralInput], threads: int) -> list[np.ndarray]:
    jobs = [(i, b) for i, it in enumerate(items) for b in range(it.matrices.shape[0])]
    threads = min(threads, len(jobs))

    def solve(job: tuple[int, int]) -> np.ndarray:
        i, b = job
        return gram_eigenvalues(items[i].matrices[b:b + 1], device="cpu")

    if threads > 1:
        with threadpool_limits(limits=1), ThreadPoolExecutor(threads) as pool:
            solved = list(pool.map(solve, jobs))
    else:
        solved = [solve(job) for job in jobs]
    out: list[list[np.ndarray]] = [[] for _ in items]
    for (i, _), evals in zip(jobs, solved):
        out[i].append(evals)
    return [np.concatenate(parts) for parts in out]


def _batched_eigenvalues(items: list[SpectralInput], device: str, threads: int) -> list[np.ndarray]:
    m = min(items[0].matrices.shape[1:])
    if m >= _STACK_BELOW and device == "cpu":
        return _one_by_one(items, threads)
    stack_sizes = [it.matrices.shape[0] for it in items]
    per_call = max(1, _MAX_BATCH_BYTES // (16 * m * m))
    stacked = np.concatenate([it.matrices for it in items]) if len(items) > 1 else items[0].matrices
    parts = [gram_eigenvalues(stacked[s:s + per_call], device=device) for s in range(0, len(stacked), per_call)]
    evals = np.concatenate(parts)
    return np.split(evals, np.cumsum(stack_sizes)[:-1])


def old_solve(items: list[SpectralInput], threads: int) -> list[np.ndarray]:
    """The old per-shape-group loop of compute_rows (eigenvalues only)."""
    groups: dict[tuple, list[int]] = {}
    for position, item in enumerate(items):
        groups.setdefault((item.matrices.shape[1:], np.iscomplexobj(item.matrices)), []).append(position)
    out: list[np.ndarray] = [np.empty(0)] * len(items)
    for positions in groups.values():
        for p, evals in zip(positions, _batched_eigenvalues([items[p] for p in positions], "cpu", threads)):
            out[p] = evals
    return out


# ---- workloads -----------------------------------------------------------------------------------

def _item(index: int, name: str, matrices: np.ndarray, kind: str = "linear") -> SpectralInput:
    a, b = matrices.shape[1:]
    return SpectralInput(layer_index=index, layer_name=name, layer_type=kind, N=max(a, b), M=min(a, b),
                         rf=1, matrices=matrices)


def llama_block(rng: np.random.Generator) -> list[SpectralInput]:
    hidden, inter, kv = 2048, 5632, 256
    shapes = {"q_proj": (hidden, hidden), "k_proj": (kv, hidden), "v_proj": (kv, hidden), "o_proj": (hidden, hidden),
              "gate_proj": (inter, hidden), "up_proj": (inter, hidden), "down_proj": (hidden, inter)}
    return [_item(i, name, rng.standard_t(4, size=(1, *shape)).astype(np.float32) * 0.02)
            for i, (name, shape) in enumerate(shapes.items())]


def conv_slices(rng: np.random.Generator, offset: int = 100) -> list[SpectralInput]:
    """ResNet-56-like 3×3 slices: 18 layers each of 16, 32 and 64 channels, 9 slices per layer."""
    items = []
    for width in (16, 32, 64):
        for layer in range(18):
            items.extend(_item(offset + len(items), f"conv{width}.{layer}",
                               rng.normal(size=(1, width, width)).astype(np.float32), "conv2d")
                         for _ in range(9))
    return items


def _time(fn, repeats: int) -> tuple[float, list[np.ndarray]]:
    best, result = float("inf"), []
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=cpu_threads())
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    block, small = llama_block(rng), conv_slices(rng)
    workloads = {"TinyLlama block (7 matrices)": block, f"conv slices ({len(small)} matrices)": small,
                 "block + conv slices": block + small}
    print(f"threads={args.threads}, best of {args.repeats}, float64 Gram, numpy/OpenBLAS")
    print(f"{'workload':34s} {'old s':>8s} {'new s':>8s} {'old/new':>8s} {'max rel diff':>13s}")
    for name, items in workloads.items():
        old_s = new_s = float("inf")
        for _ in range(args.repeats):  # alternate, so load on the machine hits both alike
            t_old, old = _time(lambda: old_solve(items, args.threads), 1)
            t_new, new = _time(lambda: solve_eigenvalues(items, "cpu", args.threads), 1)
            old_s, new_s = min(old_s, t_old), min(new_s, t_new)
        diff = max(float(np.max(np.abs(o - n)) / max(float(o.max()), 1e-300)) for o, n in zip(old, new))
        print(f"{name:34s} {old_s:8.3f} {new_s:8.3f} {old_s / new_s:8.2f} {diff:13.1e}", flush=True)


if __name__ == "__main__":
    main()
