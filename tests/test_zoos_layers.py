"""Layer typing from modules and state dicts: GPT-2 Conv1D, tied heads, embeddings, convs, order."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tests._zoos_util import tiny_gpt2
from ww_ray.zoos.checkpoint import iter_state_dict
from ww_ray.zoos.layers import (
    classify, guess_model_type, layer_weights_from_module, layer_weights_from_state_dict, meta_tensors,
)
from ww_ray.zoos.source import open_source


def _summary(weights) -> list[tuple[str, str, tuple[int, ...]]]:
    return [(w.name, w.kind, w.shape) for w in weights]


def test_classify_rules() -> None:
    assert classify("bn.running_mean", (8,)).kind is None
    assert classify("fc.bias", (8,)).kind is None
    assert classify("ln.weight", (8,)).kind is None
    assert classify("fc.weight", (8, 4)).kind == "linear"
    assert classify("embeddings.word_embeddings.weight", (100, 8)).kind == "embedding"
    assert classify("gpt_neox.embed_out.weight", (100, 8)).kind == "linear"   # an output head, not a table
    assert classify("h.0.attn.c_attn.weight", (8, 24), model_type="gpt2").kind == "hf_conv1d"
    assert classify("h.0.attn.c_attn.weight", (24, 8), model_type="gpt_bigcode").kind == "linear"
    assert classify("conv.weight", (8, 4, 3)).kind == "conv1d"
    assert classify("conv.weight", (8, 4, 3, 3)).kind == "conv2d"
    assert classify("q.weight", (8, 4), dtype=torch.int8).kind is None


def test_gpt2_module_state_dict_and_safetensors_agree(tmp_path: Path) -> None:
    model = tiny_gpt2(n_layer=2)
    from_module = layer_weights_from_module(model)
    expected = [("transformer.wte", "embedding", (64, 32)), ("transformer.wpe", "embedding", (16, 32))]
    for block in range(2):
        prefix = f"transformer.h.{block}"
        expected += [(f"{prefix}.attn.c_attn", "hf_conv1d", (32, 96)), (f"{prefix}.attn.c_proj", "hf_conv1d", (32, 32)),
                     (f"{prefix}.mlp.c_fc", "hf_conv1d", (32, 128)), (f"{prefix}.mlp.c_proj", "hf_conv1d", (128, 32))]
    # The lm_head shares the wte weight: listed once.
    assert _summary(from_module) == expected
    assert [w.index for w in from_module] == list(range(len(expected)))

    state = model.state_dict()
    assert "lm_head.weight" in state and guess_model_type(state) == "gpt2"
    from_state = list(layer_weights_from_state_dict(state.items(), model_type="gpt2"))
    assert _summary(from_state) == expected

    # Hugging Face folder: save_pretrained drops the tied head; keys come back in depth order.
    model.save_pretrained(tmp_path / "gpt2-tiny")
    spec, layers = open_source(tmp_path / "gpt2-tiny")
    assert spec.architecture == "gpt2"
    assert _summary(layers) == expected

    # A pickle whose lm_head is an untied copy with identical content is still counted once.
    copy = {k: v.clone() for k, v in state.items()}
    torch.save(copy, tmp_path / "gpt2.pt")
    spec, layers = open_source(tmp_path / "gpt2.pt")
    assert spec.architecture == "gpt2" and _summary(layers) == expected


def test_untied_head_is_kept() -> None:
    model = tiny_gpt2(n_layer=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["lm_head.weight"] = torch.randn_like(state["lm_head.weight"])
    names = [w.name for w in layer_weights_from_state_dict(state.items(), model_type="gpt2")]
    assert names[-1] == "lm_head"


def test_openai_gpt_layers() -> None:
    from transformers import OpenAIGPTConfig, OpenAIGPTLMHeadModel

    model = OpenAIGPTLMHeadModel(OpenAIGPTConfig(n_layer=1, n_embd=16, n_head=2, vocab_size=40, n_positions=8))
    kinds = {w.name: w.kind for w in layer_weights_from_module(model)}
    assert kinds == {"transformer.tokens_embed": "embedding", "transformer.positions_embed": "embedding",
                     "transformer.h.0.attn.c_attn": "hf_conv1d", "transformer.h.0.attn.c_proj": "hf_conv1d",
                     "transformer.h.0.mlp.c_fc": "hf_conv1d", "transformer.h.0.mlp.c_proj": "hf_conv1d"}
    state = model.state_dict()
    assert guess_model_type(state) == "openai-gpt"
    from_state = {w.name: w.kind for w in layer_weights_from_state_dict(state.items(), model_type="openai-gpt")}
    assert from_state == kinds


def test_paper_gpt2_sizes_map_on_meta_device() -> None:
    """gpt2 and gpt2-medium at their real sizes (meta tensors: no memory): layer counts and shapes."""
    from transformers import GPT2Config, GPT2LMHeadModel

    for n_layer, n_embd in ((12, 768), (24, 1024)):
        with torch.device("meta"):
            model = GPT2LMHeadModel(GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=16))
        weights = layer_weights_from_module(model)
        kinds = [w.kind for w in weights]
        assert kinds.count("embedding") == 2 and kinds.count("hf_conv1d") == 4 * n_layer
        assert len(weights) == 2 + 4 * n_layer            # no lm_head: it is tied to wte
        assert weights[0].shape == (50257, n_embd) and weights[2].shape == (n_embd, 3 * n_embd)


class _DepthwiseNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3)                    # grayscale input: one input channel, groups 1
        self.dw = nn.Conv2d(8, 8, 3, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.grouped = nn.Conv2d(16, 16, 3, groups=4)
        self.seq = nn.Conv1d(16, 4, 5)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Linear(16, 10)


def test_conv_groups_from_module_and_state_dict() -> None:
    net = _DepthwiseNet()
    from_module = [(w.name, w.kind, w.groups) for w in layer_weights_from_module(net)]
    assert from_module == [("stem", "conv2d", 1), ("dw", "conv2d", 8), ("pw", "conv2d", 1),
                           ("grouped", "conv2d", 4), ("seq", "conv1d", 1), ("head", "linear", 1)]
    from_state = [(w.name, w.kind, w.groups) for w in layer_weights_from_state_dict(net.state_dict().items())]
    # Depthwise is recognised from the shapes; other grouped convs cannot be told apart and stay 1.
    assert from_state == [("stem", "conv2d", 1), ("dw", "conv2d", 8), ("pw", "conv2d", 1),
                          ("grouped", "conv2d", 1), ("seq", "conv1d", 1), ("head", "linear", 1)]


def test_pytorchcv_module_order_matches_state_dict_order() -> None:
    from pytorchcv.model_provider import get_model

    net = get_model("resnet20_cifar10", pretrained=False)
    from_module = layer_weights_from_module(net)
    from_state = list(layer_weights_from_state_dict(net.state_dict().items()))
    assert [w.name for w in from_module] == [w.name for w in from_state]
    assert len(from_module) == 22 and from_module[0].name == "features.init_block.conv"
    assert from_module[-1].name == "output" and from_module[-1].kind == "linear"


def test_akamaster_layers(akamaster_dir: Path) -> None:
    weights = list(layer_weights_from_state_dict(iter_state_dict(akamaster_dir / "resnet56-4bfd9763.th")))
    assert len(weights) == 56 and [w.kind for w in weights].count("conv2d") == 55
    assert weights[-1].name == "linear" and weights[-1].shape == (10, 64)
    assert all(w.groups == 1 for w in weights)


def test_minilm_layers_in_depth_order(minilm_dir: Path, tmp_path: Path) -> None:
    spec, layers = open_source(minilm_dir)
    weights = list(layers)
    assert spec.architecture == "bert"
    names = [w.name for w in weights]
    assert names[:3] == ["embeddings.word_embeddings", "embeddings.position_embeddings",
                         "embeddings.token_type_embeddings"]      # BERT's module order
    assert [w.kind for w in weights[:3]] == ["embedding"] * 3
    # 6 blocks x (q, k, v, attention output, intermediate, output) + pooler, blocks in numeric order.
    assert len(weights) == 3 + 6 * 6 + 1 and names[-1] == "pooler.dense"
    blocks = [int(n.split(".")[2]) for n in names if n.startswith("encoder.layer.")]
    assert blocks == sorted(blocks)
    assert weights[3].shape == (384, 384) and spec.params == 22_713_216


def test_depth_sort_for_unordered_keys() -> None:
    state = {f"blocks.{i}.fc.weight": torch.randn(4, 4) for i in (10, 2, 1)}
    state["head.weight"] = torch.randn(3, 4)
    state["lm_head.weight"] = torch.randn(5, 4)
    state["tok_embeddings.weight"] = torch.randn(5, 4)
    names = [w.name for w in layer_weights_from_state_dict(state, depth_sort=True)]
    assert names == ["tok_embeddings", "blocks.1.fc", "blocks.2.fc", "blocks.10.fc", "head", "lm_head"]
    assert [w.name for w in layer_weights_from_state_dict(state)][:3] == ["blocks.10.fc", "blocks.2.fc", "blocks.1.fc"]


def test_shapes_from_headers_follow_the_same_rules_as_tensors() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Flatten(), nn.Linear(8, 4))
    state = model.state_dict()
    header = [(k, tuple(v.shape), "F32") for k, v in state.items()] + [
        ("extra.weight", (5, 5), "BF16"), ("ids.weight", (5, 5), "I64"), ("odd.weight", (5, 5), "F4_UNKNOWN")]
    from_header = list(layer_weights_from_state_dict(meta_tensors(header)))
    from_tensors = list(layer_weights_from_state_dict(state))
    described = [(w.name, w.index, w.kind, w.shape, w.groups) for w in from_header]
    assert described[:3] == [(w.name, w.index, w.kind, w.shape, w.groups) for w in from_tensors]
    assert described[1][4] == 8  # the depthwise conv's groups inferred from shapes alone
    assert described[3] == ("extra", 3, "linear", (5, 5), 1)  # bf16 is a float; int64 and unknown dtypes are not
    assert len(described) == 4 and all(w.tensor.is_meta for w in from_header)
