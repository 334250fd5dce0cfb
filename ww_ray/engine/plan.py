"""What a sweep will do before anything runs: drop models already done, size each load task.

Resume: a model is done when the dataset already holds an ``ok`` or ``skipped`` row for its key
``(source, model_id, revision)`` with the same analyzer version and preset (``failed`` models are
tried again). Sizing: the planned size of a model is its weight files' size when the zoo knows it,
else an estimate from its parameter count. A safetensors model's load task only reads headers and
plans shards, so it asks Ray for a small fixed ``memory``; a pickled one holds the file and about
one streamed shard, so it asks in proportion to the file. Worker memory follows the shard
(``engine.shard_plan.MAX_SHARD_BYTES``), never the model.

    >>> from ww_ray.zoos.spec import ModelSpec
    >>> spec = ModelSpec(source="local", model_id="big", size_bytes=500 << 20)
    >>> shard_count(spec, workers=4), shard_count(spec, workers=1)
    (4, 1)
    >>> lazy = ModelSpec(source="local", model_id="llm", size_bytes=14 << 30, extra={"files": ["model.safetensors"]})
    >>> load_memory(lazy) == LOAD_MEMORY_BASE
    True
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from ww_ray.keys import ModelKey
from ww_ray.zoos.spec import ModelSpec

log = logging.getLogger(__name__)

#: Size assumed for a model whose zoo knows neither its file size nor its parameter count.
UNKNOWN_SIZE_BYTES = 256 << 20
#: A model is split into one shard per this many bytes of weights (at most one shard per worker).
SHARD_BYTES = 64 << 20
#: Streaming load task memory (pickles): the file + the shards in flight, plus interpreter overhead.
LOAD_MEMORY_FACTOR = 1.5
LOAD_MEMORY_BASE = 256 << 20

def model_key(spec: ModelSpec) -> ModelKey:
    """The dataset key of a spec (``ModelSpec.key``)."""
    return spec.key


def planned_bytes(spec: ModelSpec) -> int:
    """Best guess of a model's weight bytes before loading it."""
    if spec.size_bytes:
        return int(spec.size_bytes)
    estimated = spec.extra.get("estimated_size_bytes")
    if estimated:
        return int(estimated)
    if spec.params:
        return int(spec.params) * 4
    return UNKNOWN_SIZE_BYTES


def reads_lazily(spec: ModelSpec) -> bool:
    """True when the spec's weight files are all safetensors (its load task plans shards from headers)."""
    files = spec.extra.get("files") or []
    return bool(files) and all(str(f).endswith(".safetensors") for f in files)


def load_memory(spec: ModelSpec, node_memory: float | None = None) -> int:
    """Bytes of Ray ``memory`` a model's load task asks for, capped to what the largest node offers.

    The cap keeps a huge pickled model schedulable (Ray would otherwise leave the task pending
    forever); such a model then runs alone on its node.
    """
    if reads_lazily(spec):
        return LOAD_MEMORY_BASE
    wanted = int(LOAD_MEMORY_FACTOR * planned_bytes(spec) + LOAD_MEMORY_BASE)
    if node_memory:
        wanted = min(wanted, int(0.8 * node_memory))
    return max(wanted, 1)


def shard_count(spec: ModelSpec, workers: int) -> int:
    """Shards a model's matrices are cut into: one per ``SHARD_BYTES`` of weights, at most ``workers``."""
    return max(1, min(int(workers), math.ceil(planned_bytes(spec) / SHARD_BYTES)))


@dataclass
class Plan:
    """The models a run will analyse, and those it leaves alone because they are already done."""

    todo: list[ModelSpec]
    already_done: list[ModelSpec] = field(default_factory=list)
    duplicates: list[ModelSpec] = field(default_factory=list)


def plan_models(specs: list[ModelSpec], done: set[ModelKey] | None = None) -> Plan:
    """Split ``specs`` into work to do and work already done (``done`` keys), dropping repeated keys."""
    done = done or set()
    plan = Plan(todo=[])
    seen: set[ModelKey] = set()
    for spec in specs:
        key = model_key(spec)
        if key in seen:
            log.warning("model %s/%s@%s is listed twice; analysing it once", *key)
            plan.duplicates.append(spec)
            continue
        seen.add(key)
        (plan.already_done if key in done else plan.todo).append(spec)
    return plan
