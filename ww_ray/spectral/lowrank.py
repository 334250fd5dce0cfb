"""Low-rank matrices ΔW = s·B·A (LoRA adapter deltas): their non-zero eigenvalues from an r×r core.

For B (N×r) and A (r×M), ΔWᵀΔW has at most r non-zero eigenvalues; forming the N×M matrix and its
M×M Gram would cost 2·N·M² flops for M − r zeros. With the thin QR factorisations B = Q_B R_B and
Aᵀ = Q_A R_A (orthonormal Q's), ΔW = Q_B (s R_B R_Aᵀ) Q_Aᵀ, so the non-zero singular values of ΔW
are those of the r×r core C = s R_B R_Aᵀ and its non-zero eigenvalues are the eigenvalues of CᵀC:
O((N + M)·r²) work, every eigenvalue as accurate as a full SVD of ΔW (the QR is backward stable).

A ``SpectralInput`` of a low-rank weight holds that core as its one matrix, with the full ``N``
and ``M`` (size filters, ``Q`` and the rank tolerance use them) and ``rank`` set: its ESD is the r
eigenvalues, ``num_evals`` says r, and the row's metrics are those of ΔW's non-zero spectrum.

    >>> import numpy as np
    >>> b, a = np.array([[1.0], [0.0], [0.0]]), np.array([[0.0, 2.0]])   # ΔW = 0.5·b·a
    >>> lowrank_eigenvalues(LowRankFactors(b, a, 0.5)).tolist()             # one σ = 1, λ = σ²
    [1.0]
    >>> lora_scale(16, 4), lora_scale(16, 4, use_rslora=True)
    (4.0, 8.0)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ww_ray.spectral.esd import gram_eigenvalues
from ww_ray.spectral.matrices import SpectralInput, as_float64
from ww_ray.spectral.presets import AnalysisOptions

__all__ = ["LowRankFactors", "is_low_rank", "lora_scale", "lowrank_core", "lowrank_eigenvalues", "lowrank_inputs"]


def lora_scale(alpha: float, r: int, use_rslora: bool = False) -> float:
    """LoRA's scale s of ΔW = s·B·A: ``alpha / r``, or ``alpha / √r`` for rank-stabilised LoRA (rsLoRA)."""
    if r <= 0:
        raise ValueError(f"LoRA rank must be positive, got r={r}")
    return float(alpha) / (math.sqrt(r) if use_rslora else r)


@dataclass(frozen=True)
class LowRankFactors:
    """ΔW = scale·B·A: ``B`` (out × r) and ``A`` (r × in) as a LoRA adapter stores them (torch or numpy).

    ``shape`` is ΔW's, (out, in): what the size filters and the ``N``/``M`` columns see.
    """

    B: Any
    A: Any
    scale: float

    @property
    def shape(self) -> tuple[int, ...]:
        return (int(self.B.shape[0]), *(int(s) for s in self.A.shape[1:]))

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    def dense(self) -> np.ndarray:
        """ΔW as an explicit float64 (out × in) matrix (for merging into a base weight)."""
        return self.scale * (as_float64(self.B) @ as_float64(self.A))


def is_low_rank(weight: Any) -> bool:
    """True when a ``LayerWeight`` holds ``LowRankFactors`` instead of a tensor."""
    return isinstance(getattr(weight, "tensor", None), LowRankFactors)


def lowrank_core(factors: LowRankFactors) -> np.ndarray:
    """The core C = s·R_B·R_Aᵀ (at most r×r) whose singular values are ΔW's non-zero ones (float64)."""
    b, a = as_float64(factors.B), as_float64(factors.A)
    if b.ndim != 2 or a.ndim != 2:
        raise ValueError(f"low-rank factors must be 2-D, got B {b.shape} and A {a.shape}")
    if b.shape[1] != a.shape[0]:
        raise ValueError(f"low-rank factors do not chain: B is {b.shape}, A is {a.shape}")
    r_b = np.linalg.qr(b, mode="r")
    r_a = np.linalg.qr(a.T, mode="r")
    return factors.scale * (r_b @ r_a.T)


def lowrank_eigenvalues(factors: LowRankFactors, device: str = "cpu") -> np.ndarray:
    """The min(r, N, M) eigenvalues of ΔWᵀΔW that can be non-zero, ascending (float64)."""
    return gram_eigenvalues(lowrank_core(factors)[None], device=device)[0]


def lowrank_inputs(weight: Any, options: AnalysisOptions) -> list[SpectralInput]:
    """The one row of a low-rank ``LayerWeight``: its r×r core, with ΔW's full N and M.

    Only dense layers (linear, GPT-2 Conv1D, embedding) have a low-rank rule; a LoRA on a
    convolution raises ``ValueError`` (a failed row).
    """
    factors: LowRankFactors = weight.tensor
    if weight.kind not in ("linear", "hf_conv1d", "embedding") or len(factors.shape) != 2:
        raise ValueError(f"low-rank (LoRA) deltas are analysed for linear, Conv1D and embedding layers only; "
                         f"{weight.name} is a {weight.kind} adapter with ΔW of shape {factors.shape}")
    if factors.scale == 0.0 or not np.isfinite(factors.scale):
        raise ValueError(f"adapter scale is {factors.scale}: ΔW = scale·B·A has no spectrum")
    core = lowrank_core(factors)
    if np.all(np.isfinite(core)) and not np.any(core):
        raise ValueError("ΔW = 0: one factor is all zeros (LoRA's B starts at zero: an adapter never trained)")
    n, m = max(factors.shape), min(factors.shape)
    return [SpectralInput(layer_index=weight.index, layer_name=weight.name, layer_type=weight.kind,
                          N=n, M=m, rf=1, matrices=core[None], rank=factors.rank)]
