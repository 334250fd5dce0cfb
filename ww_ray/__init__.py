"""ww_ray: predict the quality of pretrained neural networks from their weight spectra, at scale on Ray.

``analyze(source, preset="paper", **options)`` gives one row per analysed weight matrix;
``summarize(rows)`` gives the model averages; ``open_dataset(root)`` opens a sweep's dataset as a
DuckDB connection with the views ``layers``, ``models``, ``regressions`` and ``runs``.
See README.md and DESIGN.md.

The three names are imported on first use (PEP 562): a Ray worker that only unpickles
``ww_ray.engine.worker`` then imports numpy and scipy, not pandas, DuckDB and the store.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {"analyze": "ww_ray.api", "summarize": "ww_ray.api", "open_dataset": "ww_ray.store"}

__all__ = ["analyze", "summarize", "open_dataset", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ww_ray' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
