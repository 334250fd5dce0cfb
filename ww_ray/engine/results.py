"""The typed values that cross Ray and come out of a sweep: load headers, shard results, model and sweep results.

A load task's first stream item is a ``LoadHeader``; a worker returns a ``ShardResult`` per shard;
the scheduler records one ``ModelResult`` per model it ends; ``run_sweep`` returns a ``SweepResult``.
All are frozen: what a stage reports is not edited by the next one. No Ray, no I/O here.

    >>> result = ModelResult("local", "m", "abc", "ok", None, attempts=1, matrices=3)
    >>> result.key
    ('local', 'm', 'abc')
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ww_ray.keys import ModelKey, model_key

if TYPE_CHECKING:  # a type only: importing shard_plan imports torch, which CPU spectral workers never need
    from ww_ray.engine.shard_plan import LazyShard


@dataclass(frozen=True)
class LoadHeader:
    """How a model's load task went, and where its shards come from.

    ``lazy_shards``: shards of tensor names the workers read themselves (safetensors); empty when the
    task streams prepared shards after this header instead (pickled checkpoints, module zoos).
    """

    status: str                                   # ok | failed | skipped
    error: str | None = None
    seconds_load: float = 0.0
    lazy_shards: tuple[LazyShard, ...] = ()
    streamed: bool = False


@dataclass(frozen=True)
class ShardResult:
    """A worker's rows for one shard (in layer order) and the seconds it spent on them."""

    rows: list[dict[str, Any]]
    seconds: float


@dataclass(frozen=True)
class ModelResult:
    """How one model ended in this run."""

    source: str
    model_id: str
    revision: str
    status: str
    error: str | None
    attempts: int
    matrices: int = 0
    seconds_load: float = 0.0
    seconds_compute: float = 0.0
    seconds_total: float = 0.0
    committed: bool = True

    @property
    def key(self) -> ModelKey:
        return model_key(self.source, self.model_id, self.revision)


@dataclass(frozen=True)
class SweepResult:
    """What a sweep did: per-model results, counts, where the data and the manifest are."""

    run_id: str
    root: str
    status: str                                   # completed | interrupted | crashed
    planned: int
    already_done: int
    results: list[ModelResult] = field(default_factory=list)
    unfinished: list[ModelKey] = field(default_factory=list)
    seconds: float = 0.0
    seconds_startup: float = 0.0                  # starting or joining Ray and the workers, before any model
    manifest_path: str | None = None
    pool: dict[str, Any] | None = None
    cluster: dict[str, Any] | None = None
    zoo_errors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None                      # why a crashed run stopped

    @property
    def counts(self) -> dict[str, int]:
        counts = Counter(r.status for r in self.results)
        return {status: counts.get(status, 0) for status in ("ok", "failed", "skipped")}

    @property
    def interrupted(self) -> bool:
        return self.status == "interrupted"
