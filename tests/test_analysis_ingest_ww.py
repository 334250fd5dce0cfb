"""Ingest of real WeightWatcher get_details()/get_summary() files: every layout, folders, safety, series.

The files under tests/data/ww-<version>/ were written by weightwatcher 0.7.7, 0.6.4 and 0.2.7 themselves
(tests/data/make_ww_fixtures.py says how); the oracle test runs 0.7.7 here on real weights.
"""
from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ww_ray.analysis.ingest import ingest
from ww_ray.analysis.regression import MixedAnalyzerWarning, regress
from ww_ray.analysis.report import series_label
from ww_ray.analysis.ww_files import read_summary, read_summary_text
from ww_ray.analysis.ww_layouts import log_norm_meaning
from ww_ray.cli import main
from ww_ray.store import read_manifests, read_table

DATA = Path(__file__).parent / "data"
# details column -> layers column, as each release names it
NAMES_07 = {"layer_id": "layer_index", "longname": "layer_name", "N": "N", "M": "M", "rf": "rf", "Q": "Q",
            "alpha": "alpha", "alpha_weighted": "alpha_weighted", "log_alpha_norm": "log_alpha_norm",
            "log_norm": "log_norm", "norm": "norm", "log_spectral_norm": "log_spectral_norm",
            "lambda_max": "lambda_max", "stable_rank": "stable_rank", "entropy": "entropy", "D": "D",
            "sigma": "sigma", "xmin": "xmin", "xmax": "xmax", "num_pl_spikes": "num_pl_spikes",
            "matrix_rank": "matrix_rank", "num_evals": "num_evals"}
NAMES_02 = {"layer_id": "layer_index", "N": "N", "M": "M", "norm": "norm", "lognorm": "log_norm",
            "alpha": "alpha", "alpha_weighted": "alpha_weighted", "spectralnorm": "lambda_max",
            "logspectralnorm": "log_spectral_norm", "logpnorm": "log_alpha_norm", "softrank": "stable_rank",
            "sigma_mp": "sigma_mp", "numofSpikes": "num_spikes", "softrank_mp": "mp_softrank"}
SUMMARY_02 = {"lognorm": "log_norm", "alpha": "alpha", "alpha_weighted": "alpha_weighted",
              "spectralnorm": "lambda_max", "logspectralnorm": "log_spectral_norm", "logpnorm": "log_alpha_norm",
              "softrank": "stable_rank", "softrank_mp": "mp_softrank"}


def _equal_columns(ingested: pd.DataFrame, written: pd.DataFrame, names: dict[str, str]) -> None:
    for theirs, ours in names.items():
        if theirs not in written:
            continue
        a, b = ingested[ours], written[theirs]
        if ours == "layer_name":
            assert a.tolist() == b.astype(str).tolist()
        else:
            np.testing.assert_array_equal(pd.to_numeric(a).astype(float).to_numpy(),
                                          pd.to_numeric(b).astype(float).to_numpy(), err_msg=f"{theirs} -> {ours}")


def _summary_file(folder: Path, name: str) -> Path:
    (path,) = [p for p in (folder / f"{name}.txt", folder / f"{name}.json") if p.is_file()]
    return path


def _layers_of(root: Path, model_id: str) -> pd.DataFrame:
    layers = read_table(root, "layers")
    return layers[layers["model_id"] == model_id].sort_values(["layer_index", "slice_id"], na_position="first").reset_index(drop=True)


def _models(root: Path) -> pd.DataFrame:
    return read_table(root, "models").set_index("model_id")


@pytest.mark.parametrize("version", ["0.7.7", "0.6.4"])
def test_later_layouts_rows_equal_the_files_and_models_the_summaries(tmp_path: Path, version: str) -> None:
    folder = DATA / f"ww-{version}"
    result = ingest([folder], [], tmp_path)
    expected_models = {"mlp", "cnn"} | ({"cnn_slices"} if version == "0.7.7" else set())
    assert result.models == len(expected_models)
    models = _models(tmp_path)
    assert set(models.index) == expected_models and len(models) == len(expected_models)
    family = "weightwatcher-0.7.x" if version == "0.7.7" else "weightwatcher-0.4-0.6"
    assert set(models["analyzer_version"]) == {family} and set(models["source"]) == {f"ww-{version}"}
    for name in ("mlp", "cnn"):
        written = pd.read_csv(folder / f"{name}.csv")
        rows = _layers_of(tmp_path, name)
        assert len(rows) == len(written)  # one row per matrix, nothing dropped or doubled
        _equal_columns(rows, written, NAMES_07)
        np.testing.assert_array_equal(rows["lambda_max"], written["spectral_norm"])
        assert rows["status"].eq("ok").all() and set(rows["analyzer_version"]) == {family}
        assert set(rows["layer_type"]) <= {"linear", "conv2d"}
        assert rows.loc[rows["layer_type"] == "conv2d", "conv_method"].eq("pooled").all()
        summary = read_summary(_summary_file(folder, name))
        model = models.loc[name]
        for key, value in summary.items():  # the model row takes the tool's own averages
            assert model[key] == value, key
        # what the summary lacks is averaged from the ingested rows
        assert model["lambda_max"] == pytest.approx(rows["lambda_max"].mean(), rel=1e-12)
        assert model["entropy"] == pytest.approx(rows["entropy"].mean(), rel=1e-12)
        assert model["num_layers"] == len(written) and model["status"] == "ok"
    if version == "0.7.7":
        assert rows.loc[1, "warning"] == "under-trained"  # the cnn's second conv, as 0.7.7 flagged it
        slices = _layers_of(tmp_path, "cnn_slices")
        conv = slices[slices["layer_type"] == "conv2d"]
        assert conv.groupby("layer_index")["slice_id"].apply(sorted).map(list).tolist() == [list(range(9))] * 2
        assert conv["conv_method"].eq("slices").all()
        # no summary beside it: every average is the rows' (compound = per-layer means first)
        ok = slices[slices["status"] == "ok"]
        assert models.loc["cnn_slices", "alpha"] == pytest.approx(ok["alpha"].mean(), rel=1e-12)
        assert models.loc["cnn_slices", "alpha_compound"] == pytest.approx(
            ok.groupby("layer_index")["alpha"].mean().mean(), rel=1e-12)
    (manifest,) = read_manifests(tmp_path)
    assert manifest["counts"] == {"models": result.models, "layers": result.layers, "with_error": 0,
                                  "without_error": result.models, "without_architecture": 0}
    assert {"has_esd", "sv_max"} <= set(manifest["unmapped_columns"])  # listed, not silently dropped
    assert manifest["averages_from"][f"ww-{version}/mlp"]["summary"] == list(read_summary(_summary_file(folder, "mlp")))


def test_ww027_slices_not_layer_rows_and_values_as_written(tmp_path: Path) -> None:
    folder = DATA / "ww-0.2.7"
    ingest([folder], [], tmp_path)
    written = pd.read_csv(folder / "cnn.csv")
    slices, layer_level = written[written["level"] == "LEVEL.SLICE"], written[written["level"] == "LEVEL.LAYER"]
    assert (len(slices), len(layer_level)) == (28, 4)
    # the LEVEL.LAYER rows repeat their slices (their mean): ingesting both would double-count
    conv3 = written[written["layer_id"] == 5]
    assert conv3.loc[conv3["level"] == "LEVEL.LAYER", "spectralnorm"].item() == pytest.approx(
        conv3.loc[conv3["level"] == "LEVEL.SLICE", "spectralnorm"].mean(), rel=1e-12)
    rows = _layers_of(tmp_path, "cnn")
    assert len(rows) == 28
    _equal_columns(rows, slices.reset_index(drop=True), NAMES_02)
    conv = rows[rows["layer_type"] == "conv2d"]
    assert conv.groupby("layer_index")["slice_id"].apply(list).tolist() == [list(range(9))] * 3
    assert conv["conv_method"].eq("slices").all()
    dense = rows[rows["layer_type"] == "linear"]
    assert len(dense) == 1 and dense["slice_id"].isna().all() and dense["conv_method"].isna().all()
    models = _models(tmp_path)
    assert set(models["analyzer_version"]) == {"weightwatcher-0.2.x"}
    for name in ("mlp", "cnn"):
        summary = read_summary(folder / f"{name}.txt")
        for theirs, ours in SUMMARY_02.items():
            assert models.loc[name, ours] == summary[theirs], theirs
            assert models.loc[name, f"{ours}_compound"] == summary[f"{theirs}_compound"], theirs
    # values kept as 0.2.7 wrote them: its norm is ||W'||_F with W' = W·sqrt(1/2) for a dense layer,
    # 0.7.7's norm is ||W||_F^2 — the same seeded first layer, two conventions
    mlp_02 = _layers_of(tmp_path, "mlp").iloc[0]
    mlp_07 = pd.read_csv(DATA / "ww-0.7.7" / "mlp.csv").iloc[0]
    assert mlp_02["norm"] ** 2 * 2 == pytest.approx(mlp_07["norm"], rel=1e-5)
    assert mlp_02["log_norm"] == pytest.approx(np.log10(mlp_02["norm"]), rel=1e-12)
    assert log_norm_meaning("weightwatcher-0.2.x") != log_norm_meaning("weightwatcher-0.7.x")


def test_ww027_matrices_it_did_not_analyse_and_numbered_layer_types(tmp_path: Path) -> None:
    text = (DATA / "ww-0.2.7" / "mlp.csv").read_text()
    # Python >= 3.11 writes str(LAYER_TYPE.DENSE) as "1"; and a layer WeightWatcher skipped has a LAYER row only
    text = text.replace("LAYER_TYPE.DENSE", "1").replace("DENSE", "1")
    text += "9,1,0,0,,0,LEVEL.LAYER,Layer level" + "," * 18 + "\n"
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "mlp.csv").write_text(text)
    ingest([tmp_path / "in"], [], tmp_path / "root")
    rows = _layers_of(tmp_path / "root", "mlp")
    assert rows["layer_type"].tolist() == ["linear"] * 4
    assert rows["status"].tolist() == ["ok", "ok", "ok", "skipped"] and "no metric value" in rows["error"].iloc[3]
    third = rows.iloc[2]  # M = 10 < min_size 50: 0.2.7 wrote its spectral norm only
    assert pd.isna(third["alpha"]) and third["lambda_max"] > 0
    model = _models(tmp_path / "root").loc["mlp"]
    assert model["num_layers"] == 3 and model["source"] == "in"


def test_summary_beside_details_wins_and_rows_fill_in(tmp_path: Path) -> None:
    written = pd.read_csv(DATA / "ww-0.7.7" / "mlp.csv")
    summary = read_summary(DATA / "ww-0.7.7" / "mlp.json")
    for folder, with_summary in (("with", True), ("without", False)):
        (tmp_path / folder).mkdir()
        written.iloc[:2].to_csv(tmp_path / folder / "mlp.csv")  # the CSV lacks the last layer
        if with_summary:
            shutil.copy(DATA / "ww-0.7.7" / "mlp.json", tmp_path / folder / "mlp.json")
    ingest([tmp_path / "with", tmp_path / "without"], [], tmp_path / "root")
    models = read_table(tmp_path / "root", "models").set_index("source")
    assert models.loc["with", "alpha"] == summary["alpha"] == pytest.approx(written["alpha"].mean())
    assert models.loc["without", "alpha"] == pytest.approx(written["alpha"].iloc[:2].mean(), rel=1e-12)
    assert models.loc["with", "alpha"] != models.loc["without", "alpha"]
    assert len(read_table(tmp_path / "root", "layers")) == 4


def test_summary_text_is_never_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "ran"
    evil = f"{{'alpha': __import__('os').system('touch {marker}')}}"
    assert read_summary_text("{'alpha': np.float64(2.5), 'D': float('nan'), 'k': -1}", "ok.txt")["alpha"] == 2.5
    for text in (evil, f"__import__('os').system('touch {marker}')", "{'a': (lambda: 1)()}", "{'a': x.y}",
                 "{'a': np.float64(1, 2)}", "{'a': np.float64(x)}", "[1, 2]", "{1: 2.0}"):
        with pytest.raises(ValueError, match=r"refused|summary dict|dict with string keys"):
            read_summary_text(text, "bad.txt")
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(DATA / "ww-0.7.7" / "mlp.csv", folder / "mlp.csv")
    (folder / "mlp.txt").write_text(evil)
    with pytest.raises(ValueError, match=r"mlp\.txt: refused: .*__import__"):
        ingest([folder], [], tmp_path / "root")
    assert main(["ingest", str(folder), "--out", str(tmp_path / "root")]) == 2
    assert "refused" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "root" / "models").exists()  # nothing ran, nothing written


def test_bad_inputs_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="0.2 layout .* --analyzer-version 'weightwatcher-0.7.7'"):
        ingest([DATA / "ww-0.2.7"], [], tmp_path / "root", analyzer_version="weightwatcher-0.7.7")
    with pytest.raises(ValueError, match="comes from both"):
        ingest([DATA / "ww-0.7.7", DATA / "ww-0.6.4"], [], tmp_path / "root", source="same")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no model name column"):
        ingest([other], [], tmp_path / "root")
    with pytest.raises(FileNotFoundError):
        ingest([tmp_path / "missing"], [], tmp_path / "root")
    assert not (tmp_path / "root").exists()
    # a release with the same convention is recorded as given
    result = ingest([DATA / "ww-0.6.4"], [], tmp_path / "ok", analyzer_version="weightwatcher-0.6.4")
    assert result.analyzer_versions == ["weightwatcher-0.6.4"]
    assert set(read_table(tmp_path / "ok", "layers")["analyzer_version"]) == {"weightwatcher-0.6.4"}


def test_one_models_row_per_model_across_runs(tmp_path: Path) -> None:
    for _ in range(2):
        ingest([DATA / "ww-0.2.7", DATA / "ww-0.7.7" / "cnn.csv"], [], tmp_path)
    models = read_table(tmp_path, "models")
    assert sorted(models["model_id"]) == ["cnn", "cnn", "mlp"] and len(models) == 3
    assert len(read_table(tmp_path, "models", latest=False)) == 6
    layers = read_table(tmp_path, "layers")
    for _, model in models.iterrows():  # every layer row belongs to its model's single row
        mine = layers[(layers["source"] == model["source"]) & (layers["model_id"] == model["model_id"])]
        assert set(mine["commit_id"]) == {model["commit_id"]} and set(mine["run_id"]) == {model["run_id"]}
    assert len(layers) == 28 + 3 + 4


def _series(folder: Path, ids: list[str], log_norms: list[float], version: str = "0.7.7") -> None:
    """Real details files of one release under series names, with a summary of the given log norms."""
    folder.mkdir(parents=True)
    template = pd.read_csv(DATA / f"ww-{version}" / "mlp.csv", index_col=0 if version != "0.2.7" else None)
    key = "lognorm" if version == "0.2.7" else "log_norm"
    for model_id, value in zip(ids, log_norms):
        template.to_csv(folder / f"{model_id}.csv", index=version != "0.2.7")
        (folder / f"{model_id}.json").write_text(f'{{"{key}": {value}, "alpha": {value / 2}}}')


def test_two_sources_are_two_series(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ids = ["resnet20_cifar10", "resnet56_cifar10", "resnet110_cifar10", "resnet164bn_cifar10"]
    errors = [8.0, 6.5, 6.0, 5.0]
    _series(tmp_path / "pytorchcv", ids, [1.0, 1.2, 1.3, 1.5])   # error falls as log_norm grows
    _series(tmp_path / "torchvision", ids, [2.0, 1.8, 1.7, 1.5])  # and rises here
    reported = tmp_path / "reported.csv"
    reported.write_text("model_id,top1_error\n" + "".join(f"{m},{e}\n" for m, e in zip(ids, errors)))
    root = tmp_path / "root"
    assert main(["ingest", str(tmp_path / "pytorchcv"), str(tmp_path / "torchvision"), "--reported", str(reported),
                 "--out", str(root)]) == 0
    assert "ingested 8 models and 24 layer rows" in capsys.readouterr().out
    models = read_table(root, "models")
    assert set(models["architecture"]) == {"ResNet"} and set(models["dataset"]) == {"cifar10"}
    fits = regress(models, metrics=["log_norm"]).set_index("source")
    assert sorted(fits.index) == ["pytorchcv", "torchvision"] and fits["n"].tolist() == [4, 4]
    assert fits.loc["pytorchcv", "slope"] < 0 < fits.loc["torchvision", "slope"]
    assert fits.loc["pytorchcv", "kendall_tau"] == -1.0 and fits.loc["torchvision", "kendall_tau"] == 1.0
    labels = {series_label(row) for row in fits.reset_index().to_dict("records")}
    assert labels == {"ResNet [pytorchcv]", "ResNet [torchvision]"}  # own colour and label each in the report
    merged = regress(models, metrics=["log_norm"], by=["dataset", "architecture"])
    assert merged["n"].tolist() == [8]
    assert main(["regress", str(root), "--metrics", "log_norm", "--no-write"]) == 0
    out = capsys.readouterr().out
    assert "pytorchcv" in out and "torchvision" in out


def test_mixed_log_norm_conventions_are_not_fitted_silently(tmp_path: Path) -> None:
    ids = ["resnet20_cifar10", "resnet56_cifar10", "resnet110_cifar10", "resnet164bn_cifar10"]
    _series(tmp_path / "new", ids[:2], [1.0, 1.2])
    _series(tmp_path / "old", ids[2:], [1.3, 1.5], version="0.2.7")
    reported = tmp_path / "reported.csv"
    reported.write_text("model_id,top1_error\n" + "".join(f"{m},{e}\n" for m, e in zip(ids, [8.0, 6.5, 6.0, 5.0])))
    ingest([tmp_path / "new"], [reported], tmp_path / "root", source="zoo", analyzer_version="weightwatcher-0.7.7")
    ingest([tmp_path / "old"], [reported], tmp_path / "root", source="zoo", analyzer_version="weightwatcher-0.2.7")
    models = read_table(tmp_path / "root", "models")
    assert len(models) == 4 and set(models["source"]) == {"zoo"}
    with pytest.warns(MixedAnalyzerWarning, match=r"weightwatcher-0.2.7.*weightwatcher-0.7.7.*not fitted on log_norm"):
        fits = regress(models, metrics=["log_norm", "ln_mean_lambda_max", "alpha"])
    assert fits["metric"].tolist() == ["alpha"]  # scale-free, fitted; the log norms are refused
    with pytest.warns(MixedAnalyzerWarning, match="fitted anyway"):
        assert regress(models, metrics=["log_norm"], allow_mixed=True)["n"].tolist() == [4]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one convention: no warning at all
        assert regress(models[models["analyzer_version"] == "weightwatcher-0.7.7"], metrics=["log_norm"],
                       min_models=2)["n"].tolist() == [2]


weightwatcher = pytest.importorskip("weightwatcher", reason="the test oracle weightwatcher==0.7.7 is not installed")
logging.getLogger("weightwatcher").setLevel(logging.ERROR)


def test_oracle_outputs_of_real_models(tmp_path: Path, akamaster_dir: Path, minilm_dir: Path) -> None:
    """weightwatcher 0.7.7 on the real akamaster ResNet-20 and MiniLM, saved as researchers save it, ingested."""
    import torch
    from safetensors.torch import load_file

    states = {"resnet20": {k.removeprefix("module."): v for k, v in torch.load(
                  akamaster_dir / "resnet20-12fca82f.th", map_location="cpu", weights_only=True)["state_dict"].items()},
              "all_minilm_l6_v2": load_file(str(minilm_dir / "model.safetensors"))}
    folder = tmp_path / "oracle"
    folder.mkdir()
    for name, state in states.items():
        watcher = weightwatcher.WeightWatcher(model=state)
        watcher.analyze()
        watcher.get_details().to_csv(folder / f"{name}.csv")
        (folder / f"{name}.txt").write_text(str(watcher.get_summary()))  # np.float64(...) reprs under numpy 2
    result = ingest([folder], [], tmp_path / "root", analyzer_version=f"weightwatcher-{weightwatcher.__version__}")
    assert result.models == 2
    models = _models(tmp_path / "root")
    for name in states:
        written = pd.read_csv(folder / f"{name}.csv")
        rows = read_table(tmp_path / "root", "layers").query("model_id == @name").sort_values("layer_index")
        assert len(rows) == len(written) > 10
        _equal_columns(rows.reset_index(drop=True), written.sort_values("layer_id").reset_index(drop=True), NAMES_07)
        for key, value in read_summary(folder / f"{name}.txt").items():
            assert models.loc[name, key] == value, (name, key)
    minilm = read_table(tmp_path / "root", "layers").query("model_id == 'all_minilm_l6_v2'")
    written = pd.read_csv(folder / "all_minilm_l6_v2.csv")
    assert sorted(minilm["layer_type"]) == sorted(written["layer_type"].map({"dense": "linear"}).fillna(written["layer_type"]))
