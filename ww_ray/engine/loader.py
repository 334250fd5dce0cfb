"""The per-model load task: plan the model's shards, or stream them when the weights cannot be read lazily.

``load_model`` runs as a Ray streaming generator (``num_returns="streaming"``). Its first item is
always a small ``LoadHeader``:

* safetensors checkpoints (local files, Hugging Face folders): the header carries the model's
  ``LazyShard`` plan, made from the tensor index without reading a weight, and the stream ends. The
  workers read their own shards' tensors (``engine.shard_plan``);
* pickled checkpoints and module zoos (``.pt/.bin``, pytorchcv) cannot be read lazily: the header
  says ``streamed`` and the task then yields prepared shards (lists of ``SpectralInput`` of about
  ``STREAM_SHARD_BYTES``) as it produces them. The driver takes the next shard only while the
  model has room in flight, and Ray pauses the generator after ``STREAM_BACKPRESSURE`` unconsumed
  shards, so the task holds about one shard beyond the file itself.

Problems with the model itself (unreadable or unsafe file, an unreachable zoo, a deliberate skip)
never raise: they come back as a ``failed`` or ``skipped`` header, and are not retried.
"""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

from ww_ray.engine.results import LoadHeader
from ww_ray.spectral.presets import AnalysisOptions
from ww_ray.zoos.spec import ModelSpec

#: Float32 matrix bytes per streamed shard.
STREAM_SHARD_BYTES = 64 << 20
#: Streamed shards the load task may have produced before the driver takes them.
STREAM_BACKPRESSURE = 2


def load_model(spec: ModelSpec, options: AnalysisOptions, workers: int) -> Iterator[Any]:
    """``LoadHeader`` first; then, when the header says ``streamed``, the model's prepared shards."""
    from ww_ray.errors import ModelSkipped

    warm_up()  # a fresh worker process imports torch and the zoos here, outside the model's clock
    started = time.perf_counter()
    try:
        shards, weights = _open(spec, workers)
        if shards is None:
            stream = _prepared_shards(weights, options)
            first = next(stream, None)   # reading and checking the file happens here: errors become the header
    except ModelSkipped as exc:
        yield LoadHeader("skipped", exc.reason, time.perf_counter() - started)
        return
    except MemoryError as exc:
        yield LoadHeader("failed", f"out of memory while loading {spec.model_id} ({exc}); give the load task "
                         "more memory (fewer ray.max_models_in_flight, bigger nodes) or cap the zoo's max_size",
                         time.perf_counter() - started)
        return
    except Exception as exc:  # unreadable, unsafe, unreachable: a failed row, never a retry
        yield LoadHeader("failed", f"{type(exc).__name__}: {exc}", time.perf_counter() - started)
        return
    if shards is not None:
        yield LoadHeader("ok", None, time.perf_counter() - started, lazy_shards=tuple(shards))
        return
    yield LoadHeader("ok", None, time.perf_counter() - started, streamed=True)
    if first is not None:
        yield first
        yield from stream


def _open(spec: ModelSpec, workers: int):
    """``(lazy shards, None)`` for safetensors checkpoints, else ``(None, layer weights)``."""
    from ww_ray.engine.shard_plan import plan_model
    from ww_ray.errors import ModelSkipped
    from ww_ray.zoos.registry import load_layer_weights, zoo_of_spec

    reason = spec.extra.get("skip_reason")
    if reason:
        raise ModelSkipped(str(reason))
    zoo = zoo_of_spec(spec)
    path = zoo.checkpoint_path(spec)
    if path is not None:
        shards = plan_model(path, workers, allow_pickle=bool(zoo.config.options.get("allow_pickle", False)))
        if shards is not None:
            return shards, None
    return None, load_layer_weights(spec)


def _prepared_shards(weights, options: AnalysisOptions) -> Iterator[list]:
    """Prepared inputs grouped into shards of about ``STREAM_SHARD_BYTES``, as the weights are read."""
    from ww_ray.spectral.prepare import prepare_inputs

    shard: list = []
    size = 0
    for weight in weights:
        items = prepare_inputs([weight], options)
        shard.extend(items)
        size += sum(item.nbytes for item in items)
        if size >= STREAM_SHARD_BYTES:
            yield shard
            shard, size = [], 0
    if shard:
        yield shard


def warm_up() -> str:
    """Import what a load needs (torch, the zoos) so that the first model's clock does not pay for it;
    pin the allocator's mmap threshold (``ww_ray.allocator``: freed checkpoints go back to the OS)."""
    from ww_ray.allocator import pin_mmap_threshold
    from ww_ray.spectral import prepare  # noqa: F401
    from ww_ray.zoos.registry import zoo_kinds

    pin_mmap_threshold()
    zoo_kinds()
    return socket.gethostname()
