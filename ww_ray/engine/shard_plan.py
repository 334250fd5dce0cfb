"""Plan a safetensors model's shards from its tensor index, and turn one shard back into layer weights.

A ``LazyShard`` is a list of layers, each naming one tensor (file, name, dtype, byte range) with
its place in forward order (``layer_index``), its kind and its conv groups — decided from the
headers alone, through the same rules as an in-process ``analyze`` (``zoos.layers``) applied to
shape-only ``meta`` tensors. The plan never reads a weight; the worker that computes a shard reads
only that shard's tensors (``read_layer_weights``), one at a time and in their stored dtype.

Layers are grouped into shards of balanced eigenvalue cost (``engine.shards.split_by_cost``), with
enough shards that none holds more than ``MAX_SHARD_BYTES`` of stored weights; a matrix of
``SOLO_WIDENED_BYTES`` or more once widened (an LLM's embedding and head) is a shard of its own. One departure from
the in-process path: an output head whose content equals the embedding is recognised there by
content; here, without content, a head is dropped as tied only when ``config.json`` says
``tie_word_embeddings: true`` (safetensors files of tied models normally omit the head anyway).
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ww_ray.engine.shards import split_by_cost
from ww_ray.weights import CONV1D, CONV2D, EMBEDDING, LayerWeight
from ww_ray.zoos.tensor_index import TensorEntry

#: A shard never holds more stored weight bytes than this (bounds a worker's memory).
MAX_SHARD_BYTES = 512 << 20
#: A matrix this large once widened to float32 gets a shard of its own, so that its worker never holds
#: a batch of other matrices beside it (a Llama embedding or head: 32000×2048 is 262 MB in float32).
SOLO_WIDENED_BYTES = 128 << 20


@dataclass(frozen=True)
class LazyLayer:
    """One layer of a planned shard: the tensor to read and what the layer rules decided about it."""

    entry: TensorEntry
    layer_name: str
    layer_index: int
    kind: str
    groups: int = 1

    @property
    def cost(self) -> float:
        """Floating-point operations of its eigen-solves (Gram GEMM + symmetric eigen-solve)."""
        shape = self.entry.shape
        if len(shape) < 2:
            return 0.0
        out, inner = shape[0], shape[1]
        positions = math.prod(shape[2:]) if self.kind in (CONV1D, CONV2D) else 1
        n, m = max(out, inner), min(out, inner)
        return float(positions * (2.0 * n * m * m + 4.0 * m ** 3))


@dataclass(frozen=True)
class LazyShard:
    """Layers one worker reads and computes; small enough to travel by value."""

    layers: tuple[LazyLayer, ...]

    @property
    def nbytes(self) -> int:
        return sum(layer.entry.nbytes for layer in self.layers)

    @property
    def cost(self) -> float:
        return sum(layer.cost for layer in self.layers)


def plan_layers(index: Mapping[str, TensorEntry], config: Mapping[str, Any] | None) -> list[LazyLayer]:
    """The analysable layers of a checkpoint's tensor index in forward order, decided from headers only."""
    from ww_ray.zoos.forward_order import forward_order
    from ww_ray.zoos.layers import guess_model_type, layer_weights_from_state_dict, meta_tensors
    from ww_ray.zoos.names import is_tied_head_path

    config = dict(config or {})
    model_type = config.get("model_type") if isinstance(config.get("model_type"), str) else None
    model_type = model_type or guess_model_type(index)
    order = forward_order(index, config or None)
    metas = list(meta_tensors((name, index[name].shape, index[name].dtype) for name in order))
    key_of = {id(tensor): name for name, tensor in metas}
    tied = bool(config.get("tie_word_embeddings", False))
    layers: list[LazyLayer] = []
    has_embedding = False
    for weight in layer_weights_from_state_dict(metas, model_type=model_type):
        if weight.kind == EMBEDDING:
            has_embedding = True
        elif tied and has_embedding and is_tied_head_path(weight.name):
            continue
        layers.append(LazyLayer(entry=index[key_of[id(weight.tensor)]], layer_name=weight.name,
                                layer_index=len(layers), kind=weight.kind, groups=weight.groups))
    return layers


def plan_shards(layers: list[LazyLayer], workers: int, min_split_cost: float | None = None) -> list[LazyShard]:
    """Layers cut into shards of balanced cost: one per worker at least, none over ``MAX_SHARD_BYTES``;
    a layer of ``SOLO_WIDENED_BYTES`` or more (as float32) is a shard of its own, listed first."""
    if not layers:
        return []
    solo = [layer for layer in layers if 4 * math.prod(layer.entry.shape) >= SOLO_WIDENED_BYTES]
    rest = [layer for layer in layers if 4 * math.prod(layer.entry.shape) < SOLO_WIDENED_BYTES]
    shards = [LazyShard((layer,)) for layer in solo]
    if not rest:
        return shards
    total_bytes = sum(layer.entry.nbytes for layer in rest)
    wanted = max(max(1, workers), math.ceil(total_bytes / MAX_SHARD_BYTES))
    kwargs = {} if min_split_cost is None else {"min_split_cost": min_split_cost}
    groups = split_by_cost([layer.cost or float(layer.entry.nbytes) for layer in rest], wanted, **kwargs)
    return shards + [LazyShard(tuple(rest[p] for p in members)) for members in groups]


def plan_model(location: Path | str, workers: int, *, allow_pickle: bool = False) -> list[LazyShard] | None:
    """Shards of the safetensors checkpoint at ``location`` — a local file or folder, or a URL (``s3://``,
    ``hf://``: ``zoos.remote``, headers read by byte ranges) — or None when it is pickled."""
    from ww_ray.zoos.checkpoint import lazy_files, read_hf_config
    from ww_ray.zoos.remote import folder_config, is_url, weight_files
    from ww_ray.zoos.tensor_index import checkpoint_index

    if is_url(str(location)):
        url = str(location)
        return plan_shards(plan_layers(checkpoint_index(weight_files(url)), folder_config(url)), workers)
    files = lazy_files(location, allow_pickle_in_folders=allow_pickle)
    if files is None:
        return None
    config = read_hf_config(Path(location)) if Path(location).is_dir() else {}
    return plan_shards(plan_layers(checkpoint_index(files), config), workers)


def read_layer_weights(shard: LazyShard, skip_embeddings: bool = False) -> Iterator[LayerWeight]:
    """The shard's layer weights, each tensor read when it is reached (embeddings left unread when skipped)."""
    from ww_ray.zoos.layers import meta_tensors
    from ww_ray.zoos.tensor_index import read_tensors

    unread = [layer.kind == EMBEDDING and skip_embeddings for layer in shard.layers]
    reader = read_tensors(layer.entry for layer, skip in zip(shard.layers, unread) if not skip)
    for layer, skip in zip(shard.layers, unread):
        if skip:
            _, tensor = next(meta_tensors([(layer.entry.name, layer.entry.shape, layer.entry.dtype)]))
        else:
            _, tensor = next(reader)
        yield LayerWeight(name=layer.layer_name, index=layer.layer_index, kind=layer.kind, tensor=tensor,
                          groups=layer.groups)
        del tensor
    reader.close()
