"""Cast rows (a list of dicts or a pandas DataFrame) to one of the canonical Arrow schemas.

Columns the schema has but the rows lack are filled with nulls; a column the schema does not know
is an error (never silently dropped: add it to ``schema.py``); a value that cannot be cast to its
column's type is an error naming the column. NaN in numeric columns becomes null.
"""
from __future__ import annotations

import datetime as _dt
from typing import Mapping, Sequence, Union

import numpy as np
import pandas as pd
import pyarrow as pa

Rows = Union[pd.DataFrame, Sequence[Mapping[str, object]]]


def _columns(rows: Rows) -> tuple[dict[str, list | pd.Series], int]:
    if isinstance(rows, pd.DataFrame):
        frame = rows.reset_index(drop=True)
        return {str(c): frame[c] for c in frame.columns}, len(frame)
    rows = list(rows)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"row {i} is a {type(row).__name__}, expected a mapping of column -> value")
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(map(str, row)))
    return {name: [row.get(name) for row in rows] for name in names}, len(rows)


def _to_array(values: list | pd.Series, field: pa.Field) -> pa.Array:
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    if pa.types.is_timestamp(field.type):
        series = pd.to_datetime(series, utc=True, format="mixed")
    elif pa.types.is_string(field.type):
        series = series.astype(object).map(_as_text)
    elif pa.types.is_list(field.type):
        as_item = _as_text if pa.types.is_string(field.type.value_type) else (lambda x: x)
        series = series.astype(object).map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                                           else [as_item(x) for x in v])
    elif pa.types.is_integer(field.type):
        series = pd.to_numeric(series.astype(object).map(lambda v: None if v is pd.NA else v))
        fractional = series.notna() & (series != series.round())
        if fractional.any():
            raise ValueError(f"non-integer value {series[fractional].iloc[0]!r}")
    else:
        series = series.astype(object)
    return pa.array(series, type=field.type, from_pandas=True)


def _as_text(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return value if isinstance(value, str) else str(value)


def to_table(rows: Rows, schema: pa.Schema, table_name: str,
             defaults: Mapping[str, object] | None = None) -> pa.Table:
    """Rows → a ``pa.Table`` with exactly ``schema`` (same column order, metadata kept).

    ``defaults`` fills columns that are absent from the rows or null in a row (e.g. the model key
    on its layer rows).
    """
    columns, length = _columns(rows)
    unknown = [c for c in columns if schema.get_field_index(c) < 0]
    if unknown:
        raise ValueError(
            f"{table_name}: column(s) {sorted(unknown)} are not in the canonical {table_name} schema "
            f"(ww_ray/store/schema.py); add them there or drop them before writing"
        )
    arrays = []
    for field in schema:
        values = columns.get(field.name)
        if defaults and field.name in defaults:
            fill = defaults[field.name]
            if values is None:
                values = [fill] * length
            else:
                values = [fill if _is_null(v) else v for v in list(values)]
        if values is None:
            arrays.append(pa.nulls(length, type=field.type))
            continue
        try:
            arrays.append(_to_array(values, field))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise ValueError(f"{table_name}: column {field.name!r} cannot be cast to {field.type}: {exc}") from exc
    return pa.Table.from_arrays(arrays, schema=schema)


def _is_null(value: object) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and np.isnan(value)
