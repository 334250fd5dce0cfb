"""The regression stage: OLS of reported error on model-averaged metrics, per architecture series.

For every series — models sharing ``(source, dataset, architecture)`` by default, so a torchvision
and a pytorchcv ResNet series stay two series — and every metric, fit
``error = intercept + slope · metric`` by ordinary least squares (closed form, see :func:`fit_line`) and report n, slope,
intercept, R², MSE = SSE/n, RMSE, the slope's p-value and Kendall's τ with its p-value. This is
the analysis of Martin, Peng & Mahoney, *Predicting trends in the quality of state-of-the-art
neural networks without access to training or testing data* (Nat. Commun. 12, 4122, 2021): the
reported error is the dependent variable, so MSE is in squared error-percent.

Only models with status ``ok`` enter, and only with a figure that is an error: ``top1_error``,
``top5_error``, or a ``reported_value`` whose ``reported_measure`` is an error measure (never
mIoU, AP, accuracy...) — or, named as a target ``figure:<dataset>[@<split>]:<metric>``, one kind of
``reported_figures`` (model-card ``model-index`` results, figures-CSV scores; ``zoos.figures``): only
figures of the same dataset, split and metric are regressed together, as reported (a score such as
accuracy is not turned into an error: for a higher-is-better target a good metric has a negative
slope where an error's would be positive). With ``target="auto"`` a series without an error figure
takes the figure target most of its models report. Metrics are columns of the ``models`` table, plus the derived metric
``ln_mean_lambda_max`` = ln of the model's average λmax, which is the paper's ⟨log‖W‖∞⟩ column
(the natural log of the model's average spectral norm, not the average of log10 λmax).

A series whose models were computed under the two conventions of ``log_norm`` (WeightWatcher
< 0.4: log10 ‖W‖_F, dense eigenvalues halved; ≥ 0.4 and ww_ray: log10 ‖W‖_F²; read off each row's
``analyzer_version`` by :func:`ww_ray.analysis.ww_layouts.log_norm_meaning`) is not fitted on the
metrics whose meaning differs (``CONVENTION_DEPENDENT``, their ``_compound`` variants and the
metrics derived from them): a :class:`MixedAnalyzerWarning` names the series and versions
(``allow_mixed=True`` fits them anyway). A series mixing a known convention with an unknown
``analyzer_version`` (e.g. ``external``) is fitted, with the same warning.

This module is pure computation on DataFrames: no I/O.
"""
from __future__ import annotations

import fnmatch
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from ww_ray.analysis.ww_layouts import CONVENTION_DEPENDENT, log_norm_meaning
from ww_ray.zoos.figures import FIGURE_TARGET_PREFIX, figure_target, figure_targets, figures_value
from ww_ray.zoos.spec import ERROR_MEASURES

#: The metrics regressed by default.
DEFAULT_METRICS = ("log_norm", "log_spectral_norm", "ln_mean_lambda_max", "alpha_weighted", "log_alpha_norm", "alpha")
#: The paper's four norm metrics, in its table order (⟨log‖·‖F⟩, ⟨log‖·‖∞⟩, α̂, ⟨log‖·‖α α⟩).
PAPER_METRICS = ("log_norm", "ln_mean_lambda_max", "alpha_weighted", "log_alpha_norm")
#: Metrics computed from ``models`` columns: name → (source column, transform).
DERIVED_METRICS: dict[str, tuple[str, Callable[[pd.Series], pd.Series]]] = {
    "ln_mean_lambda_max": ("lambda_max", lambda s: np.log(s.where(s > 0))),
}
TARGETS = ("auto", "top1_error", "top5_error")
GROUP_COLUMNS = ("source", "dataset", "architecture")
_AUTO_ORDER = ("top1_error", "top5_error")


class MixedAnalyzerWarning(UserWarning):
    """A series mixes analyzer versions whose ``log_norm`` (and related metrics) differ in meaning."""


def convention_dependent(metric: str) -> bool:
    """True for a metric whose values differ in meaning between WeightWatcher < 0.4 and later releases."""
    column = DERIVED_METRICS[metric][0] if metric in DERIVED_METRICS else metric
    return column.removesuffix("_compound") in CONVENTION_DEPENDENT


def _conventions(group: pd.DataFrame) -> tuple[set[str], list[str]]:
    versions = sorted({str(v) for v in group["analyzer_version"].dropna()}) if "analyzer_version" in group else []
    meanings = {log_norm_meaning(v) for v in versions}
    return meanings, versions


@dataclass(frozen=True)
class LineFit:
    """One OLS fit of y on x. Undefined quantities (constant x, n ≤ 2) are NaN."""

    n: int
    slope: float
    intercept: float
    r2: float
    mse: float
    rmse: float
    kendall_tau: float
    kendall_p: float
    slope_p: float


def fit_line(x: Sequence[float], y: Sequence[float]) -> LineFit:
    """OLS of ``y`` on ``x`` with an intercept; MSE = SSE / n.

    Written out (the textbook closed form for one regressor, in centred sums) rather than through
    statsmodels: importing ``statsmodels.api`` costs 1.2 s and one ``OLS(...).fit()`` 4 ms, which made
    ``ww-ray regress`` on a 600-series root take 4–6 s; this takes a few µs per fit and agrees with
    statsmodels and ``scipy.stats.linregress`` to 1e-12 (tests/test_analysis_regression.py). The
    slope's p-value is the two-sided t-test on n − 2 degrees of freedom, as statsmodels reports it.

        >>> fit = fit_line([0.0, 1.0, 2.0, 3.0], [1.0, 3.1, 4.9, 7.0])
        >>> round(fit.slope, 6), round(fit.intercept, 6), fit.n
        (1.98, 1.03, 4)
    """
    from scipy.special import stdtr  # the t distribution's CDF, without importing scipy.stats's 1 s
    from scipy.stats import kendalltau  # exact p-values for small untied samples, as the paper's τ

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D and of equal length, got {x.shape} and {y.shape}")
    n = int(x.size)
    nan = math.nan
    if n < 2 or np.ptp(x) == 0.0:
        mse = float(np.mean((y - y.mean()) ** 2)) if n else nan
        return LineFit(n, nan, float(y.mean()) if n else nan, nan, mse, math.sqrt(mse) if n else nan, nan, nan, nan)
    dx = x - x.mean()
    dy = y - y.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ dy) / sxx
    intercept = float(y.mean() - slope * x.mean())
    residuals = y - (intercept + slope * x)
    ssr = float(residuals @ residuals)
    sst = float(dy @ dy)
    r2 = 1.0 - ssr / sst if sst > 0.0 else nan
    slope_p = nan
    if n > 2:
        if ssr > 0.0:
            t = abs(slope) / math.sqrt(ssr / (n - 2) / sxx)
            slope_p = float(2.0 * stdtr(n - 2, -t))
        else:
            slope_p = 0.0  # an exact line: t is infinite
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant y; the NaN says it all
        tau, tau_p = kendalltau(x, y)
    mse = ssr / n
    return LineFit(n=n, slope=slope, intercept=intercept, r2=r2, mse=mse, rmse=math.sqrt(mse),
                   kendall_tau=float(tau), kendall_p=float(tau_p), slope_p=slope_p)


def metric_values(models: pd.DataFrame, metric: str) -> pd.Series:
    """The values of ``metric`` (a models column or a derived metric) as floats; NaN where undefined."""
    if metric in DERIVED_METRICS:
        column, transform = DERIVED_METRICS[metric]
        if column not in models.columns:
            raise KeyError(f"metric {metric!r} needs the models column {column!r}")
        values = transform(pd.to_numeric(models[column], errors="coerce").astype(float))
    elif metric in models.columns:
        values = pd.to_numeric(models[metric], errors="coerce").astype(float)
    else:
        known = sorted(set(DERIVED_METRICS) | {c for c in models.columns if pd.api.types.is_numeric_dtype(models[c])})
        raise KeyError(f"unknown metric {metric!r}; numeric columns and derived metrics: {', '.join(known)}")
    return values.where(np.isfinite(values))


def error_values(models: pd.DataFrame, target: str) -> pd.Series:
    """The error figure ``target`` of each model (NaN where the model has none of that kind).

    ``target`` is ``top1_error``, ``top5_error`` or another error measure name (``error``, ``wer``),
    read from ``reported_value`` where ``reported_measure`` equals it; or ``figure:<dataset>[@split]:<metric>``,
    read from the ``reported_figures`` column (the value as reported, whichever way it points).
    """
    if target.startswith(FIGURE_TARGET_PREFIX):
        if target.count(":") < 2:
            raise ValueError(f"figure target {target!r} must read figure:<dataset>[@<split>]:<metric>")
        column = models["reported_figures"] if "reported_figures" in models.columns else pd.Series(None, index=models.index, dtype=object)
        values = pd.Series([figures_value(f, target) for f in column], index=models.index, dtype=float)
    elif target in ("top1_error", "top5_error"):
        values = pd.to_numeric(models.get(target, pd.Series(np.nan, index=models.index)), errors="coerce").astype(float)
        if "reported_measure" in models.columns and "reported_value" in models.columns:
            same = models["reported_measure"] == target
            values = values.fillna(pd.to_numeric(models["reported_value"], errors="coerce").where(same))
    elif target in ERROR_MEASURES:
        same = models.get("reported_measure") == target
        values = pd.to_numeric(models.get("reported_value"), errors="coerce").astype(float).where(same)
    else:
        raise ValueError(f"target {target!r} is not an error measure; use one of {sorted(set(TARGETS) | ERROR_MEASURES)} "
                         "or figure:<dataset>[@<split>]:<metric>")
    return values.where(np.isfinite(values)).reindex(models.index)


def excluded(model_ids: pd.Series, patterns: Iterable[str]) -> pd.Series:
    """Boolean mask of model ids matching any glob pattern (``efficientnet_b0``, ``resnext*_cifar100``)."""
    patterns = [p for p in patterns if p]
    return model_ids.astype(str).map(lambda m: any(fnmatch.fnmatchcase(m, p) for p in patterns)).astype(bool)


def _auto_target(group: pd.DataFrame, min_models: int) -> str | None:
    candidates = list(_AUTO_ORDER) + sorted(
        set(group.get("reported_measure", pd.Series(dtype=object)).dropna()) & (ERROR_MEASURES - set(_AUTO_ORDER))
    )
    for target in candidates:
        if error_values(group, target).notna().sum() >= min_models:
            return target
    if "reported_figures" not in group.columns:
        return None
    counts: dict[str, int] = {}
    for figures in group["reported_figures"]:
        for key in figure_targets(figures):
            counts[key] = counts.get(key, 0) + 1
    best = sorted((-n, key) for key, n in counts.items() if n >= min_models)
    return figure_target(best[0][1]) if best else None


def _label(values: pd.Series) -> str | None:
    unique = sorted({str(v) for v in values.dropna()})
    return unique[0] if len(unique) == 1 else None


def regress(
    models: pd.DataFrame,
    metrics: Sequence[str] = DEFAULT_METRICS,
    target: str = "auto",
    min_models: int = 4,
    exclude: Iterable[str] = (),
    by: Sequence[str] | None = None,
    allow_mixed: bool = False,
) -> pd.DataFrame:
    """Fit every (series, metric) with at least ``min_models`` models; one row per fit.

    ``by`` defaults to ``GROUP_COLUMNS`` (``source, dataset, architecture``), or ``dataset,
    architecture`` for a frame without a ``source`` column. Columns follow the ``regressions``
    table (``run_id``/``created_at`` are the writer's). With ``target="auto"`` each series uses
    top-1 error if ``min_models`` of its models have one, else top-5, else another error measure,
    else the ``figure:`` target that most of its models report (at least ``min_models``).
    Series with a null grouping value are not formed. Mixed ``log_norm`` conventions in a series:
    see the module docstring.
    """
    if by is None:
        by = GROUP_COLUMNS if "source" in models.columns else tuple(c for c in GROUP_COLUMNS if c != "source")
    if min_models < 2:
        raise ValueError("min_models must be at least 2")
    bad = [c for c in by if c not in GROUP_COLUMNS]
    if bad or not by:
        raise ValueError(f"--by must be a non-empty subset of {GROUP_COLUMNS}, got {list(by)}")
    if target != "auto":
        error_values(models.head(0), target)  # validates the name
    frame = models
    if "status" in frame.columns:
        frame = frame[frame["status"] == "ok"]
    frame = frame[~excluded(frame["model_id"], exclude)] if len(frame) else frame
    frame = frame.dropna(subset=list(by)).reset_index(drop=True)  # index = position, for the arrays below
    # plain arrays indexed by position: pandas label lookups per fit were most of the time left once
    # the fits themselves got cheap
    metric_columns = {m: metric_values(frame, m).to_numpy(dtype=np.float64) for m in metrics}
    model_ids = frame["model_id"].astype(str).to_numpy() if len(frame) else np.array([], dtype=object)
    rows = []
    for key, group in frame.groupby(list(by), sort=True):
        chosen = _auto_target(group, min_models) if target == "auto" else target
        if chosen is None:
            continue
        y_all = error_values(group, chosen).to_numpy(dtype=np.float64)
        rows_at = group.index.to_numpy()
        meanings, versions = _conventions(group)
        mixed = len(meanings - {None}) > 1
        if mixed or (len(meanings) > 1 and None in meanings):
            name = dict(zip(by, key if isinstance(key, tuple) else (key,)))
            if not mixed:
                action = "fitted, but an unknown analyzer_version may use either convention"
            elif allow_mixed:
                action = "fitted anyway (allow_mixed)"
            elif any(convention_dependent(m) for m in metrics):
                action = "not fitted on " + ", ".join(m for m in metrics if convention_dependent(m))
            else:
                action = "fitted (none of the metrics asked depends on the convention)"
            warnings.warn(f"series {name} mixes analyzer versions {versions} whose log_norm means "
                          f"{sorted(str(m) for m in meanings)}: {action}", MixedAnalyzerWarning, stacklevel=2)
        labels = {c: _label(group[c]) for c in GROUP_COLUMNS}
        labels.update(dict(zip(by, key if isinstance(key, tuple) else (key,))))
        for metric in metrics:
            if mixed and not allow_mixed and convention_dependent(metric):
                continue
            x_all = metric_columns[metric][rows_at]
            usable = ~np.isnan(y_all) & ~np.isnan(x_all)
            if int(usable.sum()) < min_models:
                continue
            fit = fit_line(x_all[usable], y_all[usable])
            rows.append({**labels, "metric": metric, "target": chosen, **asdict(fit),
                         "model_ids": sorted(str(m) for m in model_ids[rows_at][usable])})
    columns = list(GROUP_COLUMNS) + ["metric", "target"] + list(LineFit.__dataclass_fields__) + ["model_ids"]
    return pd.DataFrame(rows, columns=columns)


def summary_table(regressions: pd.DataFrame, positive_only: bool = False) -> pd.DataFrame:
    """The paper's Table-3 view: per metric (and target), mean and std (ddof=1) of R² and MSE over series.

    ``positive_only`` keeps only fits whose slope is positive (error grows with the metric).
    """
    frame = regressions
    if positive_only:
        frame = frame[frame["slope"] > 0]
    columns = ["metric", "target", "series", "r2_mean", "r2_std", "mse_mean", "mse_std", "rmse_mean", "kendall_tau_mean"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    grouped = frame.groupby(["metric", "target"], sort=False)
    out = grouped.agg(series=("r2", "size"), r2_mean=("r2", "mean"), r2_std=("r2", "std"),
                      mse_mean=("mse", "mean"), mse_std=("mse", "std"), rmse_mean=("rmse", "mean"),
                      kendall_tau_mean=("kendall_tau", "mean")).reset_index()
    order = {m: i for i, m in enumerate(dict.fromkeys(frame["metric"]))}
    return out.sort_values("metric", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)[columns]


def read_exclude_file(text: str) -> list[str]:
    """Patterns of an exclude file: one model id or glob per line; ``#`` starts a comment."""
    patterns = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            patterns.append(entry)
    return patterns
