"""MUST-SHOW: the paper's per-series regressions, reproduced from the authors' own metrics.

Martin, Peng & Mahoney, "Predicting trends in the quality of state-of-the-art neural networks
without access to training or testing data", Nature Communications 12, 4122 (2021). The published
per-series numbers are its Supplementary Tables of R² and MSE for the four norm metrics
(⟨log‖·‖F⟩, ⟨log‖·‖∞⟩, α̂, ⟨log‖·‖α α⟩), as typeset in the authors' repository
(CalculatedContent/ww-trends-2020, ``submission/NatCom_appendix.tex``, tables ``MSEresults`` and
``R2results``), transcribed below. The inputs are the authors' metrics (``osmr_df_all.csv``,
WeightWatcher 0.2.7) and the errors they used: top-1 errors of their README snapshot
``pytorchcv.html``, and pytorchcv's metainfo for CIFAR/SVHN/CUB models the snapshot lacks.
Outliers, as in the paper: efficientnet_b0 and _b1 (ImageNet) and the four ResNeXt CIFAR-100 models.

What reproduces exactly (to the published two decimals, R² and MSE, all four metrics): all 14
CIFAR-10/100, SVHN and CUB-200 series and 5 of the 13 ImageNet series (DRN, SqueezeNext,
ESPNetv2, IGCV3, SqueezeNet) — 19 of 27 series. This also pins down the paper's definitions:
the error is the dependent variable, MSE = SSE/n, and ⟨log‖·‖∞⟩ is ln of the average spectral
norm (``ln_mean_lambda_max``), not the average of log10 λmax.

What cannot reproduce, and why (each asserted below):
* ImageNet EfficientNet, HRNet, ProxylessNAS, PreResNet: the snapshot has no top-1 error for
  (almost) any of them — they were added to the imgclsmob README after the snapshot was taken;
  pytorchcv's metainfo has only top-5 errors for ImageNet, of today's retrained weights.
* ImageNet ResNet (15 of the paper's 22 models in the snapshot), VGG (8 of 12: no BN-VGG rows)
  and ShuffleNet (10 of 12): partial series give different fits.
* ImageNet DLA: all 10 models are in the snapshot, yet the fits are a little off (R² 0.12 vs
  0.13 for log-norm): the authors' top-1 errors for some DLA models must have come from a later
  README revision than the snapshot (pytorchcv retrained several DLA models in 2020).
The paper's Table 3 (mean R² 0.63/0.55/0.64/0.64, MSE 4.54/9.62/3.14/2.92) is not the mean of its
own supplementary per-series tables (0.67/0.60/0.68/0.69, 4.43/9.64/2.98/2.74 over the 27 rows),
so it is not asserted; the summary is checked against the published per-series values instead.
"""
from __future__ import annotations


import numpy as np
import pytest

from _analysis_util import METAINFO, WW_TRENDS, require
from ww_ray.analysis.ingest import ingest_metrics
from ww_ray.analysis.regression import PAPER_METRICS, regress, summary_table
from ww_ray.store import read_table
from ww_ray.zoos.architectures import architecture_of

# Paper series label → a pytorchcv model of that series (our series name comes from architecture_of).
SERIES_MEMBER = {
    "ResNet": "resnet18", "EfficientNet": "efficientnet_b0b", "PreResNet": "preresnet18", "ShuffleNet": "shufflenet_g1_w1",
    "VGG": "vgg16", "DLA": "dla34", "HRNet": "hrnetv2_w18", "DRN-C": "drnc26", "SqueezeNext": "sqnxt23_w1",
    "ESPNetv2": "espnetv2_w1", "IGCV3": "igcv3_w1", "SqueezeNet": "squeezenet_v1_0", "ProxylessNAS": "proxylessnas_cpu",
    "DIA-ResNet": "diaresnet20_cifar10", "SENet": "seresnet20_cifar10", "WRN": "wrn28_10_cifar100", "ResNeXt": "resnext29_32x4d_svhn",
}
# Published values: (dataset, series) → (log-norm, log-spectral-norm, alpha-hat, log-alpha-norm).
PUBLISHED_R2 = {
    ("imagenet1k", "ResNet"): (0.82, 0.67, 0.90, 0.88), ("imagenet1k", "EfficientNet"): (0.65, 0.84, 0.67, 0.67),
    ("imagenet1k", "PreResNet"): (0.73, 0.36, 0.85, 0.85), ("imagenet1k", "ShuffleNet"): (0.63, 0.06, 0.80, 0.81),
    ("imagenet1k", "VGG"): (0.71, 0.76, 0.35, 0.45), ("imagenet1k", "DLA"): (0.13, 0.67, 0.43, 0.39),
    ("imagenet1k", "HRNet"): (0.91, 0.90, 0.97, 0.97), ("imagenet1k", "DRN-C"): (0.81, 0.79, 0.87, 0.85),
    ("imagenet1k", "SqueezeNext"): (0.05, 0.07, 0.42, 0.43), ("imagenet1k", "ESPNetv2"): (0.42, 0.38, 0.92, 0.89),
    ("imagenet1k", "IGCV3"): (0.98, 0.12, 0.92, 0.99), ("imagenet1k", "SqueezeNet"): (0.01, 0.00, 0.38, 0.26),
    ("imagenet1k", "ProxylessNAS"): (0.68, 0.56, 0.53, 0.58),
    ("cifar10", "ResNet"): (0.58, 0.59, 0.62, 0.61), ("cifar10", "DIA-ResNet"): (0.96, 0.93, 0.74, 0.71),
    ("cifar10", "SENet"): (0.91, 0.91, 0.96, 0.96),
    ("cifar100", "ResNet"): (0.61, 0.58, 0.71, 0.71), ("cifar100", "DIA-ResNet"): (0.96, 0.85, 0.90, 0.89),
    ("cifar100", "SENet"): (0.97, 0.96, 0.98, 0.98), ("cifar100", "WRN"): (0.32, 0.04, 0.66, 0.69),
    ("svhn", "ResNet"): (0.69, 0.70, 0.82, 0.81), ("svhn", "DIA-ResNet"): (0.94, 0.95, 0.78, 0.77),
    ("svhn", "SENet"): (0.99, 0.96, 0.98, 0.98), ("svhn", "WRN"): (0.13, 0.10, 0.20, 0.21),
    ("svhn", "ResNeXt"): (0.87, 0.90, 0.64, 0.75),
    ("cub200", "ResNet"): (0.94, 0.95, 0.08, 0.08), ("cub200", "SENet"): (0.66, 0.59, 0.41, 0.38),
}
PUBLISHED_MSE = {
    ("imagenet1k", "ResNet"): (5.96, 11.03, 3.51, 4.01), ("imagenet1k", "EfficientNet"): (2.67, 1.23, 2.56, 2.50),
    ("imagenet1k", "PreResNet"): (6.59, 15.44, 3.59, 3.71), ("imagenet1k", "ShuffleNet"): (35.38, 89.58, 19.54, 18.48),
    ("imagenet1k", "VGG"): (0.84, 0.68, 1.89, 1.59), ("imagenet1k", "DLA"): (22.41, 8.49, 14.69, 15.68),
    ("imagenet1k", "HRNet"): (0.47, 0.51, 0.16, 0.16), ("imagenet1k", "DRN-C"): (0.60, 0.66, 0.40, 0.48),
    ("imagenet1k", "SqueezeNext"): (21.94, 21.39, 13.31, 13.23), ("imagenet1k", "ESPNetv2"): (13.77, 14.74, 1.87, 2.53),
    ("imagenet1k", "IGCV3"): (1.94, 87.76, 8.48, 1.09), ("imagenet1k", "ProxylessNAS"): (0.19, 0.26, 0.28, 0.26),
    ("imagenet1k", "SqueezeNet"): (0.11, 0.11, 0.07, 0.08),
    ("cifar10", "ResNet"): (0.31, 0.30, 0.28, 0.28), ("cifar10", "DIA-ResNet"): (0.05, 0.08, 0.28, 0.32),
    ("cifar10", "SENet"): (0.09, 0.09, 0.04, 0.04),
    ("cifar100", "ResNet"): (4.13, 4.50, 3.06, 3.06), ("cifar100", "DIA-ResNet"): (0.36, 1.38, 0.93, 1.02),
    ("cifar100", "SENet"): (0.36, 0.43, 0.26, 0.26), ("cifar100", "WRN"): (0.14, 0.20, 0.07, 0.06),
    ("svhn", "ResNet"): (0.04, 0.04, 0.02, 0.02), ("svhn", "DIA-ResNet"): (0.00, 0.00, 0.02, 0.02),
    ("svhn", "SENet"): (0.00, 0.00, 0.00, 0.00), ("svhn", "WRN"): (0.01, 0.01, 0.01, 0.01),
    ("svhn", "ResNeXt"): (0.00, 0.00, 0.01, 0.01),
    ("cub200", "ResNet"): (0.20, 0.18, 3.19, 3.21), ("cub200", "SENet"): (1.07, 1.29, 1.85, 1.95),
}
UNVERIFIABLE = {("imagenet1k", s) for s in ("ResNet", "EfficientNet", "PreResNet", "ShuffleNet", "VGG", "DLA", "HRNet", "ProxylessNAS")}
VERIFIED = sorted(set(PUBLISHED_R2) - UNVERIFIABLE)
OUTLIERS = ["efficientnet_b0", "efficientnet_b1", "resnext*_cifar100"]


@pytest.fixture(scope="module")
def fits(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ww-trends") / "root"
    ingest_metrics(require(WW_TRENDS / "osmr_df_all.csv"), [WW_TRENDS / "pytorchcv.html", require(METAINFO)], root,
                   source="pytorchcv", analyzer_version="weightwatcher-0.2.7")
    models = read_table(root, "models")
    frame = regress(models, metrics=PAPER_METRICS, target="top1_error", min_models=4, exclude=OUTLIERS)
    return frame.set_index(["dataset", "architecture", "metric"]).sort_index(), models


def _key(dataset: str, series: str) -> tuple[str, str]:
    return dataset, architecture_of(SERIES_MEMBER[series])


@pytest.mark.parametrize("dataset,series", VERIFIED, ids=[f"{d}-{s}" for d, s in VERIFIED])
def test_published_r2_and_mse_reproduce(fits, dataset: str, series: str) -> None:
    table, _ = fits
    for metric, r2, mse in zip(PAPER_METRICS, PUBLISHED_R2[(dataset, series)], PUBLISHED_MSE[(dataset, series)]):
        row = table.loc[(*_key(dataset, series), metric)]
        assert round(row["r2"], 2) == pytest.approx(r2, abs=1e-9), (dataset, series, metric, row["r2"])
        assert round(row["mse"], 2) == pytest.approx(mse, abs=1e-9), (dataset, series, metric, row["mse"])


def test_series_missing_from_the_snapshot_are_not_regressed(fits) -> None:
    table, models = fits
    fitted = set(zip(table.index.get_level_values(0), table.index.get_level_values(1)))
    for series in ("EfficientNet", "HRNet", "ProxylessNAS", "PreResNet"):
        key = _key("imagenet1k", series)
        members = models[(models.dataset == key[0]) & (models.architecture == key[1])]
        assert members["top1_error"].notna().sum() < 4 <= len(members), series
        assert key not in fitted


@pytest.mark.parametrize("series,ours,paper", [("ResNet", 15, 22), ("VGG", 8, 12), ("ShuffleNet", 10, 12), ("DLA", 10, 10)])
def test_partial_imagenet_series_differ_for_known_reasons(fits, series: str, ours: int, paper: int) -> None:
    table, _ = fits
    rows = table.loc[_key("imagenet1k", series)]
    assert set(rows["n"]) == {ours}  # the paper's Table of architectures has `paper` models here
    r2 = rows.loc[list(PAPER_METRICS), "r2"].round(2).to_numpy()
    assert not np.allclose(r2, PUBLISHED_R2[("imagenet1k", series)], atol=0.005)
    if ours == paper:  # DLA: same models, slightly different errors
        assert np.allclose(r2, PUBLISHED_R2[("imagenet1k", series)], atol=0.025)


def test_summary_over_verified_series_matches_the_published_values(fits) -> None:
    table, _ = fits
    keep = [(*_key(d, s), m) for d, s in VERIFIED for m in PAPER_METRICS]
    ours = summary_table(table.loc[keep].reset_index()).set_index("metric")
    for i, metric in enumerate(PAPER_METRICS):
        published_r2 = [PUBLISHED_R2[k][i] for k in VERIFIED]
        published_mse = [PUBLISHED_MSE[k][i] for k in VERIFIED]
        assert ours.loc[metric, "series"] == len(VERIFIED) == 19
        assert ours.loc[metric, "r2_mean"] == pytest.approx(np.mean(published_r2), abs=0.005)
        assert ours.loc[metric, "r2_std"] == pytest.approx(np.std(published_r2, ddof=1), abs=0.005)
        assert ours.loc[metric, "mse_mean"] == pytest.approx(np.mean(published_mse), abs=0.005)
        assert ours.loc[metric, "mse_std"] == pytest.approx(np.std(published_mse, ddof=1), abs=0.005)
    # the paper's qualitative conclusion on these series: alpha-hat and the alpha-norm beat the
    # spectral norm on mean R² and on mean MSE
    assert min(ours.loc["alpha_weighted", "r2_mean"], ours.loc["log_alpha_norm", "r2_mean"]) > ours.loc["ln_mean_lambda_max", "r2_mean"]
    assert max(ours.loc["alpha_weighted", "mse_mean"], ours.loc["log_alpha_norm", "mse_mean"]) < ours.loc["ln_mean_lambda_max", "mse_mean"]


def test_log10_mean_of_logs_is_not_the_papers_spectral_metric(fits) -> None:
    """The paper's ⟨log‖·‖∞⟩ column is ln(average spectral norm); WW 0.2.7's own ``logspectralnorm``
    (average of log10 λmax, our ``log_spectral_norm``) gives other R² values."""
    table, models = fits
    other = regress(models, metrics=["log_spectral_norm"], target="top1_error", exclude=OUTLIERS)
    other = other.set_index(["dataset", "architecture"])
    present = [k for k in VERIFIED if _key(*k) in other.index]  # igcv3_wd2 has logspectralnorm = -inf: 3 left
    assert len(present) == len(VERIFIED) - 1
    differs = [k for k in present if round(other.loc[_key(*k), "r2"], 2) != PUBLISHED_R2[k][1]]
    assert len(differs) >= 10
