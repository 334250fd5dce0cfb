"""Errors the zoos raise, so the sweep can tell a failed model from a skipped one.

``ZooError`` is the base: an unknown model, a bad id, a metadata file that cannot be read.
``ZooUnavailableError`` says a remote zoo cannot be reached and how to point it at local weights.
``ModelSkipped`` carries the reason a model is deliberately not analysed (too large, ...): the
sweep records it as status ``skipped`` rather than ``failed``.
"""
from __future__ import annotations


class ZooError(RuntimeError):
    """A zoo could not enumerate or load a model."""


class ZooUnavailableError(ZooError):
    """A remote zoo (network download) cannot be reached; the message says how to work offline."""


class UnsafeIdError(ZooError, ValueError):
    """A model id or file name that could escape the cache or output folder."""


class ModelSkipped(ZooError):
    """A model left out on purpose; ``reason`` says why (for the status row)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
