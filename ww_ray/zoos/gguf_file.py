"""GGUF files (llama.cpp): tensor names and shapes from the header, weights dequantized one tensor at a time.

Reading is the ``gguf`` package's (``GGUFReader`` memory-maps the file; ``gguf.quants.dequantize``
turns F32/F16/BF16 and the block-quantized types Q8_0, Q4_K ... into float32). Nothing in the file is
executed. Two facts of the format this module owns:

* **Shapes are stored reversed.** GGUF lists dimensions fastest-first (``ne[0]`` is the input width),
  so a Linear weight of torch shape (out, in) has GGUF shape [in, out]. ``tensor_entries`` reports the
  torch order, and the dequantized array is reshaped to it: rows are output units, as in the float
  checkpoint the file was converted from (llama.cpp's converters may permute the rows of Q/K for
  RoPE, which leaves singular values unchanged).
* **Names.** llama.cpp names tensors ``token_embd.weight`` (input embedding), ``blk.<n>.attn_q.weight``
  ... and ``output.weight`` (the LM head, absent when tied). They are kept as the layer names;
  ``names.EMBEDDING_COMPONENTS`` knows the embedding tables, and ``gguf_order_key`` gives forward order
  (embeddings, blocks in numeric order with attention before the feed-forward, head last).

Quantization error, per element (what ``tests/test_zoos_gguf.py`` checks): F32 exact; F16 relative
2⁻¹¹ (round to nearest; plus 2⁻²⁵ absolute for values below 2⁻¹⁴, F16 subnormals); Q8_0, blocks of 32 with scale d = max|block|/127 stored as F16, |x − x̂| ≤
0.5·d + 127·|d − fp16(d)| ≤ (0.5 + 127·2⁻¹¹)·d ≈ 0.562·d — the rounding of the scale adds to the
0.5·d of rounding each element. The spectral metrics of a dequantized file are those of the
dequantized matrices, exactly; against the float model they move as the matrices do (each singular
value by at most ‖W − Ŵ‖₂ ≤ ‖W − Ŵ‖_F, Weyl).
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ww_ray.errors import CheckpointError

GGUF_SUFFIX = ".gguf"
GGUF_MAGIC = b"GGUF"

# Forward order of the parts of a llama.cpp block (attention, then the feed-forward); others after.
_BLOCK_ORDER = {name: rank for rank, name in enumerate((
    "attn_norm", "attn_qkv", "attn_q", "attn_k", "attn_v", "attn_output", "attn_out", "post_attention_norm",
    "ffn_norm", "ffn_gate_inp", "ffn_gate", "ffn_up", "ffn_gate_exps", "ffn_up_exps", "ffn_down",
    "ffn_down_exps", "post_ffw_norm", "layer_output_norm"))}
_BLOCK = re.compile(r"^blk\.(\d+)\.(.+?)(\.weight|\.bias)?$")
_FLOAT_TYPES = ("F32", "F16", "BF16", "F64")


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor of a GGUF file: name, torch-order shape, stored type (``F16``, ``Q8_0`` ...)."""

    name: str
    shape: tuple[int, ...]
    type_name: str


def is_gguf(path: Path) -> bool:
    """True for a file that starts with the GGUF magic."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == GGUF_MAGIC
    except OSError:
        return False


def _reader(path: Path) -> Any:
    from gguf import GGUFReader

    try:
        return GGUFReader(str(path), "r")
    except Exception as exc:  # truncated, not GGUF, unknown version: the reader raises ValueError & co.
        raise CheckpointError(f"{path} is not a readable GGUF file: {type(exc).__name__}: {exc}") from exc


def gguf_order_key(name: str) -> tuple:
    """Forward order of llama.cpp tensor names: embeddings, blocks by number (attention, feed-forward), head."""
    match = _BLOCK.match(name)
    if match:
        part = match.group(2)
        return (1, int(match.group(1)), _BLOCK_ORDER.get(part, len(_BLOCK_ORDER)), part)
    if "embd" in name or name.startswith(("token_types", "tok_embeddings")):
        return (0, 0, 0, name)
    if name.startswith(("output", "lm_head", "cls")):
        return (3, 0, 0, name)
    return (2, 0, 0, name)


def tensor_entries(path: str | Path) -> list[GGUFTensor]:
    """Every tensor of a GGUF file from its header (nothing dequantized), in forward order."""
    reader = _reader(Path(path))
    entries = [GGUFTensor(str(t.name), tuple(int(d) for d in reversed(list(t.shape))), t.tensor_type.name)
               for t in reader.tensors]
    return sorted(entries, key=lambda e: gguf_order_key(e.name))


def architecture(path: str | Path) -> str | None:
    """``general.architecture`` of a GGUF file (``llama``, ``qwen2`` ...), None when absent."""
    reader = _reader(Path(path))
    field = reader.fields.get("general.architecture")
    if field is None or not field.data:
        return None
    try:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    except (UnicodeDecodeError, IndexError, TypeError):
        return None


def iter_gguf(path: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, float32 tensor)`` of every float or quantized tensor of 2 or more dimensions, in forward
    order, dequantized one at a time (1-D norms and integer tensors hold no matrix and are not read)."""
    from gguf.quants import dequantize

    path = Path(path)
    reader = _reader(path)
    tensors = {str(t.name): t for t in reader.tensors}
    for name in sorted(tensors, key=gguf_order_key):
        tensor = tensors[name]
        shape = tuple(int(d) for d in reversed(list(tensor.shape)))
        kind = tensor.tensor_type.name
        if len(shape) < 2 or (kind.startswith("I") and kind not in _FLOAT_TYPES):
            continue
        try:
            values = np.asarray(dequantize(tensor.data, tensor.tensor_type), dtype=np.float32).reshape(shape)
        except NotImplementedError as exc:
            raise CheckpointError(f"{path}: tensor {name!r} is stored as {kind}, which the gguf package cannot "
                                  f"dequantize ({exc})") from exc
        except ValueError as exc:
            raise CheckpointError(f"{path}: tensor {name!r} ({kind}, shape {shape}) is truncated or malformed: "
                                  f"{exc}") from exc
        if not values.flags.writeable:  # F32 comes back as a view of the read-only memory map
            values = values.copy()
        yield name, torch.from_numpy(values)
        del values


# The most precise first: a repo publishing several quantizations of one model is read at the best one.
_PRECISION = ("f32", "bf16", "f16", "q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_0", "q4_k_m", "q4_k_s", "q4_0")


def pick_gguf_file(names: Iterable[str], pattern: str | None = None) -> str | None:
    """The ``.gguf`` file of a repo to read: one matching ``pattern`` (a glob) when given, else the most
    precise by its file name (F32, BF16, F16, Q8_0, ... then the rest by name); split files
    (``-00001-of-00003.gguf``) are not chosen. None when there is none."""
    candidates = sorted(n for n in names if n.lower().endswith(GGUF_SUFFIX) and "/" not in n
                        and not re.search(r"-\d{5}-of-\d{5}\.gguf$", n.lower()))
    if pattern:
        candidates = [n for n in candidates if fnmatch.fnmatchcase(n, pattern)]

    def rank(name: str) -> tuple[int, str]:
        tokens = re.split(r"[.\-_]", name.lower()[: -len(GGUF_SUFFIX)])
        joined = "_".join(tokens)
        for i, tag in enumerate(_PRECISION):
            if tag in tokens or joined.endswith(f"_{tag}"):
                return i, name
        return len(_PRECISION), name

    return min(candidates, key=rank) if candidates else None
