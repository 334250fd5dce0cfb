"""The solve plan (ww_ray/spectral/solve.py): same numbers as solving each matrix alone, bounded stacks,
failures kept to their rows, and the opt-in float32 Gram route (gram_dtype)."""
from __future__ import annotations

import numpy as np
import pytest

from ww_ray.config import load_config
from ww_ray.errors import ConfigError
from ww_ray.spectral.esd import gram_eigenvalues
from ww_ray.spectral.matrices import SpectralInput, layer_inputs
from ww_ray.spectral.metrics import compute_rows, esd_metrics, pooled_evals
from ww_ray.spectral.presets import PRESETS, resolve_options
from ww_ray.spectral.solve import STACK_BELOW, plan_solves, solve_eigenvalues, work_bytes
from ww_ray.weights import LayerWeight

METRICS = ["lambda_max", "norm", "alpha", "alpha_weighted", "log_alpha_norm", "D", "xmin", "stable_rank",
           "entropy", "mp_softrank"]


def _dense(index: int, shape: tuple[int, int], seed: int) -> SpectralInput:
    matrix = np.random.default_rng(seed).standard_t(3, size=shape).astype(np.float32)
    return layer_inputs(LayerWeight(f"fc{index}", index, "linear", matrix), resolve_options("paper"))[0]


def _mixed_batch() -> list[SpectralInput]:
    """Large matrices of three shapes (one shape alone), conv slices, and a complex fft row."""
    options = resolve_options("paper", min_evals=0)
    items = [_dense(0, (600, 300), 0), _dense(1, (300, 600), 1), _dense(2, (600, 300), 2), _dense(3, (512, 256), 3)]
    conv = LayerWeight("conv", 4, "conv2d", np.random.default_rng(4).normal(size=(32, 16, 3, 3)).astype(np.float32))
    items += layer_inputs(conv, options)
    fft = LayerWeight("convf", 5, "conv2d", np.random.default_rng(5).normal(size=(8, 6, 3, 3)).astype(np.float32))
    items += layer_inputs(fft, resolve_options("paper", min_evals=0, conv_method="fft", fft_size=6))
    return items


def test_plan_solves_every_matrix_once_large_cpu_alone_small_stacked():
    items = _mixed_batch()
    tasks = plan_solves(items, device="cpu")
    covered = sorted((p, b) for t in tasks for p, start, stop in t.parts for b in range(start, stop))
    assert covered == sorted((p, b) for p, it in enumerate(items) for b in range(it.matrices.shape[0]))
    for task in tasks:
        if min(task.shape) >= STACK_BELOW:
            assert task.count == 1
    small = [t for t in tasks if min(t.shape) < STACK_BELOW]
    assert {t.shape: t.count for t in small} == {(32, 16): 9, (8, 6): 24}  # 9 slices; 6×4 fft frequencies
    gpu = plan_solves(items, device="cuda")
    assert {t.shape: t.count for t in gpu if t.shape == (600, 300)} == {(600, 300): 2}  # stacked on a GPU


def test_stacked_calls_stay_within_the_work_memory_bound():
    items = [_dense(i, (600, 300), i) for i in range(5)]
    bound = 2 * work_bytes((600, 300), False) + 1
    tasks = plan_solves(items, device="cuda", max_batch_bytes=bound)
    assert [t.count for t in tasks] == [2, 2, 1]
    assert all(t.count * work_bytes(t.shape, False) <= bound for t in tasks)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_rows_equal_each_matrix_solved_alone_to_1e9(threads):
    """The new plan changes the schedule, never the numbers: each row against its own single solve."""
    items = _mixed_batch()
    options = resolve_options("paper", min_evals=0)
    rows = compute_rows(items, options, device="cpu", threads=threads)
    assert [r["status"] for r in rows] == ["ok"] * len(items)
    for item, row in zip(items, rows):
        alone = np.concatenate([gram_eigenvalues(item.matrices[b:b + 1], device="cpu")
                                for b in range(item.matrices.shape[0])])
        expected = esd_metrics(pooled_evals(item, alone), item.N, item.M, options)
        for metric in METRICS:
            assert row[metric] == pytest.approx(expected[metric], rel=1e-9, abs=1e-300), (item.layer_name, metric)
        assert row["num_pl_spikes"] == expected["num_pl_spikes"] and row["matrix_rank"] == expected["matrix_rank"]


def test_a_failing_solve_fails_only_its_rows():
    items = [_dense(0, (600, 300), 0), _dense(1, (400, 300), 1)]
    items[1].matrices = items[1].matrices.copy()
    items[1].matrices[0, 0, 0] = np.nan  # compute_rows fed directly (prepare_inputs would refuse it)
    solved = solve_eigenvalues(items, "cpu", threads=2)
    assert isinstance(solved[0], np.ndarray) and solved[0].shape == (1, 300)
    rows = compute_rows(items, resolve_options("paper"), device="cpu", threads=2)
    assert rows[0]["status"] == "ok"
    assert rows[1]["status"] == "failed" or not np.isfinite(rows[1]["lambda_max"])


def test_float32_gram_is_opt_in_and_close_to_float64():
    assert all(p.gram_dtype == "float64" for p in PRESETS.values())
    options32 = resolve_options("paper", gram_dtype="float32")
    assert options32.label == "paper+gram_dtype=float32"
    items = [_dense(0, (1200, 600), 0), _dense(1, (900, 300), 1)]
    rows64 = compute_rows(items, resolve_options("paper"), device="cpu", threads=1)
    rows32 = compute_rows(items, options32, device="cpu", threads=1)
    for r64, r32 in zip(rows64, rows32):
        assert r32["lambda_max"] == pytest.approx(r64["lambda_max"], rel=1e-6)
        for metric in ("alpha", "alpha_weighted", "log_alpha_norm", "D", "xmin"):
            assert r32[metric] == pytest.approx(r64[metric], rel=1e-4), metric
        assert r32["lambda_max"] != r64["lambda_max"]  # it really took the float32 GEMM


def test_gram_dtype_is_validated_in_one_place_for_analyze_and_sweep_configs(tmp_path):
    with pytest.raises(ValueError, match="gram_dtype='float16' is not one of"):
        resolve_options("paper", gram_dtype="float16")
    config = tmp_path / "sweep.yaml"
    config.write_text(f"zoos: [{{kind: local, path: {tmp_path}}}]\noptions: {{gram_dtype: float32}}\n")
    assert load_config(config).analysis.gram_dtype == "float32"
    config.write_text(f"zoos: [{{kind: local, path: {tmp_path}}}]\ngram_dtype: half\n")
    with pytest.raises(ConfigError, match="gram_dtype"):
        load_config(config)


@pytest.mark.parametrize("shape", [(2, 300, 40), (1, 40, 300)])
@pytest.mark.parametrize("complex_input", [False, True])
def test_gram_summed_over_row_blocks_equals_the_whole_product(monkeypatch, shape, complex_input):
    """A stored float32 matrix too large to widen whole is widened block by block: same eigenvalues."""
    from ww_ray.spectral import esd

    rng = np.random.default_rng(5)
    batch = rng.standard_t(3, size=shape).astype(np.float32)
    if complex_input:
        batch = (batch + 1j * rng.standard_normal(shape)).astype(np.complex64)
    whole = esd.gram_eigenvalues(batch, device="cpu")
    monkeypatch.setattr(esd, "GRAM_BLOCK_BYTES", 40 * 16 * 7)  # below the Gram's size: blocks of 40 lines
    assert esd.gram_block_lines(shape[0], 300, 40, 16 if complex_input else 8) == 40
    blocked = esd.gram_eigenvalues(batch, device="cpu")
    np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=1e-12 * whole.max())
    exact = np.linalg.svd(batch.astype(np.complex128 if complex_input else np.float64), compute_uv=False) ** 2
    np.testing.assert_allclose(np.sort(blocked, axis=1), np.sort(exact, axis=1), rtol=1e-9, atol=1e-9 * exact.max())


def test_gram_blocks_are_never_smaller_than_the_gram():
    """Blocks hold at least M lines (the M×M Gram's own size) and a square matrix is widened whole."""
    from ww_ray.spectral import esd

    assert esd.gram_block_lines(1, 4096, 4096, 8) == 4096               # square: whole
    assert esd.gram_block_lines(1, 11008, 4096, 8) == 4096              # 128 MiB Gram > 32 MiB bound
    assert esd.gram_block_lines(1, 32000, 2048, 8) == 2048              # 32 MiB bound = 2048 lines
    assert esd.gram_block_lines(1, 32000, 512, 8) == esd.GRAM_BLOCK_BYTES // (512 * 8)
    assert esd.gram_block_lines(1, 5000, 512, 8) == 5000                # 20 MB widened: whole
