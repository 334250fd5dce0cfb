"""Sweep throughput: the Ray sweep vs sequential in-process ``ww_ray.analyze`` vs weightwatcher in-process.

A synthetic zoo of GPT-2-small-shaped models — each 12 × [2304×768, 768×768, 3072×768, 3072×768]
plus a 1024×768 position embedding, 49 matrices of N(0, 1/in) float32 entries, ~340 MB — is
written as safetensors files into a temporary folder (a local zoo). Timed, on the same files and
the same preset:

* ``in-process``: ``ww_ray.analyze(path)`` for each file, one after the other, all BLAS threads;
* ``weightwatcher``: ``WeightWatcher(model=state_dict).analyze()`` for each file (its own defaults);
* ``ray, N workers``: ``ww_ray.engine.run_sweep`` on a local Ray started once as ``ww-ray sweep``
  starts it (``num_cpus`` = usable CPUs), a fresh dataset root each time, for each worker count.

For the Ray path the table gives the wall time of the whole sweep and the part after startup
(starting the worker processes, paid once per sweep); the overhead is the Ray sweep's time over
the in-process time, with and without that startup. Target: ≤ 15 % with ≥ 4 models.

    python benchmarks/sweep_throughput.py                      # 4 models, 1 and 2 workers
    python benchmarks/sweep_throughput.py --repeat 3           # best of 3 (noisy, shared machines)
    python benchmarks/sweep_throughput.py --models 8 --workers 1 2 4 --skip-weightwatcher
"""
from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

GPT2_SMALL_SHAPES = [(1024, 768)] + [s for _ in range(12) for s in [(2304, 768), (768, 768), (3072, 768), (768, 3072)]]


def write_gpt2_small_shaped(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` safetensors files with GPT-2-small's matrix shapes (``wpe`` + 12 blocks of 4 linears)."""
    import torch
    from safetensors.torch import save_file

    paths = []
    for index in range(count):
        rng = np.random.default_rng(seed + index)
        tensors = {}
        for position, (rows, cols) in enumerate(GPT2_SMALL_SHAPES):
            name = "wpe.weight" if position == 0 else f"h.{(position - 1) // 4}.linear{(position - 1) % 4}.weight"
            values = (rng.standard_normal((rows, cols), dtype=np.float32) / np.float32(np.sqrt(cols)))
            tensors[name] = torch.from_numpy(values)
        path = folder / f"gpt2-small-shaped-{index:02d}.safetensors"
        save_file(tensors, str(path))
        paths.append(path)
    return paths


def time_in_process(paths: list[Path], preset: str) -> tuple[float, int]:
    import ww_ray

    started = time.perf_counter()
    matrices = sum(len(ww_ray.analyze(path, preset=preset)) for path in paths)
    return time.perf_counter() - started, matrices


def time_weightwatcher(paths: list[Path]) -> tuple[float, int]:
    import weightwatcher
    from safetensors.torch import load_file

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    started = time.perf_counter()
    matrices = 0
    for path in paths:
        matrices += len(weightwatcher.WeightWatcher(model=load_file(str(path))).analyze())
    return time.perf_counter() - started, matrices


def time_ray_sweep(zoo: Path, out: Path, preset: str, workers: int) -> tuple[float, float, int]:
    from ww_ray.config import RayConfig, parse_config
    from ww_ray.engine import run_sweep
    from ww_ray.spectral.presets import resolve_options
    from ww_ray.zoos.registry import enumerate_specs

    specs = enumerate_specs(parse_config({"zoos": [{"kind": "local", "path": str(zoo)}]}, base_dir=zoo))
    ray_cfg = RayConfig(workers=workers, max_models_in_flight=max(2, workers + 1))
    result = run_sweep(specs, resolve_options(preset), str(out), ray_cfg, resume=False, progress=False)
    bad = [r for r in result.results if r.status != "ok"]
    if bad:
        raise RuntimeError(f"the sweep did not analyse every model: {bad}")
    return result.seconds, result.seconds - result.seconds_startup, sum(r.matrices for r in result.results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=4, help="synthetic models in the zoo (default 4)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time (default 1 2)")
    parser.add_argument("--preset", default="paper", choices=["paper", "ww"])
    parser.add_argument("--repeat", type=int, default=1,
                        help="best of this many runs for in-process and each Ray sweep (weightwatcher runs once)")
    parser.add_argument("--skip-weightwatcher", action="store_true")
    args = parser.parse_args()

    import ray

    from ww_ray.engine.cluster import local_init_options, loopback_only
    from ww_ray.spectral.metrics import usable_cpus

    with tempfile.TemporaryDirectory(prefix="ww-ray-bench-") as tmp:
        zoo = Path(tmp) / "zoo"
        zoo.mkdir()
        paths = write_gpt2_small_shaped(zoo, args.models)
        size_mb = sum(p.stat().st_size for p in paths) / 1e6
        print(f"{args.models} GPT-2-small-shaped models ({len(GPT2_SMALL_SHAPES)} matrices each, {size_mb:.0f} MB), "
              f"preset {args.preset}, {usable_cpus()} CPUs, best of {args.repeat}")
        rows = []
        seconds, matrices = min(time_in_process(paths, args.preset) for _ in range(args.repeat))
        rows.append(("in-process ww_ray.analyze", seconds, None, matrices))
        in_process = seconds
        if not args.skip_weightwatcher:
            seconds, matrices = time_weightwatcher(paths)
            rows.append(("weightwatcher 0.7.7 in-process", seconds, None, matrices))
        started = time.perf_counter()
        # The same local Ray that `ww-ray sweep` starts (warm load workers), started once for all runs.
        with loopback_only():
            ray.init(**local_init_options(usable_cpus(), max(args.workers), loads=max(args.workers) + 1),
                     logging_level=logging.WARNING)
        ray_init = time.perf_counter() - started
        try:
            for workers in args.workers:
                runs = [time_ray_sweep(zoo, Path(tmp) / f"out-{workers}-{i}", args.preset, workers)
                        for i in range(args.repeat)]
                total, after_startup, matrices = min(runs, key=lambda run: run[1])
                rows.append((f"ray sweep, {workers} worker{'s' if workers > 1 else ''}", total, after_startup, matrices))
        finally:
            ray.shutdown()

    print(f"(ray.init: {ray_init:.1f} s, once, not in the sweep times)")
    print(f"{'path':32s} {'seconds':>8s} {'after startup':>13s} {'matrices':>8s} {'matrices/s':>10s} "
          f"{'overhead':>9s} {'overhead after startup':>22s}")
    for name, seconds, after_startup, matrices in rows:
        rate = matrices / (after_startup or seconds)
        overhead = f"{100 * (seconds / in_process - 1):+8.1f}%" if name.startswith("ray") else ""
        steady = f"{100 * (after_startup / in_process - 1):+21.1f}%" if after_startup is not None else ""
        after = f"{after_startup:13.1f}" if after_startup is not None else f"{'':13s}"
        print(f"{name:32s} {seconds:8.1f} {after} {matrices:8d} {rate:10.2f} {overhead:>9s} {steady:>22s}")


if __name__ == "__main__":
    main()
