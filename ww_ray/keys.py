"""The dataset key of a model: ``(source, model_id, revision)``, an unknown revision stored as ``""``.

One place for this fact: specs, plans, results, writers, readers and the schema all use it.

>>> model_key("pytorchcv", "resnet20_cifar10", None)
('pytorchcv', 'resnet20_cifar10', '')
"""
from __future__ import annotations

#: Key columns of the ``models`` and ``layers`` tables, in order.
MODEL_KEY_COLUMNS: tuple[str, str, str] = ("source", "model_id", "revision")

ModelKey = tuple[str, str, str]


def model_key(source: str, model_id: str, revision: str | None) -> ModelKey:
    """The key a model is stored under; ``revision`` None (unknown) becomes ``""``."""
    return (str(source), str(model_id), "" if revision is None else str(revision))
