"""LoRA deltas: the r×r core (``ww_ray.spectral.lowrank``) against forming ΔW and its M×M Gram (issue 15).

For each shape (out × in, rank r) it builds seeded factors B (out × r), A (r × in), then times, side by
side in one process (median of ``--repeat``): (a) ``lowrank_eigenvalues`` — two thin QRs and an r×r
eigenproblem; (b) the explicit route — ΔW = s·B·A in float64 and ``esd.eigenvalues`` (the Gram route every
dense layer takes). It prints both times, their ratio and the largest eigenvalue difference relative to
λmax (the r non-zero eigenvalues of (b) against (a)).

    python benchmarks/lowrank_vs_gram.py                    # 768², 4096² and 4096×11008 at r = 8, 16, 64
    python benchmarks/lowrank_vs_gram.py --shapes 1024x1024 --ranks 4 --repeat 5
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from ww_ray.spectral.esd import eigenvalues
from ww_ray.spectral.lowrank import LowRankFactors, lowrank_eigenvalues


def _median_seconds(fn, repeat: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="768x768,4096x4096,4096x11008")
    parser.add_argument("--ranks", default="8,16,64")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'shape':>12s} {'r':>4s} {'core s':>10s} {'explicit s':>11s} {'ratio':>8s} {'max |Δλ|/λmax':>14s}")
    for shape in args.shapes.split(","):
        out, inp = (int(x) for x in shape.split("x"))
        for r in (int(x) for x in args.ranks.split(",")):
            rng = np.random.default_rng(r)
            b = rng.standard_normal((out, r)).astype(np.float32) / np.sqrt(r)
            a = rng.standard_normal((r, inp)).astype(np.float32) / np.sqrt(inp)
            factors = LowRankFactors(b, a, 2.0)
            t_core, core = _median_seconds(lambda: lowrank_eigenvalues(factors), args.repeat)
            t_full, full = _median_seconds(lambda: eigenvalues(factors.dense(), device="cpu"), args.repeat)
            err = float(np.max(np.abs(full[-len(core):] - core)) / core.max())
            print(f"{shape:>12s} {r:4d} {t_core:10.4f} {t_full:11.3f} {t_full / t_core:8.0f} {err:14.2e}")


if __name__ == "__main__":
    main()
