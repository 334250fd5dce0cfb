"""Read WeightWatcher's output files safely: ``get_details()`` CSVs, ``get_summary()`` dicts, folders of them.

What researchers keep, per model: ``details.to_csv("<model>.csv")`` (no model column: the file stem
is the model) and often the summary beside it, ``<model>.txt`` holding ``str(watcher.get_summary())``
or ``<model>.json``. A summary text is read with :func:`ast.literal_eval` after a check that it is
a dict of literals; the only calls let through are the reprs numpy gives its scalars
(``np.float64(0.5)``), replaced by their argument before anything is evaluated. Anything else —
``__import__('os').system(...)``, a name, an attribute, an operator — is refused with a
``ValueError`` naming the file: nothing in a file ever runs.

Names are mapped by :mod:`ww_ray.analysis.ww_layouts`; this module only reads and reshapes.

>>> read_summary_text("{'log_norm': np.float64(1.5), 'alpha': 3.0, 'x': nan}", "m.txt")
{'log_norm': 1.5, 'alpha': 3.0, 'x': nan}
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ww_ray.analysis import ww_layouts as layouts

#: Extensions of a summary dict file beside a details CSV (same stem).
SUMMARY_SUFFIXES = (".txt", ".json")
#: A summary dict is a few hundred bytes; anything larger is not one (and is not parsed).
MAX_SUMMARY_BYTES = 1 << 20
#: Columns naming the model in a one-row-per-model summary CSV.
MODEL_COLUMNS = ("modelname", "model_id", "model", "model_name", "name")
_INDEX_COLUMNS = ("unnamed: 0", "index", "")
_NUMPY_SCALARS = {"float64", "float32", "float16", "longdouble", "int64", "int32", "int16", "int8",
                  "uint64", "uint32", "uint16", "uint8", "bool_", "float_", "double", "single", "intc"}
_INT_COLUMNS = ("layer_index", "N", "M", "rf", "num_evals", "matrix_rank", "num_pl_spikes", "num_spikes", "slice_id")
_SLICE_LEVELS = {"level.slice", "slice", "1"}
_LAYER_LEVELS = {"level.layer", "layer", "2"}


@dataclass
class Details:
    """One ``get_details()`` CSV as ``layers`` rows (ww_ray names), with what was not mapped."""

    path: Path
    layout: str
    rows: pd.DataFrame
    unmapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def is_model_table(frame: pd.DataFrame) -> bool:
    """True for a one-row-per-model summary table (it names its models), False for a details table."""
    lower = {str(c).strip().lower() for c in frame.columns}
    return bool(lower & set(MODEL_COLUMNS)) and "layer_id" not in lower and "level" not in lower


def model_column(frame: pd.DataFrame, path: Path) -> str:
    """The column of a summary table that names the models (``ValueError`` when there is none)."""
    lower = {str(c).strip().lower(): c for c in frame.columns}
    for name in MODEL_COLUMNS:
        if name in lower:
            return lower[name]
    raise ValueError(f"{path}: no model name column (one of {', '.join(MODEL_COLUMNS)})")


def _number(value: object) -> float | None:
    number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
    return None if pd.isna(number) else float(number)


class _Literals(ast.NodeTransformer):
    """Turn numpy scalar reprs and nan/inf names into constants; refuse every other non-literal."""

    def __init__(self, where: str) -> None:
        self.where = where

    def _refuse(self, node: ast.AST) -> None:
        raise ValueError(f"{self.where}: refused: {ast.unparse(node)[:120]!r} is not a literal (a summary file "
                         "must be a dict of numbers, as str(get_summary()) writes it; nothing in it is run)")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in ("nan", "NaN", "inf", "Infinity"):
            return ast.copy_location(ast.Constant(float(node.id.lower().replace("infinity", "inf"))), node)
        self._refuse(node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        allowed = (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                   and func.value.id in ("np", "numpy") and func.attr in _NUMPY_SCALARS) or \
                  (isinstance(func, ast.Name) and func.id in ("float", "int"))
        if not allowed or node.keywords or len(node.args) != 1:
            self._refuse(node)
        arg = self.visit(node.args[0])
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            try:
                arg = ast.copy_location(ast.Constant(float(arg.value)), arg)
            except ValueError:
                self._refuse(node)
        return arg

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self._refuse(node)


def read_summary_text(text: str, where: str = "summary") -> dict[str, float | None]:
    """A summary dict from its text (``str(dict)`` or JSON); numbers only, non-numbers become None."""
    if len(text.encode("utf-8", "replace")) > MAX_SUMMARY_BYTES:
        raise ValueError(f"{where}: {len(text)} characters is not a summary dict (limit {MAX_SUMMARY_BYTES} bytes)")
    stripped = text.strip()
    try:
        value = json.loads(stripped)
    except ValueError:
        try:
            tree = _Literals(where).visit(ast.parse(stripped, mode="eval"))
            value = ast.literal_eval(tree)
        except (SyntaxError, RecursionError, MemoryError) as exc:
            raise ValueError(f"{where}: not a summary dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"{where}: a summary file must hold a dict with string keys, got {type(value).__name__}")
    out: dict[str, float | None] = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, (int, float)) and item is not None:
            out[key] = None
        else:
            out[key] = None if item is None else float(item)
    return out


def read_summary(path: Path) -> dict[str, float | None]:
    """The ``get_summary()`` dict saved in ``path`` (text or JSON)."""
    size = path.stat().st_size
    if size > MAX_SUMMARY_BYTES:
        raise ValueError(f"{path}: {size} bytes is not a summary dict (limit {MAX_SUMMARY_BYTES})")
    return read_summary_text(path.read_text(encoding="utf-8", errors="replace"), str(path))


def summary_beside(csv_path: Path) -> Path | None:
    """The summary file next to a details CSV (same stem), if there is exactly one."""
    found = [csv_path.with_suffix(s) for s in SUMMARY_SUFFIXES if csv_path.with_suffix(s).is_file()]
    if len(found) > 1:
        raise ValueError(f"{csv_path}: two summary files beside it ({', '.join(p.name for p in found)}); keep one")
    return found[0] if found else None


def _drop_index(frame: pd.DataFrame) -> pd.DataFrame:
    first = str(frame.columns[0]).strip().lower() if len(frame.columns) else None
    if first in _INDEX_COLUMNS or (first or "").startswith("unnamed:"):
        return frame.drop(columns=frame.columns[0])
    return frame


def _level_rows(frame: pd.DataFrame, path: Path, notes: list[str]) -> pd.DataFrame:
    """0.2.x: the ``LEVEL.SLICE`` rows; a layer's ``LEVEL.LAYER`` row only where it has no slice rows."""
    if "level" not in frame.columns:
        return frame
    level = frame["level"].astype(str).str.strip().str.lower()
    slices = frame[level.isin(_SLICE_LEVELS)]
    layer_rows = frame[level.isin(_LAYER_LEVELS)]
    alone = layer_rows[~layer_rows["layer_id"].isin(set(slices["layer_id"]))] if "layer_id" in frame else layer_rows.iloc[:0]
    dropped = len(frame) - len(slices) - len(alone)
    if dropped:
        notes.append(f"{path.name}: {len(layer_rows) - len(alone)} LEVEL.LAYER rows repeat their slices (not ingested)"
                     + (f", {dropped - len(layer_rows) + len(alone)} network rows left out" if dropped > len(layer_rows) - len(alone) else ""))
    return pd.concat([slices, alone.assign(_layer_level=True)]).sort_index(kind="stable")


def read_details(path: Path) -> Details:
    """A ``get_details()`` CSV of any WeightWatcher release as ``layers`` rows named as ww_ray names them.

    Values are kept as the tool wrote them; ``status`` is ``ok`` for a matrix WeightWatcher
    analysed (``failed`` where its fit status says so, ``skipped`` where the row has no metric),
    ``slice_id`` is the 0-based k×k position of a conv slice (0.2.x ``slice`` − 1, or the row's
    ``slice_id`` of a ≥ 0.4 table with several rows per layer, ``pool=False`` / ``ww2x=True``, or
    the row's position within its layer where that column is absent),
    ``conv_method`` is ``slices`` for per-slice rows and ``pooled`` for ≥ 0.4 conv rows.
    """
    frame = _drop_index(pd.read_csv(path))
    layout = layouts.detect_layout(frame.columns)
    if layout is None or "layer_id" not in frame.columns and not {"N", "M"} <= set(frame.columns):
        raise ValueError(f"{path}: not a WeightWatcher get_details() table (columns: {', '.join(map(str, frame.columns[:12]))})")
    notes: list[str] = []
    frame = _level_rows(frame, path, notes).reset_index(drop=True)
    names = layouts.DETAILS_NAMES[layout]
    rows = pd.DataFrame(index=frame.index)
    used: set[str] = set(layouts.STRUCTURE_COLUMNS[layout]) | {"_layer_level"}
    for target, candidates in names.items():
        for column in candidates:
            if column in frame.columns:
                values = frame[column]
                rows[target] = values if target in ("layer_name", "warning") else pd.to_numeric(values, errors="coerce")
                used.update(c for c in candidates if c in frame.columns)
                break
    if "layer_index" not in rows:
        rows["layer_index"] = np.arange(len(frame))
    if "layer_name" not in rows:
        rows["layer_name"] = rows["layer_index"].map(lambda i: f"layer {int(i)}" if pd.notna(i) else None)
    rows["layer_name"] = rows["layer_name"].map(lambda v: None if pd.isna(v) else str(v))
    types = frame["layer_type"] if "layer_type" in frame else pd.Series(None, index=frame.index, dtype=object)
    rows["layer_type"] = types.map(lambda v: layouts.layer_type_name(v, layout))
    if "Q" not in rows and {"N", "M"} <= set(rows.columns):
        rows["Q"] = rows["N"] / rows["M"].where(rows["M"] > 0)
    conv = rows["layer_type"].eq("conv2d")
    per_layer = rows.groupby("layer_index")["layer_index"].transform("size")
    if layout == "0.2":
        slice_number = pd.to_numeric(frame.get("slice"), errors="coerce") if "slice" in frame else pd.Series(np.nan, index=frame.index)
        rows["slice_id"] = (slice_number - 1).where(conv & slice_number.notna())
        rows["conv_method"] = pd.Series("slices", index=frame.index).where(conv & rows["slice_id"].notna())
    else:
        position = pd.to_numeric(frame["slice_id"], errors="coerce") if "slice_id" in frame else \
            rows.groupby("layer_index").cumcount().astype(float)
        rows["slice_id"] = position.where(conv & (per_layer > 1))
        rows["conv_method"] = pd.Series(np.where(per_layer > 1, "slices", "pooled"), index=frame.index).where(conv)
    _statuses(rows, frame, layout, path)
    if "warning" in rows:
        rows["warning"] = rows["warning"].map(lambda v: None if pd.isna(v) or str(v) in layouts.FIT_STATUSES else str(v))
    for column in _INT_COLUMNS:
        if column in rows:
            rows[column] = pd.array(pd.to_numeric(rows[column], errors="coerce").round(), dtype="Int64")
    unmapped = [str(c) for c in frame.columns if c not in used]
    return Details(path=path, layout=layout, rows=rows, unmapped=unmapped, notes=notes)


def _statuses(rows: pd.DataFrame, frame: pd.DataFrame, layout: str, path: Path) -> None:
    metric_columns = [c for c in rows.columns if c in layouts.SUMMARY_NAMES.values() or c in ("D", "norm")]
    has_metric = rows[metric_columns].notna().any(axis=1) if metric_columns else pd.Series(False, index=rows.index)
    status = pd.Series("ok", index=rows.index, dtype=object)
    error = pd.Series(None, index=rows.index, dtype=object)
    fit = frame["status"] if "status" in frame else (
        frame["warning"] if "warning" in frame and frame["warning"].dropna().astype(str).isin(list(layouts.FIT_STATUSES)).all()
        and frame["warning"].notna().any() else None)
    if fit is not None:
        text = fit.astype(str).str.strip().str.lower()
        failed = text.eq("failed")
        status[failed] = "failed"
        error[failed] = f"WeightWatcher's fit status in {path.name}: failed"
    empty = ~has_metric
    status[empty] = "skipped"
    error[empty] = f"no metric value in {path.name} (WeightWatcher wrote the matrix but did not analyse it)"
    rows["status"] = status
    rows["error"] = error
