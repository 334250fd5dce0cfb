"""Eigenvalues of X = WᵀW (the Empirical Spectral Density), batched, on the CPU or a GPU.

Why not ``svd(W)`` like WeightWatcher: for an N×M matrix (N ≥ M) the Gram route costs one GEMM
(2·N·M² flops) plus a symmetric eigen-solve of an M×M matrix, against a full bidiagonalisation of
the N×M matrix for the SVD; on the sizes that matter (transformer and conv layers) it is several
times faster. We form the Gram matrix in float64, so the absolute error of every eigenvalue is
about 1e-16·λmax·√M: λmax, Σλ and every eigenvalue the power-law tail uses agree with an SVD to
far better than 1e-10 relative (tests/test_spectral_numerics.py checks it against scipy's SVD).

``gram_dtype="float32"`` (opt-in; every preset keeps float64) forms the Gram matrix with a float32
GEMM from the stored float32 weights (no widened copy of W) and still solves the eigenproblem in
float64. The GEMM then rounds every Gram entry to about 6e-8 relative: measured, λmax agrees within
4e-7 and the tail fit's α, α̂, log α-norm, D and xmin within 6e-5 relative; eigenvalues far below
λmax·1e-7 (the null space of a rank-deficient W) become round-off noise. benchmarks/gram_float32.py
measures both sides of that trade on real and heavy-tailed synthetic matrices.

On the CPU numpy (OpenBLAS) is used, not torch (MKL): measured on this project's 2-core machine, a
2048-wide float64 eigvalsh took 0.56 s with numpy and 0.62 s with torch on one thread, and the
float64 GEMM 0.48 s against 0.97 s, so a CPU worker needs no torch import at all.

    >>> import numpy as np
    >>> from ww_ray.spectral.esd import eigenvalues
    >>> w = np.diag([3.0, 2.0, 1.0])
    >>> eigenvalues(np.vstack([w, np.zeros((2, 3))])).round(12).tolist()
    [1.0, 4.0, 9.0]
"""
from __future__ import annotations

import warnings

import numpy as np

from ww_ray.spectral.presets import GRAM_DTYPES


def _torch_device(device: str) -> str | None:
    """The torch device to use, or None for the numpy path."""
    if device == "cpu":
        return None
    try:
        import torch
    except ImportError:
        if device == "cuda":
            raise RuntimeError("device='cuda' needs torch with CUDA; torch is not installed")
        return None
    if torch.cuda.is_available():
        return "cuda"
    if device == "cuda":
        raise RuntimeError("device='cuda' was asked for but torch sees no GPU")
    return None


def resolve_device(device: str = "auto") -> str:
    """'cuda' when the GPU path will be used for ``device``, else 'cpu'."""
    return _torch_device(device) or "cpu"


def _numpy_dtypes(gram_dtype: str, complex_input: bool) -> tuple[type, type]:
    """(GEMM dtype, eigen-solve dtype) for a Gram precision; the solve is always double precision."""
    if gram_dtype not in GRAM_DTYPES:
        raise ValueError(f"gram_dtype={gram_dtype!r} is not one of {GRAM_DTYPES}")
    if complex_input:
        return (np.complex64 if gram_dtype == "float32" else np.complex128), np.complex128
    return (np.float32 if gram_dtype == "float32" else np.float64), np.float64


def gram_eigenvalues(batch: np.ndarray, device: str = "auto", gram_dtype: str = "float64") -> np.ndarray:
    """Eigenvalues of WᴴW for every matrix of a (B, a, b) batch, as a (B, min(a, b)) float64 array.

    Rows are sorted ascending; round-off negatives are clipped to 0. Complex input (the ``fft``
    conv method) is handled as Hermitian. ``gram_dtype``: precision of the Gram GEMM (``float64``,
    or ``float32``: see the module docstring); the eigen-solve is float64 either way.
    """
    if batch.ndim != 3:
        raise ValueError(f"expected a (batch, rows, cols) array, got shape {batch.shape}")
    _, a, b = batch.shape
    gemm_dtype, solve_dtype = _numpy_dtypes(gram_dtype, np.iscomplexobj(batch))
    torch_device = _torch_device(device)
    if torch_device is not None:
        return _gram_eigenvalues_torch(batch, torch_device, gram_dtype)
    evals = np.linalg.eigvalsh(_gram(batch, gemm_dtype).astype(solve_dtype, copy=False))
    return np.maximum(evals, 0.0)


# Widened bytes one Gram GEMM takes at a time, at least: a block is never smaller than the M×M Gram
# it is summed into. A stored float32 32000×4096 head widened whole to float64 is 1 GB beside the
# 0.5 GB it came from; summed over blocks of rows it costs one block plus the Gram (measured with
# benchmarks/large_model.py: that widening set the workers' peak memory). The floor of the Gram's own
# size keeps blocks at M rows or more: smaller ones only cost time (each adds an M×M pass and a
# thinner GEMM) for memory the Gram takes anyway, and a square matrix is widened whole
# (benchmarks/gram_blocks.py, one BLAS thread: 4096×4096 whole 5.75 s, 32 MiB blocks 6.27 s and more
# memory; 11008×4096: 128 MiB 8.65 s, 64 MiB 9.16 s, 32 MiB 9.70 s; 2048-wide shapes alike). 32 MiB
# rather than the 64 first chosen: one block per solve thread less (an RSS probe of the 1.1B benchmark's
# in-process run, one run each, not kept in the repo: peak 1.55 → 1.48 GB).
GRAM_BLOCK_BYTES = 32 << 20


def gram_block_lines(count: int, long_side: int, short_side: int, itemsize: int) -> int:
    """Lines of the long side widened per block (``long_side``: widened whole).

    >>> gram_block_lines(1, 32000, 2048, 8), gram_block_lines(1, 32000, 4096, 8), gram_block_lines(1, 4096, 4096, 8)
    (2048, 4096, 4096)
    """
    per_line = count * short_side * itemsize
    bound = max(GRAM_BLOCK_BYTES, count * short_side * short_side * itemsize)
    return long_side if long_side * per_line <= bound else max(1, bound // per_line)


def _conj_t(x: np.ndarray) -> np.ndarray:
    return np.conj(np.swapaxes(x, 1, 2)) if np.iscomplexobj(x) else np.swapaxes(x, 1, 2)


def _gram(batch: np.ndarray, gemm_dtype: np.dtype) -> np.ndarray:
    """XᴴX (tall) or XXᴴ (wide) per matrix, in ``gemm_dtype``; summed over blocks of the long side
    (``gram_block_lines``) when widening the whole batch would take more than ``GRAM_BLOCK_BYTES`` and
    the Gram's own size (same product, the summation order differs only at round-off: ~1e-16 relative)."""
    count, a, b = batch.shape
    tall = a >= b
    long_side, short_side = (a, b) if tall else (b, a)
    step = gram_block_lines(count, long_side, short_side, np.dtype(gemm_dtype).itemsize)
    if batch.dtype == gemm_dtype or step >= long_side:
        x = np.asarray(batch, dtype=gemm_dtype)
        return _conj_t(x) @ x if tall else x @ _conj_t(x)
    gram = np.zeros((count, short_side, short_side), dtype=gemm_dtype)
    for start in range(0, long_side, step):
        if tall:
            block = np.asarray(batch[:, start:start + step, :], dtype=gemm_dtype)
            gram += _conj_t(block) @ block
        else:
            block = np.asarray(batch[:, :, start:start + step], dtype=gemm_dtype)
            gram += block @ _conj_t(block)
    return gram


def _gram_eigenvalues_torch(batch: np.ndarray, device: str, gram_dtype: str) -> np.ndarray:
    import torch

    _, a, b = batch.shape
    complex_input = np.iscomplexobj(batch)
    solve_dtype = torch.complex128 if complex_input else torch.float64
    single = torch.complex64 if complex_input else torch.float32
    work_dtype = single if gram_dtype == "float32" else solve_dtype
    with torch.no_grad(), warnings.catch_warnings():
        # Arrays from Ray's object store are read-only; the host tensor is only read (copied to the
        # device), so torch's warning about non-writable arrays does not apply. Copy in the stored
        # precision, widen on the device: half the host-to-device bytes for float32 weights.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        x = torch.as_tensor(batch).to(device=device).to(dtype=work_dtype)
        xh = x.mH
        # A float32 GEMM in TF32 (a process-wide torch setting) would round to 1e-3: force full float32.
        precision = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            gram = xh @ x if a >= b else x @ xh
        finally:
            torch.set_float32_matmul_precision(precision)
        evals = torch.linalg.eigvalsh(gram.to(dtype=solve_dtype))
        return np.maximum(evals.cpu().numpy(), 0.0)


def eigenvalues(matrix: np.ndarray, device: str = "auto", gram_dtype: str = "float64") -> np.ndarray:
    """Ascending eigenvalues of WᵀW for one N×M matrix (min(N, M) values, float64)."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {matrix.shape}")
    return gram_eigenvalues(matrix[None], device=device, gram_dtype=gram_dtype)[0]
