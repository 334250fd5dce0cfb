"""Layer weight tensors → the matrices whose eigenvalues make one ESD (one output row each).

A ``SpectralInput`` is one future row: a batch of matrices (B, a, b) whose eigenvalues are pooled
into one ESD and multiplied by ``eval_scale``. Dense layers are one matrix. Convolutions follow
DESIGN.md §2 (``slices`` | ``stacked`` | ``fft`` | ``pooled``); Conv1d weights (out, in, k) are the
1-D case of the same rules, one matrix per kernel position, never a batched SVD of the raw tensor.

Grouped convolutions: the operator of one kernel position is block-diagonal with ``groups`` blocks
of (out/g)×(in/g), so its spectrum is the union of the blocks' spectra. ``grouped="blocks"`` uses
exactly that (depthwise convs become out 1×1 blocks); ``grouped="ww"`` keeps WeightWatcher's
(out, in/g) matrix for compatibility.

    >>> import numpy as np
    >>> from ww_ray.weights import LayerWeight
    >>> from ww_ray.spectral.presets import resolve_options
    >>> conv = LayerWeight("conv1", 0, "conv2d", np.ones((64, 32, 3, 3), dtype=np.float32))
    >>> [(x.slice_id, x.matrices.shape, x.eval_scale) for x in layer_inputs(conv, resolve_options("paper"))][:2]
    [(0, (1, 64, 32), 4.5), (1, (1, 64, 32), 4.5)]
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ww_ray.spectral.presets import AnalysisOptions
from ww_ray.weights import CONV1D, CONV2D, EMBEDDING, HF_CONV1D, LINEAR, LayerWeight


@dataclass
class SpectralInput:
    """One row to compute: a batch of matrices pooled into one ESD, plus what the row reports.

    ``matrices`` is None for rows decided before any eigenvalue (``status`` skipped/failed).
    ``eval_multiplicity`` repeats each matrix's eigenvalues (conjugate-symmetric FFT frequencies).
    ``rank`` is set for a low-rank matrix (an adapter's ΔW = s·B·A, ``ww_ray.spectral.lowrank``):
    ``matrices`` then holds its r×r core, whose eigenvalues are the matrix's non-zero ones, while
    ``N`` and ``M`` stay the full matrix's. ``role`` and ``base_model`` are the layer weight's.
    """

    layer_index: int
    layer_name: str
    layer_type: str
    N: int
    M: int
    rf: int
    matrices: np.ndarray | None
    eval_scale: float = 1.0
    eval_multiplicity: np.ndarray | None = None
    slice_id: int | None = None
    conv_method: str | None = None
    status: str = "ok"
    error: str | None = None
    extra: dict = field(default_factory=dict)
    rank: int | None = None
    role: str = "weight"
    base_model: str | None = None

    @property
    def num_evals(self) -> int:
        if self.matrices is None:
            return 0
        per_matrix = min(self.matrices.shape[1:])
        if self.eval_multiplicity is not None:
            return int(per_matrix * self.eval_multiplicity.sum())
        return int(per_matrix * self.matrices.shape[0])

    @property
    def cost(self) -> float:
        """Floating-point operations of the eigenvalue computation (Gram GEMM + symmetric eigen-solve)."""
        if self.matrices is None:
            return 0.0
        batch, a, b = self.matrices.shape
        m = min(a, b)
        complex_factor = 4.0 if np.iscomplexobj(self.matrices) else 1.0
        return float(batch * complex_factor * (2.0 * a * b * m + 4.0 * m ** 3))

    @property
    def nbytes(self) -> int:
        return 0 if self.matrices is None else int(self.matrices.nbytes)


def as_float64(tensor: Any) -> np.ndarray:
    """A torch tensor or array-like as a float64 numpy array (a copy unless it already is float64 numpy).

    For exact arithmetic on weights — a LoRA ΔW = s·B·A, a fine-tune's W − W_base — before their spectra.

    >>> import torch
    >>> as_float64(torch.ones(2, 3, dtype=torch.bfloat16)).dtype, as_float64([[1, 2]]).dtype
    (dtype('float64'), dtype('float64'))
    """
    if hasattr(tensor, "detach"):
        return tensor.detach().cpu().double().numpy()
    return np.asarray(tensor, dtype=np.float64)


def _as_numpy(tensor) -> np.ndarray:
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().cpu()
        if str(tensor.dtype) in ("torch.bfloat16", "torch.float16") or tensor.dtype.is_floating_point is False:
            tensor = tensor.float()
        return tensor.numpy()
    array = np.asarray(tensor)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
    return array


def _dense_matrix(weight: LayerWeight, array: np.ndarray) -> np.ndarray:
    if array.ndim != 2:
        raise ValueError(f"{weight.kind} weight must be 2-D, got shape {array.shape}")
    return array.T if weight.kind == HF_CONV1D else array


def _group_blocks(kernel_major: np.ndarray, groups: int) -> np.ndarray:
    """(P, out, in_g) per-position matrices → (P·g, out/g, in_g) diagonal blocks, position-major."""
    positions, out, in_g = kernel_major.shape
    if out % groups:
        raise ValueError(f"out channels {out} not divisible by groups={groups}")
    blocks = kernel_major.reshape(positions, groups, out // groups, in_g)
    return blocks.reshape(positions * groups, out // groups, in_g)


def _conv_inputs(weight: LayerWeight, array: np.ndarray, options: AnalysisOptions) -> list[SpectralInput]:
    expected_ndim = 4 if weight.kind == CONV2D else 3
    if array.ndim != expected_ndim:
        raise ValueError(f"{weight.kind} weight must be {expected_ndim}-D, got shape {array.shape}")
    out, in_g = array.shape[:2]
    kernel_shape = array.shape[2:]
    rf = int(np.prod(kernel_shape))
    groups = weight.groups if options.grouped == "blocks" else 1
    # (positions, out, in/g): one matrix per kernel position, position index i*kw + j.
    kernel_major = np.moveaxis(array.reshape(out, in_g, rf), 2, 0)
    in_total = in_g * groups
    N, M = max(out, in_total), min(out, in_total)
    if groups > 1:
        N, M = max(out // groups, in_g), min(out // groups, in_g)
        N, M = N * groups, M * groups
    base = dict(layer_index=weight.index, layer_name=weight.name, layer_type=weight.kind,
                conv_method=options.conv_method)
    method = options.conv_method
    if method == "slices":
        scale = rf / 2.0 if options.conv_rescale else 1.0
        return [
            SpectralInput(**base, N=N, M=M, rf=rf, slice_id=p, eval_scale=scale,
                          matrices=_group_blocks(kernel_major[p:p + 1], groups))
            for p in range(rf)
        ]
    if method == "pooled":
        scale = 0.5 if options.conv_rescale else 1.0
        return [SpectralInput(**base, N=N, M=M, rf=rf, eval_scale=scale,
                              matrices=_group_blocks(kernel_major, groups))]
    if method == "stacked":
        # One ((positions·out/g) × in/g) matrix per group: rows are (kernel position, out channel).
        per_group = _group_blocks(kernel_major, groups).reshape(rf, groups, out // groups, in_g)
        stacked = np.moveaxis(per_group, 1, 0).reshape(groups, rf * (out // groups), in_g)
        rows = rf * out // groups
        return [SpectralInput(**base, N=max(rows, in_g) * groups, M=min(rows, in_g) * groups, rf=rf,
                              matrices=stacked)]
    return [_fft_input(base, array, groups, N, M, rf, options.fft_size)]


def _fft_input(base: dict, array: np.ndarray, groups: int, N: int, M: int, rf: int, size: int) -> SpectralInput:
    """Transfer matrices P(ω) = Σ_x K[:, :, x] e^{-2πi ω·x/n} of the circular convolution (Sedghi et al. 2019).

    The operator's singular values are those of every P(ω). For a real kernel P(−ω) = conj(P(ω)),
    so only the half spectrum from ``rfftn`` is computed and each frequency's eigenvalues are
    counted twice, except the self-conjugate ones (last-axis index 0 and n/2).
    """
    kernel_axes = tuple(range(2, array.ndim))
    if any(array.shape[a] > size for a in kernel_axes):
        raise ValueError(f"fft_size={size} is smaller than the kernel {array.shape[2:]}")
    spectrum = np.fft.rfftn(array.astype(np.float64), s=(size,) * len(kernel_axes), axes=kernel_axes)
    out, in_g = array.shape[:2]
    freq_shape = spectrum.shape[2:]
    transfer = np.moveaxis(spectrum.reshape(out, in_g, -1), 2, 0)            # (frequencies, out, in/g)
    last = np.arange(freq_shape[-1])
    self_conjugate = (last == 0) | ((size % 2 == 0) & (last == size // 2))
    multiplicity = np.broadcast_to(np.where(self_conjugate, 1, 2), freq_shape).reshape(-1)
    blocks = _group_blocks(transfer, groups).astype(np.complex128)
    return SpectralInput(**base, N=N, M=M, rf=rf, matrices=blocks,
                         eval_multiplicity=np.repeat(multiplicity, groups))


def layer_inputs(weight: LayerWeight, options: AnalysisOptions) -> list[SpectralInput]:
    """The rows one layer weight gives under ``options`` (before size filters and data checks)."""
    array = _as_numpy(weight.tensor)
    if weight.kind in (LINEAR, HF_CONV1D, EMBEDDING):
        matrix = _dense_matrix(weight, array)
        n, m = max(matrix.shape), min(matrix.shape)
        return [SpectralInput(layer_index=weight.index, layer_name=weight.name, layer_type=weight.kind,
                              N=n, M=m, rf=1, matrices=matrix[None])]
    if weight.kind in (CONV1D, CONV2D):
        return _conv_inputs(weight, array, options)
    raise ValueError(f"unsupported layer kind {weight.kind!r}")
