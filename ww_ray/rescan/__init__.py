"""Nightly rescans of the Hugging Face Hub: analyse new models and new revisions, nothing twice.

A rescan lists each ``kind: hub`` zoo of its config newest first (authors, library, pipeline tags,
search, minimum downloads), stops at the zoo's watermark from the last completed rescan (kept in
the dataset's ``runs/`` manifests), skips keys already analysed (same model id, commit sha,
analyzer version and preset), leaves out models above ``max_size`` judged from their safetensors
headers without downloading, analyses the rest through the sweep engine within a per-night cap and
time budget, refits the regressions of the series it touched, and records a report.

Example::

    from ww_ray.rescan import load_rescan_config, run_rescan
    result = run_rescan(load_rescan_config("configs/nightly-rescan.yaml"))
    print(result.summary())

Command line: ``ww-ray rescan CONFIG.yaml [--address ADDR] [--out ROOT]``; as a Ray job:
``ray job submit --working-dir . -- python jobs/nightly_rescan.py --config configs/nightly-rescan.yaml``.
"""
from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, so ``ww-ray --help`` (which imports ww_ray.rescan.cli) imports neither torch nor ray.
_EXPORTS = {
    "RescanResult": "ww_ray.rescan.run", "ZooScan": "ww_ray.rescan.run", "run_rescan": "ww_ray.rescan.run",
    "HubFilters": "ww_ray.rescan.settings", "RescanConfig": "ww_ray.rescan.settings",
    "RescanSettings": "ww_ray.rescan.settings", "load_rescan_config": "ww_ray.rescan.settings",
    "parse_rescan_config": "ww_ray.rescan.settings",
}

__all__ = ["HubFilters", "RescanConfig", "RescanResult", "RescanSettings", "ZooScan", "load_rescan_config",
           "parse_rescan_config", "run_rescan"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ww_ray.rescan' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
