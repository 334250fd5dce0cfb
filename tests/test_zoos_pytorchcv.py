"""The pytorchcv zoo: table parsing, error semantics, architecture series, offline loading."""
from __future__ import annotations

import csv
import hashlib
from collections import Counter
from pathlib import Path

import pytest
import torch

from tests._zoos_util import write_evil_pickle
from ww_ray.config import parse_config
from ww_ray.zoos.config import ZooConfig
from ww_ray.zoos.architectures import PAPER_FAMILIES, architecture_of, lookup_architecture
from ww_ray.errors import CheckpointError
from ww_ray.errors import ModelSkipped, ZooUnavailableError
from ww_ray.zoos.pytorchcv import PytorchcvZoo, metainfo_path, read_metainfo
from ww_ray.zoos.registry import enumerate_specs, load_layer_weights, spec_from_uri
from ww_ray.zoos.source import open_source


@pytest.fixture(scope="module")
def all_specs():
    return PytorchcvZoo(ZooConfig(kind="pytorchcv")).enumerate()


def test_table_is_the_packages_and_matches_the_shared_copy(shared_models: Path) -> None:
    rows = list(csv.DictReader(open(metainfo_path(), newline="")))
    assert len(rows) == 780
    shared = shared_models / "pytorchcv-metainfo" / "model_metainfos.csv"
    assert metainfo_path().read_bytes() == shared.read_bytes()


def test_enumeration_counts_per_dataset(all_specs) -> None:
    # 780 rows; irevnet301 is listed twice (the later row wins, as in pytorchcv).
    assert len(all_specs) == 779
    counts = Counter(s.dataset for s in all_specs)
    # Dataset from the name suffix (fractalnet_cifar10 etc. have test_dataset NA) or test_dataset.
    assert counts["imagenet1k"] == 384 and counts["cifar10"] == 83 and counts["cifar100"] == 82
    assert counts["svhn"] == 80 and counts["cub200"] == 49 and counts["cityscapes"] == 22
    assert counts["cocohpe"] == 17 and counts["commonvoice"] == 13 and counts[None] == 27
    with_figure = Counter(s.dataset for s in all_specs if s.reported_value is not None)
    # pytorchcv-metainfo/README.md: 323 ImageNet-1K, 70 CIFAR-10, 68 CIFAR-100, 63 SVHN, 15 CUB error values;
    # one ImageNet value belongs to the irevnet301 row that pytorchcv's own later duplicate (no weights) hides.
    assert with_figure["imagenet1k"] == 322 and with_figure["cifar10"] == 70
    assert with_figure["cifar100"] == 68 and with_figure["svhn"] == 63 and with_figure["cub200"] == 15


def test_error_semantics_against_csv_rows(all_specs) -> None:
    by_id = {s.model_id: s for s in all_specs}
    vgg16 = by_id["vgg16"]                  # row "vgg16",...,0865: ImageNet TOP-5 error 8.65 (top-1 not in the table)
    assert (vgg16.top5_error, vgg16.top1_error, vgg16.reported_measure) == (8.65, None, "top5_error")
    assert vgg16.dataset == "imagenet1k" and vgg16.task == "classification" and vgg16.architecture == "VGG"
    r20 = by_id["resnet20_cifar10"]         # "0597": top-1 error 5.97 %
    assert (r20.top1_error, r20.top5_error, r20.reported_measure) == (5.97, None, "top1_error")
    assert r20.revision == "9b0024ac4c2f374cde2c5052e0d0344a75871cdb" and r20.params == 272474
    assert by_id["nin_svhn"].top1_error == 3.76 and by_id["resnet10_cub"].top1_error == 27.77
    seg = by_id["pspnet_resnetd101b_voc"]   # segmentation: mIoU, not an error
    assert (seg.top1_error, seg.top5_error, seg.reported_measure, seg.reported_value) == (None, None, "miou", 81.44)
    pose = by_id["simplepose_resnet18_coco"]
    assert (pose.task, pose.reported_measure, pose.reported_value, pose.top1_error) == ("pose", "ap", 66.31, None)
    speech = by_id["quartznet15x5_en"]
    assert (speech.task, speech.reported_measure, speech.reported_value) == ("speech", "wer", 16.79)
    assert by_id["raft_things"].reported_value is None       # "0000" is a placeholder
    assert "no pretrained weights" in by_id["resnet200"].extra["skip_reason"]
    assert by_id["resnet20_cifar10"].uri.endswith("/v0.0.163/resnet20_cifar10-0597-9b0024ac.pth.zip")


def test_every_error_value_is_labelled(all_specs) -> None:
    rows = {r.name: r for r in read_metainfo()}
    for spec in all_specs:
        value = rows[spec.model_id].error_value
        if value not in ("NA", "0000"):
            assert spec.reported_value == int(value) / 100 and spec.reported_measure is not None, spec.model_id
            if spec.reported_measure in ("top1_error", "top5_error"):
                assert spec.task == "classification"


def test_architecture_table_covers_the_zoo_and_the_papers_families(all_specs) -> None:
    assert all(lookup_architecture(s.model_id) is not None for s in all_specs)
    assert set(PAPER_FAMILIES) <= {s.architecture for s in all_specs}   # DIA-ResNet is CIFAR/SVHN only
    examples = {"resnet18": "ResNet", "resnet20_cifar10": "ResNet", "seresnext50_32x4d": "SENet",
                "sepreresnet18": "SENet", "diapreresnet20_cifar10": "DIA-ResNet", "wrn50_2": "WRN",
                "bn_vgg16": "VGG", "drnd22": "DRN", "drnc26": "DRN", "squeezeresnet_v1_1": "SqueezeNet",
                "sqnxt23_w1": "SqueezeNext", "shufflenet_g1_wd4": "ShuffleNet", "shufflenetv2_w1": "ShuffleNetV2",
                "hrnetv2_w18": "HRNet", "espnetv2_w1": "ESPNetv2", "efficientnet_b0": "EfficientNet",
                "proxylessnas_mobile_cub": "ProxylessNAS", "igcv3_w1": "IGCV3", "dla34": "DLA",
                "preresnet18": "PreResNet", "resnext50_32x4d": "ResNeXt", "mobilenetv2_w1": "MobileNetV2"}
    assert {name: architecture_of(name) for name in examples} == examples
    assert architecture_of("foonet12_w2") == "foonet"


def test_filters_and_limit() -> None:
    config = parse_config({"zoos": [{"kind": "pytorchcv", "include": ["resnet*"], "datasets": ["CIFAR-10"],
                                     "params": {"max": "1M"}, "limit": 2}]})
    specs = enumerate_specs(config)
    assert [s.model_id for s in specs] == ["resnet20_cifar10", "resnet56_cifar10"]
    archs = enumerate_specs(parse_config({"zoos": [{"kind": "pytorchcv", "architectures": ["DRN"]}]}))
    assert sorted(s.model_id for s in archs) == ["drnc26", "drnc42", "drnc58", "drnd105", "drnd22", "drnd38", "drnd54"]


def test_user_csv_adds_imagenet_top1(tmp_path: Path) -> None:
    extra = tmp_path / "top1.csv"
    extra.write_text("model_id,top1_error,note\nvgg16,27.15,imgclsmob README\nresnet20_cifar10,6.00,override\n")
    config = parse_config({"zoos": [{"kind": "pytorchcv", "models": ["vgg16", "resnet20_cifar10"],
                                     "metadata": str(extra)}]})
    vgg16, r20 = enumerate_specs(config)
    assert (vgg16.top1_error, vgg16.top5_error, vgg16.reported_measure, vgg16.reported_value) == \
        (27.15, 8.65, "top1_error", 27.15)
    assert r20.top1_error == 6.00 and r20.extra["note"] == "override"


def _patched_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, sha1: str) -> None:
    """Copy the package's table with one checksum replaced, and point pytorchcv (and ww_ray) at it."""
    from pytorchcv.models.common import model_store

    rows = list(csv.reader(open(metainfo_path(), newline="")))
    for row in rows:
        if row[0] == name:
            row[3] = sha1
    table = tmp_path / "model_metainfos.csv"
    with open(table, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    monkeypatch.setattr(model_store, "get_model_metainfos_file_path", lambda: str(table))


def _write_weights(root: Path, state: dict) -> tuple[Path, str]:
    root.mkdir(parents=True, exist_ok=True)
    scratch = root / "scratch.pth"
    torch.save(state, scratch)
    sha1 = hashlib.sha1(scratch.read_bytes()).hexdigest()
    final = root / f"resnet20_cifar10-0597-{sha1[:8]}.pth"
    scratch.rename(final)
    return final, sha1


def test_resnet20_loads_offline_through_get_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pytorchcv.model_provider import get_model

    monkeypatch.setenv("WW_RAY_OFFLINE", "1")     # any attempt to download would fail loudly
    torch.manual_seed(3)
    reference = get_model("resnet20_cifar10", pretrained=False)
    root = tmp_path / "weights"
    _, sha1 = _write_weights(root, reference.state_dict())
    _patched_table(tmp_path, monkeypatch, "resnet20_cifar10", sha1)

    spec = spec_from_uri("pytorchcv:resnet20_cifar10", root=str(root))
    assert spec.revision == sha1 and spec.top1_error == 5.97
    weights = list(load_layer_weights(spec))
    assert len(weights) == 22 and weights[0].name == "features.init_block.conv"
    expected = dict(reference.named_parameters())
    for w in weights:
        assert torch.equal(w.tensor, expected[f"{w.name}.weight"]), w.name

    spec2, layers = open_source("pytorchcv:resnet20_cifar10", root=str(root))
    assert spec2.key == spec.key and len(list(layers)) == 22


def test_code_running_weight_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "weights"
    root.mkdir()
    marker = tmp_path / "pwned"
    scratch = root / "scratch.pth"
    write_evil_pickle(scratch, marker)
    sha1 = hashlib.sha1(scratch.read_bytes()).hexdigest()
    scratch.rename(root / f"resnet20_cifar10-0597-{sha1[:8]}.pth")
    _patched_table(tmp_path, monkeypatch, "resnet20_cifar10", sha1)
    spec = spec_from_uri("pytorchcv:resnet20_cifar10", root=str(root))
    with pytest.raises(CheckpointError, match="refused"):
        load_layer_weights(spec)
    assert not marker.exists()
    # The forcing is scoped to the call.
    import os
    assert "TORCH_FORCE_WEIGHTS_ONLY_LOAD" not in os.environ


def test_missing_weights_offline_say_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WW_RAY_OFFLINE", "1")
    spec = spec_from_uri("pytorchcv:resnet20_cifar10", root=str(tmp_path / "empty"))
    with pytest.raises(ZooUnavailableError) as info:
        load_layer_weights(spec)
    message = str(info.value)
    assert "resnet20_cifar10-0597-9b0024ac.pth" in message and "root:" in message and str(tmp_path) in message


def test_models_without_weights_and_size_cap_are_skipped() -> None:
    no_weights = spec_from_uri("pytorchcv:resnet200")
    with pytest.raises(ModelSkipped, match="no pretrained weights"):
        load_layer_weights(no_weights)
    capped = PytorchcvZoo(ZooConfig(kind="pytorchcv", max_size_bytes=10**6, options={"models": ["resnet56_cifar10"]}))
    (spec,) = capped.enumerate()
    assert "above this zoo's max_size of 1.0 MB" in spec.extra["skip_reason"]
    with pytest.raises(ModelSkipped) as info:
        load_layer_weights(spec)
    assert "3.4 MB" in info.value.reason


def test_unsafe_names_are_refused() -> None:
    from ww_ray.errors import UnsafeIdError, ZooError

    for bad in ("../../etc/passwd", "/abs/path", "res net", "a\x00b"):
        with pytest.raises((UnsafeIdError, ZooError)):
            spec_from_uri(f"pytorchcv:{bad}")
