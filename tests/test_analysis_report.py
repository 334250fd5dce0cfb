"""Regress and report on the real akamaster ResNet-20/32/44/56 CIFAR-10 series (paper preset)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _analysis_util import build_akamaster_root
from ww_ray.analysis import flags
from ww_ray.analysis.regression import DEFAULT_METRICS
from ww_ray.analysis.report import build_report
from ww_ray.cli import main
from ww_ray.store import commit_model, read_table

NORM_METRICS = ("log_norm", "log_spectral_norm", "ln_mean_lambda_max", "alpha_weighted", "log_alpha_norm")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_akamaster_root(tmp_path_factory.mktemp("aka") / "root")


def _png_text(path: Path) -> dict:
    with Image.open(path) as image:
        return dict(image.text)


def test_regress_gives_r2_and_slope_sign_per_metric(root: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["regress", str(root)]) == 0
    printed = capsys.readouterr().out
    stored = read_table(root, "regressions").set_index("metric")
    assert set(stored.index) == set(DEFAULT_METRICS) and set(stored["n"]) == {4}
    models = read_table(root, "models").sort_values("top1_error")
    assert models["top1_error"].tolist() == [6.61, 6.90, 7.37, 8.27]
    for metric in DEFAULT_METRICS:
        x = np.log(models["lambda_max"]) if metric == "ln_mean_lambda_max" else models[metric]
        slope, intercept = np.polyfit(x, models["top1_error"], 1)
        r2 = np.corrcoef(x, models["top1_error"])[0, 1] ** 2
        assert stored.loc[metric, "slope"] == pytest.approx(slope, rel=1e-9)
        assert stored.loc[metric, "r2"] == pytest.approx(r2, rel=1e-9)
        assert re.search(rf"{metric}\s+top1_error\s+4\s", printed)
    # deeper ResNets have lower error and smaller norm metrics: every norm metric predicts the trend
    assert (stored.loc[list(NORM_METRICS), "slope"] > 0).all()
    assert (stored.loc[list(NORM_METRICS), "r2"] > 0.9).all()
    assert (stored.loc[list(NORM_METRICS), "kendall_tau"] == 1.0).all()


def test_report_draws_every_figure_and_links_them(root: Path, tmp_path: Path) -> None:
    report = build_report(root, tmp_path / "report")
    names = sorted(p.name for p in report.images)
    assert [n for n in names if n.startswith("metric_vs_error_")] == sorted(
        f"metric_vs_error_cifar10_{m}.png" for m in DEFAULT_METRICS)
    assert "correlation_flow_cifar10_akamaster-cifar-resnet-optionA.png" in names
    assert {"hist_alpha_cifar10_akamaster-cifar-resnet-optionA.png",
            "hist_log_spectral_norm_cifar10_akamaster-cifar-resnet-optionA.png"} <= set(names)
    esd = [p for p in report.images if p.name.startswith("esd_")]
    assert len(esd) == 1 and report.notes == []  # the ESD recomputed from the weights matches the stored alpha
    for path in report.images:
        assert path.is_file() and path.stat().st_size > 5000
    text = {p.name: _png_text(p) for p in report.images}
    assert text["metric_vs_error_cifar10_alpha_weighted.png"]["Title"] == "cifar10: top1_error vs alpha_weighted"
    assert text["metric_vs_error_cifar10_alpha_weighted.png"]["Description"].startswith(
        "x: alpha_weighted; y: reported top1 error (%)")
    flow = text["correlation_flow_cifar10_akamaster-cifar-resnet-optionA.png"]
    assert flow["Title"].startswith("Correlation flow: alpha vs layer_index") and flow["Description"].startswith("x: layer_index; y: alpha")
    assert text["hist_alpha_cifar10_akamaster-cifar-resnet-optionA.png"]["Description"].startswith("x: alpha; y: density")
    esd_text = text[esd[0].name]
    assert esd_text["Title"].startswith("ESD of resnet20-12fca82f / ")
    assert "xscale: log; yscale: log" in esd_text["Description"]
    page = report.html_path.read_text()
    linked = set(re.findall(r'<img src="([^"]+)"', page))
    assert linked == set(names) and all((report.html_path.parent / n).is_file() for n in linked)
    assert "Under-trained layers" in page and "Scale collapse" in page and "Regression summary" in page


def test_report_notes_when_weights_are_unreachable(root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "root"
    layers = read_table(root, "layers")
    for model_id, group in layers.groupby("model_id"):
        row = read_table(root, "models").set_index("model_id").loc[model_id].to_dict()
        row.update(model_id=model_id, uri=str(tmp_path / "gone.th"), run_id="20240202T000000.000000Z-moved000")
        commit_model(copy, group.assign(run_id=row["run_id"]), row)
    report = build_report(copy, tmp_path / "report", models=["resnet32-d509ac18", "resnet44-014dd654"])
    assert not any(p.name.startswith("esd_") for p in report.images)
    assert any("ESD plot of resnet32-d509ac18" in n and "skipped" in n for n in report.notes)
    assert "skipped" in report.html_path.read_text()
    assert any("selected_models" in p.name for p in report.images)
    assert main(["report", str(copy), "--out", str(tmp_path / "r2"), "--models", "nope"]) == 2


def test_flags() -> None:
    layers = pd.DataFrame({"model_id": ["a", "a", "b"], "architecture": "X", "dataset": "d", "layer_index": [0, 1, 0],
                           "layer_name": ["l0", "l1", "l0"], "slice_id": None, "N": 64, "M": 64,
                           "alpha": [6.5, 3.0, 8.0], "status": ["ok", "ok", "ok"]})
    under = flags.under_trained_layers(layers)
    assert under["model_id"].tolist() == ["b", "a"] and under["alpha"].tolist() == [8.0, 6.5]
    models = pd.DataFrame({"model_id": ["m1", "m2", "m3", "m4", "solo"], "dataset": ["d"] * 4 + ["e"],
                           "architecture": ["X"] * 4 + ["Y"], "status": "ok",
                           "log_spectral_norm": [1.0, 1.1, 0.9, -0.5, -9.0]})
    collapsed = flags.scale_collapse(models)
    assert collapsed["model_id"].tolist() == ["m4"] and collapsed["gap_decades"].iloc[0] == pytest.approx(1.5)
