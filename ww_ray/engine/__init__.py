"""The distributed sweep on Ray: load tasks, a pool of spectral workers, one atomic commit per model.

``run_config(config)`` runs what a YAML sweep config describes; ``run_sweep(specs, options, out,
ray_cfg)`` runs the engine on an explicit list of ``ModelSpec`` (a rescan reuses it). The Ray
wiring lives in ``scheduler``, ``pool``, ``loader`` and ``worker``; the math stays in
``ww_ray.spectral``. See DESIGN.md §1 and ``ww-ray sweep --help``.

The names below are imported on first use, so Ray workers that only unpickle ``worker`` or
``loader`` do not import the driver's modules.
"""
from __future__ import annotations

from typing import Any

__all__ = ["SweepResult", "enumerate_zoos", "run_config", "run_sweep"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from ww_ray.engine import sweep

        return getattr(sweep, name)
    raise AttributeError(f"module 'ww_ray.engine' has no attribute {name!r}")
