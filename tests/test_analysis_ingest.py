"""Ingest: reported-figure readers on the real files, the WW column map, and the written root."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from _analysis_util import METAINFO, SHARED_MODELS, WW_TRENDS, require
from ww_ray.analysis.ingest import column_map, ingest_metrics
from ww_ray.analysis.reported import merge_figures, read_reported
from ww_ray.store import read_manifests, read_table


def test_readme_html_tables() -> None:
    figures, notes = read_reported(require(WW_TRENDS / "pytorchcv.html"))
    assert len(figures) == 212 and notes == []  # every row names its weights in its log link
    by_name = figures.set_index("model_id")
    assert by_name["dataset"].value_counts().to_dict() == {"imagenet1k": 156, "cifar10": 32, "cifar100": 24}
    alexnet = by_name.loc["alexnet"]
    assert (alexnet["top1_error"], alexnet["top5_error"], alexnet["revision"]) == (43.48, 20.93, "6429d865")
    resnet20 = by_name.loc["resnet20_cifar10"]
    assert (resnet20["dataset"], resnet20["top1_error"], resnet20["revision"]) == ("cifar10", 5.97, "9b0024ac")
    assert pd.isna(resnet20["top5_error"]) and by_name.loc["pnasnet5large", "top1_error"] == 17.88  # row without </tr>


def test_metainfo_meanings() -> None:
    figures, notes = read_reported(require(METAINFO))
    by_name = figures.drop_duplicates("model_id").set_index("model_id")
    vgg16 = by_name.loc["vgg16"]  # ImageNet: error_value is a top-5 error
    assert pd.isna(vgg16["top1_error"]) and vgg16["top5_error"] == 8.65 and vgg16["dataset"] == "imagenet1k"
    svhn = by_name.loc["seresnet20_svhn"]
    assert (svhn["dataset"], svhn["top1_error"], svhn["reported_measure"]) == ("svhn", 3.23, "top1_error")
    voc = by_name.loc["pspnet_resnetd101b_voc"]  # segmentation: a score, not an error
    assert pd.isna(voc["top1_error"]) and (voc["reported_measure"], voc["reported_value"]) == ("miou", 81.44)
    placeholder = by_name.loc["bisenet_resnet18_celebamaskhq"]  # "0000" is a placeholder, not 0 %
    assert pd.isna(placeholder["reported_value"])
    assert len(notes) == 1 and "visemenet20" in notes[0]


def test_merge_precedence_and_generic_csv() -> None:
    html, _ = read_reported(require(WW_TRENDS / "pytorchcv.html"))
    meta, _ = read_reported(require(METAINFO))
    merged = merge_figures([html, meta]).set_index("model_id")
    alexnet = merged.loc["alexnet"]  # the snapshot wins; metainfo's retrained top-5 (16.64) does not
    assert (alexnet["top1_error"], alexnet["top5_error"], alexnet["revision"]) == (43.48, 20.93, "6429d865")
    assert (alexnet["reported_measure"], alexnet["reported_value"]) == ("top1_error", 43.48)
    hrnet = merged.loc["hrnetv2_w18"]  # only in metainfo: its top-5 fills in, revision = full sha1
    assert pd.isna(hrnet["top1_error"]) and hrnet["top5_error"] == 5.12 and len(hrnet["revision"]) == 40
    generic, _ = read_reported(require(SHARED_MODELS / "reported_accuracies.csv"))
    row = generic.set_index("model_id").loc["resnet56-4bfd9763.th"]
    assert (row["dataset"], row["top1_error"], row["params"]) == ("cifar10", 6.61, 853018)


def test_column_map_of_ww_027_names() -> None:
    mapping, unmapped = column_map(["Unnamed: 0", "modelname", "lognorm", "lognorm_compound", "logspectralnorm",
                                    "spectralnorm", "alpha", "alpha_weighted", "logpnorm", "softrank", "norm"])
    assert mapping == {"lognorm": "log_norm", "lognorm_compound": "log_norm_compound",
                       "logspectralnorm": "log_spectral_norm", "spectralnorm": "lambda_max", "alpha": "alpha",
                       "alpha_weighted": "alpha_weighted", "logpnorm": "log_alpha_norm",
                       "softrank": "stable_rank"}  # 0.2.x softrank = ||W||_F^2 / sigma_max^2, the stable rank
    assert unmapped == ["norm"]


def test_ingest_writes_a_regressable_root(tmp_path: Path) -> None:
    csv = require(WW_TRENDS / "osmr_df_all.csv")
    result = ingest_metrics(csv, [WW_TRENDS / "pytorchcv.html", METAINFO], tmp_path, source="pytorchcv",
                            analyzer_version="weightwatcher-0.2.7")
    assert result.models == 311 and result.with_error == 296 and result.without_architecture == []
    assert all(m.startswith(("pspnet", "deeplabv3", "fcn8sd")) for m in result.without_error)
    assert "softranklog" in result.unmapped_columns and "lognorm" not in result.unmapped_columns
    assert "softrank_mp" not in result.unmapped_columns and result.layers == 0
    models = read_table(tmp_path, "models").set_index("model_id")
    source = pd.read_csv(csv).set_index("modelname")
    wrn = models.loc["wrn28_10_cifar100"]
    assert wrn["log_norm"] == source.loc["wrn28_10_cifar100", "lognorm"]
    assert wrn["lambda_max"] == source.loc["wrn28_10_cifar100", "spectralnorm"]
    assert wrn["log_alpha_norm_compound"] == source.loc["wrn28_10_cifar100", "logpnorm_compound"]
    assert wrn["stable_rank"] == source.loc["wrn28_10_cifar100", "softrank"]
    assert wrn["mp_softrank"] == source.loc["wrn28_10_cifar100", "softrank_mp"]
    assert wrn["analyzer_version"] == "weightwatcher-0.2.7"
    assert (wrn["architecture"], wrn["dataset"], wrn["status"], wrn["source"]) == ("WRN", "cifar100", "ok", "pytorchcv")
    assert models.loc["resnet20_cifar10", "top1_error"] == 5.97 and models.loc["resnet10_cub", "dataset"] == "cub200"
    assert pd.isna(models.loc["pspnet_resnetd101b_voc", "top1_error"])
    assert models.loc["pspnet_resnetd101b_voc", "reported_measure"] == "miou"
    (manifest,) = read_manifests(tmp_path)
    assert manifest["kind"] == "ingest" and manifest["counts"]["models"] == 311
    (inputs,) = manifest["inputs"]
    assert inputs["kind"] == "summary_table" and inputs["sha256"] and inputs["models"] == 311
    assert manifest["column_map"]["logpnorm"] == "log_alpha_norm"
    # a second ingest is a second run: latest rows win, nothing duplicated or overwritten
    ingest_metrics(csv, [WW_TRENDS / "pytorchcv.html"], tmp_path, source="pytorchcv")
    assert len(read_table(tmp_path, "models")) == 311 and len(read_table(tmp_path, "models", latest=False)) == 622
    assert pd.isna(read_table(tmp_path, "models").set_index("model_id").loc["seresnet20_svhn", "top1_error"])


def test_ingest_refuses_bad_tables(tmp_path: Path) -> None:
    dup = tmp_path / "dup.csv"
    dup.write_text("modelname,alpha\nresnet20_cifar10,3.1\nresnet20_cifar10,3.2\n")
    with pytest.raises(ValueError, match="duplicate model names"):
        ingest_metrics(dup, [], tmp_path / "root")
    nameless = tmp_path / "nameless.csv"
    nameless.write_text("alpha,lognorm\n3.0,1.0\n")
    with pytest.raises(ValueError, match="no model name column"):
        ingest_metrics(nameless, [], tmp_path / "root")
    empty_metrics = tmp_path / "empty.csv"
    empty_metrics.write_text("modelname,alpha\nresnet20_cifar10,\n")
    result = ingest_metrics(empty_metrics, [], tmp_path / "root2")
    row = read_table(tmp_path / "root2", "models").iloc[0]
    assert result.models == 1 and row["status"] == "failed" and "no metric value" in row["error"]
    assert row["source"] == "empty" and row["dataset"] == "cifar10"
