"""Split one model's rows-to-compute into shards of about equal eigenvalue cost.

Greedy longest-processing-time scheduling: items sorted by decreasing ``cost`` go one by one to the
currently lightest shard, which keeps the largest shard within 4/3 of the optimum. Items of the same
layer stay in depth order inside a shard. A model whose total cost is small stays one shard: the
per-shard overhead (a task, a fetch) would outweigh what splitting gains.

    >>> split_by_cost([5.0, 1.0, 4.0, 2.0, 3.0], num_shards=2, min_split_cost=0.0)
    [[0, 1, 3], [2, 4]]
    >>> split_by_cost([5.0, 1.0], num_shards=4, min_split_cost=100.0)
    [[0, 1]]
"""
from __future__ import annotations

import heapq
from typing import Sequence

#: Below this total (floating-point operations, ~0.1 s of one core) a model is not split.
MIN_SPLIT_COST = 2e9


def split_by_cost(costs: Sequence[float], num_shards: int, min_split_cost: float = MIN_SPLIT_COST) -> list[list[int]]:
    """Positions of ``costs`` grouped into at most ``num_shards`` non-empty shards of balanced total cost.

    Each shard lists positions in increasing order; shards are ordered by their first position.
    An empty ``costs`` gives no shards.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if not costs:
        return []
    total = float(sum(costs))
    if num_shards == 1 or total < min_split_cost:
        return [list(range(len(costs)))]
    order = sorted(range(len(costs)), key=lambda p: (-float(costs[p]), p))
    heap = [(0.0, shard) for shard in range(num_shards)]
    members: list[list[int]] = [[] for _ in range(num_shards)]
    for position in order:
        load, shard = heapq.heappop(heap)
        members[shard].append(position)
        heapq.heappush(heap, (load + float(costs[position]), shard))
    shards = [sorted(m) for m in members if m]
    return sorted(shards, key=lambda m: m[0])


def shard_costs(costs: Sequence[float], shards: list[list[int]]) -> list[float]:
    """Total cost of each shard."""
    return [float(sum(costs[p] for p in shard)) for shard in shards]
