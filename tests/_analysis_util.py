"""Shared helpers of the analysis tests: real data paths and a dataset root of the akamaster series.

The akamaster root is built the way a sweep builds one: ``ww_ray.analyze`` on each real ResNet
CIFAR-10 checkpoint (paper preset), ``ww_ray.summarize`` for the model row, the published test
errors from ``reported_accuracies.csv``, and one ``commit_model`` per model.
"""
from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import SHARED_MODELS  # one place: honours WW_RAY_SHARED_MODELS
AKAMASTER = SHARED_MODELS / "akamaster-resnet-cifar10"
WW_TRENDS = SHARED_MODELS / "ww-trends-2020-metrics"
METAINFO = SHARED_MODELS / "pytorchcv-metainfo" / "model_metainfos.csv"
AKAMASTER_SOURCE = "akamaster-resnet-cifar10"


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found at {path.resolve()} (expected ../shared/models next to the repo)")
    return path


@functools.lru_cache(maxsize=1)
def _akamaster_analysis() -> tuple[tuple[pd.DataFrame, dict], ...]:
    import ww_ray

    reported = pd.read_csv(require(SHARED_MODELS / "reported_accuracies.csv"))
    reported = reported[reported["source"] == AKAMASTER_SOURCE].set_index("model")
    out = []
    for path in sorted(require(AKAMASTER).glob("*.th")):
        layers = ww_ray.analyze(str(path), preset="paper")
        summary = ww_ray.summarize(layers)
        figure = reported.loc[path.name]
        model = {"source": AKAMASTER_SOURCE, "model_id": path.stem, "revision": layers["revision"].iloc[0],
                 "architecture": figure["architecture_series"], "dataset": "cifar10", "task": "classification",
                 "params": int(figure["params_if_known"]), "top1_error": float(figure["top1_error_pct"]),
                 "reported_value": float(figure["top1_error_pct"]), "reported_measure": "top1_error",
                 "uri": str(path.resolve()), "size_bytes": path.stat().st_size, "status": "ok",
                 "preset": "paper", "analyzer_version": layers["analyzer_version"].iloc[0], **summary}
        out.append((layers, model))
    return tuple(out)


def build_akamaster_root(root: Path, run_id: str = "20240101T000000.000000Z-akamastr") -> Path:
    """Commit the four akamaster models (layers + model rows) into ``root``; returns it."""
    from ww_ray.store import commit_model, write_manifest

    for layers, model in _akamaster_analysis():
        keys = {k: model[k] for k in ("source", "model_id", "revision")}
        commit_model(root, layers.assign(run_id=run_id, **keys), {**model, "run_id": run_id})
    write_manifest(root, run_id, {"kind": "test-sweep", "models": len(_akamaster_analysis())})
    return root
