"""A fine-tune against its base: each layer's own weight, the base's, and ΔW = W − W_base.

Layers are paired by name: the same module path, or the same path once one leading component is
dropped from either side (``bert.encoder.layer.0…`` ↔ ``encoder.layer.0…``: a task model against its
base model), when that match is unique. A pair needs the same layer kind and shape (a resized
embedding table is not paired). The base's weights are held in memory while the fine-tune streams
(two models' weights at most); ΔW is formed in float64, so a delta far below the weights' own
precision is still exact for the stored values.

On the Hub a fine-tune names its base in its model card (``base_model:``, read by ``zoos.model_card``); the
hub zoo's ``base_model: auto`` analyses such a model against that base.

For every fine-tune layer the weights come as: its ``weight``, then, when paired, the ``base`` weight
and the ``delta_vs_base``, all three with the same ``layer_index`` and ``base_model`` set.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from ww_ray.spectral.matrices import as_float64
from ww_ray.weights import BASE, DELTA_VS_BASE, WEIGHT, LayerWeight

log = logging.getLogger(__name__)


def _strip_first(name: str) -> str | None:
    head, dot, rest = name.partition(".")
    return rest if dot else None


def base_lookup(base_names: Iterable[str]) -> Callable[[str], str | None]:
    """A function from a model's layer name to its base counterpart (exact, else one leading component
    off either side, when unique), each base name given out once."""
    base_names = list(base_names)
    base_set = set(base_names)
    stripped: dict[str, list[str]] = {}
    for b in base_names:
        key = _strip_first(b)
        if key is not None:
            stripped.setdefault(key, []).append(b)
    taken: set[str] = set()

    def lookup(name: str) -> str | None:
        if name in base_set and name not in taken:
            taken.add(name)
            return name
        short = _strip_first(name)
        candidates = ([short] if short is not None and short in base_set else []) + stripped.get(name, [])
        candidates = [c for c in dict.fromkeys(candidates) if c not in taken]
        if len(candidates) != 1:
            return None
        taken.add(candidates[0])
        return candidates[0]

    return lookup


def match_names(names: Iterable[str], base_names: Iterable[str]) -> dict[str, str]:
    """``name -> base name`` for the names that have a base counterpart (exact matches first).

    >>> match_names(["bert.encoder.q", "classifier"], ["encoder.q", "pooler"])
    {'bert.encoder.q': 'encoder.q'}
    """
    names, base_names = list(names), list(base_names)
    exact = set(base_names)
    lookup = base_lookup(base_names)
    out = {n: lookup(n) for n in names if n in exact}
    for n in names:
        if n not in out:
            found = lookup(n)
            if found is not None:
                out[n] = found
    return {n: out[n] for n in names if n in out}


def with_base_weights(weights: Iterable[LayerWeight], base_weights: Iterable[LayerWeight],
                      base_id: str) -> Iterator[LayerWeight]:
    """The fine-tune's weights, each paired one followed by its ``base`` weight and ``delta_vs_base``."""
    base_by_name = {w.name: w for w in base_weights}
    lookup = base_lookup(base_by_name)
    for weight in weights:
        yield replace(weight, role=WEIGHT, base_model=base_id)
        base_name = lookup(weight.name)
        if base_name is None:
            continue
        base = base_by_name[base_name]
        if base.kind != weight.kind or base.shape != weight.shape:
            log.warning("%s is a %s %s but the base's %s is a %s %s: not paired", weight.name, weight.kind,
                        weight.shape, base_name, base.kind, base.shape)
            continue
        yield replace(base, name=weight.name, index=weight.index, role=BASE, base_model=base_id)
        delta = as_float64(weight.tensor) - as_float64(base.tensor)
        yield replace(weight, role=DELTA_VS_BASE, base_model=base_id, tensor=delta)
