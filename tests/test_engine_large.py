"""Large-model path on a real local Ray: shards of tensor names, lazy reads, forward order, streamed pickles.

Small Llama-like and BERT-like models are built with transformers from a config (seeded random
weights, bf16), saved as safetensors (the Llama one sharded with ``model.safetensors.index.json``).
``WW_RAY_TENSOR_READ_LOG`` (set before Ray starts, so every worker inherits it) records which
process reads which tensor.
"""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import ww_ray
from tests._engine_util import assert_one_terminal_row_each, local_ray_cluster, models_frame
from ww_ray.config import parse_config
from ww_ray.engine import run_config
from ww_ray.engine.shard_plan import plan_model
from ww_ray.store import read_table
from ww_ray.store.schema import LAYER_METRIC_FIELDS
from ww_ray.zoos.tensor_index import READ_LOG_ENV

pytestmark = [pytest.mark.ray, pytest.mark.slow]

NUMERIC = [f.name for f in LAYER_METRIC_FIELDS if f.name != "warning"]
LLAMA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256,
         "intermediate_size": 512, "num_hidden_layers": 12, "num_attention_heads": 4, "num_key_value_heads": 4,
         "vocab_size": 1000, "max_position_embeddings": 64, "tie_word_embeddings": False}
BERT = {"model_type": "bert", "architectures": ["BertModel"], "hidden_size": 128, "intermediate_size": 256,
        "num_hidden_layers": 3, "num_attention_heads": 4, "vocab_size": 500, "max_position_embeddings": 64,
        "type_vocab_size": 2}


def _state_dict(config: dict, seed: int) -> dict[str, torch.Tensor]:
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.AutoConfig.for_model(**config)
    model = getattr(transformers, config["architectures"][0])(cfg)
    return {k: v.detach().to(torch.bfloat16).contiguous().clone() for k, v in model.state_dict().items()}


def write_hf_folder(folder: Path, config: dict, seed: int, shards: int = 1) -> Path:
    """A Hugging Face folder: config.json and bf16 safetensors (``shards`` > 1 writes an index)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    state = _state_dict(config, seed)
    if shards == 1:
        save_file(state, str(folder / "model.safetensors"))
        return folder
    names = sorted(state)
    weight_map = {}
    for part in range(shards):
        file = f"model-{part + 1:05d}-of-{shards:05d}.safetensors"
        chunk = {n: state[n] for n in names[part::shards]}
        save_file(chunk, str(folder / file))
        weight_map.update({n: file for n in chunk})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


@pytest.fixture(scope="module")
def read_log(tmp_path_factory):
    return tmp_path_factory.mktemp("reads")


@pytest.fixture(scope="module")
def local_ray(read_log):
    with local_ray_cluster(loads=3, env={READ_LOG_ENV: str(read_log)}) as ray:  # workers inherit the log
        yield ray


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    write_hf_folder(root / "llama-like", LLAMA, seed=1, shards=2)
    write_hf_folder(root / "bert-like", BERT, seed=2)
    return root


def _reads(folder: Path) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for log in folder.glob("*.log"):
        out[int(log.stem)] = [line.split("\t")[1] for line in log.read_text().splitlines()]
    return out


def _sweep(tmp: Path, zoo_root: Path, **zoo_options):
    config = parse_config({"zoos": [{"kind": "local", "path": str(zoo_root), **zoo_options}], "out": str(tmp / "out"),
                           "ray": {"workers": 2, "max_models_in_flight": 2}}, base_dir=tmp)
    return run_config(config, progress=False), tmp / "out"


def _assert_rows_equal_analyze(out: Path, model_id: str, reference: pd.DataFrame) -> None:
    layers = read_table(str(out), "layers")
    ours = layers[layers["model_id"] == model_id].sort_values(["layer_index", "slice_id"], na_position="first")
    ref = reference.sort_values(["layer_index", "slice_id"], na_position="first")
    assert ours["layer_name"].tolist() == ref["layer_name"].tolist()
    assert ours["layer_index"].tolist() == ref["layer_index"].tolist()
    for column in NUMERIC:
        a, b = ours[column].to_numpy(dtype=float), ref[column].to_numpy(dtype=float)
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True), column


def test_forward_order_llama_and_bert_in_process(zoo, tmp_path):
    llama = ww_ray.analyze(str(zoo / "llama-like"))
    names = llama["layer_name"].tolist()
    block = [n for n in names if n.startswith("model.layers.0.")]
    assert [n.rsplit(".", 1)[-1] for n in block] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                                     "down_proj"]
    assert names.index("model.layers.2.self_attn.q_proj") < names.index("model.layers.10.self_attn.q_proj")
    assert names[0] == "model.embed_tokens" and names[-1] == "lm_head"
    assert llama["layer_index"].tolist() == list(range(len(llama)))
    bert = ww_ray.analyze(str(zoo / "bert-like"))["layer_name"].tolist()
    layer0 = [n for n in bert if n.startswith("encoder.layer.0.")]
    assert layer0 == ["encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.key",
                      "encoder.layer.0.attention.self.value", "encoder.layer.0.attention.output.dense",
                      "encoder.layer.0.intermediate.dense", "encoder.layer.0.output.dense"]
    # Without config.json (no skeleton): the block order heuristic gives the same order.
    from safetensors.torch import save_file

    flat = tmp_path / "llama.safetensors"
    save_file(_state_dict(LLAMA, seed=1), str(flat))
    assert ww_ray.analyze(str(flat))["layer_name"].tolist() == names


def test_plan_reads_no_weight_and_shards_are_tensor_names(zoo, read_log, local_ray):
    before = _reads(read_log)
    shards = plan_model(zoo / "llama-like", workers=2)
    assert len(shards) >= 2
    names = [layer.entry.name for shard in shards for layer in shard.layers]
    assert len(names) == len(set(names)) == 12 * 7 + 2
    assert {layer.entry.dtype for shard in shards for layer in shard.layers} == {"BF16"}
    assert {Path(layer.entry.file).name for s in shards for layer in s.layers} == {
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
    assert _reads(read_log) == before                  # planning read headers only


def test_sweep_workers_read_only_their_shards_and_rows_equal_analyze(zoo, read_log, local_ray, tmp_path):
    for log in read_log.glob("*.log"):
        log.unlink()
    result, out = _sweep(tmp_path, zoo)
    assert result.counts == {"ok": 2, "failed": 0, "skipped": 0}
    reads = _reads(read_log)
    assert os.getpid() not in reads                        # the driver read no tensor
    every = [name for names in reads.values() for name in names]
    assert len(every) == len(set(every))                   # no tensor read twice: each worker only its shard
    shards = plan_model(zoo / "llama-like", workers=2) + plan_model(zoo / "bert-like", workers=2)
    planned = [{layer.entry.name for layer in shard.layers} for shard in shards]
    assert set(every) == set().union(*planned)
    for names in reads.values():                           # each process read whole shards, nothing else
        got = set(names)
        assert got == set().union(*[p for p in planned if p & got])
    assert len(reads) >= 2                                 # the shards were spread over the workers
    for model_id in ("llama-like", "bert-like"):
        _assert_rows_equal_analyze(out, model_id, ww_ray.analyze(str(zoo / model_id)))


def test_pickled_checkpoint_goes_through_the_streaming_load(local_ray, tmp_path):
    zoo_root = tmp_path / "pickles"
    zoo_root.mkdir()
    state = {k: v.float() for k, v in _state_dict(LLAMA, seed=3).items()}
    torch.save(state, zoo_root / "llama-pickled.pt")
    result, out = _sweep(tmp_path, zoo_root)
    assert result.counts == {"ok": 1, "failed": 0, "skipped": 0}
    _assert_rows_equal_analyze(out, "llama-pickled", ww_ray.analyze(str(zoo_root / "llama-pickled.pt")))


def test_a_worker_killed_mid_shard_still_ends_in_one_row_per_model(zoo, read_log, local_ray, tmp_path):
    for log in read_log.glob("*.log"):
        log.unlink()
    killed: list[int] = []

    def kill_first_reader() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            for log in read_log.glob("*.log"):
                pid = int(log.stem)
                if pid != os.getpid():
                    os.kill(pid, signal.SIGKILL)           # a Ray worker process this test's sweep started
                    killed.append(pid)
                    return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_first_reader, daemon=True)
    killer.start()
    result, out = _sweep(tmp_path, zoo)
    killer.join(timeout=5)
    assert killed, "no worker was seen reading"
    source = result.results[0].source
    assert_one_terminal_row_each(out, {(source, "llama-like"), (source, "bert-like")})
    models = models_frame(out)
    assert set(models["status"]) == {"ok"}
    assert max(r.attempts for r in result.results) >= 2
    for model_id in ("llama-like", "bert-like"):
        _assert_rows_equal_analyze(out, model_id, ww_ray.analyze(str(zoo / model_id)))
