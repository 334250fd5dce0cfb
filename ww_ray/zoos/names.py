"""Naming conventions of weight keys: embeddings, output heads, and a depth order for key lists.

Checkpoints that do not come from an instantiated module (safetensors headers list names
alphabetically) need an order that approximates depth: embeddings first, blocks in numeric order
(``h.2`` before ``h.10``), output heads last.
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


_TOKEN_TABLES = frozenset({"wte", "word_embeddings", "embed_tokens", "tokens_embed", "token_embedding",
                           "word_embedding", "shared"})


def depth_order_key(name: str) -> tuple:
    """Approximate depth order for key lists with no module order.

    Token embedding tables first, then other embeddings, the body with block numbers compared
    numerically, and output heads last.
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
    return (rank, natural_key(name))


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
