"""Peak memory of the Gram product of one large stored-float32 matrix: widened whole vs by row blocks.

``esd._gram`` sums the float64 Gram of a matrix whose float64 copy exceeds ``GRAM_BLOCK_BYTES``
over blocks of rows instead of widening it whole. This prints, for LLM embedding/head shapes, the
peak RSS and time of ``gram_eigenvalues`` both ways, each in a fresh process (so peaks do not mix),
side by side in one run, and λmax of each (the same product up to round-off).

    python benchmarks/gram_blocks.py                      # 32000×2048 (1.1B head) and 32000×4096 (7B head)
    python benchmarks/gram_blocks.py --shapes 8000x1024   # a quick run
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
import numpy as np
sys.path.insert(0, {repo!r})
from ww_ray.spectral import esd
if {whole}:
    esd.GRAM_BLOCK_BYTES = 1 << 62
x = np.random.default_rng(0).standard_normal((1, {n}, {m}), dtype=np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
evals = esd.gram_eigenvalues(x, device="cpu")
print(json.dumps({{"s": time.perf_counter() - t, "input_mb": x.nbytes / 2**20, "before_mb": before,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "lambda_max": float(evals.max())}}))
"""


def run(n: int, m: int, whole: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), whole=whole, n=n, m=m)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["32000x2048", "32000x4096"])
    args = parser.parse_args()
    print(f"{'shape':>12s} {'input MB':>9s} {'whole: peak MB':>15s} {'s':>6s} {'blocks: peak MB':>16s} {'s':>6s}"
          f" {'λmax rel diff':>14s}")
    for shape in args.shapes:
        n, m = (int(v) for v in shape.lower().split("x"))
        whole, blocks = run(n, m, True), run(n, m, False)
        diff = abs(whole["lambda_max"] - blocks["lambda_max"]) / whole["lambda_max"]
        print(f"{shape:>12s} {whole['input_mb']:9.0f} {whole['peak_mb']:15.0f} {whole['s']:6.1f} "
              f"{blocks['peak_mb']:16.0f} {blocks['s']:6.1f} {diff:14.1e}")


if __name__ == "__main__":
    main()
