"""Repo kinds (full, sharded, adapter, gguf, quantized, no weights) from an injected Hub client's listing,
quantized (GPTQ-like) checkpoints ending ``skipped`` with the format named, and a rescan recording every
kind in the ``models`` table (a real local Ray, offline workers reading a Hugging Face cache layout).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests._rescan_util import FakeHub, rescan_yaml, write_weights
from tests.test_zoos_gguf import float_model, write_gguf
from ww_ray.config import parse_config
from ww_ray.zoos.repo_kind import RepoKind, judge

GPTQ_CONFIG = {"model_type": "llama", "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128}}


def write_gptq_like(folder: Path, with_config: bool = True) -> Path:
    """A GPTQ-style checkpoint: packed int32 qweight/qzeros, fp16 scales, g_idx; float embeddings and norms."""
    rng = np.random.default_rng(0)
    tensors = {"model.embed_tokens.weight": torch.randn(100, 64),
               "model.layers.0.input_layernorm.weight": torch.ones(64)}
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
        prefix = f"model.layers.0.self_attn.{proj}"
        tensors[f"{prefix}.qweight"] = torch.from_numpy(rng.integers(-2**31, 2**31 - 1, (8, 64), dtype=np.int32))
        tensors[f"{prefix}.qzeros"] = torch.from_numpy(rng.integers(0, 2**31 - 1, (1, 8), dtype=np.int32))
        tensors[f"{prefix}.scales"] = torch.rand(1, 64, dtype=torch.float16)
        tensors[f"{prefix}.g_idx"] = torch.zeros(64, dtype=torch.int32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(GPTQ_CONFIG if with_config else {"model_type": "llama"}))
    return folder


def write_sharded(folder: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    weight_map = {}
    for shard in (1, 2):
        name = f"model-0000{shard}-of-00002.safetensors"
        tensors = {f"encoder.layer.{shard}.dense.weight":
                   torch.from_numpy((rng.standard_normal((128, 64)) / 8).astype(np.float32))}
        save_file(tensors, str(folder / name))
        weight_map.update(dict.fromkeys(tensors, name))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    return folder


def write_adapter(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"base_model.model.layer.0.lora_A.weight": torch.randn(8, 64),
               "base_model.model.layer.0.lora_B.weight": torch.randn(64, 8)}, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8,
                                                            "base_model_name_or_path": "acme/full"}))
    return folder


def write_card_only(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "README.md").write_text("# a tokenizer only\n")
    (folder / "tokenizer.json").write_text("{}")
    return folder


class KindsHub(FakeHub):
    """The rescan tests' fake Hub, publishing any folder (every file) and the folder's own config.json."""

    def publish_folder(self, repo_id: str, folder: Path, hours: float) -> str:
        sha = self.publish(repo_id, hours=hours, folder=self._stub(folder))
        snapshot = self.cache / ("models--" + repo_id.replace("/", "--")) / "snapshots" / sha
        shutil.rmtree(snapshot)
        shutil.copytree(folder, snapshot)
        self.repos[repo_id][-1]["folder"] = str(folder)
        return sha

    def _stub(self, folder: Path) -> Path:
        """FakeHub.publish copies config.json and model.safetensors: give it both, then lay out the real files."""
        stub = self.home / "stubs" / folder.name
        stub.mkdir(parents=True, exist_ok=True)
        (stub / "config.json").write_text("{}")
        (stub / "model.safetensors").write_bytes(b"")
        return stub

    def _info(self, repo_id: str, rev: dict[str, Any], siblings: bool = False):
        info = super()._info(repo_id, rev, siblings)
        config_path = Path(rev["folder"]) / "config.json"
        info.config = json.loads(config_path.read_text()) if config_path.is_file() else None
        return info


@pytest.fixture()
def kinds_hub(tmp_path) -> KindsHub:
    hub = KindsHub(tmp_path)
    src = tmp_path / "src"
    hub.publish_folder("acme/full", write_weights(src / "full", [(128, 64), (96, 64)], seed=1, model_type="bert"), 1)
    hub.publish_folder("acme/sharded", write_sharded(src / "sharded", seed=2), 2)
    hub.publish_folder("acme/lora", write_adapter(src / "lora"), 3)
    gguf_folder = src / "gguf"
    gguf_folder.mkdir()
    from gguf import GGMLQuantizationType

    write_gguf(gguf_folder / "tiny.Q8_0.gguf", float_model(), GGMLQuantizationType.Q8_0)
    write_gguf(gguf_folder / "tiny.F16.gguf", float_model(), GGMLQuantizationType.F16)
    (gguf_folder / "README.md").write_text("# GGUF\n")
    hub.publish_folder("acme/gguf", gguf_folder, 4)
    hub.publish_folder("acme/gptq", write_gptq_like(src / "gptq"), 5)
    hub.publish_folder("acme/card-only", write_card_only(src / "card-only"), 6)
    return hub


EXPECTED_KINDS = {"acme/full": "full", "acme/sharded": "sharded", "acme/lora": "adapter", "acme/gguf": "gguf",
                  "acme/gptq": "quantized", "acme/card-only": "no_weights"}


def test_judge_from_file_names_and_config():
    assert judge(["config.json", "model.safetensors"]) == RepoKind("full")
    assert judge(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                  "model.safetensors.index.json"]) == RepoKind("sharded")
    assert judge(["adapter_config.json", "adapter_model.safetensors", "README.md"]) == RepoKind("adapter")
    assert judge(["a.Q4_K_M.gguf"]) == RepoKind("gguf") and judge(["README.md", "tokenizer.json"]) == RepoKind("no_weights")
    assert judge(["model.safetensors"], GPTQ_CONFIG) == RepoKind("quantized", "gptq 4-bit")
    assert judge(["model.safetensors"], {"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}}) \
        == RepoKind("quantized", "bitsandbytes 4-bit")
    assert judge(["model.safetensors"], {}, ["l.0.qweight", "l.0.qzeros", "l.0.scales"]) == RepoKind("quantized", "GPTQ/AWQ packed int")
    assert judge(["model.safetensors"], {}, ["l.0.weight", "l.0.weight.absmax"]) == RepoKind("quantized", "bitsandbytes")
    assert judge(["config.json"], GPTQ_CONFIG) == RepoKind("no_weights")   # a config alone holds no weights


def test_injected_client_listing_mixed_kinds_without_downloads(kinds_hub, hub_online, monkeypatch):
    import huggingface_hub

    from ww_ray.zoos import hub
    from ww_ray.zoos.registry import enumerate_specs

    monkeypatch.setattr(hub, "make_client", lambda: kinds_hub)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: pytest.fail("nothing is downloaded"))
    specs = {s.model_id: s for s in enumerate_specs(parse_config({"zoos": [{"kind": "hub", "author": "acme"}]}))}
    assert {m: s.repo_kind for m, s in specs.items()} == EXPECTED_KINDS
    assert "gptq 4-bit" in specs["acme/gptq"].extra["skip_reason"]
    assert specs["acme/gguf"].extra["file_name"] == "tiny.F16.gguf"       # the most precise of the two
    assert specs["acme/gguf"].extra["allow_patterns"] == ["tiny.F16.gguf", "config.json"]
    assert "skip_reason" not in specs["acme/full"].extra and "skip_reason" not in specs["acme/sharded"].extra
    assert specs["acme/card-only"].extra.get("skip_reason")


def test_gptq_like_checkpoint_ends_skipped_with_the_format_named(tmp_path, capsys):
    import ww_ray
    from ww_ray.engine.loader import load_model
    from ww_ray.spectral.presets import resolve_options
    from ww_ray.zoos.registry import enumerate_specs

    zoo = tmp_path / "zoo"
    write_gptq_like(zoo / "llama-gptq")
    write_gptq_like(zoo / "no-config-gptq", with_config=False)
    write_weights(zoo / "plain", [(128, 64)], seed=0, model_type="bert")
    specs = {s.model_id: s for s in enumerate_specs(parse_config({"zoos": [{"kind": "local", "path": str(zoo)}]}))}
    assert {m: s.repo_kind for m, s in specs.items()} == {"llama-gptq": "quantized", "no-config-gptq": "quantized",
                                                          "plain": "full"}
    assert "gptq 4-bit quantized weights" in specs["llama-gptq"].extra["skip_reason"]
    assert "GPTQ/AWQ packed int quantized weights" in specs["no-config-gptq"].extra["skip_reason"]
    header = next(load_model(specs["llama-gptq"], resolve_options("paper"), workers=1))
    assert header.status == "skipped" and "gptq 4-bit" in header.error
    rows = ww_ray.analyze(str(zoo / "llama-gptq"))
    assert rows["status"].tolist() == ["skipped"] and "gptq 4-bit" in rows["error"].iloc[0]
    from ww_ray.cli import main

    assert main(["analyze", str(zoo / "llama-gptq")]) == 1
    err = capsys.readouterr().err
    assert "skipped: " in err and "gptq 4-bit quantized weights" in err
    rows = ww_ray.analyze(str(zoo / "no-config-gptq"))
    assert rows["status"].tolist() == ["skipped"] and "GPTQ/AWQ packed int" in rows["error"].iloc[0]


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from ww_ray.engine.cluster import LOOPBACK, loopback_only

    if ray.is_initialized():
        ray.shutdown()
    with loopback_only():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}}, _node_ip_address=LOOPBACK)
    yield ray
    ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_rescan_records_each_repo_kind(kinds_hub, local_ray, hub_online, tmp_path):
    from ww_ray.rescan import load_rescan_config, run_rescan
    from ww_ray.store import read_table

    config = tmp_path / "rescan.yaml"
    config.write_text(rescan_yaml(kinds_hub, tmp_path / "out", author="acme"))
    now = dt.datetime(2025, 3, 2, tzinfo=dt.timezone.utc)
    result = run_rescan(load_rescan_config(config), client=kinds_hub, progress=False, now=now)
    models = read_table(str(tmp_path / "out"), "models").set_index("model_id")
    assert models["repo_kind"].to_dict() == EXPECTED_KINDS
    assert models.loc["acme/full", "status"] == "ok" and models.loc["acme/sharded", "status"] == "ok"
    assert models.loc["acme/gguf", "status"] == "ok" and models.loc["acme/gguf", "num_layers"] == 2 * 7 + 1  # embedding left out of the summary
    assert models.loc["acme/gptq", "status"] == "skipped" and "gptq 4-bit" in models.loc["acme/gptq", "error"]
    assert models.loc["acme/card-only", "status"] == "skipped"
    # full, sharded and gguf go through the engine; quantized and no-weights repos are recorded skipped (an
    # adapter is either, depending on whether a reader takes it)
    assert result.status == "completed"
    assert {m for _, m, _ in result.analysed} - {"acme/lora"} == {"acme/full", "acme/sharded", "acme/gguf"}
    # every revision, recorded skipped ones too, is done: the next rescan analyses and records nothing again
    from ww_ray.spectral.metrics import ANALYZER_VERSION
    from ww_ray.store import done_keys

    done = done_keys(str(tmp_path / "out"), ANALYZER_VERSION, preset="paper")
    assert {m for _, m, _ in done} == set(EXPECTED_KINDS)
    again = run_rescan(load_rescan_config(config), client=kinds_hub, progress=False, now=now)
    assert again.analysed == [] and len(read_table(str(tmp_path / "out"), "models")) == len(models)


def test_offline_cache_knows_kinds_reads_gguf_and_skips_quantized(kinds_hub, hub_offline, monkeypatch, tmp_path):
    from tests._zoos_util import make_hf_cache
    from ww_ray.zoos import hub
    from ww_ray.zoos.registry import enumerate_specs, load_layer_weights

    cache = tmp_path / "offline-cache"
    for repo in ("acme/gguf", "acme/gptq", "acme/full"):
        folder = Path(kinds_hub.current(repo)["folder"])
        make_hf_cache(cache, repo, folder, kinds_hub.current(repo)["sha"], sorted(p.name for p in folder.iterdir()))
    monkeypatch.setattr(hub, "make_client", lambda: pytest.fail("no Hub call may happen offline"))
    config = parse_config({"zoos": [{"kind": "hub", "models": ["acme/gguf", "acme/gptq", "acme/full"],
                                     "cache_dir": str(cache)}]})
    gguf_spec, gptq, full = enumerate_specs(config)
    assert (gguf_spec.repo_kind, gptq.repo_kind, full.repo_kind) == ("gguf", "quantized", "full")
    assert gguf_spec.extra["file_name"] == "tiny.F16.gguf" and "gptq 4-bit" in gptq.extra["skip_reason"]
    layers = list(load_layer_weights(gguf_spec))
    assert layers[0].name == "token_embd" and len(layers) == 1 + 2 * 7 + 1
