"""Naming conventions of weight keys: embeddings, output heads, and a depth order for key lists.

Checkpoints that do not come from an instantiated module (safetensors headers list names
alphabetically) need an order that approximates depth: embeddings first, blocks in numeric order
(``h.2`` before ``h.10``), the parts of a block in forward order (attention before the MLP, q, k, v, o),
output heads last. A Hugging Face folder's true module order comes from ``zoos.forward_order``.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

# Last module-path component of embedding tables (nn.Embedding and look-alikes).
EMBEDDING_COMPONENTS = frozenset(
    {
        "wte", "wpe", "shared", "embed", "embeds", "embedding", "embeddings", "embed_tokens",
        "embed_positions", "word_embeddings", "position_embeddings", "token_type_embeddings",
        "tokens_embed", "positions_embed", "token_embedding", "position_embedding", "word_embedding",
        "rel_embeddings", "relative_attention_bias",
        "token_embd", "position_embd",  # GGUF (llama.cpp) names, zoos.gguf_file
    }
)
_EMBEDDING_SUFFIX = re.compile(r"^[a-z0-9]+_(embed|embeds|embedding|embeddings)$")
_EMBEDDING_ANY = re.compile(r"(embed|^wte$|^wpe$|^shared$)")
# Leading components of output heads (language-model heads, classifiers) in Hugging Face layouts.
HEAD_COMPONENTS = frozenset({"lm_head", "cls", "classifier", "score", "qa_outputs", "embed_out", "output_projection"})
# Module names whose weight is an output head that may be tied to the input embedding.
TIED_HEAD_COMPONENTS = frozenset({"lm_head", "embed_out", "output_projection", "decoder", "pred_layer", "generator"})


def module_path(key: str) -> str:
    """The module path of a parameter key: ``a.b.weight`` → ``a.b``."""
    return key.rsplit(".", 1)[0] if "." in key else ""


def last_component(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def is_embedding_path(path: str) -> bool:
    """True when the module path names an embedding table (``transformer.wte``, ``embeddings.word_embeddings``)."""
    last = last_component(path).lower()
    return last in EMBEDDING_COMPONENTS or bool(_EMBEDDING_SUFFIX.match(last))


def is_tied_head_path(path: str) -> bool:
    """True for module paths of output heads that models commonly tie to their input embedding."""
    return last_component(path).lower() in TIED_HEAD_COMPONENTS


def natural_key(name: str) -> tuple:
    """Sort key that orders numbers inside names numerically: ``h.2`` before ``h.10``."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part
    )


# Forward order of the sub-modules of common transformer blocks, for files with no module to ask
# (safetensors headers are alphabetical: ``mlp`` before ``self_attn``, ``k_proj`` before ``q_proj``).
# Llama/Mistral/Qwen: self_attn (q, k, v, o) then mlp (gate, up, down); BERT: attention (self:
# query, key, value; output) then intermediate then output; GPT-2: attn then mlp; T5: q, k, v, o.
# Unknown components rank after the known ones, alphabetically among themselves.
BLOCK_COMPONENT_ORDER: dict[str, int] = {
    "input_layernorm": 0, "ln_1": 0, "self_attn": 1, "attention": 1, "attn": 1, "self": 1,
    "selfattention": 1, "q_proj": 2, "query": 2, "q": 2, "k_proj": 3, "key": 3, "k": 3,
    "v_proj": 4, "value": 4, "v": 4, "o_proj": 5, "out_proj": 5, "dense": 5, "o": 5,
    "post_attention_layernorm": 6, "ln_2": 6, "crossattention": 7, "encdecattention": 7,
    "mlp": 8, "intermediate": 8, "feed_forward": 8, "densereludense": 8, "gate_proj": 9, "w1": 9,
    "up_proj": 10, "w3": 10, "wi": 10, "down_proj": 11, "w2": 11, "wo": 11, "output": 12,
}
_UNKNOWN_COMPONENT = 100


def block_order_key(name: str) -> tuple:
    """Sort key for names inside one model: numbers numerically, known block parts in forward order.

        >>> names = ["layers.10.mlp.up_proj.weight", "layers.2.mlp.down_proj.weight",
        ...          "layers.2.self_attn.q_proj.weight", "layers.2.mlp.gate_proj.weight"]
        >>> sorted(names, key=block_order_key)[:3]
        ['layers.2.self_attn.q_proj.weight', 'layers.2.mlp.gate_proj.weight', 'layers.2.mlp.down_proj.weight']
    """
    out = []
    for component in name.split("."):
        if component.isdigit():
            out.append((0, int(component), ()))
        else:
            rank = BLOCK_COMPONENT_ORDER.get(component.lower(), _UNKNOWN_COMPONENT)
            out.append((1, rank, natural_key(component)))
    return tuple(out)


_TOKEN_TABLES = frozenset({"wte", "word_embeddings", "embed_tokens", "tokens_embed", "token_embedding",
                           "word_embedding", "shared", "token_embd"})


def depth_order_key(name: str) -> tuple:
    """Approximate depth order for key lists with no module order.

    Token embedding tables first, then other embeddings, the body with block numbers compared
    numerically and the parts of a block in their forward order (``block_order_key``), and
    output heads last.
    """
    parts = name.split(".")
    modules = parts[:-1]
    if parts[0] in HEAD_COMPONENTS or (modules and modules[-1] in HEAD_COMPONENTS):
        rank = 3
    elif modules and modules[-1] in _TOKEN_TABLES:
        rank = 0
    elif any(_EMBEDDING_ANY.search(p.lower()) for p in modules):
        rank = 1
    else:
        rank = 2
    return (rank, block_order_key(name))


# Buffers saved in state dicts that are not parameters (statistics, masks, index tables).
_BUFFER_COMPONENTS = frozenset({"running_mean", "running_var", "num_batches_tracked", "position_ids", "masked_bias"})


def is_buffer_key(key: str) -> bool:
    """True for state-dict entries that are buffers, not parameters (BN statistics, GPT-2 causal masks)."""
    last = last_component(key)
    if last in _BUFFER_COMPONENTS:
        return True
    # GPT-2's causal mask is saved as "<block>.attn.bias", a 4-D bool/float buffer.
    return key.endswith(("attn.bias", "attn.masked_bias")) and ".c_attn." not in key


def count_parameters(entries: Iterable[tuple[str, tuple[int, ...]]]) -> int:
    """Number of parameters from ``(key, shape)`` pairs, buffers left out."""
    total = 0
    for key, shape in entries:
        if is_buffer_key(key):
            continue
        count = 1
        for dim in shape:
            count *= int(dim)
        total += count
    return total
