"""Peak memory and time of the Gram product of one large stored-float32 matrix: widened whole vs by row blocks.

``esd._gram`` sums the float64 Gram of a matrix whose float64 copy exceeds ``GRAM_BLOCK_BYTES``
over blocks of rows instead of widening it whole (a block never smaller than the Gram itself:
``esd.gram_block_lines``). This prints, for LLM embedding/head/MLP shapes,
the peak RSS and time of ``gram_eigenvalues`` widened whole and with each ``GRAM_BLOCK_BYTES`` of
``--blocks-mib``, each in a fresh process (so peaks do not mix), side by side in one run (``--repeat``
alternating rounds, the fastest kept), and λmax's largest relative difference from the whole product
(the same product up to round-off).

    python benchmarks/gram_blocks.py                      # 32000×2048 (1.1B head), 5632×2048, 32000×4096 (7B head)
    python benchmarks/gram_blocks.py --shapes 8000x1024   # a quick run
    python benchmarks/gram_blocks.py --blocks-mib 64 32 16 --repeat 3
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
esd.GRAM_BLOCK_BYTES = {block_bytes}
x = np.random.default_rng(0).standard_normal((1, {n}, {m}), dtype=np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
evals = esd.gram_eigenvalues(x, device="cpu")
print(json.dumps({{"s": time.perf_counter() - t, "input_mb": x.nbytes / 2**20, "before_mb": before,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "lambda_max": float(evals.max())}}))
"""


WHOLE = 1 << 62  # a block bound no matrix reaches: widened whole


def run(n: int, m: int, block_bytes: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), block_bytes=block_bytes, n=n, m=m)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=["32000x2048", "5632x2048", "32000x4096"])
    parser.add_argument("--blocks-mib", nargs="+", type=int, default=[64, 32])
    parser.add_argument("--repeat", type=int, default=1, help="alternating rounds; the fastest time is kept")
    args = parser.parse_args()
    ways = [("whole", WHOLE)] + [(f"{mib} MiB", mib << 20) for mib in args.blocks_mib]
    print(f"{'shape':>12s} {'input MB':>9s} " + " ".join(f"{name + ': peak MB':>16s} {'s':>6s}" for name, _ in ways)
          + f" {'max λmax rel diff':>18s}")
    for shape in args.shapes:
        n, m = (int(v) for v in shape.lower().split("x"))
        best: dict[str, dict] = {}
        for _ in range(max(1, args.repeat)):
            for name, block_bytes in ways:
                result = run(n, m, block_bytes)
                if name not in best or result["s"] < best[name]["s"]:
                    best[name] = result
        whole = best["whole"]
        diff = max(abs(whole["lambda_max"] - r["lambda_max"]) / whole["lambda_max"] for r in best.values())
        print(f"{shape:>12s} {whole['input_mb']:9.0f} "
              + " ".join(f"{best[name]['peak_mb']:16.0f} {best[name]['s']:6.2f}" for name, _ in ways)
              + f" {diff:18.1e}")


if __name__ == "__main__":
    main()
