"""GGUF files written with the real ``gguf`` package (GGUFWriter) from a small float model, read back by ww_ray.

F32, F16 and Q8_0: the dequantized matrices have the float model's (out, in) orientation (GGUF stores
dimensions reversed) and equal its rows within the stated per-element error; the metrics of a GGUF
file are exactly those of its dequantized matrices, and within Weyl's bound of the float model's.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType, GGUFWriter  # noqa: E402
from gguf.quants import quantize  # noqa: E402

import ww_ray  # noqa: E402
from ww_ray.config import parse_config  # noqa: E402
from ww_ray.errors import CheckpointError  # noqa: E402
from ww_ray.zoos.checkpoint import iter_state_dict  # noqa: E402
from ww_ray.zoos.gguf_file import pick_gguf_file, tensor_entries  # noqa: E402
from ww_ray.zoos.registry import enumerate_specs, load_layer_weights  # noqa: E402

HIDDEN, INTER, VOCAB = 64, 96, 80
Q8_SCALE_BOUND = 0.5 + 127 * 2.0 ** -11   # × max|block|/127: element rounding plus the F16 scale's rounding


def float_model(seed: int = 0) -> dict[str, np.ndarray]:
    """A small llama-like float model, GGUF names, torch (out, in) shapes; rectangular so a transpose shows."""
    rng = np.random.default_rng(seed)
    weights = {"token_embd.weight": rng.standard_normal((VOCAB, HIDDEN))}
    for block in range(2):
        weights[f"blk.{block}.attn_norm.weight"] = np.ones(HIDDEN)
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            weights[f"blk.{block}.{name}.weight"] = rng.standard_normal((HIDDEN, HIDDEN)) / np.sqrt(HIDDEN)
        weights[f"blk.{block}.ffn_up.weight"] = rng.standard_normal((INTER, HIDDEN)) / np.sqrt(HIDDEN)
        weights[f"blk.{block}.ffn_gate.weight"] = rng.standard_normal((INTER, HIDDEN)) / np.sqrt(HIDDEN)
        weights[f"blk.{block}.ffn_down.weight"] = rng.standard_normal((HIDDEN, INTER)) / np.sqrt(INTER)
    weights["output.weight"] = rng.standard_normal((VOCAB, HIDDEN)) / np.sqrt(HIDDEN)
    return {k: v.astype(np.float32) for k, v in weights.items()}


def write_gguf(path: Path, weights: dict[str, np.ndarray], qtype: GGMLQuantizationType) -> Path:
    writer = GGUFWriter(str(path), "llama")
    for name, array in weights.items():
        if array.ndim < 2 or qtype == GGMLQuantizationType.F32:
            writer.add_tensor(name, array)
        elif qtype == GGMLQuantizationType.F16:
            writer.add_tensor(name, array.astype(np.float16))
        else:
            writer.add_tensor(name, quantize(array, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("gguf")
    weights = float_model()
    return {q.name: write_gguf(folder / f"tiny.{q.name}.gguf", weights, q)
            for q in (GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.Q8_0)}


def test_header_shapes_are_torch_order_and_names_kept(files):
    weights = float_model()
    entries = {e.name: e for e in tensor_entries(files["Q8_0"])}
    assert entries["blk.0.ffn_up.weight"].shape == (INTER, HIDDEN)       # GGUF itself says [64, 96]
    assert entries["blk.0.ffn_down.weight"].shape == (HIDDEN, INTER)
    assert entries["blk.0.ffn_up.weight"].type_name == "Q8_0" and entries["blk.0.attn_norm.weight"].type_name == "F32"
    assert set(entries) == set(weights)


@pytest.mark.parametrize("qtype", ["F32", "F16", "Q8_0"])
def test_dequantized_rows_equal_the_float_model_within_the_stated_error(files, qtype):
    weights = float_model()
    read = dict(iter_state_dict(files[qtype]))
    assert "blk.0.attn_norm.weight" not in read    # 1-D tensors hold no matrix and are not dequantized
    assert set(read) == {k for k, v in weights.items() if v.ndim == 2}
    for name, tensor in read.items():
        original, got = weights[name].astype(np.float64), tensor.numpy().astype(np.float64)
        assert tensor.dtype == torch.float32 and got.shape == original.shape, name
        if qtype == "F32":
            assert np.array_equal(got, original), name
        elif qtype == "F16":
            # round to nearest half: relative 2⁻¹¹, and half the subnormal spacing (2⁻²⁵) below 2⁻¹⁴
            assert np.all(np.abs(got - original) <= 2.0 ** -11 * np.abs(original) + 2.0 ** -25), name
        else:
            blocks = original.reshape(original.shape[0], -1, 32)
            bound = Q8_SCALE_BOUND * np.abs(blocks).max(axis=-1, keepdims=True) / 127
            error = np.abs(got.reshape(blocks.shape) - blocks)
            assert np.all(error <= bound), name
            assert np.abs(got - original).max() > 0      # it really was quantized
    if qtype == "Q8_0":  # the 0.5·max|block|/127 of element rounding alone is exceeded: the scale is F16
        up = weights["blk.0.ffn_up.weight"].astype(np.float64).reshape(INTER, -1, 32)
        ratio = np.abs(read["blk.0.ffn_up.weight"].numpy().reshape(up.shape) - up) / (np.abs(up).max(-1, keepdims=True) / 127)
        assert 0.5 < ratio.max() <= Q8_SCALE_BOUND


def test_metrics_of_a_gguf_file_are_those_of_its_dequantized_matrices(files):
    weights = float_model()
    columns = ["layer_name", "layer_type", "N", "M", "lambda_max", "norm", "alpha", "stable_rank", "entropy"]
    float_rows = ww_ray.analyze({k: torch.from_numpy(v) for k, v in weights.items()}, min_evals=10)
    f32 = ww_ray.analyze(str(files["F32"]), min_evals=10)
    assert (f32["status"] == "ok").all() and len(f32) == len(float_rows) == 1 + 2 * 7 + 1
    assert f32["layer_type"].tolist()[:2] == ["embedding", "linear"] and f32["layer_name"].iloc[0] == "token_embd"
    # forward order: embedding, then block 0 attention q, k, v, output, then the feed-forward
    assert f32["layer_name"].tolist()[1:8] == ["blk.0.attn_q", "blk.0.attn_k", "blk.0.attn_v", "blk.0.attn_output",
                                               "blk.0.ffn_gate", "blk.0.ffn_up", "blk.0.ffn_down"]
    assert f32["architecture"].iloc[0] == "llama"
    by_name = float_rows.set_index("layer_name").loc[f32["layer_name"], columns[1:]]
    np.testing.assert_array_equal(f32[columns[1:4]].to_numpy(), by_name[columns[1:4]].to_numpy())
    np.testing.assert_allclose(f32[columns[4:]].to_numpy(float), by_name[columns[4:]].to_numpy(float), rtol=1e-12)
    q8 = ww_ray.analyze(str(files["Q8_0"]), min_evals=10)
    dequantized = ww_ray.analyze(dict(iter_state_dict(files["Q8_0"])), min_evals=10).set_index("layer_name")
    np.testing.assert_allclose(q8[columns[4:]].to_numpy(float),
                               dequantized.loc[q8["layer_name"], columns[4:]].to_numpy(float), rtol=1e-12)
    # against the float model: each singular value moves by at most ‖W − Ŵ‖_F (Weyl)
    read = dict(iter_state_dict(files["Q8_0"]))
    for row in q8.itertuples():
        frob = np.linalg.norm(read[f"{row.layer_name}.weight"].numpy().astype(np.float64)
                              - weights[f"{row.layer_name}.weight"].astype(np.float64))
        sigma_float = np.sqrt(by_name.loc[row.layer_name, "lambda_max"])
        assert abs(np.sqrt(row.lambda_max) - sigma_float) <= frob + 1e-9


def test_local_zoo_lists_and_reads_gguf_files(files, tmp_path):
    folder = tmp_path / "zoo"
    folder.mkdir()
    (folder / "tiny.gguf").write_bytes(files["Q8_0"].read_bytes())
    (folder / "broken.gguf").write_bytes(b"GGUF" + b"\x00" * 10)
    config = parse_config({"zoos": [{"kind": "local", "path": str(folder)}]})
    broken, tiny = enumerate_specs(config)
    assert tiny.model_id == "tiny" and tiny.repo_kind == "gguf"
    assert tiny.params == sum(v.size for v in float_model().values())
    layers = list(load_layer_weights(tiny))
    assert [w.kind for w in layers].count("linear") == 2 * 7 + 1 and layers[0].kind == "embedding"
    assert layers[1].shape == (HIDDEN, HIDDEN) and next(w for w in layers if w.name == "blk.0.ffn_up").shape == (INTER, HIDDEN)
    with pytest.raises(CheckpointError, match="not a readable GGUF file"):
        list(load_layer_weights(broken))
    row = ww_ray.analyze(str(folder / "broken.gguf"))
    assert row["status"].tolist() == ["failed"] and "GGUF" in row["error"].iloc[0]


def test_the_most_precise_gguf_file_of_a_repo_is_chosen():
    names = ["README.md", "m.Q4_K_M.gguf", "m.Q8_0.gguf", "m-f16.gguf", "big-00001-of-00002.gguf"]
    assert pick_gguf_file(names) == "m-f16.gguf"
    assert pick_gguf_file(names[:3]) == "m.Q8_0.gguf"
    assert pick_gguf_file(names, "*Q4_K_M*") == "m.Q4_K_M.gguf"
    assert pick_gguf_file(["README.md"]) is None
