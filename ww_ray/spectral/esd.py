"""Eigenvalues of X = WᵀW (the Empirical Spectral Density), batched, on the CPU or a GPU.

Why not ``svd(W)`` like WeightWatcher: for an N×M matrix (N ≥ M) the Gram route costs one GEMM
(2·N·M² flops) plus a symmetric eigen-solve of an M×M matrix, against a full bidiagonalisation of
the N×M matrix for the SVD; on the sizes that matter (transformer and conv layers) it is several
times faster. We form the Gram matrix in float64, so the absolute error of every eigenvalue is
about 1e-16·λmax·√M: λmax, Σλ and every eigenvalue the power-law tail uses agree with an SVD to
far better than 1e-10 relative (tests/test_spectral_numerics.py checks it against scipy's SVD).

    >>> import numpy as np
    >>> from ww_ray.spectral.esd import eigenvalues
    >>> w = np.diag([3.0, 2.0, 1.0])
    >>> eigenvalues(np.vstack([w, np.zeros((2, 3))])).round(12).tolist()
    [1.0, 4.0, 9.0]
"""
from __future__ import annotations

import warnings

import numpy as np


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


def gram_eigenvalues(batch: np.ndarray, device: str = "auto") -> np.ndarray:
    """Eigenvalues of WᴴW for every matrix of a (B, a, b) batch, as a (B, min(a, b)) float64 array.

    Rows are sorted ascending; round-off negatives are clipped to 0. Complex input (the ``fft``
    conv method) is handled as Hermitian.
    """
    if batch.ndim != 3:
        raise ValueError(f"expected a (batch, rows, cols) array, got shape {batch.shape}")
    _, a, b = batch.shape
    torch_device = _torch_device(device)
    if torch_device is not None:
        return _gram_eigenvalues_torch(batch, torch_device)
    work_dtype = np.complex128 if np.iscomplexobj(batch) else np.float64
    x = np.asarray(batch, dtype=work_dtype)
    xh = np.conj(np.swapaxes(x, 1, 2)) if np.iscomplexobj(x) else np.swapaxes(x, 1, 2)
    gram = xh @ x if a >= b else x @ xh
    evals = np.linalg.eigvalsh(gram)
    return np.maximum(evals, 0.0)


def _gram_eigenvalues_torch(batch: np.ndarray, device: str) -> np.ndarray:
    import torch

    _, a, b = batch.shape
    work_dtype = torch.complex128 if np.iscomplexobj(batch) else torch.float64
    with torch.no_grad(), warnings.catch_warnings():
        # Arrays from Ray's object store are read-only; the host tensor is only read (copied to the
        # device), so torch's warning about non-writable arrays does not apply. Copy in the stored
        # precision, widen on the device: half the host-to-device bytes for float32 weights.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        x = torch.as_tensor(batch).to(device=device).to(dtype=work_dtype)
        xh = x.mH
        gram = xh @ x if a >= b else x @ xh
        evals = torch.linalg.eigvalsh(gram)
        return np.maximum(evals.cpu().numpy(), 0.0)


def eigenvalues(matrix: np.ndarray, device: str = "auto") -> np.ndarray:
    """Ascending eigenvalues of WᵀW for one N×M matrix (min(N, M) values, float64)."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {matrix.shape}")
    return gram_eigenvalues(matrix[None], device=device)[0]
