"""Regression stage: OLS numbers against independent computations, filters, targets, summary."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ww_ray.analysis.regression import (
    fit_line, metric_values, read_exclude_file, regress, summary_table,
)


def test_fit_line_matches_scipy_and_definitions() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=12)
    y = 2.5 * x + 1.0 + rng.normal(scale=0.4, size=12)
    fit = fit_line(x, y)
    ref = stats.linregress(x, y)
    assert fit.n == 12
    assert fit.slope == pytest.approx(ref.slope, rel=1e-12)
    assert fit.intercept == pytest.approx(ref.intercept, rel=1e-12)
    assert fit.r2 == pytest.approx(ref.rvalue ** 2, rel=1e-12)
    assert fit.slope_p == pytest.approx(ref.pvalue, rel=1e-9)
    sse = float(np.sum((y - (ref.intercept + ref.slope * x)) ** 2))
    assert fit.mse == pytest.approx(sse / 12, rel=1e-12)  # MSE = SSE / n (not / (n - 2))
    assert fit.rmse == pytest.approx(math.sqrt(sse / 12), rel=1e-12)
    tau = stats.kendalltau(x, y)
    assert (fit.kendall_tau, fit.kendall_p) == (pytest.approx(tau.statistic), pytest.approx(tau.pvalue))


def test_fit_line_degenerate_inputs() -> None:
    flat = fit_line([1.0, 1.0, 1.0, 1.0], [3.0, 4.0, 5.0, 6.0])
    assert math.isnan(flat.r2) and math.isnan(flat.slope) and flat.mse == pytest.approx(1.25)
    exact = fit_line([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
    assert exact.r2 == pytest.approx(1.0) and exact.mse == pytest.approx(0.0, abs=1e-20)
    with pytest.raises(ValueError):
        fit_line([1.0, 2.0], [1.0])


def _models() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):  # a classification series with top-1 errors
        rows.append({"source": "z", "model_id": f"res{i}_cifar10", "dataset": "cifar10", "architecture": "ResNet",
                     "status": "ok", "log_norm": 1.0 + 0.1 * i, "lambda_max": 2.0 + i, "alpha": 3 + rng.normal(0, .1),
                     "top1_error": 10.0 - 0.5 * i + rng.normal(0, .05), "top5_error": None,
                     "reported_value": None, "reported_measure": "top1_error"})
    for i in range(5):  # ImageNet models with only a top-5 error
        rows.append({"source": "z", "model_id": f"vgg{i}", "dataset": "imagenet1k", "architecture": "VGG",
                     "status": "ok", "log_norm": 2.0 + 0.2 * i, "lambda_max": 5.0 + i, "alpha": 4.0,
                     "top1_error": None, "top5_error": 12.0 - i, "reported_value": 12.0 - i,
                     "reported_measure": "top5_error"})
    for i in range(5):  # segmentation: the figure is an mIoU, never an error
        rows.append({"source": "z", "model_id": f"seg{i}_voc", "dataset": "voc", "architecture": "PSPNet",
                     "status": "ok", "log_norm": 1.0 + i, "lambda_max": 1.0 + i, "alpha": 3.0,
                     "top1_error": None, "top5_error": None, "reported_value": 70.0 + i, "reported_measure": "miou"})
    rows.append({"source": "z", "model_id": "broken_cifar10", "dataset": "cifar10", "architecture": "ResNet",
                 "status": "failed", "log_norm": 99.0, "top1_error": 1.0})
    return pd.DataFrame(rows)


def test_regress_filters_targets_and_rows() -> None:
    models = _models()
    fits = regress(models, metrics=["log_norm", "ln_mean_lambda_max"], target="auto", min_models=4)
    assert set(zip(fits["dataset"], fits["architecture"], fits["target"])) == {
        ("cifar10", "ResNet", "top1_error"), ("imagenet1k", "VGG", "top5_error")}
    res = fits[(fits.architecture == "ResNet") & (fits.metric == "log_norm")].iloc[0]
    ok = models[(models.architecture == "ResNet") & (models.status == "ok")]
    ref = stats.linregress(ok["log_norm"], ok["top1_error"])
    assert res["n"] == 6 and res["r2"] == pytest.approx(ref.rvalue ** 2) and res["slope"] == pytest.approx(ref.slope)
    assert "broken_cifar10" not in res["model_ids"]
    ln = fits[(fits.architecture == "ResNet") & (fits.metric == "ln_mean_lambda_max")].iloc[0]
    assert ln["slope"] == pytest.approx(stats.linregress(np.log(ok["lambda_max"]), ok["top1_error"]).slope)
    # the segmentation series never enters an error regression, whatever the target
    for target in ("auto", "top1_error", "top5_error", "error"):
        assert "voc" not in set(regress(models, metrics=["log_norm"], target=target)["dataset"])
    assert regress(models, metrics=["log_norm"], target="top1_error")["dataset"].tolist() == ["cifar10"]


def test_regress_exclude_min_models_by_and_errors() -> None:
    models = _models()
    fits = regress(models, metrics=["log_norm"], exclude=["res0_*", "res1_cifar10"], min_models=4)
    resnet = fits[fits.architecture == "ResNet"].iloc[0]
    assert resnet["n"] == 4 and not {"res0_cifar10", "res1_cifar10"} & set(resnet["model_ids"])
    assert regress(models, metrics=["log_norm"], exclude=["res*"], min_models=5)["architecture"].tolist() == ["VGG"]
    by_dataset = regress(models, metrics=["log_norm"], by=["dataset"])
    assert by_dataset["architecture"].tolist() == ["ResNet", "VGG"]  # single-valued labels are kept
    with pytest.raises(KeyError, match="unknown metric 'nope'"):
        regress(models, metrics=["nope"])
    with pytest.raises(ValueError, match="not an error measure"):
        regress(models, metrics=["log_norm"], target="miou")
    with pytest.raises(ValueError, match="--by"):
        regress(models, metrics=["log_norm"], by=["task"])
    assert metric_values(pd.DataFrame({"lambda_max": [0.0, np.e]}), "ln_mean_lambda_max").tolist()[1] == pytest.approx(1.0)


def test_summary_table_is_mean_and_sample_std() -> None:
    fits = pd.DataFrame({"metric": ["a", "a", "a", "b"], "target": ["top1_error"] * 4,
                         "r2": [0.5, 0.7, 0.9, 0.4], "mse": [1.0, 2.0, 6.0, 3.0], "rmse": [1, 1, 1, 1],
                         "kendall_tau": [0.1, 0.2, 0.3, 0.4], "slope": [1.0, -1.0, 2.0, 1.0]})
    table = summary_table(fits).set_index("metric")
    assert table.loc["a", "series"] == 3 and table.loc["a", "r2_mean"] == pytest.approx(0.7)
    assert table.loc["a", "r2_std"] == pytest.approx(0.2) and table.loc["a", "mse_std"] == pytest.approx(np.std([1, 2, 6], ddof=1))
    assert summary_table(fits, positive_only=True).set_index("metric").loc["a", "series"] == 2


def test_read_exclude_file() -> None:
    text = "# outliers\nefficientnet_b0\n  efficientnet_b1  # visual inspection\n\nresnext*_cifar100\n"
    assert read_exclude_file(text) == ["efficientnet_b0", "efficientnet_b1", "resnext*_cifar100"]


@pytest.mark.parametrize("n", [3, 5, 12, 40])
def test_fit_line_equals_statsmodels_ols(n: int) -> None:
    """The closed form against statsmodels' OLS, which the regression stage used before (p-values too)."""
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(n)
    x = rng.lognormal(size=n)
    y = -3.0 * x + 20.0 + rng.standard_t(3, size=n)
    fit = fit_line(x, y)
    ref = sm.OLS(y, sm.add_constant(x)).fit()
    assert fit.slope == pytest.approx(ref.params[1], rel=1e-12)
    assert fit.intercept == pytest.approx(ref.params[0], rel=1e-12)
    assert fit.r2 == pytest.approx(ref.rsquared, rel=1e-12)
    assert fit.mse == pytest.approx(ref.ssr / n, rel=1e-12)
    assert fit.slope_p == pytest.approx(ref.pvalues[1], rel=1e-9)


def test_fit_line_two_points_has_no_slope_p_value() -> None:
    fit = fit_line([1.0, 2.0], [3.0, 5.0])
    assert fit.slope == pytest.approx(2.0) and fit.r2 == pytest.approx(1.0) and math.isnan(fit.slope_p)
