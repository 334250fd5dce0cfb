"""Hand-checked numerics: power-law recovery, conv matrix methods against explicit operators, scalings."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from ww_ray.spectral.esd import eigenvalues, gram_eigenvalues
from ww_ray.spectral.matrices import layer_inputs
from ww_ray.spectral.metrics import compute_rows, esd_metrics, pooled_evals
from ww_ray.spectral.powerlaw_fit import fit_power_law
from ww_ray.spectral.presets import resolve_options
from ww_ray.weights import LayerWeight


def _svd_evals(matrix: np.ndarray) -> np.ndarray:
    return np.sort(scipy.linalg.svd(matrix.astype(np.complex128 if np.iscomplexobj(matrix) else np.float64),
                                    compute_uv=False) ** 2)


def _pooled(item) -> np.ndarray:
    return pooled_evals(item, gram_eigenvalues(item.matrices, device="cpu"))


@pytest.mark.parametrize("alpha", [2.0, 3.0, 4.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_pareto_exponent_within_three_sigma(alpha, seed):
    rng = np.random.default_rng(seed)
    sample = 0.5 * (1.0 - rng.random(5000)) ** (-1.0 / (alpha - 1.0))  # density ∝ λ^-alpha above 0.5
    fit = fit_power_law(sample)
    assert fit.ok
    assert abs(fit.alpha - alpha) < 3 * fit.sigma, (fit.alpha, fit.sigma)
    assert fit.sigma == pytest.approx((fit.alpha - 1) / math.sqrt(fit.n_tail))
    assert fit.xmin >= 0.5 and fit.n_tail == int(np.sum(sample >= fit.xmin))


def test_fit_matches_a_direct_loop_over_candidates():
    rng = np.random.default_rng(7)
    x = np.sort(rng.lognormal(size=300) ** 2)
    best = (math.inf, None, None)
    for i in range(len(x) - 1):
        tail = x[i:]
        n = len(tail)
        a = 1 + n / np.sum(np.log(tail / x[i]))
        d = np.max(np.abs(1 - (tail / x[i]) ** (1 - a) - np.arange(n) / n)) if a > 1 else 1.0
        if d < best[0]:
            best = (d, a, x[i])
    fit = fit_power_law(x)
    assert fit.D == pytest.approx(best[0], rel=1e-12)
    assert fit.alpha == pytest.approx(best[1], rel=1e-12)
    assert fit.xmin == best[2]


def test_gram_eigenvalues_equal_squared_singular_values():
    rng = np.random.default_rng(0)
    for shape in [(300, 120), (120, 300), (64, 64)]:
        w = rng.standard_t(df=3, size=shape).astype(np.float32)
        np.testing.assert_allclose(eigenvalues(w), _svd_evals(w), rtol=1e-9, atol=1e-10 * _svd_evals(w).max())


def _conv(shape, groups=1, seed=0, kind="conv2d"):
    rng = np.random.default_rng(seed)
    return LayerWeight("conv", 3, kind, rng.normal(size=shape).astype(np.float32), groups=groups)


def test_slices_are_the_kernel_position_matrices_rescaled_by_rf_over_two():
    weight = _conv((8, 6, 3, 3))
    items = layer_inputs(weight, resolve_options("paper", min_evals=0))
    assert [it.slice_id for it in items] == list(range(9))
    for it in items:
        i, j = divmod(it.slice_id, 3)
        expected = _svd_evals(weight.tensor[:, :, i, j]) * 9 / 2
        np.testing.assert_allclose(_pooled(it), expected, rtol=1e-9)
        assert (it.N, it.M, it.rf, it.eval_scale) == (8, 6, 9, 4.5)


def test_pooled_is_every_slice_pooled_times_one_half():
    weight = _conv((8, 6, 3, 3))
    (item,) = layer_inputs(weight, resolve_options("ww"))
    expected = np.sort(np.concatenate([_svd_evals(weight.tensor[:, :, i, j]) for i in range(3) for j in range(3)])) / 2
    np.testing.assert_allclose(_pooled(item), expected, rtol=1e-9)


def test_stacked_is_one_kk_out_by_in_matrix_unscaled():
    weight = _conv((8, 6, 3, 3))
    (item,) = layer_inputs(weight, resolve_options("paper", conv_method="stacked"))
    stacked = np.transpose(weight.tensor, (2, 3, 0, 1)).reshape(9 * 8, 6)
    np.testing.assert_allclose(_pooled(item), _svd_evals(stacked), rtol=1e-9)
    assert (item.N, item.M) == (72, 6)


def _circular_conv_operator(kernel: np.ndarray, n: int) -> np.ndarray:
    """Explicit matrix of y[o,p,q] = Σ_{c,i,j} K[o,c,i,j] x[c,(p+i)%n,(q+j)%n] on n×n inputs."""
    out, cin, kh, kw = kernel.shape
    op = np.zeros((out * n * n, cin * n * n))
    for o in range(out):
        for p in range(n):
            for q in range(n):
                row = (o * n + p) * n + q
                for c in range(cin):
                    for i in range(kh):
                        for j in range(kw):
                            op[row, (c * n + (p + i) % n) * n + (q + j) % n] += kernel[o, c, i, j]
    return op


@pytest.mark.parametrize("n", [4, 5])
def test_fft_equals_singular_values_of_the_explicit_circulant_operator(n):
    weight = _conv((3, 2, 3, 3), seed=5)
    (item,) = layer_inputs(weight, resolve_options("paper", conv_method="fft", fft_size=n))
    operator_evals = _svd_evals(_circular_conv_operator(weight.tensor.astype(np.float64), n))
    ours = _pooled(item)
    assert ours.size == n * n * 2  # min(out, in) eigenvalues per frequency, n² frequencies
    # the operator has (out·n²) ≥ (in·n²) so its in·n² singular values are exactly the pooled ones
    np.testing.assert_allclose(ours, operator_evals, rtol=1e-9, atol=1e-12)


def test_grouped_blocks_equal_the_block_diagonal_operator_and_ww_mode_keeps_out_by_in_over_groups():
    weight = _conv((8, 2, 3, 3), groups=4)  # in = 8, 4 groups of (2 × 2)
    blocks = layer_inputs(weight, resolve_options("paper", min_evals=0))
    for it in blocks:
        i, j = divmod(it.slice_id, 3)
        w = weight.tensor[:, :, i, j]
        full = scipy.linalg.block_diag(*[w[g * 2:(g + 1) * 2] for g in range(4)])  # 8×8 operator
        np.testing.assert_allclose(_pooled(it), _svd_evals(full) * 4.5, rtol=1e-9)
        assert (it.N, it.M) == (8, 8)
    ww_items = layer_inputs(weight, resolve_options("paper", grouped="ww", min_evals=0))
    np.testing.assert_allclose(_pooled(ww_items[0]), _svd_evals(weight.tensor[:, :, 0, 0]) * 4.5, rtol=1e-9)
    assert (ww_items[0].N, ww_items[0].M) == (8, 2)


def test_depthwise_conv_blocks_are_squared_weights():
    weight = _conv((6, 1, 3, 3), groups=6)
    (item,) = layer_inputs(weight, resolve_options("ww", grouped="blocks"))
    np.testing.assert_allclose(_pooled(item), np.sort(weight.tensor.astype(np.float64).ravel() ** 2) / 2, rtol=1e-6)


def test_conv1d_weights_give_one_matrix_per_kernel_position():
    weight = _conv((10, 7, 5), kind="conv1d")
    items = layer_inputs(weight, resolve_options("paper", min_evals=0))
    assert [it.slice_id for it in items] == list(range(5))
    for it in items:
        np.testing.assert_allclose(_pooled(it), _svd_evals(weight.tensor[:, :, it.slice_id]) * 5 / 2, rtol=1e-9)


def test_hf_conv1d_is_transposed_and_embedding_kept_as_is():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(120, 360)).astype(np.float32)  # GPT-2 Conv1D stores (in, out)
    (item,) = layer_inputs(LayerWeight("h.0.attn.c_attn", 0, "hf_conv1d", w), resolve_options("paper"))
    assert item.matrices.shape == (1, 360, 120) and (item.N, item.M) == (360, 120)
    np.testing.assert_allclose(_pooled(item), _svd_evals(w), rtol=1e-9)


def test_metric_definitions_on_a_hand_computed_spectrum():
    # W = diag(σ) padded: eigenvalues are σ² exactly.
    evals = np.array([0.25, 1.0, 4.0, 9.0, 16.0, 25.0, 36.0, 49.0, 64.0, 81.0, 100.0])
    row = esd_metrics(evals, N=20, M=11, options=resolve_options("paper"))
    assert row["lambda_max"] == 100.0 and row["log_spectral_norm"] == pytest.approx(2.0)
    assert row["norm"] == pytest.approx(evals.sum()) and row["log_norm"] == pytest.approx(math.log10(evals.sum()))
    assert row["stable_rank"] == pytest.approx(evals.sum() / 100.0)
    assert row["alpha_weighted"] == pytest.approx(row["alpha"] * 2.0)
    assert row["log_alpha_norm"] == pytest.approx(math.log10(np.sum(evals ** row["alpha"])))
    p = evals / evals.sum()
    assert row["entropy"] == pytest.approx(-(p * np.log(p)).sum() / math.log(11))
    assert row["matrix_rank"] == 11 and row["num_pl_spikes"] == int(np.sum(evals >= row["xmin"]))


def test_randomized_control_is_seeded_and_flags_a_correlation_trap():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(400, 200)).astype(np.float32)
    w[5, 7] = 400.0  # one huge entry survives shuffling: a correlation trap
    options = resolve_options("paper", randomize=True, seed=11)
    (item,) = layer_inputs(LayerWeight("fc", 0, "linear", w), options)
    first = compute_rows([item], options, device="cpu")[0]
    again = compute_rows([item], options, device="cpu")[0]
    assert first["status"] == "ok" and first["num_traps"] >= 1
    assert first["rand_distance"] == again["rand_distance"] and 0 < first["rand_distance"] <= 1
    clean = rng.normal(size=(400, 200)).astype(np.float32)
    (item,) = layer_inputs(LayerWeight("fc", 0, "linear", clean), options)
    row = compute_rows([item], options, device="cpu")[0]
    assert row["num_traps"] == 0 and row["num_spikes"] == 0 and row["sigma_mp"] == pytest.approx(1.0, abs=0.02)
