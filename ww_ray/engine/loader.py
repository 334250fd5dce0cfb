"""The per-model load task: fetch the weights, turn them into matrices, return them as shards.

``load_model`` runs as a Ray task with ``num_returns = 1 + num_shards``: the first return is a small
header (status, timings, which rows went into which shard), the others are the shards — lists of
``SpectralInput`` — stored in the object store and owned by the driver, so a worker that dies
later does not take them with it. Problems with the model itself (unreadable or unsafe file, NaN
weights, an unreachable zoo, a deliberate skip) never raise: they come back in the header as a
``failed`` or ``skipped`` status with the error, and are not retried.
"""
from __future__ import annotations

import socket
import time
from typing import Any

from ww_ray.engine.shards import shard_costs, split_by_cost
from ww_ray.spectral.presets import AnalysisOptions
from ww_ray.zoos.spec import ModelSpec


def _header(status: str, error: str | None, started: float, **more: Any) -> dict[str, Any]:
    return {"status": status, "error": error, "seconds_load": time.perf_counter() - started,
            "node": socket.gethostname(), **more}


def load_model(spec: ModelSpec, options: AnalysisOptions, num_shards: int) -> tuple:
    """``(header, shard_0, ..., shard_{num_shards-1})``; shards past the ones used are empty lists."""
    from ww_ray.spectral.prepare import prepare_inputs
    from ww_ray.errors import ModelSkipped
    from ww_ray.zoos.registry import load_layer_weights

    warm_up()  # a fresh worker process imports torch and the zoos here, outside the model's clock
    started = time.perf_counter()
    empty: list[list] = [[] for _ in range(num_shards)]
    try:
        inputs = prepare_inputs(load_layer_weights(spec), options)
    except ModelSkipped as exc:
        return (_header("skipped", exc.reason, started), *empty)
    except MemoryError as exc:
        message = (f"out of memory while loading {spec.model_id} ({exc}); give the load task more memory "
                   "(fewer ray.max_models_in_flight, bigger nodes) or cap the zoo's max_size")
        return (_header("failed", message, started), *empty)
    except Exception as exc:  # unreadable, unsafe, unreachable: a failed row, never a retry
        return (_header("failed", f"{type(exc).__name__}: {exc}", started), *empty)
    costs = [item.cost for item in inputs]
    positions = split_by_cost(costs, num_shards)
    shards = [[inputs[p] for p in members] for members in positions]
    shards += [[] for _ in range(num_shards - len(shards))]
    header = _header(
        "ok", None, started,
        num_rows=len(inputs),
        num_matrices=sum(1 for item in inputs if item.status == "ok"),
        nbytes=sum(item.nbytes for item in inputs),
        cost=float(sum(costs)),
        shard_positions=positions,
        shard_costs=shard_costs(costs, positions),
    )
    return (header, *shards)


def warm_up() -> str:
    """Import what a load needs (torch, the zoos) so that the first model's clock does not pay for it."""
    from ww_ray.spectral import prepare  # noqa: F401
    from ww_ray.zoos.registry import zoo_kinds

    zoo_kinds()
    return socket.gethostname()
