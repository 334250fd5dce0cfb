"""Refresh the regressions of the series a rescan touched, from the dataset as it now is.

A series is a ``(dataset, architecture)`` pair (the regression stage's default grouping); it is
touched when a model of it was analysed ``ok`` in this rescan. Its fits are recomputed on every
``ok`` model of the series (``ww_ray.analysis.regression.regress``) and appended to the
``regressions`` table under the rescan's run id; readers see the latest fit per series and metric.
Series without ``min_models`` models that have an error figure are left as they are (a Hub model
rarely publishes one; a zoo ``metadata:`` CSV can supply them).
"""
from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ww_ray.analysis.regression import regress
from ww_ray.store import read_table, write_regressions
from ww_ray.store.root import StoreRoot

Series = tuple[str, str]


def touched_series(pairs: Iterable[tuple[str | None, str | None]]) -> set[Series]:
    """The (dataset, architecture) pairs that can form a series (both known)."""
    return {(str(d), str(a)) for d, a in pairs if d and a}


def refresh_regressions(root: StoreRoot, series: set[Series], run_id: str, min_models: int = 4,
                        models: pd.DataFrame | None = None) -> pd.DataFrame:
    """Refit the touched series and append the fits; returns them (empty when none could be fitted)."""
    if not series:
        return pd.DataFrame()
    models = read_table(root, "models") if models is None else models
    in_series = [(d, a) in series for d, a in zip(models["dataset"], models["architecture"])]
    fits = regress(models[in_series], min_models=min_models)
    if not fits.empty:
        write_regressions(root, fits, run_id)
    return fits
