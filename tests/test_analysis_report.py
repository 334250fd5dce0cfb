"""Regress and report on the real akamaster ResNet-20/32/44/56 CIFAR-10 series (paper preset)."""
from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from _analysis_util import build_akamaster_root
from ww_ray.analysis import flags
from ww_ray.analysis.regression import DEFAULT_METRICS
from ww_ray.analysis.layer_esd import layer_spectrum
from ww_ray.analysis.report import (ESD_MIN_EVALS, build_report, choose_esd_layer, choose_models, display_frame,
                                    relative_depth, series_columns)
from ww_ray.cli import main
from ww_ray.store import commit_model, read_table, write_manifest

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


FLOW = "correlation_flow_cifar10_akamaster-cifar-resnet-optionA_akamaster-resnet-cifar10.png"
SERIES = "cifar10_akamaster-cifar-resnet-optionA_akamaster-resnet-cifar10"
RAW_COLUMNS = set(DEFAULT_METRICS) | {"layer_index", "top1_error", "top5_error", "lambda_max", "num_evals"}


def _axis_labels(description: str) -> tuple[str, str]:
    parts = dict(part.split(": ", 1) for part in description.split("; "))
    return parts["x"], parts["y"]


def test_report_draws_every_figure_and_links_them(root: Path, tmp_path: Path) -> None:
    report = build_report(root, tmp_path / "report")
    names = sorted(p.name for p in report.images)
    assert [n for n in names if n.startswith("metric_vs_error_")] == sorted(
        f"metric_vs_error_cifar10_{m}.png" for m in DEFAULT_METRICS)
    assert FLOW in names
    assert {f"hist_alpha_{SERIES}.png", f"hist_log_spectral_norm_{SERIES}.png"} <= set(names)
    esd = [p for p in report.images if p.name.startswith("esd_")]
    assert len(esd) == 1 and report.notes == []
    for path in report.images:
        assert path.is_file() and path.stat().st_size > 5000
    text = {p.name: _png_text(p) for p in report.images}
    weighted = text["metric_vs_error_cifar10_alpha_weighted.png"]
    assert weighted["Title"] == "cifar10: reported top-1 error (%) vs weighted alpha α̂ = α·log10 λmax"
    assert _axis_labels(weighted["Description"]) == ("weighted alpha α̂ = α·log10 λmax", "reported top-1 error (%)")
    # the series is keyed by its source too, and every point is named
    assert weighted["Legend"] == "akamaster-cifar-resnet-optionA [akamaster-resnet-cifar10] (n=4, R²=0.98)"
    # axis labels are human names, never raw column names
    for name, chunks in text.items():
        x, y = _axis_labels(chunks["Description"])
        assert x not in RAW_COLUMNS and y not in RAW_COLUMNS and "_" not in x + y, (name, x, y)
    flow = text[FLOW]
    assert flow["Title"].startswith("Correlation flow: layer α vs relative depth")
    assert _axis_labels(flow["Description"])[0].startswith("relative depth")
    assert text[f"hist_alpha_{SERIES}.png"]["Description"].startswith("x: power-law exponent α of the layer; y: density")
    esd_text = text[esd[0].name]
    assert esd_text["Title"].startswith("ESD of resnet20-12fca82f / layer3.0.conv2, its 9 slices pooled")
    assert "xscale: log; yscale: log" in esd_text["Description"]
    page = report.html_path.read_text()
    linked = set(re.findall(r'<img src="([^"]+)"', page))
    assert linked == set(names) and all((report.html_path.parent / n).is_file() for n in linked)
    assert "Under-trained layers" in page and "Scale collapse" in page and "Regression summary" in page
    assert "max-width:520px" not in page  # figures are shown at their own size, legends readable


def test_correlation_flow_draws_every_model_against_relative_depth(root: Path) -> None:
    layers = read_table(root, "layers")
    groups = choose_models(layers)
    models = sorted(read_table(root, "models")["model_id"])
    assert list(groups.values()) == [models]  # all four ResNets, shallowest to deepest
    depth = {m: relative_depth(layers[layers["model_id"] == m]) for m in models}
    for m, values in depth.items():
        assert values.min() == 0.0 and values.max() == 1.0  # every listed layer counts, skipped ones too
    resnet20 = layers[layers["model_id"] == "resnet20-12fca82f"]
    ok_depth = depth["resnet20-12fca82f"][resnet20["status"] == "ok"]
    assert ok_depth.min() == pytest.approx(14 / 19) and ok_depth.max() == pytest.approx(18 / 19)


def test_every_chosen_model_is_in_the_flow_legend(root: Path, tmp_path: Path) -> None:
    report = build_report(root, tmp_path / "report")
    legend = _png_text(next(p for p in report.images if p.name == FLOW))["Legend"].splitlines()
    assert legend == ["resnet20-12fca82f (5 layers)", "resnet32-d509ac18 (9 layers)",
                      "resnet44-014dd654 (13 layers)", "resnet56-4bfd9763 (17 layers)"]
    esd_legend = _png_text(next(p for p in report.images if p.name.startswith("esd_")))["Legend"]
    drawn = int(re.search(r"ESD: n = (\d+) eigenvalues", esd_legend).group(1))
    assert drawn >= ESD_MIN_EVALS and re.search(r"power-law fit α = [\d.]+ ± [\d.]+", esd_legend)
    assert "xmin = " in esd_legend and "MP bulk edge λ₊ = " in esd_legend


def test_esd_layer_choice_has_enough_eigenvalues(root: Path) -> None:
    layers = read_table(root, "layers")
    chosen = choose_esd_layer(layers, ["resnet20-12fca82f"])
    # every paper-preset matrix of ResNet-20 has 64 eigenvalues: a 3x3 conv layer's 9 slices are pooled
    assert chosen["pool"] and chosen["num_evals_total"] == 9 * 64 >= ESD_MIN_EVALS
    assert chosen["layer_name"] == "layer3.0.conv2"
    uri = read_table(root, "models").set_index("model_id").loc["resnet20-12fca82f", "uri"]
    spectrum = layer_spectrum(uri, chosen["layer_name"], pool_slices=True)
    assert spectrum.evals.size == 576 and spectrum.num_matrices == 9
    single = layer_spectrum(uri, "layer3.0.conv2", 3)
    stored = layers[(layers["model_id"] == "resnet20-12fca82f") & (layers["layer_name"] == "layer3.0.conv2")
                    & (layers["slice_id"] == 3)]["alpha"].iloc[0]
    assert single.evals.size == 64 and single.fit.alpha == pytest.approx(stored, rel=1e-9)
    assert set(np.round(single.evals, 12)) <= set(np.round(spectrum.evals, 12))
    # a single matrix big enough wins over pooling; with none big enough, the largest pool is taken
    frame = pd.DataFrame({"model_id": "m", "status": "ok", "layer_name": ["a", "a", "b", "c"], "layer_index": [0, 0, 1, 2],
                          "slice_id": [0, 1, None, None], "num_evals": [150, 150, 250, 40], "alpha": 2.0})
    picked = choose_esd_layer(frame, ["m"])
    assert (picked["layer_name"], picked["pool"], picked["num_evals_total"]) == ("b", False, 250)
    assert choose_esd_layer(frame, ["m"], min_evals=1000)["layer_name"] == "a"
    assert choose_esd_layer(frame[frame["layer_name"] != "b"], ["m"])["num_evals_total"] == 300


def test_report_is_written_under_the_root_by_default(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(copy)]) == 0
    assert (copy / "report" / "index.html").is_file() and not (tmp_path / "ww-report").exists()
    assert f"wrote {copy / 'report' / 'index.html'} (10 figures)" in capsys.readouterr().out
    assert build_report(copy).html_path == copy / "report" / "index.html"
    # the report folder is not a table: the dataset still reads the same
    assert len(read_table(copy, "models")) == 4


def test_report_lists_models_runs_and_failures(root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    run_id = "20240303T000000.000000Z-failed00"
    error = "cannot read /models/broken.th: invalid load key 0x78"
    commit_model(copy, [], {"source": "akamaster-resnet-cifar10", "model_id": "broken", "revision": "", "run_id": run_id,
                            "architecture": "akamaster-cifar-resnet-optionA", "dataset": "cifar10", "status": "failed",
                            "error": error})
    write_manifest(copy, run_id, {"kind": "sweep", "status": "completed", "counts": {"planned": 1, "failed": 1},
                                  "failures": [{"model_id": "broken", "status": "failed", "error": error}],
                                  "zoo_errors": [], "unfinished": []})
    page = build_report(copy, tmp_path / "report").html_path.read_text()
    inputs = page[page.index("What went in"):page.index("Reported error vs metric")]
    assert f"5 models: 4 ok, 1 failed; {len(read_table(copy, 'runs'))} runs." in inputs
    for model_id in ["broken", "resnet20-12fca82f", "resnet32-d509ac18", "resnet44-014dd654", "resnet56-4bfd9763"]:
        assert f"<td>{model_id}</td>" in inputs
    assert html.escape(error) in inputs and inputs.index("broken") < inputs.index("resnet20-12fca82f")
    assert "20240101T000000.000000Z-akamastr" in inputs and run_id in inputs and "failed 1, planned 1" in inputs
    recorded = inputs[inputs.index("Failures recorded by the runs"):]
    assert re.search(rf"<td>{run_id}</td>\s*<td>failures</td>\s*<td>broken</td>\s*<td>failed</td>\s*<td>{error}</td>",
                     recorded)
    # a 20-layer ResNet: 45 matrices analysed of 172
    assert re.search(r"<td>resnet20-12fca82f</td>.*?<td>45</td>\s*<td>172</td>", inputs, re.S)


def test_tables_print_integers_as_integers_and_missing_as_blank(root: Path, tmp_path: Path) -> None:
    layers = read_table(root, "layers")
    shown = display_frame(flags.under_trained_layers(layers))
    assert len(shown) > 0 and all(re.fullmatch(r"\d", v) for v in shown["slice_id"])
    frame = pd.DataFrame({"slice_id": [0.0, None], "N": [64.0, 10.0], "alpha": [2.123456, float("nan")],
                          "error": [None, "boom"], "status": ["ok", float("nan")]})
    assert display_frame(frame).to_dict("list") == {"slice_id": ["0", ""], "N": ["64", "10"], "alpha": ["2.123", ""],
                                                    "error": ["", "boom"], "status": ["ok", ""]}
    page = build_report(root, tmp_path / "report").html_path.read_text()
    flags_html = page[page.index("<h2>Flags</h2>"):]
    cells = re.findall(r"<td>([^<]*)</td>", page)
    assert cells and not {"NaN", "nan", "None", "<NA>"} & set(cells)
    assert "<td>0.0</td>" not in flags_html and re.search(r"<td>layer3\.\d\.conv\d</td>\s*<td>\d</td>", flags_html)


def test_report_gives_each_source_its_own_series(root: Path, tmp_path: Path) -> None:
    two = tmp_path / "two"
    models = read_table(root, "models").set_index("model_id")
    for model_id, group in read_table(root, "layers").groupby("model_id"):
        for source in ("akamaster-resnet-cifar10", "retrained"):
            row = models.loc[model_id].to_dict()
            row.update(model_id=model_id, source=source, run_id="20240404T000000.000000Z-twosrc00",
                       top1_error=row["top1_error"] + (1.0 if source == "retrained" else 0.0))
            commit_model(two, group.assign(source=source, run_id=row["run_id"]).drop(columns=["commit_id"]), row)
    report = build_report(two, tmp_path / "report")
    assert any("computed for this report" in n for n in report.notes)
    legend = _png_text(next(p for p in report.images if p.name == "metric_vs_error_cifar10_alpha_weighted.png"))["Legend"]
    assert legend.splitlines() == ["akamaster-cifar-resnet-optionA [akamaster-resnet-cifar10] (n=4, R²=0.98)",
                                   "akamaster-cifar-resnet-optionA [retrained] (n=4, R²=0.98)"]
    assert series_columns(read_table(two, "models")) == ["source", "dataset", "architecture"]
    assert series_columns(read_table(two, "models").drop(columns=["source"])) == ["dataset", "architecture"]
    assert len(choose_models(read_table(two, "layers"))) == 2


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
    flow = _png_text(next(p for p in report.images if p.name.startswith("correlation_flow_selected")))
    assert flow["Legend"].splitlines() == ["resnet32-d509ac18 (9 layers)", "resnet44-014dd654 (13 layers)"]
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


def test_series_labels_of_models_without_a_dataset_name_no_nan(root: Path) -> None:
    """A local zoo of Hub-style folders has no dataset: the label names the architecture only."""
    layers = read_table(root, "layers").assign(dataset=None)
    labels = list(choose_models(layers))
    assert labels and all("nan" not in label and "None" not in label for label in labels)
    assert labels[0].startswith(str(layers["architecture"].dropna().iloc[0]))
