"""A model's result as dataset rows: its layer rows and its single ``models`` row.

No Ray and no math here: the rows come from the spectral core, the averages from
``ww_ray.spectral.summary.summarize``. What this module decides is the model's ``status``:

* ``ok`` — at least one matrix was analysed (failed matrices are counted in ``num_failed_layers``
  and named in ``error``);
* ``failed`` — the weights could not be loaded, the run could not finish the model, or no matrix
  could be analysed because they all failed;
* ``skipped`` — left out on purpose (too large, an unsupported format) or no matrix passed the
  preset's size filters.
"""
from __future__ import annotations

import datetime as _dt
from collections import Counter
from typing import Any, Iterable

import pandas as pd

from ww_ray.spectral.metrics import ANALYZER_VERSION
from ww_ray.spectral.presets import AnalysisOptions
from ww_ray.spectral.summary import summarize
from ww_ray.store.schema import LAYERS_SCHEMA, MODELS_SCHEMA
from ww_ray.zoos.spec import ModelSpec

_MODEL_COLUMNS = set(MODELS_SCHEMA.names)
_LAYER_COLUMNS = set(LAYERS_SCHEMA.names)
_MAX_ERROR_CHARS = 2000


def _example(rows: list[dict[str, Any]]) -> str:
    row = rows[0]
    slice_part = f"[{row['slice_id']}]" if row.get("slice_id") is not None else ""
    return f"{row.get('layer_name')}{slice_part}: {row.get('error')}"


def decide_status(rows: list[dict[str, Any]]) -> tuple[str, str | None]:
    """Model status and error from its layer rows (see the module docstring)."""
    if not rows:
        return "failed", "no layer weights found: the checkpoint holds no linear, convolution or embedding weight"
    by_status: dict[str, list[dict[str, Any]]] = {"ok": [], "failed": [], "skipped": []}
    for row in rows:
        by_status.setdefault(str(row.get("status")), []).append(row)
    ok, failed, skipped = by_status["ok"], by_status["failed"], by_status["skipped"]
    if ok:
        if failed:
            return "ok", f"{len(failed)} of {len(rows)} matrices failed, e.g. {_example(failed)}"
        return "ok", None
    if failed:
        reasons = Counter(str(r.get("error")) for r in failed).most_common(1)[0][0]
        return "failed", f"no matrix could be analysed: {len(failed)} of {len(rows)} failed ({reasons}), e.g. {_example(failed)}"
    return "skipped", f"no matrix passed the preset's filters ({len(skipped)} skipped), e.g. {_example(skipped)}"


def layer_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Layer rows restricted to the ``layers`` schema's columns (keys are filled in at commit)."""
    return [{k: v for k, v in row.items() if k in _LAYER_COLUMNS} for row in rows]


def _base(spec: ModelSpec, run_id: str, options: AnalysisOptions) -> dict[str, Any]:
    row = {k: v for k, v in spec.to_row().items() if k in _MODEL_COLUMNS}
    row.update(revision=spec.revision or "", run_id=run_id, preset=options.label,
               analyzer_version=ANALYZER_VERSION)
    return row


def _truncate(text: str | None) -> str | None:
    if text is None or len(text) <= _MAX_ERROR_CHARS:
        return text
    return text[: _MAX_ERROR_CHARS - 1] + "…"


def model_row(spec: ModelSpec, rows: list[dict[str, Any]], run_id: str, options: AnalysisOptions, *,
              timings: dict[str, float], attempts: int) -> dict[str, Any]:
    """The ``models`` row of an analysed model: spec columns, summary averages, status, timings."""
    row = _base(spec, run_id, options)
    status, error = decide_status(rows)
    summary = summarize(pd.DataFrame(rows)) if rows else {"num_layers": 0, "num_failed_layers": 0}
    row.update({k: v for k, v in summary.items() if k in _MODEL_COLUMNS})
    row.update(status=status, error=_truncate(error), attempts=attempts,
               finished_at=_dt.datetime.now(_dt.timezone.utc), **_timing_columns(timings))
    return row


def terminal_row(spec: ModelSpec, status: str, error: str | None, run_id: str, options: AnalysisOptions, *,
                 timings: dict[str, float] | None = None, attempts: int = 1) -> dict[str, Any]:
    """The ``models`` row of a model that produced no layer rows (load failed, skipped, timed out ...)."""
    row = _base(spec, run_id, options)
    row.update(status=status, error=_truncate(error), attempts=attempts, num_layers=0, num_failed_layers=0,
               finished_at=_dt.datetime.now(_dt.timezone.utc), **_timing_columns(timings or {}))
    return row


def _timing_columns(timings: dict[str, float]) -> dict[str, float | None]:
    return {f"seconds_{name}": timings.get(name) for name in ("load", "compute", "total")}
