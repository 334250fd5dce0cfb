"""The dataset at scale: reads after 1 run and after 30 runs, and what a commit costs (issue 10).

Writes ``--models`` models × ``--layers`` layer rows through the sweep's own write path — the
scheduler's ``engine.outcome.model_row`` / ``layer_rows`` and a ``ModelCommitter`` with the
scheduler's batch settings, then the end-of-sweep compaction (``engine.sweep._compact``) — for one
run, then for ``--runs`` - 1 nightly rescans that each re-analyse a seeded ``--changed`` fraction
of the models at a new revision (new keys, as a Hub commit makes). Rows are seeded and realistic:
every ``layers`` column a worker fills, metric values drawn around the paper's ranges.

For each state (after run 1, after the last run) it prints the file count and, for

* (a) the latest row per model: ``SELECT count(*), avg(alpha), avg(log_norm) FROM models``,
* (b) per-architecture averages over layers: ``SELECT architecture, avg(alpha) ... FROM layers GROUP BY 1``,
* (c) one model's layers: ``SELECT * FROM layers WHERE model_id = ...``,

the wall time and peak memory in-process (a warm Python process that has imported ``ww_ray``:
``ww_ray.analysis.query.query`` on a fresh ``open_dataset``, median of 3) and as a whole
``ww-ray query`` process, and a whole ``ww-ray regress --no-write`` process; plus the commit cost
per model (``ModelCommitter.add`` + its flushes, amortised) and, for comparison, the one-file-per-
model ``commit_model``. Targets on 2 cores (issue 10): query ≤ 0.5 s in-process, ≤ 2.5 s as a CLI
process, regress ≤ 3 s, 30 runs ≤ 1.3 × 1 run, peak memory ≤ 400 MB, commit ≤ 20 ms a model.

    python benchmarks/store_at_scale.py                       # 2,000 models × 60 layers, 1 and 30 runs
    python benchmarks/store_at_scale.py --models 200 --runs 3 # a quick small run
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

SOURCES = [("pytorchcv", "imagenet1k"), ("pytorchcv", "cifar10"), ("pytorchcv", "cifar100"),
           ("pytorchcv", "svhn"), ("hf", None), ("timm", "imagenet1k")]
ARCHITECTURES = 40
LAYER_TYPES = ("conv2d", "conv2d", "conv2d", "linear", "embedding")


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: reset at exec, unlike ``ru_maxrss``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- writing ----------------------------------------------------------------------------------

def _spec(i: int, revision: str):
    from ww_ray.zoos.spec import ModelSpec

    source, dataset = SOURCES[i % len(SOURCES)]
    arch = f"arch{i % ARCHITECTURES:02d}"
    return ModelSpec(source=source, model_id=f"{arch}_m{i:05d}", revision=revision, architecture=arch,
                     dataset=dataset, task="classification", params=1_000_000 + 7919 * i,
                     top1_error=float(5 + (i % 97) / 4), top5_error=float(1 + (i % 89) / 9),
                     reported_value=float(5 + (i % 97) / 4), reported_measure="top1_error",
                     uri=f"{source}:{arch}_m{i:05d}", size_bytes=4_000_000 + 1000 * i, zoo_kind="pytorchcv")


def _worker_rows(rng: np.random.Generator, layers: int, i: int) -> list[dict]:
    """What the spectral workers return for one model: one row per matrix, every layers column."""
    rows = []
    for k in range(layers):
        n = int(rng.choice([64, 128, 256, 512, 1024]))
        m = int(rng.choice([16, 32, 64, 128, 256]))
        lam = float(rng.lognormal(1.5, 0.8))
        alpha = float(rng.normal(3.5 + (i % ARCHITECTURES) / 40, 0.9))
        kind = LAYER_TYPES[k % len(LAYER_TYPES)] if k else "conv2d"
        rows.append({
            "layer_index": k, "layer_name": f"features.stage{k // 12 + 1}.unit{k % 12 + 1}.body.conv{k % 3 + 1}.conv",
            "layer_type": kind, "slice_id": None, "conv_method": "slices" if kind == "conv2d" else None,
            "N": n, "M": m, "Q": n / m, "rf": 9 if kind == "conv2d" else 1, "num_evals": m,
            "lambda_max": lam, "log_spectral_norm": float(np.log10(lam)), "norm": float(rng.lognormal(2, 0.5)),
            "log_norm": float(rng.normal(1.2, 0.3)), "alpha": alpha, "alpha_weighted": alpha * float(np.log10(lam)),
            "log_alpha_norm": float(rng.normal(2.0, 0.6)), "stable_rank": float(rng.uniform(1, 40)),
            "entropy": float(rng.uniform(0.5, 1.0)), "matrix_rank": m, "xmin": float(rng.uniform(0.1, 2)),
            "xmax": lam, "D": float(rng.uniform(0.02, 0.2)), "sigma": float(rng.uniform(0.05, 0.5)),
            "num_pl_spikes": int(rng.integers(5, 60)), "mp_softrank": float(rng.uniform(0, 1)),
            "sigma_mp": float(rng.uniform(0.5, 2)), "lambda_plus": float(rng.uniform(1, 5)),
            "num_spikes": int(rng.integers(0, 10)), "rand_distance": float(rng.uniform(0, 1)),
            "num_traps": int(rng.integers(0, 3)),
            "warning": "under-trained" if alpha > 6 else ("over-trained" if alpha < 2 else ""),
            "status": "ok", "error": None, "device": "cpu", "seconds": float(rng.uniform(0.001, 0.05)),
        })
    return rows


def write_run(root: str, indices: list[int], revisions: dict[int, str], layers: int, seed: int) -> dict:
    """One sweep's commits (as the scheduler makes them), then its end-of-sweep compaction."""
    from ww_ray.engine.outcome import layer_rows, model_row
    from ww_ray.engine.sweep import _compact
    from ww_ray.spectral.presets import resolve_options
    from ww_ray.store import ModelCommitter, new_run_id

    options = resolve_options("paper")
    run_id = new_run_id()
    rng = np.random.default_rng(seed)
    summarise_s = commit_s = 0.0
    committer = ModelCommitter(root)  # the scheduler's batch settings (count and seconds)
    for i in indices:
        spec, rows = _spec(i, revisions[i]), _worker_rows(rng, layers, i)
        t0 = time.perf_counter()
        model = model_row(spec, rows, run_id, options, timings={"load": 0.1, "compute": 0.5, "total": 0.7},
                          attempts=1)
        layer = layer_rows(rows)
        t1 = time.perf_counter()
        committer.add(layer, model)
        t2 = time.perf_counter()
        summarise_s += t1 - t0
        commit_s += t2 - t1
    t0 = time.perf_counter()
    committer.flush()
    commit_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    _compact(root)
    compact_s = time.perf_counter() - t0
    return {"models": len(indices), "commit_ms": 1000 * commit_s / len(indices),
            "summarise_ms": 1000 * summarise_s / len(indices), "compact_s": compact_s}


def single_commit_cost(layers: int, count: int = 40) -> float:
    """Milliseconds per model of ``commit_model`` (one layers and one models file per model)."""
    from ww_ray.engine.outcome import layer_rows, model_row
    from ww_ray.spectral.presets import resolve_options
    from ww_ray.store import commit_model, new_run_id

    options, run_id, rng = resolve_options("paper"), new_run_id(), np.random.default_rng(1)
    root = tempfile.mkdtemp(prefix="ww-single-")
    try:
        items = []
        for i in range(count):
            rows = _worker_rows(rng, layers, i)
            items.append((layer_rows(rows), model_row(_spec(i, "r0"), rows, run_id, options,
                                                      timings={"total": 1.0}, attempts=1)))
        t0 = time.perf_counter()
        for layer, model in items:
            commit_model(root, layer, model)
        return 1000 * (time.perf_counter() - t0) / count
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---- reading ----------------------------------------------------------------------------------

def queries(model_id: str) -> dict[str, str]:
    return {
        "a latest row per model": "SELECT count(*) AS models, avg(alpha) AS alpha, avg(log_norm) AS log_norm FROM models",
        "b per-architecture averages": "SELECT architecture, count(*) AS layers, avg(alpha) AS alpha, "
                                       "avg(log_norm) AS log_norm FROM layers GROUP BY 1 ORDER BY 1",
        "c one model's layers": f"SELECT * FROM layers WHERE model_id = '{model_id}' ORDER BY layer_index",
    }


def _inprocess_child(root: str, sql: str, expect_rows: int | None) -> None:
    """Run in a fresh process: import, then time the query 3 times; print JSON."""
    from ww_ray.analysis.query import query

    base = _peak_mb()
    times, rows = [], None
    for _ in range(3):
        t0 = time.perf_counter()
        frame = query(root, sql).df()
        times.append(time.perf_counter() - t0)
        rows = len(frame)
    print(json.dumps({"s": statistics.median(times), "peak_mb": _peak_mb(), "import_peak_mb": base, "rows": rows}))


def in_process(root: str, sql: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--_inprocess", root, sql], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def cli_measured(*args: str) -> dict:
    """Like ``cli`` but with peak RSS: the child runs under ``resource.getrusage(RUSAGE_CHILDREN)`` of a shim."""
    shim = ("import resource, subprocess, sys, time, json; t=time.perf_counter(); "
            "p=subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE); "
            "w=time.perf_counter()-t; "
            "print(json.dumps({'s': w, 'rc': p.returncode, 'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024, "
            "'err': p.stderr.decode()[-1500:]}))")
    out = subprocess.run([sys.executable, "-c", shim, sys.executable, "-m", "ww_ray.cli", *args], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["rc"] not in (0, 1):
        raise RuntimeError(f"ww-ray {' '.join(args)} failed ({result['rc']}): {result['err']}")
    return result


def count_files(root: str) -> dict[str, int]:
    from ww_ray.store import visible_files

    on_disk = sum(1 for _ in Path(root).rglob("*.parquet"))
    visible = sum(len(visible_files(root, t)) for t in ("layers", "models", "regressions"))
    return {"visible": visible, "on_disk": on_disk}


def measure_state(root: str, model_id: str) -> dict:
    state = {"files": count_files(root)}
    for name, sql in queries(model_id).items():
        inproc = in_process(root, sql)
        whole = cli_measured("query", root, sql)
        state[name] = {"in_s": inproc["s"], "in_peak_mb": inproc["peak_mb"], "rows": inproc["rows"],
                       "cli_s": whole["s"], "cli_peak_mb": whole["peak_mb"]}
    regress = cli_measured("regress", root, "--no-write")
    state["regress"] = {"cli_s": regress["s"], "cli_peak_mb": regress["peak_mb"]}
    return state


def _print_state(label: str, state: dict) -> None:
    files = state["files"]
    print(f"\n## {label}: {files['visible']} visible Parquet files ({files['on_disk']} on disk)")
    print(f"{'read':34s} {'rows':>6s} {'in-process':>11s} {'peak MB':>8s} {'CLI process':>12s} {'peak MB':>8s}")
    for name, m in state.items():
        if name in ("files", "regress"):
            continue
        print(f"{name:34s} {m['rows']:6d} {m['in_s']:10.3f}s {m['in_peak_mb']:8.0f} {m['cli_s']:11.3f}s "
              f"{m['cli_peak_mb']:8.0f}")
    r = state["regress"]
    print(f"{'ww-ray regress --no-write':34s} {'':6s} {'':11s} {'':8s} {r['cli_s']:11.3f}s {r['cli_peak_mb']:8.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--layers", type=int, default=60)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--changed", type=float, default=0.05,
                        help="fraction of the models a nightly rescan re-analyses at a new revision (default 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", help="dataset root to write (default: a fresh temporary folder, deleted after)")
    parser.add_argument("--_inprocess", nargs=2, metavar=("ROOT", "SQL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._inprocess:
        _inprocess_child(*args._inprocess, None)
        return
    root = args.root or tempfile.mkdtemp(prefix="ww-store-at-scale-")
    rng = np.random.default_rng(args.seed)
    revisions = {i: "r0" for i in range(args.models)}
    probe = _spec(args.models // 2, "r0").model_id
    print(f"# store at scale: {args.models} models × {args.layers} layers, runs 1 and {args.runs} "
          f"(each later run re-analyses {args.changed:.0%} of the models at a new revision); root {root}")
    print(f"# machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    try:
        single_ms = single_commit_cost(args.layers)
        writes = [write_run(root, list(range(args.models)), revisions, args.layers, seed=args.seed)]
        states = {1: measure_state(root, probe)}
        for run in range(2, args.runs + 1):
            changed = sorted(rng.choice(args.models, size=max(1, int(args.changed * args.models)), replace=False))
            for i in changed:
                revisions[i] = f"r{run - 1}"
            writes.append(write_run(root, [int(i) for i in changed], revisions, args.layers, seed=args.seed + run))
        if args.runs > 1:
            states[args.runs] = measure_state(root, probe)
        w1 = writes[0]
        later = writes[1:]
        print(f"\ncommit cost per model: batched (ModelCommitter, the sweep's path) {w1['commit_ms']:.1f} ms in run 1"
              + (f", {statistics.mean(w['commit_ms'] for w in later):.1f} ms in later runs" if later else "")
              + f"; one file per model (commit_model) {single_ms:.1f} ms")
        print(f"driver work per model before the commit (model_row: summary averages) {w1['summarise_ms']:.1f} ms")
        print(f"end-of-sweep compaction: run 1 {w1['compact_s']:.2f} s"
              + (f", later runs {statistics.mean(w['compact_s'] for w in later):.2f} s on average,"
                 f" last {later[-1]['compact_s']:.2f} s" if later else ""))
        for run, state in states.items():
            _print_state(f"after {run} run{'s' if run > 1 else ''}", state)
        if len(states) == 2:
            first, last = states[1], states[args.runs]
            print(f"\n## ratio after {args.runs} runs / after 1 run")
            for name in first:
                if name == "files":
                    continue
                keys = ["in_s", "cli_s"] if name != "regress" else ["cli_s"]
                print(f"{name:34s} " + "  ".join(f"{k} {last[name][k] / first[name][k]:.2f}×" for k in keys))
        print(f"\n# load average at end {os.getloadavg()[0]:.1f} (shared machine: compare ratios, not absolute times)")
    finally:
        if not args.root:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
