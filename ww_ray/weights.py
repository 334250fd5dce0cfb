"""`LayerWeight`: one named weight tensor of a model, typed by what kind of layer holds it.

This is the hand-off between the zoos (which read checkpoints and modules) and the spectral
core (which turns each weight into matrices). It holds no I/O and no math.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Layer kinds the spectral core understands.
LINEAR = "linear"            # (out, in)
HF_CONV1D = "hf_conv1d"      # Hugging Face / GPT-2 Conv1D, stored (in, out)
EMBEDDING = "embedding"      # (num_embeddings, dim)
CONV1D = "conv1d"            # (out, in/groups, k)
CONV2D = "conv2d"            # (out, in/groups, kh, kw)
LAYER_KINDS = (LINEAR, HF_CONV1D, EMBEDDING, CONV1D, CONV2D)


@dataclass
class LayerWeight:
    """A layer's weight tensor with what the analysis needs to know about it.

    Attributes:
        name: the module path (the state-dict key without its ``.weight`` suffix).
        index: position of the layer in depth order (0-based, over all weights of the model).
        kind: one of ``LAYER_KINDS``.
        tensor: a ``torch.Tensor`` or ``numpy.ndarray``; never modified.
        groups: convolution groups (1 for dense layers); depthwise convs have groups == out.
    """

    name: str
    index: int
    kind: str
    tensor: Any
    groups: int = 1

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"unknown layer kind {self.kind!r}; expected one of {LAYER_KINDS}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.tensor.shape)
