"""SQL over a dataset root: DuckDB views ``layers``, ``models``, ``regressions``, ``runs``.

The views hold the latest row per key (``*_all`` views keep every run); see
:func:`ww_ray.store.open_dataset`. Results print as a table or go to CSV or Parquet.

Documented example questions (``ww-ray query ROOT --example NAME``; ``--list-examples``):

=========================  ==============================================================
``top_alpha_layers``       the 10 layers with the largest alpha across all models
``mean_alpha_by_arch``     mean alpha (and layer count) per architecture series
``under_trained``          models with the most layers whose alpha > 6
``failed_models``          models whose latest row failed, with the error
``best_r2``                per metric, the series where the metric predicts error best
``runs``                   the runs of the root and what they did
=========================  ==============================================================

Python::

    from ww_ray.analysis.query import query
    query("ww-results", "SELECT architecture, avg(alpha) FROM layers GROUP BY 1").df()
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from ww_ray.store import open_dataset
from ww_ray.store.root import RootLike

EXAMPLES: dict[str, tuple[str, str]] = {
    "top_alpha_layers": (
        "the 10 layers with the largest alpha across all models",
        "SELECT model_id, layer_index, layer_name, slice_id, N, M, alpha, warning FROM layers "
        "WHERE status = 'ok' AND alpha IS NOT NULL ORDER BY alpha DESC LIMIT 10",
    ),
    "mean_alpha_by_arch": (
        "mean alpha (and layer count) per architecture series",
        "SELECT architecture, count(*) AS layers, count(DISTINCT model_id) AS models, "
        "round(avg(alpha), 4) AS mean_alpha FROM layers WHERE status = 'ok' "
        "GROUP BY architecture ORDER BY mean_alpha DESC",
    ),
    "under_trained": (
        "models with the most layers whose alpha > 6 (under-trained)",
        "SELECT model_id, architecture, count(*) FILTER (WHERE alpha > 6) AS under_trained_layers, "
        "count(*) AS layers FROM layers WHERE status = 'ok' GROUP BY ALL "
        "HAVING under_trained_layers > 0 ORDER BY under_trained_layers DESC, model_id",
    ),
    "failed_models": (
        "models whose latest row failed, with the error",
        "SELECT source, model_id, revision, run_id, error FROM models WHERE status = 'failed' ORDER BY model_id",
    ),
    "best_r2": (
        "per metric, the series where the metric predicts the reported error best",
        "SELECT metric, arg_max(dataset || '/' || architecture, r2) AS series, max(r2) AS r2, "
        "count(*) AS series_fitted FROM regressions GROUP BY metric ORDER BY r2 DESC",
    ),
    "runs": (
        "the runs of the root and what they did",
        "SELECT * FROM runs ORDER BY run_id",
    ),
}
FORMATS = ("table", "csv", "parquet")


def resolve_sql(sql: str | None, example: str | None) -> str:
    """The SQL to run: ``sql`` itself, or the named example."""
    if (sql is None) == (example is None):
        raise ValueError("give either SQL or --example NAME")
    if example is not None:
        if example not in EXAMPLES:
            raise ValueError(f"unknown example {example!r}; examples: {', '.join(EXAMPLES)}")
        return EXAMPLES[example][1]
    return sql


def query(root: RootLike, sql: str, connection: duckdb.DuckDBPyConnection | None = None) -> duckdb.DuckDBPyRelation:
    """Run ``sql`` against the dataset's views; returns a lazy DuckDB relation."""
    con = open_dataset(root, connection)
    return con.sql(sql)


def write_result(relation: duckdb.DuckDBPyRelation, fmt: str, out: str | Path | None) -> str | None:
    """Render a query result: ``table``/``csv`` as text (returned, or written to ``out``), or a
    Parquet file at ``out`` (required). Returns the text for stdout, or None when written to a file."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    if fmt == "parquet":
        if out is None:
            raise ValueError("--format parquet needs --out FILE")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        relation.to_parquet(str(out))
        return None
    frame = relation.df()
    text = frame.to_csv(index=False) if fmt == "csv" else _table_text(frame)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text, encoding="utf-8")
        return None
    return text


def _table_text(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "(no rows)\n" if len(frame.columns) else "(no result)\n"
    with pd.option_context("display.max_rows", 200, "display.max_columns", 50, "display.width", 200,
                           "display.max_colwidth", 60):
        return frame.to_string(index=False) + f"\n({len(frame)} rows)\n"
