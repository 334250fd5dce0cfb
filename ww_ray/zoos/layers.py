"""Turn named tensors or a live module into typed ``LayerWeight`` objects in depth order.

From a module the layer types are exact (``nn.Linear``, ``nn.Conv1d/2d`` with their real
``groups``, ``nn.Embedding``, transformers' GPT-2 ``Conv1D``). From a state dict they are
inferred from the key name and tensor shape, helped by the Hugging Face ``model_type``: 2-D →
linear, GPT-2-style ``Conv1D`` weights (stored (in, out)) → hf_conv1d, embedding tables →
embedding, 3-D → conv1d, 4-D → conv2d. Biases, norms, BatchNorm statistics and non-float tensors
are left out, and an output head tied to the input embedding is counted once.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ww_ray.weights import CONV1D, CONV2D, EMBEDDING, HF_CONV1D, LINEAR, LayerWeight
from ww_ray.zoos.names import depth_order_key, is_embedding_path, is_tied_head_path, last_component, module_path

# transformers model types whose projection layers are ``transformers.pytorch_utils.Conv1D``.
HF_CONV1D_MODEL_TYPES = frozenset({"gpt2", "openai-gpt", "imagegpt", "decision_transformer"})
HF_CONV1D_COMPONENTS = frozenset({"c_attn", "c_fc", "c_proj", "q_attn"})
_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class Classification:
    """What a state-dict entry is: a layer ``kind`` (None when left out) and why."""

    kind: str | None
    reason: str


def classify(key: str, shape: tuple[int, ...], dtype: torch.dtype | str | None = None,
             model_type: str | None = None) -> Classification:
    """Decide whether a state-dict entry is an analysable layer weight and of which kind."""
    last = key.rsplit(".", 1)[-1]
    if last in _BN_STATS:
        return Classification(None, "batch-norm statistic")
    if dtype is not None and not _is_float(dtype):
        return Classification(None, f"non-float tensor ({dtype})")
    if last != "weight":
        return Classification(None, "not a weight (bias, buffer or free parameter)")
    ndim = len(shape)
    if ndim <= 1:
        return Classification(None, "1-D weight (normalisation or scale)")
    path = module_path(key)
    if ndim == 2:
        if is_embedding_path(path):
            return Classification(EMBEDDING, "embedding table")
        if _is_hf_conv1d(path, shape, model_type):
            return Classification(HF_CONV1D, "GPT-2 style Conv1D, stored (in, out)")
        return Classification(LINEAR, "dense (out, in)")
    if ndim == 3:
        return Classification(CONV1D, "conv1d (out, in/groups, k)")
    if ndim == 4:
        return Classification(CONV2D, "conv2d (out, in/groups, kh, kw)")
    return Classification(None, f"{ndim}-D weight (no matrix rule for it)")


def _is_float(dtype: torch.dtype | str) -> bool:
    if isinstance(dtype, torch.dtype):
        return dtype.is_floating_point
    text = str(dtype).lower().replace("torch.", "")
    return text.startswith(("float", "bfloat", "f16", "f32", "f64", "bf16", "half", "double", "f8"))


def _is_hf_conv1d(path: str, shape: tuple[int, ...], model_type: str | None) -> bool:
    last = last_component(path)
    if last not in HF_CONV1D_COMPONENTS:
        return False
    if model_type is not None:
        return model_type.lower() in HF_CONV1D_MODEL_TYPES
    # No config: GPT-2 layout ("h.<n>.attn.c_attn"); c_attn / c_fc widen the input, so (in, out) has in < out.
    parts = path.split(".")
    in_gpt2_block = "h" in parts and any(p in ("attn", "mlp", "crossattention") for p in parts)
    if not in_gpt2_block:
        return False
    if last in ("c_attn", "c_fc"):
        return shape[1] > shape[0]
    return True


def guess_model_type(keys: Iterable[str]) -> str | None:
    """A Hugging Face ``model_type`` recognised from key names alone (GPT-2 / openai-gpt), else None."""
    keys = list(keys)
    has_conv1d = any(k.endswith(("attn.c_attn.weight", "mlp.c_fc.weight")) for k in keys)
    if not has_conv1d:
        return None
    if any(k.endswith("wte.weight") for k in keys):
        return "gpt2"
    if any(k.endswith("tokens_embed.weight") for k in keys):
        return "openai-gpt"
    return None


def _fingerprint(tensor: torch.Tensor) -> tuple:
    """Content identity of a tensor: shape, dtype and SHA-1 of its bytes (no copy for contiguous data)."""
    flat = tensor.detach().contiguous().reshape(-1)
    digest = hashlib.sha1(flat.view(torch.uint8).numpy().data).hexdigest() if flat.numel() else ""
    return (tuple(tensor.shape), str(tensor.dtype), digest)


def layer_weights_from_state_dict(
    items: Iterable[tuple[str, torch.Tensor]] | Mapping[str, torch.Tensor],
    model_type: str | None = None,
    depth_sort: bool = False,
) -> Iterator[LayerWeight]:
    """Yield the analysable weights of ``(name, tensor)`` pairs (or a mapping) in the order given.

    ``layer_index`` counts yielded weights in that order: pass module order (``state_dict()``) or the
    depth order ``checkpoint.iter_state_dict`` produces; ``depth_sort=True`` sorts keys whose order
    is not the module's (embeddings first, block numbers numerically, heads last). Conv2d ``groups`` is inferred only for
    depthwise convs (one input channel per group and a preceding conv whose output width divides
    this one's); otherwise it is 1. An output head (``lm_head`` …) whose content equals an
    embedding already yielded is skipped as tied. ``meta`` tensors (shapes from file headers, see
    :func:`meta_tensors`) follow the same rules, except that tying by content cannot be checked.
    """
    if isinstance(items, Mapping):
        items = items.items()
    if depth_sort:
        items = sorted(items, key=lambda item: depth_order_key(item[0]))
    index = 0
    embedding_prints: set[tuple] = set()
    embedding_ptrs: set[int] = set()
    previous_out: int | None = None
    for key, tensor in items:
        if not isinstance(tensor, torch.Tensor):
            continue
        shape = tuple(int(s) for s in tensor.shape)
        found = classify(key, shape, tensor.dtype, model_type)
        if found.kind is None:
            continue
        path = module_path(key) or key
        has_content = not tensor.is_meta  # shape only (from headers): a head tied by content cannot be seen
        if found.kind == EMBEDDING and has_content:
            embedding_ptrs.add(_data_ptr(tensor))
            embedding_prints.add(_fingerprint(tensor))
        elif found.kind in (LINEAR, HF_CONV1D) and is_tied_head_path(path) and embedding_prints:
            if _data_ptr(tensor) in embedding_ptrs or _fingerprint(tensor) in embedding_prints:
                continue
        groups = 1
        if found.kind in (CONV1D, CONV2D):
            out_channels, in_per_group = shape[0], shape[1]
            if in_per_group == 1 and previous_out and previous_out > 1 and out_channels % previous_out == 0:
                groups = previous_out
            previous_out = out_channels
        yield LayerWeight(name=path, index=index, kind=found.kind, tensor=tensor, groups=groups)
        index += 1


def _data_ptr(tensor: torch.Tensor) -> int:
    try:
        return int(tensor.untyped_storage().data_ptr()) + tensor.storage_offset() * tensor.element_size()
    except (RuntimeError, NotImplementedError):
        return -1


def _is_transformers_conv1d(module: nn.Module) -> bool:
    cls = type(module)
    return cls.__name__ == "Conv1D" and cls.__module__.startswith("transformers")


def layer_weights_from_module(module: nn.Module) -> list[LayerWeight]:
    """The analysable weights of a module, in module (registration) order, named by module path.

    Tied parameters (an ``lm_head`` sharing the embedding's weight) are listed once.
    """
    out: list[LayerWeight] = []
    seen: set[int] = set()
    root_name = type(module).__name__.lower()
    for path, sub in module.named_modules():
        weight = getattr(sub, "weight", None)
        extra: list[tuple[str, str, torch.Tensor, int]] = []
        if isinstance(sub, nn.MultiheadAttention) and sub.in_proj_weight is not None:
            extra.append((f"{path}.in_proj" if path else "in_proj", LINEAR, sub.in_proj_weight, 1))
        if not isinstance(weight, torch.Tensor) or isinstance(weight, nn.parameter.UninitializedParameter):
            weight = None
        kind: str | None = None
        groups = 1
        if weight is not None:
            if isinstance(sub, (nn.Embedding, nn.EmbeddingBag)):
                kind = EMBEDDING
            elif isinstance(sub, nn.Linear):
                kind = LINEAR
            elif _is_transformers_conv1d(sub):
                kind = HF_CONV1D
            elif isinstance(sub, nn.Conv1d):
                kind, groups = CONV1D, int(sub.groups)
            elif isinstance(sub, nn.Conv2d):
                kind, groups = CONV2D, int(sub.groups)
        entries = extra + ([(path or root_name, kind, weight, groups)] if kind is not None else [])
        for name, entry_kind, tensor, entry_groups in entries:
            identity = id(tensor)
            if identity in seen:
                continue
            seen.add(identity)
            out.append(LayerWeight(name=name, index=len(out), kind=entry_kind,
                                   tensor=tensor.detach(), groups=entry_groups))
    return out


# safetensors header dtype names -> torch dtypes (https://github.com/huggingface/safetensors, format spec).
_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
}


def meta_tensors(entries: Iterable[tuple[str, tuple[int, ...], str]]) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` pairs of shape-only ``meta`` tensors from ``(name, shape, dtype)`` header entries.

    ``dtype`` is a safetensors header name (``F32``, ``BF16`` …) or a torch name (``float32``); an
    unknown one becomes ``uint8``, which the layer rules leave out as non-float. Nothing is allocated.
    """
    for name, shape, dtype in entries:
        torch_name = _SAFETENSORS_DTYPES.get(str(dtype).upper(), str(dtype).replace("torch.", ""))
        torch_dtype = getattr(torch, torch_name, None)
        if not isinstance(torch_dtype, torch.dtype):
            torch_dtype = torch.uint8
        yield name, torch.empty(tuple(int(s) for s in shape), dtype=torch_dtype, device="meta")
