"""Parquet + compaction (the store as built) against Delta Lake (``deltalake``), side by side (issue 10).

Both stores receive the same rows in the same commit batches — ``--models`` models × ``--layers``
layer rows for run 1, then ``--runs`` - 1 nightly rescans that each re-analyse a ``--changed``
fraction of the models at a new revision (rows from ``store_at_scale.py``'s generator, converted
converted by the store's own ``ModelCommitter`` conversion on both sides, inside the timed commit):

* **ww_ray**: ``ModelCommitter`` (one Parquet file per partition per batch, atomic renames), then
  the end-of-sweep compaction, as a sweep does;
* **delta**: ``deltalake.write_deltalake(mode="append", partition_by=["source", "dataset"])`` per
  batch (one Delta commit), then ``optimize.compact()`` and ``vacuum(retention_hours=0)`` per run.

After run 1 and after the last run it prints per store: data files, commit cost per model, the
per-run compaction time, and the in-process time (median of 3, this process, DuckDB over the same
``models``/``layers`` views with the latest-row rule: Delta's appends keep every run's rows too) of
(a) latest row per model, (b) per-architecture averages over layers, (c) one model's layers; plus
the import time of each stack in a fresh process. Needs ``pip install deltalake`` (not a project
dependency: see README "Data" for why the store stays plain Parquet).

    python benchmarks/store_formats.py                          # 2,000 models × 60 layers, 1 and 30 runs
    python benchmarks/store_formats.py --models 200 --runs 3    # a quick small run
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402

import store_at_scale as scale  # noqa: E402  (the row generator and queries of the store benchmark)

BATCH = 64  # the scheduler's default commit batch (store.writer.DEFAULT_COMMIT_BATCH)


def _batches(indices: list[int], revisions: dict[int, str], layers: int, seed: int):
    """The run's models as (layers rows, model row) pairs in commit batches of ``BATCH``."""
    from ww_ray.engine.outcome import layer_rows, model_row
    from ww_ray.spectral.presets import resolve_options
    from ww_ray.store import new_run_id

    options, run_id, rng = resolve_options("paper"), new_run_id(), np.random.default_rng(seed)
    batch = []
    for i in indices:
        rows = scale._worker_rows(rng, layers, i)
        batch.append((layer_rows(rows), model_row(scale._spec(i, revisions[i]), rows, run_id, options,
                                                  timings={"total": 0.7}, attempts=1)))
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _arrow(batch) -> tuple:
    """The store's own conversion of one batch (what ``ModelCommitter.flush`` writes)."""
    from ww_ray.store import ModelCommitter

    staging = ModelCommitter(tempfile.gettempdir(), max_models=10**9, max_seconds=10**9)
    for layers, model in batch:
        staging.stage(layers, model)
    layers, models, _ = ModelCommitter._tables(staging._buffer)
    return layers, models


def write_wwray(root: str, batches: list) -> dict:
    from ww_ray.engine.sweep import _compact
    from ww_ray.store import ModelCommitter

    t0 = time.perf_counter()
    models = 0
    committer = ModelCommitter(root, max_models=10**9, max_seconds=10**9)
    for batch in batches:
        for layers, model in batch:
            committer.stage(layers, model)
        committer.flush()
        models += len(batch)
    commit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _compact(root)
    return {"commit_ms": 1000 * commit_s / models, "compact_s": time.perf_counter() - t0}


def write_delta(root: str, batches: list) -> dict:
    from deltalake import DeltaTable, write_deltalake

    models = 0
    commit_s = 0.0
    for batch in batches:
        t0 = time.perf_counter()
        layers, model_table = _arrow(batch)  # timed on both sides: ModelCommitter.flush converts too
        write_deltalake(f"{root}/layers", layers, mode="append", partition_by=["source", "dataset"])
        write_deltalake(f"{root}/models", model_table, mode="append", partition_by=["source", "dataset"])
        commit_s += time.perf_counter() - t0
        models += len(batch)
    t0 = time.perf_counter()
    for table in ("layers", "models"):
        dt = DeltaTable(f"{root}/{table}")
        dt.optimize.compact()
        dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return {"commit_ms": 1000 * commit_s / models, "compact_s": time.perf_counter() - t0}


def _wwray_connection(root: str):
    from ww_ray.store import open_dataset

    return open_dataset(root)


def _delta_connection(root: str):
    import duckdb
    from deltalake import DeltaTable

    from ww_ray.store.duck import _LATEST_SQL

    con = duckdb.connect()
    for table in ("models", "layers"):
        con.register(f"{table}_all", DeltaTable(f"{root}/{table}").to_pyarrow_dataset())
    con.execute(_LATEST_SQL["models"])
    con.execute(_LATEST_SQL["layers"])
    return con


def _files(root: str) -> int:
    return sum(1 for _ in Path(root).rglob("*.parquet"))


def measure(label: str, root: str, connect, model_id: str) -> dict:
    out = {"files": _files(root)}
    for name, sql in scale.queries(model_id).items():
        times, rows = [], None
        for _ in range(3):
            t0 = time.perf_counter()
            rows = len(connect(root).sql(sql).df())
            times.append(time.perf_counter() - t0)
        out[name] = (statistics.median(times), rows)
    return out


def import_seconds(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return float(out.stdout.strip())


def _print(state: str, results: dict) -> None:
    print(f"\n## {state}")
    print(f"{'store':8s} {'files':>6s} {'commit ms/model':>16s} {'compact s':>10s} "
          + " ".join(f"{q[:22]:>24s}" for q in scale.queries('x')))
    for store, r in results.items():
        cells = " ".join(f"{r[q][0]:20.3f}s ({r[q][1]})"[-24:].rjust(24) for q in scale.queries('x'))
        print(f"{store:8s} {r['files']:6d} {r['commit_ms']:16.2f} {r['compact_s']:10.2f} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--layers", type=int, default=60)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--changed", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        import deltalake
    except ImportError:
        sys.exit("this benchmark compares against Delta Lake: pip install deltalake")
    work = tempfile.mkdtemp(prefix="ww-formats-")
    roots = {"ww_ray": f"{work}/wwray", "delta": f"{work}/delta"}
    writers = {"ww_ray": write_wwray, "delta": write_delta}
    connects = {"ww_ray": _wwray_connection, "delta": _delta_connection}
    print(f"# store formats: {args.models} models × {args.layers} layers, runs 1 and {args.runs}; "
          f"deltalake {deltalake.__version__}; load average {os.getloadavg()[0]:.1f}")
    print(f"# import: ww_ray.store {import_seconds('ww_ray.store'):.2f} s, "
          f"deltalake {import_seconds('deltalake'):.2f} s (fresh processes)")
    rng = np.random.default_rng(args.seed)
    revisions = {i: "r0" for i in range(args.models)}
    model_id = scale._spec(7, "r0").model_id
    try:
        for run in range(1, args.runs + 1):
            if run == 1:
                indices = list(range(args.models))
            else:
                indices = sorted(rng.choice(args.models, size=max(1, int(args.changed * args.models)),
                                            replace=False).tolist())
                for i in indices:
                    revisions[i] = f"r{run}"
            batches = list(_batches(indices, revisions, args.layers, args.seed + run))
            written = {store: writers[store](roots[store], batches) for store in roots}
            if run in (1, args.runs):
                results = {store: {**written[store], **measure(store, roots[store], connects[store], model_id)}
                           for store in roots}
                _print(f"after {run} run(s)", results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n# load average at end {os.getloadavg()[0]:.1f} (shared machine: compare the two stores' ratios)")


if __name__ == "__main__":
    main()
