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
from ww_ray.rescan.run import RescanResult, ZooScan, run_rescan
from ww_ray.rescan.settings import HubFilters, RescanConfig, RescanSettings, load_rescan_config, parse_rescan_config

__all__ = ["HubFilters", "RescanConfig", "RescanResult", "RescanSettings", "ZooScan", "load_rescan_config",
           "parse_rescan_config", "run_rescan"]
