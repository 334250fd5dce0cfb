"""The dataset store: canonical schemas, atomic partitioned Parquet writes, manifests, resume keys, readers.

One dataset root (a local folder or a pyarrow URI such as ``s3://bucket/ww``) holds four tables —
``layers``, ``models``, ``regressions`` (Parquet, Hive-partitioned by ``source`` and ``dataset``
where it applies) and ``runs`` (JSON manifests) — laid out as in DESIGN.md §3. Writers are atomic and
append-only; readers show the latest row per key and hide anything a crash left half done.

Example::

    from ww_ray.store import commit_model, new_run_id, read_table, open_dataset
    run_id = new_run_id()
    commit_model("ww-results", layer_rows, {"source": "pytorchcv", "model_id": "resnet20_cifar10",
                 "revision": sha1, "run_id": run_id, "status": "ok", "dataset": "cifar10", ...})
    models = read_table("ww-results", "models")
    open_dataset("ww-results").sql("SELECT architecture, avg(alpha) FROM layers GROUP BY 1").df()
"""
from ww_ray.store.duck import open_dataset
from ww_ray.store.paths import partition_value
from ww_ray.store.reader import DONE_STATUSES, done_keys, open_pyarrow, read_manifests, read_table
from ww_ray.store.root import TABLE_NAMES, StoreRoot, resolve_root
from ww_ray.store.compact import CompactionReport, compact, maybe_compact
from ww_ray.store.snapshot import visible_files
from ww_ray.store.vacuum import VacuumReport, vacuum
from ww_ray.store.writer import (
    MODEL_STATUSES, CommitError, ModelCommitter, commit_model, commit_models, new_run_id, write_manifest,
    write_regressions,
)

__all__ = [
    "CommitError",
    "DONE_STATUSES",
    "MODEL_STATUSES",
    "ModelCommitter",
    "TABLE_NAMES",
    "CompactionReport",
    "StoreRoot",
    "VacuumReport",
    "commit_model",
    "commit_models",
    "compact",
    "maybe_compact",
    "done_keys",
    "new_run_id",
    "open_dataset",
    "open_pyarrow",
    "partition_value",
    "read_manifests",
    "read_table",
    "resolve_root",
    "vacuum",
    "visible_files",
    "write_manifest",
    "write_regressions",
]
