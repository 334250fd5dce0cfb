"""A DuckDB connection over a dataset root with views ``layers``, ``models``, ``regressions``, ``runs``.

The views show the same logical tables as :func:`ww_ray.store.read_table` with ``latest=True``
(latest model row per key, only committed layers, latest regression per series × metric × target),
and ``layers_all``, ``models_all``, ``regressions_all`` show every committed row of every run. Every
root (local, s3://, gs://, ...) is read through a pyarrow dataset over the files visible at open time
(``snapshot.visible_files``: no file a compaction replaced), with the canonical schema imposed (no
``union_by_name`` footer scan; older files read with null for newer columns); DuckDB pushes
projections and filters on ``source``/``dataset`` (partitions) and ``model_id`` (row-group
statistics of compacted files) into the scan. The views are a snapshot: reopen to see later commits.

Example::

    con = open_dataset("ww-results")
    con.sql("SELECT model_id, layer_name, alpha FROM layers ORDER BY alpha DESC LIMIT 10").df()
"""
from __future__ import annotations

import duckdb

from ww_ray.store.reader import open_pyarrow, read_manifests, runs_frame
from ww_ray.store.root import RootLike, StoreRoot, resolve_root
from ww_ray.store.schema import TABLE_SCHEMAS

_LATEST_SQL = {
    "models": """
        CREATE VIEW models AS SELECT * FROM models_all
        QUALIFY row_number() OVER (PARTITION BY source, model_id, revision
                                   ORDER BY finished_at DESC NULLS LAST, run_id DESC) = 1""",
    "layers": """
        CREATE VIEW layers AS SELECT l.* FROM layers_all AS l
        WHERE EXISTS (SELECT 1 FROM models AS m WHERE m.source = l.source AND m.model_id = l.model_id
                      AND m.revision = l.revision AND m.run_id = l.run_id
                      AND m.commit_id IS NOT DISTINCT FROM l.commit_id)""",
    "regressions": """
        CREATE VIEW regressions AS SELECT * FROM regressions_all
        QUALIFY row_number() OVER (PARTITION BY source, dataset, architecture, metric, target
                                   ORDER BY created_at DESC NULLS LAST, run_id DESC) = 1""",
}


def _register_raw(con: duckdb.DuckDBPyConnection, root: StoreRoot, table: str) -> None:
    view = f"{table}_all"
    dataset = open_pyarrow(root, table)
    if not dataset.files:
        con.register(f"_{view}_empty", TABLE_SCHEMAS[table].empty_table())
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM _{view}_empty")
    else:
        con.register(f"_{view}_arrow", dataset)
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM _{view}_arrow")


def open_dataset(root: RootLike, connection: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (new in-memory one, or ``connection``) with the dataset's views defined.

    ``runs`` is a snapshot of the manifests at open time (one row per run, nested values as JSON).
    """
    root = resolve_root(root)
    con = connection or duckdb.connect()
    for table in ("models", "layers", "regressions"):  # models before layers: see reader.read_table
        _register_raw(con, root, table)
    for table in ("models", "layers", "regressions"):
        con.execute(_LATEST_SQL[table])
    con.register("_runs_frame", runs_frame(read_manifests(root)))
    con.execute("CREATE VIEW runs AS SELECT * FROM _runs_frame")
    return con
