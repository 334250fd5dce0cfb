"""The distributed sweep on Ray: load tasks, a pool of spectral workers, one atomic commit per model.

``run_config(config)`` runs what a YAML sweep config describes; ``run_sweep(specs, options, out,
ray_cfg)`` runs the engine on an explicit list of ``ModelSpec`` (a rescan reuses it). The Ray
wiring lives in ``scheduler``, ``pool``, ``loader`` and ``worker``; the math stays in
``ww_ray.spectral``. See DESIGN.md §1 and ``ww-ray sweep --help``.
"""
from ww_ray.engine.sweep import SweepResult, enumerate_zoos, run_config, run_sweep

__all__ = ["SweepResult", "enumerate_zoos", "run_config", "run_sweep"]
