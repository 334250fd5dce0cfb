"""`LayerWeight`: one named weight tensor of a model, typed by what kind of layer holds it.

This is the hand-off between the zoos (which read checkpoints and modules) and the spectral
core (which turns each weight into matrices). It holds no I/O and no math.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

# Layer kinds the spectral core understands.
LINEAR = "linear"            # (out, in)
HF_CONV1D = "hf_conv1d"      # Hugging Face / GPT-2 Conv1D, stored (in, out)
EMBEDDING = "embedding"      # (num_embeddings, dim)
CONV1D = "conv1d"            # (out, in/groups, k)
CONV2D = "conv2d"            # (out, in/groups, kh, kw)
LAYER_KINDS = (LINEAR, HF_CONV1D, EMBEDDING, CONV1D, CONV2D)

# What a weight is relative to the model analysed (the ``weight_role`` column of the layers table).
WEIGHT = "weight"                # the model's own weight (every row of a plain analysis)
BASE = "base"                    # the base model's weight, analysed beside a fine-tune or an adapter
ADAPTER_DELTA = "adapter_delta"  # ΔW = scale·B·A of a LoRA adapter (rank r: r non-zero eigenvalues)
DELTA_VS_BASE = "delta_vs_base"  # ΔW = W − W_base of a fine-tune against its base
MERGED = "merged"                # W₀ + ΔW: a base weight with its adapter merged in
WEIGHT_ROLES = (WEIGHT, BASE, ADAPTER_DELTA, DELTA_VS_BASE, MERGED)
# The rows that stand for "the model" in its summary, first role present wins: a fine-tune's own
# weights, else an adapter merged into its base, else the adapter's deltas (never the base's rows).
PRIMARY_ROLES = (WEIGHT, MERGED, ADAPTER_DELTA, DELTA_VS_BASE)


def primary_role(roles: "Iterable[str | None]") -> str | None:
    """The role whose rows summarise the model (``PRIMARY_ROLES`` order; a missing role reads as ``weight``).

    >>> primary_role(["base", "adapter_delta", "merged"]), primary_role([None, None])
    ('merged', 'weight')
    """
    present = {WEIGHT if role is None else role for role in roles}
    return next((role for role in PRIMARY_ROLES if role in present), None)


@dataclass
class LayerWeight:
    """A layer's weight tensor with what the analysis needs to know about it.

    Attributes:
        name: the module path (the state-dict key without its ``.weight`` suffix).
        index: position of the layer in depth order (0-based, over all weights of the model).
        kind: one of ``LAYER_KINDS``.
        tensor: a ``torch.Tensor`` or ``numpy.ndarray``; never modified.
        groups: convolution groups (1 for dense layers); depthwise convs have groups == out.
        role: one of ``WEIGHT_ROLES`` (what the tensor is relative to the model analysed).
        base_model: the base model a ``base``/``delta_vs_base``/``merged``/``adapter_delta`` weight refers to.

    ``tensor`` may also be a ``ww_ray.spectral.lowrank.LowRankFactors`` (an adapter's B, A and scale):
    anything with a ``shape``; the spectral core decides how to decompose it.
    """

    name: str
    index: int
    kind: str
    tensor: Any
    groups: int = 1
    role: str = WEIGHT
    base_model: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"unknown layer kind {self.kind!r}; expected one of {LAYER_KINDS}")
        if self.role not in WEIGHT_ROLES:
            raise ValueError(f"unknown weight role {self.role!r}; expected one of {WEIGHT_ROLES}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.tensor.shape)
