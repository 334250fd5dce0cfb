"""What kind of repo (or model folder) holds a model, judged from its file names and ``config.json``.

No weight is downloaded to judge it: the Hub's file listing (``siblings``), ``config.json`` and, where
cheaply known, tensor names from safetensors headers. The kinds, first match wins:

* ``adapter`` — ``adapter_config.json`` with ``adapter_model.*`` (PEFT/LoRA): deltas for a base model;
* ``quantized`` — ``quantization_config`` in ``config.json`` (GPTQ, AWQ, bitsandbytes, FP8 ...) or
  packed-integer tensor names (``qweight``/``qzeros``/``scales``: GPTQ/AWQ; ``absmax``/``quant_state``/
  ``SCB``: bitsandbytes). No well-kept library can turn those back into float matrices here, so such a
  model ends ``skipped`` with its format named (``quantized_skip_reason``);
* ``full`` — one ``model.safetensors`` (or ``pytorch_model.bin``);
* ``sharded`` — ``model.safetensors.index.json`` / ``*-00001-of-0000N.safetensors`` (or the ``.bin`` index);
* ``gguf`` — ``*.gguf`` files (llama.cpp; read and dequantized by ``zoos.gguf_file``);
* ``no_weights`` — none of these (a card, a tokenizer, a config only).

    >>> judge(["config.json", "model.safetensors"]).kind
    'full'
    >>> judge(["config.json", "model.safetensors"], {"quantization_config": {"quant_method": "gptq", "bits": 4}})
    RepoKind(kind='quantized', format='gptq 4-bit')
    >>> judge(["README.md", "llama-7b.Q8_0.gguf"]).kind, judge(["README.md"]).kind
    ('gguf', 'no_weights')
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Every kind, in the order they are judged.
REPO_KINDS = ("adapter", "quantized", "full", "sharded", "gguf", "no_weights")
#: Kinds whose ``skipped`` is about the repo itself, not a setting (``allow_pickle``, ``max_size``): a
#: rescan records such a repo as a ``skipped`` models row, once per revision. An adapter is one when no
#: reader takes it (a spec with a skip reason); an adapter that is read is analysed like any model.
UNANALYSABLE_KINDS = frozenset({"quantized", "no_weights", "adapter"})

ADAPTER_CONFIG = "adapter_config.json"
_ADAPTER_WEIGHTS = re.compile(r"adapter_model\.(safetensors|bin)")
_SHARD = re.compile(r"(model|pytorch_model)-\d+-of-\d+\.(safetensors|bin)")
_INDEX = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_FULL = ("model.safetensors", "pytorch_model.bin")
# Tensor-name endings of packed quantized layers, by format.
_QUANT_TENSORS = (
    ("GPTQ/AWQ packed int", (".qweight", ".qzeros", ".scales", ".g_idx")),
    ("bitsandbytes", (".absmax", ".quant_map", ".SCB", ".weight_format", "quant_state.bitsandbytes__nf4",
                      "quant_state.bitsandbytes__fp4")),
)


@dataclass(frozen=True)
class RepoKind:
    """A repo's kind and, for ``quantized``, the format (``gptq 4-bit``, ``bitsandbytes``, ...)."""

    kind: str
    format: str | None = None


def quantization_format(config: Mapping[str, Any] | None, tensor_names: Iterable[str] = ()) -> str | None:
    """The quantization format a config or tensor names show, else None."""
    quant = (config or {}).get("quantization_config")
    if isinstance(quant, Mapping) and quant:
        method = str(quant.get("quant_method") or quant.get("quant_type") or "unknown method").lower()
        bits = quant.get("bits") or quant.get("w_bit") or (4 if quant.get("load_in_4bit") else
                                                            8 if quant.get("load_in_8bit") else None)
        return f"{method} {bits}-bit" if bits else method
    for name, endings in _QUANT_TENSORS:
        if any(n.endswith(endings) for n in tensor_names):
            return name
    return None


def judge(files: Iterable[str], config: Mapping[str, Any] | None = None, tensor_names: Iterable[str] = ()) -> RepoKind:
    """The kind of a repo from its root file names, its ``config.json`` and any known tensor names."""
    names = {f for f in files if "/" not in f}
    if ADAPTER_CONFIG in names and any(_ADAPTER_WEIGHTS.fullmatch(f) for f in names):
        return RepoKind("adapter")
    has_weights = any(f.endswith((".safetensors", ".bin")) for f in names)
    quantized = quantization_format(config, tensor_names) if has_weights or tensor_names else None
    if quantized:
        return RepoKind("quantized", quantized)
    if any(f in names for f in _INDEX) or any(_SHARD.fullmatch(f) for f in names):
        return RepoKind("sharded")
    if any(f in names for f in _FULL):
        return RepoKind("full")
    if any(f.lower().endswith(".gguf") for f in names):
        return RepoKind("gguf")
    return RepoKind("no_weights")


def quantized_skip_reason(what: str, fmt: str, base_model: str | None = None) -> str:
    """The ``skipped`` reason of a quantized checkpoint, naming its format and what to do instead."""
    base = f" (its card names the base model {base_model})" if base_model else ""
    return (f"{what} holds {fmt} quantized weights (packed integers with scales, not float matrices); ww_ray "
            f"reads float, GGUF and safetensors checkpoints, and no well-kept library dequantizes {fmt} here. "
            f"Analyse the float checkpoint it was quantized from{base}")


def local_kind(path: Path, config: Mapping[str, Any] | None = None) -> RepoKind:
    """The kind of a local checkpoint: a file by its format, a folder by its file names and config."""
    path = Path(path)
    if path.is_file():
        return RepoKind("gguf" if path.suffix.lower() == ".gguf" else "full")
    try:
        names = [p.name for p in path.iterdir()]
    except OSError:
        return RepoKind("no_weights")
    return judge(names, config)
