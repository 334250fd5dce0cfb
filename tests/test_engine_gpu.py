"""The sweep on a machine with a GPU: Ray gives each spectral worker a GPU, the rows are computed on CUDA,
and they equal the CPU path's numbers. Runs only where torch sees a GPU (the embedded default: local Ray,
which finds the GPU itself)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ww_ray
from tests._engine_util import write_dense_model
from ww_ray.config import parse_config
from ww_ray.engine import run_config
from ww_ray.store import read_table

pytestmark = [pytest.mark.ray, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none here)")]

METRICS = ["lambda_max", "norm", "log_norm", "log_spectral_norm", "stable_rank", "alpha", "alpha_weighted",
           "log_alpha_norm", "D", "xmin", "num_pl_spikes", "mp_softrank", "num_spikes", "entropy"]


def test_local_sweep_on_a_gpu_machine_computes_on_cuda_and_equals_cpu(akamaster_dir, tmp_path: Path) -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    dense = write_dense_model(tmp_path / "dense" / "wide.safetensors", [(3072, 768), (768, 3072), (2304, 768)], seed=3)
    config = parse_config({"zoos": [{"kind": "local", "path": str(akamaster_dir)},
                                    {"kind": "local", "path": str(dense.parent)}],
                           "out": str(tmp_path / "out"), "ray": {"max_models_in_flight": 2}})
    result = run_config(config, progress=False)  # starts the local Ray: it must find the GPU on its own
    assert not ray.is_initialized()
    assert result.status == "completed" and result.counts["ok"] == 5, result.results
    assert result.cluster["total"]["GPU"] >= 1
    assert result.pool["device"] == "cuda" and result.pool["num_gpus"] == 1.0
    layers = read_table(str(tmp_path / "out"), "layers")
    ok = layers[layers.status == "ok"]
    assert len(ok) > 0 and set(ok.device) == {"cuda"}  # a worker without its GPU would have failed its rows
    files = {p.stem: p for p in sorted(akamaster_dir.glob("*.th"))[:1]} | {"wide": dense}
    for model_id, path in files.items():
        got = ok[ok.model_id == model_id].sort_values(["layer_index", "slice_id"]).reset_index(drop=True)
        cpu = ww_ray.analyze(path, device="cpu")
        cpu = cpu[cpu.status == "ok"].sort_values(["layer_index", "slice_id"]).reset_index(drop=True)
        assert len(got) == len(cpu) > 0, model_id
        assert got.layer_name.tolist() == cpu.layer_name.tolist()
        for metric in METRICS:
            np.testing.assert_allclose(got[metric].astype(float), cpu[metric].astype(float), rtol=1e-7,
                                       err_msg=f"{model_id}.{metric}")
