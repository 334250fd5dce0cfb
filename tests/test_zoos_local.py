"""The local zoo: the akamaster folder with the shared metadata CSV, formats, ids, escapes."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from ww_ray.config import parse_config
from ww_ray.zoos.checkpoint import file_sha256
from ww_ray.errors import ModelSkipped, ZooError
from ww_ray.zoos.registry import enumerate_specs, load_layer_weights


def test_akamaster_with_reported_accuracies(shared_models: Path, akamaster_dir: Path) -> None:
    config = parse_config({"zoos": [{"kind": "local", "path": str(akamaster_dir),
                                     "metadata": str(shared_models / "reported_accuracies.csv")}]})
    specs = enumerate_specs(config)
    assert [s.model_id for s in specs] == ["resnet20-12fca82f", "resnet32-d509ac18", "resnet44-014dd654",
                                           "resnet56-4bfd9763"]
    assert [s.top1_error for s in specs] == [8.27, 7.37, 6.90, 6.61]
    assert all(s.top5_error is None and s.reported_measure == "top1_error" for s in specs)
    assert {s.dataset for s in specs} == {"cifar10"}
    assert {s.architecture for s in specs} == {"akamaster-cifar-resnet-optionA"}
    assert [s.params for s in specs] == [269722, 464154, 658586, 853018]
    assert {s.source for s in specs} == {"akamaster-resnet-cifar10"}
    for spec in specs:
        # Revision = sha256 of the file; akamaster named its files after the first 8 hex digits.
        assert spec.revision == file_sha256(akamaster_dir / f"{spec.model_id}.th")
        assert spec.revision[:8] == spec.model_id.split("-")[1]
    depths = []
    for spec in specs:
        layers = list(load_layer_weights(spec))
        depths.append(len(layers))
        assert layers[-1].name == "linear" and layers[-1].kind == "linear"
    assert depths == [20, 32, 44, 56]


def test_folder_kinds_unsupported_formats_and_ids(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    (zoo / "nested").mkdir(parents=True)
    save_file({"fc.weight": torch.randn(8, 4)}, zoo / "nested" / "a.safetensors")
    torch.save({"model": {"module.fc.weight": torch.randn(5, 3)}}, zoo / "b.pt")
    (zoo / "hf-model").mkdir()
    save_file({"dense.weight": torch.randn(6, 6)}, zoo / "hf-model" / "model.safetensors")
    (zoo / "hf-model" / "config.json").write_text('{"model_type": "bert"}')
    (zoo / "keras.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    (zoo / "notes.txt").write_text("not a model")
    (zoo / "meta.csv").write_text("model_id,top5_error,miou\nb,12.5,\nhf-model,,70.1\n")
    specs = enumerate_specs(parse_config({"zoos": [{"kind": "local", "path": str(zoo), "name": "mine",
                                                     "metadata": str(zoo / "meta.csv")}]}))
    by_id = {s.model_id: s for s in specs}
    assert sorted(by_id) == ["b", "hf-model", "keras", "nested/a"]
    assert by_id["b"].top5_error == 12.5 and by_id["b"].reported_measure == "top5_error"
    assert by_id["hf-model"].reported_measure == "miou" and by_id["hf-model"].top1_error is None
    assert by_id["hf-model"].architecture == "bert" and by_id["hf-model"].source == "mine"
    assert [w.shape for w in load_layer_weights(by_id["b"])] == [(5, 3)]
    assert [w.name for w in load_layer_weights(by_id["nested/a"])] == ["fc"]
    with pytest.raises(ModelSkipped, match=".h5 weights are not supported"):
        load_layer_weights(by_id["keras"])
    # A file changed after listing is not analysed under the old revision.
    torch.save({"fc.weight": torch.randn(5, 3)}, zoo / "b.pt")
    with pytest.raises(ZooError, match="changed since it was listed"):
        load_layer_weights(by_id["b"])


def test_paths_cannot_escape_the_zoo_folder(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    save_file({"fc.weight": torch.randn(4, 4)}, outside / "secret.safetensors")
    os.symlink(outside, zoo / "link")
    save_file({"fc.weight": torch.randn(4, 4)}, zoo / "ok.safetensors")
    config = parse_config({"zoos": [{"kind": "local", "path": str(zoo)}]})
    specs = enumerate_specs(config)
    assert [s.model_id for s in specs] == ["link", "ok"]
    link, ok = specs                                     # the link out of the folder is listed, not followed
    assert "outside the zoo folder" in link.extra["skip_reason"] and link.extra["files"] == []
    with pytest.raises(ModelSkipped, match="links out of the zoo are not followed"):
        load_layer_weights(link)
    from dataclasses import replace
    forged = replace(ok, extra={**ok.extra, "relative_path": "../outside/secret.safetensors"})
    with pytest.raises(ZooError, match="relative path|leaves"):
        load_layer_weights(forged)


def test_size_cap(tmp_path: Path, akamaster_dir: Path) -> None:
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    shutil.copy(akamaster_dir / "resnet20-12fca82f.th", zoo)
    shutil.copy(akamaster_dir / "resnet56-4bfd9763.th", zoo)
    specs = enumerate_specs(parse_config({"zoos": [{"kind": "local", "path": str(zoo), "max_size": "2MB"}]}))
    small, big = specs
    assert "skip_reason" not in small.extra and len(list(load_layer_weights(small))) == 20
    with pytest.raises(ModelSkipped) as info:
        load_layer_weights(big)
    assert info.value.reason.startswith("weights are 3.5 MB") and "max_size of 2.0 MB" in info.value.reason


def test_partition_values_are_safe_path_components(tmp_path: Path) -> None:
    """source and dataset become Parquet partition folders: nothing in them can climb out."""
    zoo = tmp_path / "my zoo;$(x)"
    zoo.mkdir()
    save_file({"fc.weight": torch.randn(4, 4)}, zoo / "m.safetensors")
    (tmp_path / "meta.csv").write_text("model,dataset\nm,../../etc/passwd\n")
    (spec,) = enumerate_specs(parse_config({"zoos": [{"kind": "local", "path": str(zoo),
                                                      "metadata": str(tmp_path / "meta.csv")}]}))
    assert spec.source == "my_zoo___x_" and spec.dataset == "etcpasswd"
    for value in (spec.source, spec.dataset):
        assert "/" not in value and ".." not in value and value == Path(value).name
