"""The GPU path (torch on CUDA) gives the CPU path's numbers. Runs only where torch sees a GPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ww_ray
from conftest import AKAMASTER_FILES
from ww_ray.spectral.esd import gram_eigenvalues, resolve_device

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none here)")

METRICS = ["lambda_max", "norm", "log_norm", "log_spectral_norm", "stable_rank", "alpha", "alpha_weighted",
           "log_alpha_norm", "D", "xmin", "num_pl_spikes", "mp_softrank", "num_spikes", "entropy"]


def test_auto_device_picks_the_gpu():
    assert resolve_device("auto") == "cuda"


@pytest.mark.parametrize("complex_input", [False, True])
def test_gram_eigenvalues_on_gpu_equal_cpu(complex_input):
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(9, 300, 120))
    if complex_input:
        batch = batch + 1j * rng.normal(size=batch.shape)
    gpu = gram_eigenvalues(batch, device="cuda")
    cpu = gram_eigenvalues(batch, device="cpu")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-10, atol=1e-12 * cpu.max())


@pytest.mark.parametrize("name", AKAMASTER_FILES[:2])
@pytest.mark.parametrize("preset,options", [("ww", {}), ("paper", {"conv_method": "fft", "fft_size": 8})])
def test_analyze_on_gpu_equals_cpu_on_real_weights(akamaster_dir, name, preset, options):
    gpu = ww_ray.analyze(akamaster_dir / name, preset=preset, device="cuda", **options)
    cpu = ww_ray.analyze(akamaster_dir / name, preset=preset, device="cpu", **options)
    ok = gpu["status"] == "ok"
    assert ok.sum() > 0 and (gpu["status"] == cpu["status"]).all()
    assert set(gpu.loc[ok, "device"]) == {"cuda"} and set(cpu.loc[ok, "device"]) == {"cpu"}
    for metric in METRICS:
        np.testing.assert_allclose(gpu.loc[ok, metric].astype(float), cpu.loc[ok, metric].astype(float),
                                   rtol=1e-7, err_msg=metric)
