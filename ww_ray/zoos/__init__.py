"""Where models come from: zoos that enumerate ``ModelSpec`` objects and yield layer weights lazily.

Zoo kinds (``local``, ``pytorchcv``, ``hub``) live in a typed registry (``registry.py``); a sweep
config's ``zoos:`` entries select them. ``open_source`` resolves anything ``ww_ray.analyze``
accepts (module, state dict, checkpoint path, ``pytorchcv:``/``hf:`` URI).

The names below are imported on first use, so ``from ww_ray.zoos.spec import ModelSpec`` stays
light (no torch import).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CheckpointError": "ww_ray.errors",
    "iter_state_dict": "ww_ray.zoos.checkpoint",
    "ModelSkipped": "ww_ray.errors",
    "UnsafeIdError": "ww_ray.errors",
    "ZooError": "ww_ray.errors",
    "ZooUnavailableError": "ww_ray.errors",
    "layer_weights_from_module": "ww_ray.zoos.layers",
    "layer_weights_from_state_dict": "ww_ray.zoos.layers",
    "enumerate_specs": "ww_ray.zoos.registry",
    "load_layer_weights": "ww_ray.zoos.registry",
    "register_zoo": "ww_ray.zoos.registry",
    "spec_from_uri": "ww_ray.zoos.registry",
    "zoo_kinds": "ww_ray.zoos.registry",
    "open_source": "ww_ray.zoos.source",
    "ModelSpec": "ww_ray.zoos.spec",
    "ZooConfig": "ww_ray.zoos.config",
    "parse_zoo": "ww_ray.zoos.parse",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ww_ray.zoos' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
