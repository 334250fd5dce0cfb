"""Sweep configs: the DESIGN §4 shape, relative paths, and clear errors for bad keys or values."""
from __future__ import annotations

from pathlib import Path

import pytest

from ww_ray.config import load_config, parse_config
from ww_ray.errors import ConfigError
from ww_ray.spectral.presets import resolve_options
from ww_ray.validate import parse_size


def test_design_example_loads_with_paths_relative_to_the_file(tmp_path: Path, shared_models: Path) -> None:
    folder = tmp_path / "configs"
    folder.mkdir()
    (tmp_path / "models").symlink_to(shared_models)
    rel_models = Path("..") / "models"          # relative to the config's folder, not the working directory
    text = f"""
zoos:
  - kind: local
    path: {rel_models / "akamaster-resnet-cifar10"}
    metadata: {rel_models / "reported_accuracies.csv"}
  - kind: pytorchcv
    include: ["resnet*_cifar10"]
    datasets: [cifar10]
    params: {{min: 100k, max: 2M}}
    limit: 3
  - kind: hub
    models: [openai-community/gpt2]
preset: paper
conv_method: stacked
options: {{randomize: true}}
out: ../ww-results
ray: {{address: null, workers: null, gpus_per_worker: 0, max_models_in_flight: 4, model_timeout_s: 600}}
"""
    (folder / "sweep.yaml").write_text(text)
    config = load_config(folder / "sweep.yaml")
    local, pcv, hf = config.zoos
    assert local.options["path"] == str((shared_models / "akamaster-resnet-cifar10").resolve())
    assert local.metadata == str((shared_models / "reported_accuracies.csv").resolve())
    assert pcv.include == ("resnet*_cifar10",) and (pcv.params_min, pcv.params_max, pcv.limit) == (100_000, 2_000_000, 3)
    assert hf.options["models"] == ["openai-community/gpt2"]
    assert config.out == str((tmp_path / "ww-results").resolve())
    assert config.analysis == resolve_options("paper", conv_method="stacked", randomize=True)
    assert config.ray.max_models_in_flight == 4 and config.ray.model_timeout_s == 600.0
    assert config.ray.gpus_per_worker == 0.0 and config.ray.workers is None
    assert config.path == str((folder / "sweep.yaml").resolve())


@pytest.mark.parametrize("data, message", [
    ({}, "'zoos' must be a non-empty list"),
    ({"zoos": []}, "'zoos' must be a non-empty list"),
    ({"zoos": [{"kind": "ftp"}]}, r"zoos\[0\].kind must be one of \['hub', 'local', 'pytorchcv', 'url'\]"),
    ({"zoos": [{"kind": "locl"}]}, r"got 'locl' \(did you mean 'local'\?\)"),
    ({"zoos": [{"knd": "local", "path": "."}]}, r"zoos\[0\]: unknown key 'knd' \(did you mean 'kind'\?\)"),
    ({"zoos": [{"path": "."}]}, r"zoos\[0\] needs a 'kind:', one of \['hub', 'local', 'pytorchcv', 'url'\]"),
    ({"zoos": [{"kind": "pytorchcv"}], "options": {"conv_methd": "fft"}}, r"options: unknown key 'conv_methd' \(did you mean 'conv_method'\?\)"),
    ({"zoos": [{"kind": "local"}]}, r"zoos\[0\]: a local zoo needs \['path'\]"),
    ({"zoos": [{"kind": "local", "path": "/definitely/not/here"}]}, r"zoos\[0\].path: /definitely/not/here does not exist"),
    ({"zoos": [{"kind": "pytorchcv", "includes": ["x"]}]}, r"zoos\[0\] \(a pytorchcv zoo\): unknown key 'includes' \(did you mean 'include'\?\)"),
    ({"zoos": [{"kind": "pytorchcv", "limit": 0}]}, r"zoos\[0\].limit must be a positive integer"),
    ({"zoos": [{"kind": "pytorchcv", "datasets": "cifar10 cifar100"}]}, None),
    ({"zoos": [{"kind": "pytorchcv", "datasets": [1]}]}, r"zoos\[0\].datasets must be a list of non-empty strings"),
    ({"zoos": [{"kind": "pytorchcv", "params": {"min": 5, "max": 1}}]}, r"min 5 is larger than max 1"),
    ({"zoos": [{"kind": "pytorchcv", "params": {"low": 5}}]}, r"unknown key\(s\) \['low'\]; use min and/or max"),
    ({"zoos": [{"kind": "pytorchcv", "max_size": "lots"}]}, r"max_size must be a size such as 500MB"),
    ({"zoos": [{"kind": "hub", "allow_pickle": "yes"}]}, r"zoos\[0\].allow_pickle must be true or false"),
    ({"zoos": [{"kind": "pytorchcv", "name": "../escape"}]}, r"zoos\[0\].name must be 1-64 characters"),
    ({"zoos": [{"kind": "pytorchcv"}], "zooz": 1}, r"top level: unknown key 'zooz' \(did you mean 'zoos'\?\)"),
    ({"zoos": [{"kind": "pytorchcv"}], "preset": "fast"}, r"unknown preset 'fast'"),
    ({"zoos": [{"kind": "pytorchcv"}], "options": {"conv_method": "magic"}}, r"conv_method='magic'"),
    ({"zoos": [{"kind": "pytorchcv"}], "ray": {"gpu": 1}}, r"ray: unknown key 'gpu'"),
    ({"zoos": [{"kind": "pytorchcv"}], "ray": {"max_models_in_flight": -1}}, r"ray.max_models_in_flight must be a positive"),
    ({"zoos": [{"kind": "pytorchcv"}], "ray": {"model_timeout_s": 0}}, r"ray.model_timeout_s must be a positive"),
    ({"zoos": [{"kind": "pytorchcv"}], "out": ""}, r"'out' must be a non-empty path"),
])
def test_bad_configs_say_what_is_wrong(data: dict, message: str | None, tmp_path: Path) -> None:
    if message is None:        # a single string is accepted where a list is expected
        assert parse_config(data, tmp_path).zoos[0].datasets == ("cifar10 cifar100",)
        return
    with pytest.raises(ConfigError, match=message):
        parse_config(data, tmp_path)


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("zoos: [kind: local\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "absent.yaml")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("zoos:\n  - kind: pytorchcv\n    limit: many\n")
    with pytest.raises(ConfigError, match=r"wrong.yaml: zoos\[0\].limit must be a positive integer"):
        load_config(wrong)


def test_uri_out_and_sizes() -> None:
    config = parse_config({"zoos": [{"kind": "pytorchcv"}], "out": "s3://bucket/ww"})
    assert config.out == "s3://bucket/ww"
    assert parse_size("500MB") == 500_000_000 and parse_size("2 GiB") == 2 * 2**30 and parse_size(1024) == 1024


def test_a_symlink_loop_as_a_zoo_path_is_a_config_error(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop")
    with pytest.raises(ConfigError, match=r"zoos\[0\].path: .*loop cannot be resolved"):
        parse_config({"zoos": [{"kind": "local", "path": "loop"}]}, tmp_path)


def test_analysis_options_are_resolved_once_and_overridable() -> None:
    config = parse_config({"zoos": [{"kind": "pytorchcv"}], "preset": "paper", "conv_method": "stacked"})
    assert config.analysis == resolve_options("paper", conv_method="stacked")
    # a --preset override keeps the config's own overrides, then applies the command line's
    changed = config.with_analysis("ww", fit="PL")
    assert changed.analysis == resolve_options("ww", conv_method="stacked", fit="PL")
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        config.with_analysis("fast")


def test_base_model_paths_are_relative_to_the_config_file_and_uris_stay(tmp_path: Path) -> None:
    """``base_model:`` like ``path:``: a relative folder is the config's neighbour; a URI or auto is kept."""
    (tmp_path / "zoo").mkdir()
    (tmp_path / "base").mkdir()
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text("zoos:\n  - {kind: local, path: zoo, base_model: base}\n"
                   "  - {kind: local, path: zoo, base_model: 'hf:org/base'}\n"
                   "  - {kind: hub, models: [org/tuned], base_model: auto}\n")
    zoos = load_config(cfg).zoos
    assert [z.options["base_model"] for z in zoos] == [str(tmp_path / "base"), "hf:org/base", "auto"]
    cfg.write_text("zoos:\n  - {kind: local, path: zoo, base_model: missing-base}\n")
    with pytest.raises(ConfigError, match="base_model"):
        load_config(cfg)
